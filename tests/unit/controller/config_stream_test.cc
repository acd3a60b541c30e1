// Config.Stream over the real API: snapshot then deltas, ACK/NACK bookkeeping, resume; and the agent-side client.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <thread>
#include <vector>

#include <grpcpp/generic/generic_stub.h>

#include "agent/control/config_client.h"
#include "agent/control/control_plane.h"
#include "tests/unit/controller/test_env.h"
#include "zeromesh/v1/config.grpc.pb.h"
#include "zeromesh/v1/status.grpc.pb.h"

namespace zm::test {
namespace {
namespace v1 = zeromesh::v1;
using Stream = grpc::ClientReaderWriter<v1::AgentMessage, v1::ConfigPush>;

struct RawStream {
  grpc::ClientContext ctx;
  std::unique_ptr<Stream> stream;
};

std::unique_ptr<RawStream> Open(v1::Config::Stub* stub, uint64_t last_version = 0, const std::string& epoch = "",
                                const std::string& token = kTokenNode1, bool accepts_parts = false) {
  auto s = std::make_unique<RawStream>();
  Auth(&s->ctx, token);
  s->stream = stub->Stream(&s->ctx);
  v1::AgentMessage hello;
  hello.mutable_hello()->set_node("node1");
  hello.mutable_hello()->set_last_version(last_version);
  hello.mutable_hello()->set_last_epoch(epoch);
  hello.mutable_hello()->set_accepts_parts(accepts_parts);
  s->stream->Write(hello);
  return s;
}

// Reads one push with a deadline (the read runs on a helper thread; cancel on timeout).
bool ReadPush(RawStream* s, v1::ConfigPush* out, int ms) {
  std::atomic<bool> done{false};
  bool ok = false;
  std::thread t([&] {
    ok = s->stream->Read(out);
    done = true;
  });
  bool in_time = WaitFor([&] { return done.load(); }, ms);
  if (!in_time) s->ctx.TryCancel();
  t.join();
  return in_time && ok;
}

void Close(RawStream* s) {
  s->ctx.TryCancel();
  s->stream->Finish();
}

bool HasWorkload(const v1::ConfigPush& p, const std::string& name) {
  for (const auto& r : p.upserted()) {
    if (r.has_workload() && r.workload().name() == name) return true;
  }
  return false;
}

class ConfigStreamTest : public ::testing::Test {
 protected:
  void SetUp() override {
    env_ = NewEnv();
    WriteFile(env_.manifests + "/a.yaml", WorkloadYaml("web-1", "shop", "web", "node1", "10.244.1.11", "web"));
    env_.Start(/*watch=*/true);
    stub_ = v1::Config::NewStub(env_.Channel());
  }
  void TearDown() override {
    env_.Stop();
    RemoveTree(env_.dir);
  }
  ControllerEnv env_;
  std::unique_ptr<v1::Config::Stub> stub_;
};

TEST_F(ConfigStreamTest, SnapshotThenDeltaAckNackAndResume) {
  auto s = Open(stub_.get());
  v1::ConfigPush full;
  ASSERT_TRUE(ReadPush(s.get(), &full, 3000));
  EXPECT_TRUE(full.full());
  EXPECT_EQ(full.version(), 1u);
  EXPECT_FALSE(full.trust_bundle_pem().empty());
  EXPECT_TRUE(HasWorkload(full, "web-1"));
  bool has_mesh = false;
  for (const auto& r : full.upserted()) has_mesh = has_mesh || r.has_mesh_config();
  EXPECT_TRUE(has_mesh) << "the default MeshConfig is always part of the snapshot";
  const std::string epoch = full.epoch();

  v1::AgentMessage ack;
  ack.mutable_ack()->set_version(1);
  s->stream->Write(ack);
  ASSERT_TRUE(WaitFor([&] { return env_.controller->agents().Get("node1").acked_version() == 1; }, 2000));
  EXPECT_TRUE(env_.controller->agents().Get("node1").connected());

  // A manifest change arrives as a delta carrying only the new workload.
  WriteFile(env_.manifests + "/b.yaml", WorkloadYaml("web-2", "shop", "web", "node1", "10.244.1.12", "web"));
  v1::ConfigPush delta;
  ASSERT_TRUE(ReadPush(s.get(), &delta, 3000));
  EXPECT_FALSE(delta.full());
  EXPECT_EQ(delta.version(), 2u);
  EXPECT_EQ(delta.base_version(), 1u);
  EXPECT_EQ(delta.upserted_size(), 1);
  EXPECT_TRUE(HasWorkload(delta, "web-2"));

  v1::AgentMessage nack;
  nack.mutable_nack()->set_version(2);
  nack.mutable_nack()->set_error("cannot program BPF map");
  s->stream->Write(nack);
  ASSERT_TRUE(WaitFor([&] { return env_.controller->agents().Get("node1").nacked_version() == 2; }, 2000));
  auto status = v1::Status::NewStub(env_.Channel());
  {
    grpc::ClientContext ctx;
    Auth(&ctx, kTokenNode1);
    v1::MeshStatus ms;
    ASSERT_TRUE(status->Get(&ctx, {}, &ms).ok());
    ASSERT_EQ(ms.agents_size(), 1);
    EXPECT_EQ(ms.agents(0).nack_error(), "cannot program BPF map");
    EXPECT_EQ(ms.agents(0).acked_version(), 1u);
    EXPECT_EQ(ms.agents(0).sent_version(), 2u);
  }

  // Removal is a delta too.
  unlink((env_.manifests + "/b.yaml").c_str());
  v1::ConfigPush removal;
  ASSERT_TRUE(ReadPush(s.get(), &removal, 3000));
  EXPECT_EQ(removal.version(), 3u);
  ASSERT_EQ(removal.removed_size(), 1);
  EXPECT_EQ(removal.removed(0).name(), "web-2");
  EXPECT_EQ(removal.removed(0).kind(), v1::WORKLOAD);
  Close(s.get());

  // Resume at the current version: nothing is resent.
  auto same = Open(stub_.get(), 3, epoch);
  v1::ConfigPush p;
  EXPECT_FALSE(ReadPush(same.get(), &p, 500)) << "unexpected push v" << p.version();
  Close(same.get());
  // Resume from an older version still in history: a delta from there.
  auto older = Open(stub_.get(), 2, epoch);
  ASSERT_TRUE(ReadPush(older.get(), &p, 3000));
  EXPECT_FALSE(p.full());
  EXPECT_EQ(p.base_version(), 2u);
  EXPECT_EQ(p.removed_size(), 1);
  Close(older.get());
  // Another epoch (controller restarted): full snapshot.
  auto other = Open(stub_.get(), 2, "not-this-epoch");
  ASSERT_TRUE(ReadPush(other.get(), &p, 3000));
  EXPECT_TRUE(p.full());
  EXPECT_EQ(p.version(), 3u);
  Close(other.get());
}

int ThreadCount() {
  int n = 0;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/task")) n += entry.is_directory();
  return n;
}

// Streams are served by gRPC callbacks: 200 open streams do not hold a thread each (the synchronous API held two per
// stream: 400 here), every one still receives each new version, and a shutdown ends them all at once.
TEST_F(ConfigStreamTest, ManyStreamsShareAFewThreads) {
  constexpr int kStreams = 200;
  std::vector<std::unique_ptr<RawStream>> streams;
  v1::ConfigPush p;
  streams.push_back(Open(stub_.get()));  // gRPC starts its own threads with the first stream
  ASSERT_TRUE(ReadPush(streams.back().get(), &p, 3000));
  const int before = ThreadCount();
  for (int i = 1; i < kStreams; i++) streams.push_back(Open(stub_.get()));
  // Plain blocking reads (ReadPush polls every 20 ms; ctest's timeout bounds a hang).
  for (auto& s : streams) {
    if (s == streams.front()) continue;
    ASSERT_TRUE(s->stream->Read(&p));
    EXPECT_TRUE(p.full());
    EXPECT_EQ(p.version(), 1u);
  }
  const int with_streams = ThreadCount();
  EXPECT_LT(with_streams - before, kStreams / 10)
      << before << " threads before, " << with_streams << " with " << kStreams << " streams";

  WriteFile(env_.manifests + "/b.yaml", WorkloadYaml("web-2", "shop", "web", "node1", "10.244.1.12", "web"));
  for (auto& s : streams) {
    ASSERT_TRUE(s->stream->Read(&p));
    EXPECT_FALSE(p.full());
    EXPECT_EQ(p.version(), 2u);
    EXPECT_TRUE(HasWorkload(p, "web-2"));
  }
  EXPECT_LT(ThreadCount() - before, kStreams / 10);

  // Shutdown ends every open stream with UNAVAILABLE (the agents reconnect) and does not hang on them. Ours say why;
  // on a loaded machine (TSan) some may still be open when the server's 1 s grace period ends, and gRPC cancels them
  // with UNAVAILABLE "Cancelling all calls".
  auto start = std::chrono::steady_clock::now();
  env_.Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(15));
  int said_why = 0;
  for (auto& s : streams) {
    EXPECT_FALSE(s->stream->Read(&p));
    auto st = s->stream->Finish();
    EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE) << st.error_message();
    said_why += st.error_message() == "controller shutting down";
  }
  EXPECT_GT(said_why, 0);
}

