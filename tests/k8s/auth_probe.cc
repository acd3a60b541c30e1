// Test helper for tests/k8s/test_k8s_auth_flood.py, which needs no root: the mesh-agent itself needs eBPF.
//
//   zm_auth_probe agent --bootstrap FILE --node NODE
//     The agent's own config client (agent/control/ConfigClient): authenticates with the bootstrap's token, holds the
//     Config stream and ACKs every push. Prints one line per applied version:
//       applied <version> <unix milliseconds> <resource key>,<resource key>,...
//     Runs until stdin is closed.
//   zm_auth_probe flood --bootstrap FILE --count N --seconds S --threads T
//     N calls of Status.Get, each with a different bogus bearer token, spread evenly over S seconds by T threads.
//     Prints one JSON line: {"sent":N,"elapsed":s,"max_latency":s,"codes":{"<grpc code>":count,...}}.
//   zm_auth_probe sign --bootstrap FILE --id SPIFFE_ID
//     One Identity.Sign for SPIFFE_ID with a key made here, as the agent's cert manager would ask; prints
//     "<grpc code> <message>" (0 = issued) and exits 0 when the call completed either way.
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "agent/control/bootstrap.h"
#include "agent/control/config_client.h"
#include "agent/control/csr.h"
#include "zeromesh/v1/identity.grpc.pb.h"
#include "zeromesh/v1/status.grpc.pb.h"

namespace {

namespace control = zm::agent::control;
using Clock = std::chrono::steady_clock;

std::string Flag(int argc, char** argv, const std::string& name, const char* fallback = nullptr) {
  for (int i = 2; i + 1 < argc; i += 2) {
    if (argv[i] == name) return argv[i + 1];
  }
  if (!fallback) {
    std::cerr << "zm_auth_probe: " << name << " is required\n";
    std::exit(2);
  }
  return fallback;
}

int Agent(control::Bootstrap b, const std::string& node) {
  b.node = node;
  std::mutex out_mu;
  control::ConfigClient client(b, [&](const control::ConfigState& s) {
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
                  .count();
    std::string keys;
    for (const auto& [k, r] : s.resources) keys += (keys.empty() ? "" : ",") + k;
    std::lock_guard<std::mutex> lock(out_mu);
    std::printf("applied %llu %lld %s\n", static_cast<unsigned long long>(s.version), static_cast<long long>(ms),
                keys.c_str());
    std::fflush(stdout);
    return std::string();
  });
  client.Start();
  std::string line;
  while (std::getline(std::cin, line)) {
  }
  client.Stop();
  return 0;
}

int Flood(control::Bootstrap b, int count, double seconds, int threads) {
  auto stub = zeromesh::v1::Status::NewStub(control::MakeChannel(b));
  std::atomic<int> next{0};
  std::mutex mu;
  std::map<int, int> codes;
  double max_latency = 0;
  const auto start = Clock::now();
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; t++) {
    pool.emplace_back([&] {
      for (int i; (i = next++) < count;) {
        std::this_thread::sleep_until(start + std::chrono::duration<double>(seconds * i / count));
        grpc::ClientContext ctx;
        ctx.AddMetadata("authorization", "Bearer bogus-token-" + std::to_string(i));
        ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(15));
        zeromesh::v1::GetStatusRequest req;
        zeromesh::v1::MeshStatus resp;
        auto t0 = Clock::now();
        grpc::Status st = stub->Get(&ctx, req, &resp);
        double latency = std::chrono::duration<double>(Clock::now() - t0).count();
        std::lock_guard<std::mutex> lock(mu);
        codes[st.error_code()]++;
        max_latency = std::max(max_latency, latency);
      }
    });
  }
  for (auto& t : pool) t.join();
  double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  std::printf("{\"sent\":%d,\"elapsed\":%.3f,\"max_latency\":%.3f,\"codes\":{", count, elapsed, max_latency);
  bool first = true;
  for (auto [code, n] : codes) {
    std::printf("%s\"%d\":%d", first ? "" : ",", code, n);
    first = false;
  }
  std::printf("}}\n");
  return 0;
}

int Sign(const control::Bootstrap& b, const std::string& id) {
  control::KeyAndCsr kc;
  std::string error;
  if (!control::GenerateKeyAndCsr(id, &kc, &error)) {
    std::cerr << "zm_auth_probe: " << error << "\n";
    return 2;
  }
  auto stub = zeromesh::v1::Identity::NewStub(control::MakeChannel(b));
  grpc::ClientContext ctx;
  control::AddAuth(&ctx, b);
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(15));
  zeromesh::v1::SignRequest req;
  req.set_csr_pem(kc.csr_pem);
  zeromesh::v1::SignResponse resp;
  grpc::Status st = stub->Sign(&ctx, req, &resp);
  std::printf("%d %s\n", st.error_code(), st.error_message().c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: zm_auth_probe agent|flood|sign --bootstrap FILE ...\n";
    return 2;
  }
  const std::string mode = argv[1];
  control::Bootstrap b;
  std::string error;
  if (!control::LoadBootstrap(Flag(argc, argv, "--bootstrap"), &b, &error)) {
    std::cerr << "zm_auth_probe: " << error << "\n";
    return 2;
  }
  if (mode == "agent") return Agent(std::move(b), Flag(argc, argv, "--node"));
  if (mode == "sign") return Sign(b, Flag(argc, argv, "--id"));
  if (mode == "flood") {
    return Flood(std::move(b), std::stoi(Flag(argc, argv, "--count")), std::stod(Flag(argc, argv, "--seconds")),
                 std::stoi(Flag(argc, argv, "--threads", "20")));
  }
  std::cerr << "zm_auth_probe: unknown mode '" << mode << "' (agent, flood or sign)\n";
  return 2;
}
