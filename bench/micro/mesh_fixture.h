// Synthetic mesh configurations for the microbenchmarks, with the same shape as bench/controlplane.sh's manifests
// (zm-agent-loadgen generate): workload i is in namespace ns<(i % services) % namespaces>, labelled app=svc-<i %
// services>, service account sa-<i % services>, on node<i * nodes / workloads + 1>; policy p is an ALLOW to app=svc-<7p
// % services> on port 8080 from two identities and one namespace, every 10th a DENY from an ipBlock.
#pragma once

#include <arpa/inet.h>

#include <string>

#include "agent/control/config_state.h"
#include "zeromesh/v1/config.pb.h"

namespace zm::bench {

namespace v1 = zeromesh::v1;

struct MeshShape {
  int workloads = 1000;
  int services = 100;
  int policies = 200;
  int nodes = 100;
  int namespaces = 10;
};

inline std::string Ns(int svc, const MeshShape& s) {
  return "ns" + std::to_string(svc % s.namespaces);
}

inline std::string WorkloadIp(int i, const MeshShape&) {
  return "10." + std::to_string(128 + i / 60000) + "." + std::to_string((i % 60000) / 240) + "." +
         std::to_string(10 + i % 240);
}

inline v1::Resource MakeMesh() {
  v1::Resource r;
  auto* m = r.mutable_mesh_config();
  m->set_name("default");
  m->set_trust_domain("cluster.local");
  m->set_default_mode(v1::STRICT);
  m->set_default_policy(v1::ALLOW);
  m->set_cert_ttl_seconds(86400);
  return r;
}

inline v1::Resource MakeWorkload(int i, const MeshShape& s) {
  v1::Resource r;
  auto* w = r.mutable_workload();
  int svc = i % s.services;
  w->set_name("w-" + std::to_string(i));
  w->set_namespace_(Ns(svc, s));
  w->set_service_account("sa-" + std::to_string(svc));
  w->set_node("node" + std::to_string(i / (s.workloads / s.nodes) + 1));
  w->set_ip(WorkloadIp(i, s));
  (*w->mutable_labels())["app"] = "svc-" + std::to_string(svc);
  (*w->mutable_labels())["version"] = "v" + std::to_string(i % 3);
  w->set_enrolled(true);
  return r;
}

// With endpoints filled in as the controller computes them (every workload with app=svc-k).
inline v1::Resource MakeService(int k, const MeshShape& s) {
  v1::Resource r;
  auto* svc = r.mutable_service();
  svc->set_name("svc-" + std::to_string(k));
  svc->set_namespace_(Ns(k, s));
  svc->set_vip("10.96." + std::to_string(k / 250) + "." + std::to_string(k % 250 + 1));
  auto* p = svc->add_ports();
  p->set_name("http");
  p->set_port(80);
  p->set_target_port(8080);
  p->set_protocol("TCP");
  (*svc->mutable_selector())["app"] = "svc-" + std::to_string(k);
  for (int i = k; i < s.workloads; i += s.services) {
    auto* e = svc->add_endpoints();
    e->set_ip(WorkloadIp(i, s));
    e->set_workload(Ns(k, s) + "/w-" + std::to_string(i));
    e->set_node("node" + std::to_string(i / (s.workloads / s.nodes) + 1));
  }
  return r;
}

inline v1::Resource MakePolicy(int p, const MeshShape& s) {
  v1::Resource r;
  auto* tp = r.mutable_traffic_permission();
  int k = (p * 7) % s.services;
  std::string ns = Ns(k, s);
  tp->set_name("policy-" + std::to_string(p));
  tp->set_namespace_(ns);
  if (p % 10 == 9) {
    tp->set_action(v1::DENY);
    tp->mutable_sources()->add_ip_blocks("192.168." + std::to_string(p % 250) + ".0/24");
  } else {
    tp->set_action(v1::ALLOW);
    for (int d : {1, 2}) {
      tp->mutable_sources()->add_identities("spiffe://cluster.local/ns/" + ns + "/sa/sa-" +
                                            std::to_string((k + d) % s.services));
    }
    tp->mutable_sources()->add_namespaces("ns" + std::to_string((k + 3) % s.namespaces));
  }
  (*tp->mutable_destination()->mutable_selector()->mutable_match_labels())["app"] = "svc-" + std::to_string(k);
  tp->mutable_destination()->add_ports(8080);
  return r;
}

// Every resource of the shape, as a full push (what a newly connected agent gets).
inline v1::ConfigPush FullPush(const MeshShape& s, uint64_t version = 1) {
  v1::ConfigPush push;
  push.set_version(version);
  push.set_epoch("bench");
  push.set_full(true);
  *push.add_upserted() = MakeMesh();
  for (int i = 0; i < s.workloads; i++) *push.add_upserted() = MakeWorkload(i, s);
  for (int k = 0; k < s.services; k++) *push.add_upserted() = MakeService(k, s);
  for (int p = 0; p < s.policies; p++) *push.add_upserted() = MakePolicy(p, s);
  return push;
}

}  // namespace zm::bench
