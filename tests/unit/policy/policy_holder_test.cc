// PolicyHolder: deny before the first config, a failed compile keeps the old set, and swaps under concurrent readers.
#include "agent/policy/policy_holder.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "config_builder.h"

namespace zm::agent::policy::testing {
namespace {

const tls::SpiffeId kFrontend = Id("shop", "frontend");
const Workload kBackend = Dest("shop", "backend", "10.244.1.12");

control::ConfigState WithPolicy(v1::Resource policy) {
  return StateOf(
      {Mesh(), MeshWorkload("shop", "backend", "backend", "10.244.1.12", {{"app", "backend"}}), std::move(policy)});
}

proxy::AuthzRequest FrontendToBackend() {
  return {.source = &kFrontend, .source_ip = Ip("10.244.1.11"), .destination = &kBackend, .port = 80};
}

TEST(PolicyHolderTest, DeniesEverythingBeforeTheFirstConfig) {
  PolicyHolder holder;
  EXPECT_EQ(holder.Get(), nullptr);
  proxy::Authorizer authz = holder.MakeAuthorizer();
  for (const auto& d : {holder.Evaluate(FrontendToBackend()), authz(FrontendToBackend())}) {
    EXPECT_FALSE(d.allow);
    EXPECT_EQ(d.reason, "no configuration yet");
    EXPECT_EQ(d.policy, kNoConfigPolicy);
  }
  std::string error;
  ASSERT_TRUE(holder.Update(StateOf({Mesh()}), &error)) << error;
  EXPECT_TRUE(authz(FrontendToBackend()).allow);  // an authorizer made earlier follows the holder
}

TEST(PolicyHolderTest, FailedUpdateKeepsTheCurrentSet) {
  PolicyHolder holder;
  std::string error;
  ASSERT_TRUE(holder.Update(WithPolicy(Perm("shop", "deny-front", v1::DENY).Namespace("shop")), &error)) << error;
  auto before = holder.Get();
  EXPECT_FALSE(holder.Update(WithPolicy(Perm("shop", "broken", v1::ALLOW).IpBlock("10.0.0.0/99")), &error));
  EXPECT_NE(error.find("shop/broken"), std::string::npos) << error;
  EXPECT_EQ(holder.Get(), before);
  EXPECT_EQ(holder.Evaluate(FrontendToBackend()).policy, "shop/deny-front");

  // A failed first update leaves the holder without config: still deny-all.
  PolicyHolder fresh;
  EXPECT_FALSE(fresh.Update(StateOf({}), &error));
  EXPECT_EQ(fresh.Evaluate(FrontendToBackend()).policy, kNoConfigPolicy);
}

TEST(PolicyHolderTest, AuthorizerOutlivesTheHolder) {
  proxy::Authorizer authz;
  {
    PolicyHolder holder;
    std::string error;
    ASSERT_TRUE(holder.Update(StateOf({Mesh(v1::DENY)}), &error)) << error;
    authz = holder.MakeAuthorizer();
  }
  EXPECT_EQ(authz(FrontendToBackend()).policy, kMeshDefaultPolicy);
}

// Readers evaluate without pause while the writer alternates between a set that allows (by shop/allow-front) and one
// that denies (by shop/deny-front). Each decision must come whole from one set, and after each swap the writer waits
// until readers produce a decision of the new kind, so they really run across many swaps.
TEST(PolicyHolderTest, SwapsUnderConcurrentReaders) {
  const control::ConfigState allow_state =
      WithPolicy(Perm("shop", "allow-front", v1::ALLOW).Identity("spiffe://cluster.local/ns/shop/sa/frontend"));
  const control::ConfigState deny_state = WithPolicy(Perm("shop", "deny-front", v1::DENY).Namespace("shop"));
  PolicyHolder holder;
  std::string error;
  ASSERT_TRUE(holder.Update(allow_state, &error)) << error;
  proxy::Authorizer authz = holder.MakeAuthorizer();

  std::atomic<bool> stop{false};
  std::atomic<uint64_t> seen_allow{0}, seen_deny{0}, torn{0};
  std::vector<std::thread> readers;
  for (int i = 0; i < 3; i++) {
    readers.emplace_back([&] {
      while (!stop.load(std::memory_order_relaxed)) {
        proxy::AuthzDecision d = authz(FrontendToBackend());
        if (d.allow && d.policy == "shop/allow-front" && d.reason == "allowed by TrafficPermission shop/allow-front") {
          seen_allow.fetch_add(1);
        } else if (!d.allow && d.policy == "shop/deny-front" &&
                   d.reason == "denied by TrafficPermission shop/deny-front") {
          seen_deny.fetch_add(1);
        } else {
          torn.fetch_add(1);
        }
      }
    });
  }

  constexpr int kSwaps = 200;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  int completed = 0;
  for (; completed < kSwaps && std::chrono::steady_clock::now() < deadline; completed++) {
    bool to_deny = completed % 2 == 0;
    std::atomic<uint64_t>& counter = to_deny ? seen_deny : seen_allow;
    uint64_t base = counter.load();
    std::string err;
    if (!holder.Update(to_deny ? deny_state : allow_state, &err)) {
      ADD_FAILURE() << err;  // not ASSERT: the readers must still be stopped and joined
      break;
    }
    while (counter.load() == base && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
  }
  stop = true;
  for (auto& t : readers) t.join();

  EXPECT_EQ(completed, kSwaps) << "readers stopped seeing swaps";
  EXPECT_EQ(torn.load(), 0u);
  EXPECT_GT(seen_allow.load(), 0u);
  EXPECT_GT(seen_deny.load(), 0u);
  // The last swap (index kSwaps-1, odd) installed the allowing set.
  EXPECT_EQ(holder.Evaluate(FrontendToBackend()).policy, "shop/allow-front");
}

}  // namespace
}  // namespace zm::agent::policy::testing