TEST_F(ConfigStreamTest, Unauthenticated) {
  auto s = Open(stub_.get(), 0, "", "node1-token-wrong-wrong-wrong");
  v1::ConfigPush p;
  EXPECT_FALSE(s->stream->Read(&p));
  auto st = s->stream->Finish();
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(st.error_message(), "unknown join token");
}

TEST_F(ConfigStreamTest, ClientAppliesNacksAndKeepsLastGood) {
  std::atomic<bool> reject{false};
  std::atomic<int> applied_workloads{0};
  agent::control::ConfigClient client(env_.BootstrapFor("node1", kTokenNode1),
                                      [&](const agent::control::ConfigState& s) -> std::string {
                                        if (reject) return "rejected by test";
                                        int n = 0;
                                        for (const auto& [k, r] : s.resources) n += r.has_workload();
                                        applied_workloads = n;
                                        return "";
                                      });
  client.Start();
  ASSERT_TRUE(WaitFor([&] { return client.applied_version() == 1; }, 3000));
  EXPECT_EQ(applied_workloads, 1);
  ASSERT_TRUE(WaitFor([&] { return env_.controller->agents().Get("node1").acked_version() == 1; }, 2000));

  reject = true;
  WriteFile(env_.manifests + "/b.yaml", WorkloadYaml("web-2", "shop", "web", "node1", "10.244.1.12"));
  ASSERT_TRUE(WaitFor([&] { return env_.controller->agents().Get("node1").nacked_version() == 2; }, 3000));
  EXPECT_EQ(env_.controller->agents().Get("node1").nack_error(), "rejected by test");
  EXPECT_EQ(client.applied_version(), 1u);
  EXPECT_EQ(applied_workloads, 1);

  // The next delta builds on what the controller sent (v2), and is accepted.
  reject = false;
  WriteFile(env_.manifests + "/c.yaml", WorkloadYaml("web-3", "shop", "web", "node1", "10.244.1.13"));
  ASSERT_TRUE(WaitFor([&] { return client.applied_version() == 3; }, 3000));
  EXPECT_EQ(applied_workloads, 3);
  ASSERT_TRUE(WaitFor([&] { return env_.controller->agents().Get("node1").nack_error().empty(); }, 2000));
  client.Stop();
}

