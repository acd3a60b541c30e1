#include "config_builder.h"

#include <arpa/inet.h>

#include <cstdlib>

namespace zm::agent::policy::testing {

v1::Resource Mesh(v1::Action default_policy) {
  v1::Resource r;
  auto* m = r.mutable_mesh_config();
  m->set_name("default");
  m->set_trust_domain(kTrustDomain);
  m->set_default_policy(default_policy);
  return r;
}

v1::Resource MeshWorkload(const std::string& ns, const std::string& name, const std::string& sa, const std::string& ip,
                          const Labels& labels) {
  v1::Resource r;
  auto* w = r.mutable_workload();
  w->set_namespace_(ns);
  w->set_name(name);
  w->set_service_account(sa);
  w->set_ip(ip);
  w->set_node("node1");
  w->set_enrolled(true);
  for (const auto& [k, v] : labels) (*w->mutable_labels())[k] = v;
  return r;
}

Perm::Perm(const std::string& ns, const std::string& name, v1::Action action) {
  tp()->set_namespace_(ns);
  tp()->set_name(name);
  tp()->set_action(action);
}

Perm& Perm::Identity(const std::string& spiffe_id) {
  tp()->mutable_sources()->add_identities(spiffe_id);
  return *this;
}

Perm& Perm::Namespace(const std::string& ns) {
  tp()->mutable_sources()->add_namespaces(ns);
  return *this;
}

Perm& Perm::IpBlock(const std::string& cidr) {
  tp()->mutable_sources()->add_ip_blocks(cidr);
  return *this;
}

Perm& Perm::FromSelector(const Labels& labels, const std::string& ns) {
  auto* sel = tp()->mutable_sources()->add_workload_selectors();
  sel->set_namespace_(ns);
  for (const auto& [k, v] : labels) (*sel->mutable_match_labels())[k] = v;
  return *this;
}

Perm& Perm::To(const Labels& labels) {
  auto* sel = tp()->mutable_destination()->mutable_selector();
  for (const auto& [k, v] : labels) (*sel->mutable_match_labels())[k] = v;
  return *this;
}

Perm& Perm::Port(uint32_t port) {
  tp()->mutable_destination()->add_ports(port);
  return *this;
}

Perm& Perm::Http(std::initializer_list<std::string> methods, std::initializer_list<std::string> paths,
                 std::initializer_list<std::pair<std::string, std::string>> headers) {
  auto* m = tp()->add_http();
  for (const auto& x : methods) m->add_methods(x);
  for (const auto& x : paths) m->add_paths(x);
  for (const auto& [name, value] : headers) {
    auto* h = m->add_headers();
    if (!name.empty() && name.back() == '^') {
      h->set_type(v1::MATCH_PREFIX);
      h->set_name(name.substr(0, name.size() - 1));
    } else {
      h->set_name(name);
    }
    h->set_value(value);
  }
  return *this;
}

v1::Resource ServiceOf(const std::string& ns, const std::string& name,
                       std::initializer_list<std::pair<std::string, std::string>> endpoints, uint32_t port,
                       uint32_t target, v1::AppProtocol protocol) {
  v1::Resource r;
  auto* s = r.mutable_service();
  s->set_namespace_(ns);
  s->set_name(name);
  auto* p = s->add_ports();
  p->set_port(port);
  p->set_target_port(target);
  p->set_resolved_protocol(protocol);
  for (const auto& [workload, ip] : endpoints) {
    auto* e = s->add_endpoints();
    e->set_workload(workload);
    e->set_ip(ip);
  }
  return r;
}

control::ConfigState StateOf(std::initializer_list<v1::Resource> resources) {
  control::ConfigState s;
  s.version = 1;
  s.epoch = "test";
  for (const auto& r : resources) s.resources[control::ResourceKeyString(r)] = r;
  return s;
}

net::IpAddr Ip(const char* text) {
  auto ip = net::IpAddr::Parse(text);
  if (!ip) std::abort();  // a typo in a test, not a case under test
  return *ip;
}

tls::SpiffeId Id(const std::string& ns, const std::string& sa, const std::string& td) {
  return {td, ns, sa};
}

Workload Dest(const std::string& ns, const std::string& name, const char* ip) {
  Workload w;
  w.ns = ns;
  w.name = name;
  w.service_account = name;
  w.node = "node1";
  w.ips = {Ip(ip)};
  w.enrolled = true;
  return w;
}

}  // namespace zm::agent::policy::testing
