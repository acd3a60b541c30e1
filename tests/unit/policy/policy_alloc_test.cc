// Evaluate() may allocate only the strings it returns. Global operator new is replaced in this binary (hence its own
// executable) to count allocations made by the evaluating thread.
#include <gtest/gtest.h>

#include <cstdlib>
#include <new>

#include "agent/policy/policy_set.h"
#include "config_builder.h"

namespace {
thread_local bool counting = false;
thread_local int allocations = 0;
}  // namespace

// Every unaligned form is replaced, so that no pointer from a sanitizer's operator new reaches our free() (ASan would
// call that a mismatch); the aligned forms stay paired with the runtime's own.
void* operator new(std::size_t n) {
  if (counting) allocations++;
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) {
  return operator new(n);
}
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  if (counting) allocations++;
  return std::malloc(n == 0 ? 1 : n);
}
void* operator new[](std::size_t n, const std::nothrow_t& t) noexcept {
  return operator new(n, t);
}
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete[](void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::size_t) noexcept {
  std::free(p);
}
void operator delete(void* p, const std::nothrow_t&) noexcept {
  std::free(p);
}
void operator delete[](void* p, const std::nothrow_t&) noexcept {
  std::free(p);
}

namespace zm::agent::policy::testing {
namespace {

// Allocations made by one Evaluate(), the returned decision's own strings included.
int AllocationsOf(const PolicySet& set, const proxy::AuthzRequest& req, proxy::AuthzDecision* out) {
  allocations = 0;
  counting = true;
  *out = set.Evaluate(req);
  counting = false;
  return allocations;
}

TEST(PolicyAllocTest, EvaluateAllocatesOnlyTheReturnedStrings) {
  std::string error;
  // Many policies on one destination, so a decision walks lists, selectors, blocks and identities.
  control::ConfigState state =
      StateOf({Mesh(), MeshWorkload("shop", "frontend", "frontend", "10.244.1.11", {{"app", "frontend"}}),
               MeshWorkload("shop", "backend", "backend", "10.244.1.12", {{"app", "backend"}})});
  for (int i = 0; i < 20; i++) {
    v1::Resource p = Perm("shop", "allow-" + std::to_string(i), v1::ALLOW)
                         .Identity("spiffe://cluster.local/ns/x/sa/s" + std::to_string(i))
                         .Namespace("ns" + std::to_string(i))
                         .FromSelector({{"app", "nothing-" + std::to_string(i)}})
                         .IpBlock("192.168." + std::to_string(i) + ".0/24")
                         .To({{"app", "backend"}})
                         .Port(80);
    state.resources[control::ResourceKeyString(p)] = p;
    v1::Resource d = Perm("shop", "deny-" + std::to_string(i), v1::DENY)
                         .Identity("spiffe://cluster.local/ns/y/sa/s" + std::to_string(i))
                         .To({{"app", "backend"}});
    state.resources[control::ResourceKeyString(d)] = d;
  }
  v1::Resource last =
      Perm("shop", "zz-front", v1::ALLOW).FromSelector({{"app", "frontend"}}).To({{"app", "backend"}}).Port(80);
  state.resources[control::ResourceKeyString(last)] = last;
  auto set = PolicySet::Compile(state, &error);
  ASSERT_NE(set, nullptr) << error;

  const tls::SpiffeId frontend = Id("shop", "frontend");
  const tls::SpiffeId stranger = Id("far", "away");
  const Workload backend = Dest("shop", "backend", "10.244.1.12");
  proxy::AuthzDecision d;

  // Allowed by the last policy after all others were tried: one allocation for the reason, the label fits SSO or not.
  proxy::AuthzRequest req{.source = &frontend, .source_ip = Ip("10.244.1.11"), .destination = &backend, .port = 80};
  EXPECT_LE(AllocationsOf(*set, req, &d), 2);
  EXPECT_EQ(d.policy, "shop/zz-front");
  EXPECT_TRUE(d.allow);

  // Implicit deny, with the source and destination spelled out in the reason.
  req.source = &stranger;
  EXPECT_LE(AllocationsOf(*set, req, &d), 2);
  EXPECT_EQ(d.policy, kImplicitDenyPolicy);
  EXPECT_NE(d.reason.find("spiffe://cluster.local/ns/far/sa/away"), std::string::npos) << d.reason;

  // Mesh default for a port no policy covers.
  req.port = 443;
  EXPECT_LE(AllocationsOf(*set, req, &d), 2);
  EXPECT_EQ(d.policy, kMeshDefaultPolicy);

  // The counter itself works: a plain string copy is counted.
  counting = true;
  allocations = 0;
  std::string copy(d.reason);
  counting = false;
  EXPECT_EQ(allocations, 1);
}

}  // namespace
}  // namespace zm::agent::policy::testing
