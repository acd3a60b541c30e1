// The proxies' spans as OTLP: their encoding, the exporter's batching and bounds, and a real gRPC export to an
// in-process TraceService.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <thread>

#include "agent/metrics/otlp_grpc_sender.h"
#include "agent/metrics/span_encode.h"
#include "agent/metrics/span_exporter.h"
#include "common/tls/pem.h"
#include "otlp/trace.grpc.pb.h"
#include "tests/unit/proxy/test_certs.h"

namespace zm::metrics {
namespace {

using namespace std::chrono_literals;

const OtlpTlsOptions kPlaintext{.insecure = true};

proxy::RequestRecord Request(proxy::Reporter reporter) {
  proxy::RequestRecord r;
  r.reporter = reporter;
  r.source = {"client-7f9", "shop", "spiffe://cluster.local/ns/shop/sa/client", {}};
  r.source.addr.ip = *net::IpAddr::Parse("10.1.0.5");
  r.destination = {"web-0", "store", "spiffe://cluster.local/ns/store/sa/web", {}};
  r.destination.addr.ip = *net::IpAddr::Parse("10.2.0.9");
  r.destination_service = "store/web";
  r.route = "store/web#0";
  r.method = "POST";
  r.path = "/cart/items?id=3";
  r.authority = "web.store:8080";
  r.status = 201;
  r.duration = 1500us;
  r.wall_start = std::chrono::system_clock::time_point(std::chrono::seconds(1700000000));
  r.span = {"4bf92f3577b34da6a3ce929d0e0e4736", "b7ad6b7169203331", "00f067aa0ba902b7", 1};
  r.tracestate = "vendor=x";
  return r;
}

std::string Attr(const otlp::Span& s, const std::string& key) {
  for (const auto& kv : s.attributes()) {
    if (kv.key() != key) continue;
    return kv.value().has_int_value() ? std::to_string(kv.value().int_value()) : kv.value().string_value();
  }
  return "<absent>";
}

TEST(SpanEncode, ClientSpanOfTheSourceProxy) {
  otlp::Span s;
  ASSERT_TRUE(EncodeSpan(Request(proxy::Reporter::kSource), &s));
  EXPECT_EQ(s.trace_id(), HexToBytes("4bf92f3577b34da6a3ce929d0e0e4736"));
  EXPECT_EQ(s.trace_id().size(), 16u);
  EXPECT_EQ(s.span_id(), std::string("\xb7\xad\x6b\x71\x69\x20\x33\x31", 8));
  EXPECT_EQ(s.parent_span_id(), HexToBytes("00f067aa0ba902b7"));
  EXPECT_EQ(s.kind(), otlp::Span::SPAN_KIND_CLIENT);
  EXPECT_EQ(s.name(), "POST");
  EXPECT_EQ(s.trace_state(), "vendor=x");
  EXPECT_EQ(s.flags(), 1u);
  EXPECT_EQ(s.start_time_unix_nano(), 1700000000000000000ull);
  EXPECT_EQ(s.end_time_unix_nano(), 1700000000001500000ull);
  EXPECT_EQ(Attr(s, "http.request.method"), "POST");
  EXPECT_EQ(Attr(s, "url.path"), "/cart/items");
  EXPECT_EQ(Attr(s, "http.response.status_code"), "201");
  EXPECT_EQ(Attr(s, "server.address"), "web.store");
  EXPECT_EQ(Attr(s, "network.peer.address"), "10.2.0.9");  // the server it called
  EXPECT_EQ(Attr(s, "k8s.pod.name"), "client-7f9");        // the pod the source proxy stands for
  EXPECT_EQ(Attr(s, "k8s.namespace.name"), "shop");
  EXPECT_EQ(Attr(s, "zeromesh.source.identity"), "spiffe://cluster.local/ns/shop/sa/client");
  EXPECT_EQ(Attr(s, "zeromesh.destination.workload"), "web-0");
  EXPECT_EQ(Attr(s, "zeromesh.destination.identity"), "spiffe://cluster.local/ns/store/sa/web");
  EXPECT_EQ(Attr(s, "zeromesh.route"), "store/web#0");
  EXPECT_EQ(Attr(s, "error.type"), "<absent>");
  EXPECT_EQ(s.status().code(), otlp::Status::STATUS_CODE_UNSET);
}

TEST(SpanEncode, ServerSpanOfTheDestinationProxy) {
  proxy::RequestRecord r = Request(proxy::Reporter::kDestination);
  r.status = 503;
  r.error = "upstream reset";
  otlp::Span s;
  ASSERT_TRUE(EncodeSpan(r, &s));
  EXPECT_EQ(s.kind(), otlp::Span::SPAN_KIND_SERVER);
  EXPECT_EQ(Attr(s, "k8s.pod.name"), "web-0");
  EXPECT_EQ(Attr(s, "k8s.namespace.name"), "store");
  EXPECT_EQ(Attr(s, "network.peer.address"), "10.1.0.5");  // the client
  EXPECT_EQ(s.status().code(), otlp::Status::STATUS_CODE_ERROR);
  EXPECT_EQ(s.status().message(), "upstream reset");
}

// network.peer.address is the bare address of either family (OTel semantic conventions: no brackets, no port).
TEST(SpanEncode, Ipv6PeersAreBareAddresses) {
  proxy::RequestRecord r = Request(proxy::Reporter::kDestination);
  r.source.addr = {*net::IpAddr::Parse("fd00:10:1::5"), 40000};
  otlp::Span s;
  ASSERT_TRUE(EncodeSpan(r, &s));
  EXPECT_EQ(Attr(s, "network.peer.address"), "fd00:10:1::5");
  r = Request(proxy::Reporter::kSource);
  r.destination.addr = {*net::IpAddr::Parse("fd00:10:2::9"), 8080};
  otlp::Span c;
  ASSERT_TRUE(EncodeSpan(r, &c));
  EXPECT_EQ(Attr(c, "network.peer.address"), "fd00:10:2::9");
}

TEST(SpanEncode, A4xxFailsTheClientSpanOnly) {
  for (auto reporter : {proxy::Reporter::kSource, proxy::Reporter::kDestination}) {
    proxy::RequestRecord r = Request(reporter);
    r.status = 404;
    otlp::Span s;
    ASSERT_TRUE(EncodeSpan(r, &s));
    const bool client = reporter == proxy::Reporter::kSource;
    EXPECT_EQ(s.status().code(), client ? otlp::Status::STATUS_CODE_ERROR : otlp::Status::STATUS_CODE_UNSET);
    EXPECT_EQ(Attr(s, "error.type"), client ? "404" : "<absent>");
  }
}

TEST(SpanEncode, ARefusalByTheMeshFailsBothSpans) {
  // Denied by a TrafficPermission (403 / gRPC 7) or refused by a rate limit (429): the proxy's own verdict, an error
  // at either end, named in the status message and the attributes.
  for (auto reporter : {proxy::Reporter::kSource, proxy::Reporter::kDestination}) {
    proxy::RequestRecord r = Request(reporter);
    r.status = 403;
    r.policy = "store/no-admin";
    r.error = "denied by TrafficPermission store/no-admin";
    otlp::Span s;
    ASSERT_TRUE(EncodeSpan(r, &s));
    EXPECT_EQ(s.status().code(), otlp::Status::STATUS_CODE_ERROR);
    EXPECT_EQ(s.status().message(), "denied by TrafficPermission store/no-admin");
    EXPECT_EQ(Attr(s, "http.response.status_code"), "403");
    EXPECT_EQ(Attr(s, "zeromesh.policy"), "store/no-admin");

    r = Request(reporter);
    r.status = 429;
    r.fault = "ratelimited";
    r.fault_policy = "store/limit";
    otlp::Span l;
    ASSERT_TRUE(EncodeSpan(r, &l));
    EXPECT_EQ(l.status().code(), otlp::Status::STATUS_CODE_ERROR);
    EXPECT_EQ(l.status().message(), "ratelimited by store/limit");
    EXPECT_EQ(Attr(l, "error.type"), "ratelimited");
    EXPECT_EQ(Attr(l, "zeromesh.fault_policy"), "store/limit");
  }
  // A delay is no refusal: the server's 200 stays a success.
  proxy::RequestRecord r = Request(proxy::Reporter::kDestination);
  r.fault = "delay";
  r.fault_policy = "store/slow";
  otlp::Span d;
  ASSERT_TRUE(EncodeSpan(r, &d));
  EXPECT_EQ(d.status().code(), otlp::Status::STATUS_CODE_UNSET);
  EXPECT_EQ(Attr(d, "zeromesh.fault"), "delay");
}

TEST(SpanEncode, RootSpansAndUnsampledRequests) {
  proxy::RequestRecord r = Request(proxy::Reporter::kSource);
  r.span.parent_id.clear();
  otlp::Span s;
  ASSERT_TRUE(EncodeSpan(r, &s));
  EXPECT_TRUE(s.parent_span_id().empty());
  r.grpc_status = "14";
  r.status = 200;
  otlp::Span g;
  ASSERT_TRUE(EncodeSpan(r, &g));
  EXPECT_EQ(g.status().code(), otlp::Status::STATUS_CODE_ERROR) << "a failed gRPC call inside a 200";
  r.span.flags = 0;
  EXPECT_FALSE(EncodeSpan(r, &s));
  r.span = {};
  EXPECT_FALSE(EncodeSpan(r, &s));
}

TEST(SpanEncode, HexToBytes) {
  EXPECT_EQ(HexToBytes("00f067aa0ba902b7"), std::string("\x00\xf0\x67\xaa\x0b\xa9\x02\xb7", 8));
  EXPECT_EQ(HexToBytes("00f067aa0ba902b"), "");
  EXPECT_EQ(HexToBytes("00f067aa0ba902bz"), "");
}

TEST(SpanEncode, ExportRequestCarriesTheResource) {
  std::vector<otlp::Span> spans(3);
  auto req = MakeExportRequest("node-a", &spans);
  EXPECT_TRUE(spans.empty());
  ASSERT_EQ(req.resource_spans_size(), 1);
  const auto& rs = req.resource_spans(0);
  ASSERT_EQ(rs.resource().attributes_size(), 2);
  EXPECT_EQ(rs.resource().attributes(0).key(), "service.name");
  EXPECT_EQ(rs.resource().attributes(0).value().string_value(), "zeromesh-agent");
  EXPECT_EQ(rs.resource().attributes(1).value().string_value(), "node-a");
  EXPECT_EQ(rs.scope_spans(0).spans_size(), 3);
}

otlp::Span Numbered(int i) {
  otlp::Span s;
  s.set_name(std::to_string(i));
  return s;
}

// A sender that records batch sizes and can be held to fill the queue.
struct FakeSender {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<size_t> sizes;
  std::vector<std::string> names;
  bool hold = false;
  bool fail = false;
  SpanExporter::Sender Fn() {
    return [this](const otlp::ExportTraceServiceRequest& req, std::string* error) {
      std::unique_lock lock(mu);
      cv.wait(lock, [this] { return !hold; });
      const auto& spans = req.resource_spans(0).scope_spans(0).spans();
      sizes.push_back(static_cast<size_t>(spans.size()));
      for (const auto& s : spans) names.push_back(s.name());
      if (fail) *error = "refused";
      return !fail;
    };
  }
  size_t Total() {
    std::lock_guard lock(mu);
    size_t n = 0;
    for (size_t s : sizes) n += s;
    return n;
  }
};

TEST(SpanExporter, FullBatchesGoAtOnceAndTheRestOnTheInterval) {
  FakeSender f;
  SpanExporter ex({"n", 100, 4, 60s}, f.Fn());  // an interval that never comes in this test
  for (int i = 0; i < 9; ++i) ASSERT_TRUE(ex.Add(Numbered(i)));
  for (int i = 0; i < 200 && f.Total() < 8; ++i) std::this_thread::sleep_for(5ms);
  EXPECT_EQ(f.Total(), 8u) << "two full batches, the ninth span waits for the interval";
  ex.Stop();  // flushes
  std::lock_guard lock(f.mu);
  EXPECT_EQ(f.sizes, (std::vector<size_t>{4, 4, 1}));
  std::vector<std::string> want;
  for (int i = 0; i < 9; ++i) want.push_back(std::to_string(i));
  EXPECT_EQ(f.names, want) << "in order";
  EXPECT_EQ(ex.exported(), 9u);
}

TEST(SpanExporter, FlushesOnTheInterval) {
  FakeSender f;
  SpanExporter ex({"n", 100, 512, 50ms}, f.Fn());
  ex.Add(Numbered(1));
  for (int i = 0; i < 200 && f.Total() < 1; ++i) std::this_thread::sleep_for(5ms);
  EXPECT_EQ(f.Total(), 1u);
}

TEST(SpanExporter, ABoundedQueueDropsAndCounts) {
  FakeSender f;
  f.hold = true;  // the first batch blocks in the sender
  SpanExporter ex({"n", 5, 2, 60s}, f.Fn());
  ex.Add(Numbered(0));
  ex.Add(Numbered(1));                 // a full batch: taken by the thread, which blocks sending it
  std::this_thread::sleep_for(100ms);  // the thread took the batch and waits in the sender
  int accepted = 0;
  for (int i = 2; i < 20; ++i) accepted += ex.Add(Numbered(i)) ? 1 : 0;
  EXPECT_EQ(accepted, 5) << "the queue holds 5 while the sender is stuck";
  EXPECT_EQ(ex.dropped(), 13u);
  {
    std::lock_guard lock(f.mu);
    f.hold = false;
  }
  f.cv.notify_all();
  for (int i = 0; i < 200 && f.Total() < 6; ++i) std::this_thread::sleep_for(5ms);
  EXPECT_EQ(f.Total(), 6u) << "full batches go once the sender is free; the odd span waits for the interval";
  ex.Stop();
  EXPECT_EQ(ex.exported(), 7u) << "and goes at the stop";
}

TEST(SpanExporter, StopSendsOneLastBatchOnly) {
  FakeSender f;
  f.hold = true;
  SpanExporter ex({"n", 100, 2, 60s}, f.Fn());
  ex.Add(Numbered(0));
  ex.Add(Numbered(1));
  std::this_thread::sleep_for(100ms);  // [0, 1] is stuck in the sender
  for (int i = 2; i < 7; ++i) ex.Add(Numbered(i));
  std::thread stop([&] { ex.Stop(); });
  std::this_thread::sleep_for(50ms);
  {
    std::lock_guard lock(f.mu);
    f.hold = false;
  }
  f.cv.notify_all();
  stop.join();
  EXPECT_EQ(f.Total(), 4u) << "the stuck batch and one more";
  EXPECT_EQ(ex.dropped(), 3u);
}

TEST(SpanExporter, FailedSendsAreCounted) {
  FakeSender f;
  f.fail = true;
  SpanExporter ex({"n", 100, 3, 60s}, f.Fn());
  for (int i = 0; i < 3; ++i) ex.Add(Numbered(i));
  ex.Stop();
  EXPECT_EQ(ex.failed(), 3u);
  EXPECT_EQ(ex.exported(), 0u);
  EXPECT_FALSE(ex.Add(Numbered(9))) << "stopped: nothing more is taken";
}

// A TraceService on loopback: what the real sender delivers, over real gRPC.
class Receiver final : public otlp::TraceService::Service {
 public:
  grpc::Status Export(grpc::ServerContext*, const otlp::ExportTraceServiceRequest* req,
                      otlp::ExportTraceServiceResponse*) override {
    std::lock_guard lock(mu);
    for (const auto& rs : req->resource_spans())
      for (const auto& ss : rs.scope_spans())
        for (const auto& s : ss.spans()) spans.push_back(s);
    return grpc::Status::OK;
  }
  std::mutex mu;
  std::vector<otlp::Span> spans;
};

TEST(OtlpGrpcSender, ExportsToARealTraceService) {
  Receiver rx;
  int port = 0;
  grpc::ServerBuilder b;
  b.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  b.RegisterService(&rx);
  auto server = b.BuildAndStart();
  ASSERT_NE(server, nullptr);
  {
    SpanExporter ex({"node-a", 100, 512, 20ms}, OtlpGrpcSender("127.0.0.1:" + std::to_string(port), kPlaintext, 5s));
    otlp::Span s;
    ASSERT_TRUE(EncodeSpan(Request(proxy::Reporter::kSource), &s));
    ex.Add(s);
    ex.Stop();
    EXPECT_EQ(ex.exported(), 1u);
  }
  std::lock_guard lock(rx.mu);
  ASSERT_EQ(rx.spans.size(), 1u);
  EXPECT_EQ(rx.spans[0].kind(), otlp::Span::SPAN_KIND_CLIENT);
  EXPECT_EQ(Attr(rx.spans[0], "k8s.pod.name"), "client-7f9");
  server->Shutdown();
}

TEST(OtlpGrpcSender, AnUnreachableReceiverFailsTheBatch) {
  SpanExporter ex({"node-a", 100, 512, 20ms}, OtlpGrpcSender("127.0.0.1:1", kPlaintext, 500ms));
  ex.Add(Numbered(1));
  ex.Stop();
  EXPECT_EQ(ex.failed(), 1u);
}

// A TraceService behind TLS on loopback, its certificate (CN "workload", no SAN) signed by |ca|.
class TlsReceiver {
 public:
  explicit TlsReceiver(const testing::TestCa& ca) {
    tls::Credentials leaf = testing::MakeLeaf(ca, {});
    grpc::SslServerCredentialsOptions ssl;
    ssl.pem_key_cert_pairs.push_back({testing::KeyPem(leaf), testing::ChainPem(leaf)});
    grpc::ServerBuilder b;
    b.AddListeningPort("127.0.0.1:0", grpc::SslServerCredentials(ssl), &port_);
    b.RegisterService(&rx);
    server_ = b.BuildAndStart();
  }
  ~TlsReceiver() { server_->Shutdown(); }
  std::string endpoint() const { return "127.0.0.1:" + std::to_string(port_); }
  Receiver rx;

