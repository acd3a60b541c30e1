// A small mesh shared by the policy tests, and a helper to compile it with extra resources and ask for decisions.
//   shop/frontend  sa frontend  10.244.1.11  app=frontend
//   shop/backend   sa backend   10.244.1.12  app=backend
//   shop/db        sa db        10.244.2.11  app=db
//   other/backend  sa backend   10.244.2.12  app=backend   (same labels as shop/backend, other namespace)
//   other/client   sa client    10.244.2.13  app=client
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "agent/policy/policy_set.h"
#include "config_builder.h"

namespace zm::agent::policy::testing {

class PolicyTest : public ::testing::Test {
 protected:
  static std::vector<v1::Resource> Workloads() {
    return {MeshWorkload("shop", "frontend", "frontend", "10.244.1.11", {{"app", "frontend"}}),
            MeshWorkload("shop", "backend", "backend", "10.244.1.12", {{"app", "backend"}}),
            MeshWorkload("shop", "db", "db", "10.244.2.11", {{"app", "db"}}),
            MeshWorkload("other", "backend", "backend", "10.244.2.12", {{"app", "backend"}}),
            MeshWorkload("other", "client", "client", "10.244.2.13", {{"app", "client"}})};
  }

  // Compiles the mesh with `extra` (MeshConfig, TrafficPermissions); fails the test if it does not compile.
  void Use(std::initializer_list<v1::Resource> extra) {
    control::ConfigState state = StateOf(extra);
    for (const auto& w : Workloads()) state.resources[control::ResourceKeyString(w)] = w;
    std::string error;
    set_ = PolicySet::Compile(state, &error);
    ASSERT_NE(set_, nullptr) << error;
  }

  // A connection from `source` (nullptr: plaintext) at `source_ip` to `dest` on `port`.
  proxy::AuthzDecision Decide(const tls::SpiffeId* source, const char* source_ip, const Workload& dest,
                              uint16_t port = 80) const {
    proxy::AuthzRequest req{.source = source, .source_ip = Ip(source_ip), .destination = &dest, .port = port};
    return set_->Evaluate(req);
  }

  // Shorthands for the mesh workloads' own connections.
  const tls::SpiffeId frontend_id_ = Id("shop", "frontend");
  const tls::SpiffeId db_id_ = Id("shop", "db");
  const tls::SpiffeId client_id_ = Id("other", "client");
  const Workload backend_ = Dest("shop", "backend", "10.244.1.12");
  const Workload db_ = Dest("shop", "db", "10.244.2.11");
  const Workload other_backend_ = Dest("other", "backend", "10.244.2.12");

  std::shared_ptr<const PolicySet> set_;
};

}  // namespace zm::agent::policy::testing