// Pushes larger than the part budget travel in parts (a full snapshot of a large mesh exceeds gRPC's 4 MiB limit):
// the agent's client assembles them, applies and ACKs each version once; an agent that does not announce parts gets
// every push whole.
TEST(ConfigParts, LargePushesArriveInPartsAndApplyWhole) {
  ControllerEnv env = NewEnv();
  std::string yaml;
  for (int i = 0; i < 40; ++i) {
    yaml += (i ? "---\n" : "") + WorkloadYaml("web-" + std::to_string(i), "shop", "web", "node1",
                                              "10.244.1." + std::to_string(10 + i), "web");
  }
  WriteFile(env.manifests + "/a.yaml", yaml);
  env.push_part_bytes = 1024;  // a few workloads per part
  env.Start(/*watch=*/true);

  std::atomic<int> applies{0}, workloads{0};
  agent::control::ConfigClient client(env.BootstrapFor("node1", kTokenNode1),
                                      [&](const agent::control::ConfigState& s) -> std::string {
                                        int n = 0;
                                        for (const auto& [k, r] : s.resources) n += r.has_workload();
                                        workloads = n;
                                        ++applies;
                                        return "";
                                      });
  client.Start();
  ASSERT_TRUE(WaitFor([&] { return client.applied_version() == 1; }, 5000));
  EXPECT_EQ(workloads, 40);
  EXPECT_EQ(applies, 1);  // one apply for the whole snapshot, not one per part
  ASSERT_TRUE(WaitFor([&] { return env.controller->agents().Get("node1").acked_version() == 1; }, 2000));

  // A delta in parts too: 20 more workloads in one change.
  std::string more;
  for (int i = 40; i < 60; ++i) {
    more += (i > 40 ? "---\n" : "") + WorkloadYaml("web-" + std::to_string(i), "shop", "web", "node1",
                                                   "10.244.1." + std::to_string(10 + i), "web");
  }
  WriteFile(env.manifests + "/b.yaml", more);
  ASSERT_TRUE(WaitFor([&] { return client.applied_version() == 2; }, 5000));
  EXPECT_EQ(workloads, 60);
  EXPECT_EQ(applies, 2);
  ASSERT_TRUE(WaitFor([&] { return env.controller->agents().Get("node1").acked_version() == 2; }, 2000));
  client.Stop();

  // Raw streams: one that accepts parts reads several messages for version 2, the last with more = false; one that
  // does not gets a single message holding all of it.
  auto stub = v1::Config::NewStub(env.Channel());
  for (bool parts : {true, false}) {
    auto s = Open(stub.get(), 0, "", kTokenNode1, /*accepts_parts=*/parts);
    int messages = 0, upserted = 0;
    v1::ConfigPush push;
    do {
      ASSERT_TRUE(ReadPush(s.get(), &push, 3000));
      EXPECT_EQ(push.version(), 2u);
      EXPECT_TRUE(push.full());
      ++messages;
      upserted += push.upserted_size();
    } while (push.more());
    EXPECT_EQ(upserted, 61);  // 60 workloads and the MeshConfig
    if (parts) {
      EXPECT_GT(messages, 5);
    } else {
      EXPECT_EQ(messages, 1);
    }
    Close(s.get());
  }
  env.Stop();
  RemoveTree(env.dir);
}