 private:
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

class OtlpTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/zm-otlp-tls-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    ca_file_ = testing::WritePem(dir_, "ca.pem", tls::CertToPem(ca_.cert.get()));
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Sends one span through an exporter with |tls|; true when it was exported.
  bool ExportOne(const std::string& endpoint, const OtlpTlsOptions& opts) {
    SpanExporter ex({"node-a", 100, 512, 20ms}, OtlpGrpcSender(endpoint, opts, 5s));
    ex.Add(Numbered(1));
    ex.Stop();
    EXPECT_EQ(ex.exported() + ex.failed(), 1u);
    return ex.exported() == 1;
  }

  testing::TestCa ca_ = testing::MakeCa("otlp test ca");
  std::string dir_, ca_file_;
};

TEST_F(OtlpTlsTest, ExportsToAReceiverWhoseCertificateChainsToTheBundleAndCarriesTheName) {
  TlsReceiver r(ca_);
  EXPECT_TRUE(ExportOne(r.endpoint(), {.ca_file = ca_file_, .server_name = "workload"}));
  std::lock_guard lock(r.rx.mu);
  EXPECT_EQ(r.rx.spans.size(), 1u);
}

TEST_F(OtlpTlsTest, RefusesAnotherCaAWrongNameAndPlaintext) {
  TlsReceiver r(ca_);
  testing::TestCa other = testing::MakeCa("another ca");
  const std::string other_file = testing::WritePem(dir_, "other.pem", tls::CertToPem(other.cert.get()));
  EXPECT_FALSE(ExportOne(r.endpoint(), {.ca_file = other_file, .server_name = "workload"}));
  EXPECT_FALSE(ExportOne(r.endpoint(), {.ca_file = ca_file_, .server_name = "collector.example"}));
  EXPECT_FALSE(ExportOne(r.endpoint(), {.ca_file = ca_file_}));  // the certificate does not name 127.0.0.1
  EXPECT_FALSE(ExportOne(r.endpoint(), kPlaintext));
  std::lock_guard lock(r.rx.mu);
  EXPECT_TRUE(r.rx.spans.empty());
}

// A bundle that is missing or not PEM fails each batch with an error naming the file (counted as failed spans, the
// exporter goes on), and the sender picks the bundle up once it is there: no restart.
TEST_F(OtlpTlsTest, ABadCaFileFailsTheBatchesWithAClearErrorUntilItIsFixed) {
  TlsReceiver r(ca_);
  const std::string path = dir_ + "/later/ca.pem";
  const OtlpTlsOptions opts{.ca_file = path, .server_name = "workload"};
  SpanExporter::Sender send = OtlpGrpcSender(r.endpoint(), opts, 5s);
  std::vector<otlp::Span> spans{Numbered(1)};
  otlp::ExportTraceServiceRequest req = MakeExportRequest("n", &spans);
  std::string error;
  EXPECT_FALSE(send(req, &error));
  EXPECT_EQ(error, "OTLP CA file " + path + ": No such file or directory");

  ASSERT_EQ(mkdir((dir_ + "/later").c_str(), 0700), 0);
  testing::WritePem(dir_ + "/later", "ca.pem", "not a certificate\n");
  error.clear();
  EXPECT_FALSE(send(req, &error));
  EXPECT_TRUE(error.starts_with("OTLP CA file " + path + ": ")) << error;

  {
    SpanExporter ex({"n", 100, 1, 20ms}, send);
    ex.Add(Numbered(2));
    for (int i = 0; i < 200 && ex.failed() < 1; ++i) std::this_thread::sleep_for(5ms);
    ex.Add(Numbered(3));  // the exporter goes on after a failed batch
    ex.Stop();
    EXPECT_EQ(ex.failed(), 2u);  // each counted
    EXPECT_EQ(ex.exported(), 0u);
  }
  // The file is replaced by the right bundle (as a ConfigMap update does): the next batch goes, verified.
  testing::WritePem(dir_ + "/later", "ca.pem.new", tls::CertToPem(ca_.cert.get()));
  ASSERT_EQ(rename((path + ".new").c_str(), path.c_str()), 0);
  error.clear();
  EXPECT_TRUE(send(req, &error)) << error;
  std::lock_guard lock(r.rx.mu);
  EXPECT_EQ(r.rx.spans.size(), 1u);
}

TEST(OtlpTls, PlaintextTakesNoCaNorName) {
  std::string error;
  EXPECT_TRUE(ValidOtlpTls({.insecure = true}, &error));
  EXPECT_TRUE(ValidOtlpTls({.ca_file = "/etc/ca.pem", .server_name = "otel"}, &error));
  EXPECT_FALSE(ValidOtlpTls({.insecure = true, .ca_file = "/etc/ca.pem"}, &error));
  EXPECT_EQ(error, "a plaintext (insecure) OTLP receiver takes no CA file or server name");
  EXPECT_FALSE(ValidOtlpTls({.insecure = true, .server_name = "otel"}, &error));
}

}  // namespace
}  // namespace zm::metrics
