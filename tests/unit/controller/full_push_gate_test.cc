// FullPushGate: at most N full snapshots are sent at once; an agent over the bound waits for its snapshot while
// deltas to synced agents go on (controller/service/full_push_gate.h).
#include "controller/service/full_push_gate.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "controller/flags.h"
#include "tests/unit/controller/test_env.h"
#include "zeromesh/v1/config.grpc.pb.h"

namespace zm::test {
namespace {
namespace v1 = zeromesh::v1;
using std::chrono::milliseconds;
using Stream = grpc::ClientReaderWriter<v1::AgentMessage, v1::ConfigPush>;

// A slot that must be free now (the callback is for a waiter, which this is not).
ctrl::FullPushGate::Slot TakeFree(ctrl::FullPushGate& gate) {
  uint64_t id = 0;
  return gate.AcquireOrQueue([](ctrl::FullPushGate::Slot) { ADD_FAILURE() << "queued although a slot was free"; }, &id);
}

TEST(FullPushGate, BoundsSlotsAndFreesThemOnRelease) {
  ctrl::FullPushGate gate(2);
  auto a = TakeFree(gate);
  auto b = TakeFree(gate);
  ASSERT_TRUE(a.held());
  ASSERT_TRUE(b.held());
  EXPECT_EQ(gate.sending(), 2u);

  // A third is over the bound: queued, counted, and handed the slot released next.
  ctrl::FullPushGate::Slot third;
  uint64_t id = 0;
  EXPECT_FALSE(gate.AcquireOrQueue([&](ctrl::FullPushGate::Slot s) { third = std::move(s); }, &id).held())
      << "a third slot over the bound of 2";
  EXPECT_EQ(gate.waiting(), 1u);
  EXPECT_FALSE(third.held());
  a.Release();
  EXPECT_TRUE(third.held());
  EXPECT_EQ(gate.waiting(), 0u);
  EXPECT_EQ(gate.sending(), 2u) << "the released slot passed to the waiter";
  third.Release();
  EXPECT_EQ(gate.sending(), 1u);

  ctrl::FullPushGate::Slot moved = std::move(b);
  EXPECT_FALSE(b.held());
  moved = ctrl::FullPushGate::Slot();
  EXPECT_EQ(gate.sending(), 0u) << "assigning over a held slot releases it";
}

// A stream waiting for its snapshot queues a call instead of holding a thread: first come, first served, and a
// stream that ends takes its call out.
TEST(FullPushGate, QueuedWaitersAreCalledInOrder) {
  ctrl::FullPushGate gate(1);
  uint64_t id = 0;
  auto first = gate.AcquireOrQueue([](ctrl::FullPushGate::Slot) { ADD_FAILURE() << "a free slot is returned"; }, &id);
  ASSERT_TRUE(first.held());
  std::vector<int> order;
  std::vector<ctrl::FullPushGate::Slot> slots;
  slots.reserve(3);
  uint64_t ids[3] = {};
  for (int i = 0; i < 3; i++) {
    auto none = gate.AcquireOrQueue(
        [&, i](ctrl::FullPushGate::Slot slot) {
          order.push_back(i);
          slots.push_back(std::move(slot));
        },
        &ids[i]);
    EXPECT_FALSE(none.held());
  }
  EXPECT_EQ(gate.waiting(), 3u);
  EXPECT_TRUE(gate.Cancel(ids[1]));
  EXPECT_FALSE(gate.Cancel(ids[1]));
  EXPECT_EQ(gate.waiting(), 2u);

  first.Release();
  EXPECT_EQ(order, std::vector<int>{0});
  EXPECT_EQ(gate.sending(), 1u) << "the slot passed to the first waiter";
  slots[0].Release();
  EXPECT_EQ(order, (std::vector<int>{0, 2}));
  EXPECT_EQ(gate.waiting(), 0u);
  slots[1].Release();
  EXPECT_EQ(gate.sending(), 0u);
  EXPECT_TRUE(gate.AcquireOrQueue([](ctrl::FullPushGate::Slot) {}, &id).held());
}

TEST(FullPushGate, ZeroMeansNoBound) {
  ctrl::FullPushGate gate(0);
  std::vector<ctrl::FullPushGate::Slot> slots;
  for (int i = 0; i < 100; i++) slots.push_back(TakeFree(gate));
  for (const auto& s : slots) EXPECT_TRUE(s.held());
}

bool ParseArgs(std::vector<std::string> args, ctrl::ParsedFlags* out, std::string* error) {
  args.insert(args.begin(), "mesh-controller");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  return ctrl::ParseFlags(static_cast<int>(argv.size()), argv.data(), out, error);
}

TEST(FullPushGate, Flag) {
  std::string error;
  ctrl::ParsedFlags f;
  ASSERT_TRUE(ParseArgs({"--manifests", "/m"}, &f, &error)) << error;
  EXPECT_EQ(f.options.max_concurrent_full_pushes, 16u);
  ASSERT_TRUE(ParseArgs({"--manifests", "/m", "--max-concurrent-full-pushes", "4"}, &f, &error)) << error;
  EXPECT_EQ(f.options.max_concurrent_full_pushes, 4u);
  ASSERT_TRUE(ParseArgs({"--manifests", "/m", "--max-concurrent-full-pushes=0"}, &f, &error)) << error;
  EXPECT_EQ(f.options.max_concurrent_full_pushes, 0u);
  for (const char* bad : {"-1", "x", "4k", "100001"}) {
    ctrl::ParsedFlags g;
    EXPECT_FALSE(ParseArgs({"--manifests", "/m", "--max-concurrent-full-pushes", bad}, &g, &error)) << bad;
    EXPECT_NE(error.find("--max-concurrent-full-pushes"), std::string::npos) << error;
  }
}

struct Agent {
  grpc::ClientContext ctx;
  std::unique_ptr<Stream> stream;
};

std::unique_ptr<Agent> Connect(v1::Config::Stub* stub, const std::string& node, const std::string& token) {
  auto a = std::make_unique<Agent>();
  Auth(&a->ctx, token);
  a->stream = stub->Stream(&a->ctx);
  v1::AgentMessage hello;
  hello.mutable_hello()->set_node(node);
  hello.mutable_hello()->set_accepts_parts(true);
  a->stream->Write(hello);
  return a;
}

TEST(FullPushGate, SnapshotWaitsForASlotWhileDeltasGoOn) {
  ControllerEnv env = NewEnv();
  env.max_full_pushes = 1;
  WriteFile(env.manifests + "/a.yaml", WorkloadYaml("web-1", "shop", "web", "node1", "10.244.1.11", "web"));
  env.Start(/*watch=*/true);
  auto stub = v1::Config::NewStub(env.Channel());

  // node1 is synced before the only slot is taken.
  auto synced = Connect(stub.get(), "node1", kTokenNode1);
  v1::ConfigPush push;
  ASSERT_TRUE(synced->stream->Read(&push));
  ASSERT_TRUE(push.full());
  v1::AgentMessage ack;
  ack.mutable_ack()->set_version(push.version());
  synced->stream->Write(ack);
  ASSERT_TRUE(WaitFor([&] { return env.controller->full_pushes().sending() == 0; }, 2000));

  auto slot = TakeFree(env.controller->full_pushes());
  ASSERT_TRUE(slot.held());
  auto joining = Connect(stub.get(), "node2", kTokenNode2);
  std::atomic<bool> got_snapshot{false};
  v1::ConfigPush snapshot;
  std::thread reader([&] { got_snapshot = joining->stream->Read(&snapshot); });
  ASSERT_TRUE(WaitFor([&] { return env.controller->full_pushes().waiting() == 1; }, 3000));
  EXPECT_NE(env.controller->metrics().Render().find("zeromesh_controller_full_pushes_waiting 1"), std::string::npos);

  // A change reaches the synced agent as a delta while node2 still waits for its snapshot.
  WriteFile(env.manifests + "/b.yaml", WorkloadYaml("web-2", "shop", "web", "node1", "10.244.1.12", "web"));
  v1::ConfigPush delta;
  ASSERT_TRUE(synced->stream->Read(&delta));
  EXPECT_FALSE(delta.full());
  EXPECT_EQ(delta.version(), 2u);
  std::this_thread::sleep_for(milliseconds(300));
  EXPECT_FALSE(got_snapshot.load()) << "node2 got a full snapshot while the only slot was held";

  slot.Release();
  ASSERT_TRUE(WaitFor([&] { return got_snapshot.load(); }, 3000));
  reader.join();
  EXPECT_TRUE(snapshot.full());
  EXPECT_EQ(snapshot.version(), 2u) << "the snapshot sent after the wait is the current version";

  for (Agent* a : {synced.get(), joining.get()}) {
    a->ctx.TryCancel();
    a->stream->Finish();
  }
  env.Stop();
  RemoveTree(env.dir);
}

}  // namespace
}  // namespace zm::test