// The stream is served raw (the controller decodes agent messages itself): bytes that are no AgentMessage end that
// stream with INVALID_ARGUMENT and a reason, and the controller serves the next agent as before.
TEST_F(ConfigStreamTest, UndecodableAgentMessageEndsOnlyThatStream) {
  grpc::GenericStub generic(env_.Channel());
  grpc::ClientContext ctx;
  Auth(&ctx, kTokenNode1);
  grpc::CompletionQueue cq;
  auto step = [&](intptr_t want) {
    void* tag = nullptr;
    bool ok = false;
    auto deadline = std::chrono::system_clock::now() + std::chrono::seconds(5);
    return cq.AsyncNext(&tag, &ok, deadline) == grpc::CompletionQueue::GOT_EVENT &&
           reinterpret_cast<intptr_t>(tag) == want;
  };
  auto call = generic.PrepareCall(&ctx, "/zeromesh.v1.Config/Stream", &cq);
  call->StartCall(reinterpret_cast<void*>(1));
  ASSERT_TRUE(step(1));
  grpc::Slice garbage(std::string("\xff\xff\xff\xff not protobuf"));
  grpc::ByteBuffer bytes(&garbage, 1);
  call->Write(bytes, reinterpret_cast<void*>(2));
  ASSERT_TRUE(step(2));
  grpc::Status status;
  call->Finish(&status, reinterpret_cast<void*>(3));
  ASSERT_TRUE(step(3));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
  EXPECT_NE(status.error_message().find("not an AgentMessage"), std::string::npos) << status.error_message();
  cq.Shutdown();
  void* tag;
  bool ok;
  while (cq.Next(&tag, &ok)) {
  }

  auto s = Open(stub_.get());
  v1::ConfigPush push;
  ASSERT_TRUE(ReadPush(s.get(), &push, 3000));
  EXPECT_TRUE(HasWorkload(push, "web-1"));
  Close(s.get());
}

TEST_F(ConfigStreamTest, ControlPlaneFeedsAgentStateAndRotatesCerts) {
  agent::SnapshotHolder snapshots;
  agent::InMemoryCertStore certs;
  agent::control::ControlPlane::Options opts;
  opts.certs.ttl_seconds = 120;
  opts.certs.renew_fraction = 0.01;  // renew after ~1.2 s so the test sees a rotation
  opts.status_interval = std::chrono::milliseconds(200);
  agent::control::ControlPlane cp(env_.BootstrapFor("node1", kTokenNode1), &snapshots, &certs, opts);
  cp.Start();
  tls::SpiffeId web{"cluster.local", "shop", "web"};
  ASSERT_TRUE(WaitFor([&] { return snapshots.Get() != nullptr && certs.Get(web) != nullptr; }, 5000));
  auto snap = snapshots.Get();
  EXPECT_EQ(snap->trust_domain(), "cluster.local");
  EXPECT_EQ(snap->node(), "node1");
  ASSERT_EQ(snap->size(), 1u);
  ASSERT_TRUE(WaitFor([&] { return cp.cert_manager().issued_count() >= 2; }, 5000)) << "no rotation";
  auto first = cp.cert_manager().Get(web.ToString());
  ASSERT_TRUE(first);
  EXPECT_NE(first->key_pem.find("PRIVATE KEY"), std::string::npos);

  // Status reports reach the controller, under the authenticated node.
  ASSERT_TRUE(WaitFor(
      [&] {
        auto a = env_.controller->agents().Get("node1");
        return a.last_report().certs_size() == 1 && a.last_report().applied_version() == 1;
      },
      3000));
  EXPECT_EQ(env_.controller->agents().Get("node1").last_report().enrolled_pods(0), "shop/web-1");

  // The workload leaves the node: its certificate is dropped.
  unlink((env_.manifests + "/a.yaml").c_str());
  ASSERT_TRUE(WaitFor([&] { return certs.Get(web) == nullptr; }, 3000));
  cp.Stop();
}

TEST(ConfigReconnect, ClientReconnectsToARestartedController) {
  auto env = NewEnv();
  WriteFile(env.manifests + "/a.yaml", WorkloadYaml("web-1", "shop", "web", "node1", "10.244.1.11"));
  env.Start(false);
  int port = env.controller->port();
  auto boot = env.BootstrapFor("node1", kTokenNode1);
  std::atomic<int> applies{0};
  agent::control::ConfigClient client(boot, [&](const agent::control::ConfigState&) {
    applies++;
    return std::string();
  });
  client.Start();
  ASSERT_TRUE(WaitFor([&] { return applies == 1; }, 3000));
  env.Stop();
  ASSERT_TRUE(WaitFor([&] { return !client.connected(); }, 3000));

  // Same CA dir, same port: a new epoch, so the client gets a full snapshot again.
  ctrl::Options o;
  o.manifests_dir = env.manifests;
  o.listen = "127.0.0.1:" + std::to_string(port);
  o.ca_dir = env.dir + "/ca";
  o.join_tokens = env.dir + "/tokens.yaml";
  o.watch = false;
  std::string err;
  env.controller = ctrl::Controller::Create(o, &err);
  ASSERT_TRUE(env.controller && env.controller->Start(&err)) << err;
  ASSERT_TRUE(WaitFor([&] { return applies == 2; }, 8000)) << "client did not reconnect";
  EXPECT_EQ(client.applied_version(), 1u);
  client.Stop();
  env.Stop();
  RemoveTree(env.dir);
}

}  // namespace
}  // namespace zm::test
