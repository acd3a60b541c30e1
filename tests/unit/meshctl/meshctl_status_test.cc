// meshctl status: each seeded fault yields its own problem with a hint; a healthy mesh yields none.
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <sstream>
#include <vector>

#include "tools/meshctl/status_report.h"

namespace zm::meshctl {
namespace {
namespace v1 = zeromesh::v1;

constexpr int64_t kNow = 1'800'000'000;

v1::AgentState* AddAgent(StatusInput& in, const std::string& node) {
  auto* a = in.status.add_agents();
  a->set_node(node);
  a->set_connected(true);
  a->set_sent_version(7);
  a->set_acked_version(7);
  a->set_last_report_unix(kNow - 3);
  auto* r = a->mutable_last_report();
  r->set_node(node);
  r->set_agent_version("0.1.0");
  r->set_health(v1::HEALTHY);
  r->set_applied_version(7);
  r->set_fail_mode("closed");
  r->add_enrolled_pods("shop/" + node + "-pod");
  for (const char* ifname : {"eth0", "zmv1p1"}) {
    auto* at = r->add_attachments();
    at->set_ifname(ifname);
    at->set_ifindex(2);
    at->set_attached(true);
  }
  auto* c = r->add_certs();
  c->set_spiffe_id("spiffe://cluster.local/ns/shop/sa/" + node);
  c->set_not_after_unix(kNow + 20 * 3600);
  return a;
}

StatusInput Healthy() {
  StatusInput in;
  in.controller = "10.99.0.100:15012";
  in.reachable = true;
  in.now_unix = kNow;
  auto* info = in.status.mutable_controller();
  info->set_version("0.1.0");
  info->set_epoch("0123456789abcdef");
  info->set_config_version(7);
  info->set_trust_domain("cluster.local");
  AddAgent(in, "node1");
  AddAgent(in, "node2");
  in.resources.set_version(7);
  auto* mc = in.resources.add_resources()->mutable_mesh_config();
  mc->set_default_mode(v1::STRICT);
  for (const char* node : {"node1", "node2"}) {
    auto* w = in.resources.add_resources()->mutable_workload();
    w->set_name(std::string(node) + "-pod");
    w->set_namespace_("shop");
    w->set_node(node);
    w->set_enrolled(true);
  }
  return in;
}

size_t MaxLine(const std::string& text) {
  std::istringstream in(text);
  std::string line;
  size_t m = 0;
  while (std::getline(in, line)) m = std::max(m, line.size());
  return m;
}

// The one problem of a report that mentions `needle` (fails the test if there is not exactly one).
nlohmann::json OnlyProblem(const nlohmann::json& r, const std::string& needle) {
  EXPECT_FALSE(r["healthy"].get<bool>());
  EXPECT_EQ(r["problems"].size(), 1u) << r["problems"].dump(1);
  for (const auto& p : r["problems"]) {
    if (p["message"].get<std::string>().find(needle) != std::string::npos) {
      EXPECT_FALSE(p["hint"].get<std::string>().empty());
      EXPECT_LE(MaxLine(RenderStatus(r)), 100u) << RenderStatus(r);
      return p;
    }
  }
  ADD_FAILURE() << "no problem mentions '" << needle << "': " << r["problems"].dump(1);
  return {};
}

TEST(Status, HealthyMesh) {
  auto r = BuildStatus(Healthy());
  EXPECT_TRUE(r["healthy"].get<bool>()) << r["problems"].dump(1);
  EXPECT_TRUE(r["problems"].empty());
  EXPECT_TRUE(r["warnings"].empty());
  EXPECT_EQ(r["agents"].size(), 2u);
  EXPECT_TRUE(r["agents"][0]["synced"].get<bool>());
  EXPECT_EQ(r["enrolled_pods_by_namespace"]["shop"], 2);
  EXPECT_EQ(r["soonest_cert_expiry"]["seconds_left"], 20 * 3600);
  EXPECT_EQ(r["mesh"]["fail_mode"], "closed");
  std::string human = RenderStatus(r);
  EXPECT_NE(human.find("no problems found"), std::string::npos) << human;
  EXPECT_LE(MaxLine(human), 100u) << human;
}

TEST(Status, ControllerUnreachable) {
  StatusInput in;
  in.controller = "10.0.0.1:15012";
  in.error = "controller unreachable at 10.0.0.1:15012: failed to connect";
  auto r = BuildStatus(in);
  auto p = OnlyProblem(r, "controller unreachable");
  EXPECT_NE(p["hint"].get<std::string>().find("--controller"), std::string::npos);
  EXPECT_FALSE(r["controller"]["reachable"].get<bool>());
  EXPECT_NE(RenderStatus(r).find("UNREACHABLE"), std::string::npos);
}

TEST(Status, AgentDisconnected) {
  auto in = Healthy();
  in.status.mutable_agents(1)->set_connected(false);
  in.status.mutable_agents(1)->set_last_report_unix(kNow - 120);
  auto p = OnlyProblem(BuildStatus(in), "agent on node node2 is disconnected");
  EXPECT_NE(p["message"].get<std::string>().find("2m ago"), std::string::npos) << p;
  EXPECT_EQ(p["node"], "node2");
}

TEST(Status, StaleReport) {
  auto in = Healthy();
  in.status.mutable_agents(0)->set_last_report_unix(kNow - 300);
  OnlyProblem(BuildStatus(in), "has not reported for 5m");
}

TEST(Status, NackedConfig) {
  auto in = Healthy();
  in.status.mutable_controller()->set_config_version(8);
  for (auto& a : *in.status.mutable_agents()) a.set_acked_version(8);
  auto* a = in.status.mutable_agents(0);
  a->set_acked_version(7);
  a->set_nacked_version(8);
  a->set_nack_error("TrafficPermission: shop/x: bad identity");
  auto p = OnlyProblem(BuildStatus(in), "node node1 rejected config version 8");
  EXPECT_NE(p["hint"].get<std::string>().find("keeps config version 7"), std::string::npos);
}

TEST(Status, LaggingAgent) {
  auto in = Healthy();
  in.status.mutable_agents(1)->set_acked_version(6);
  OnlyProblem(BuildStatus(in), "node node2 runs config version 6, the controller has 7");
}

TEST(Status, DetachedProgram) {
  auto in = Healthy();
  auto* at = in.status.mutable_agents(1)->mutable_last_report()->mutable_attachments(1);
  at->set_attached(false);
  at->set_error("capture program detached: link 9 is not at tcx ingress of ifindex 2");
  auto r = BuildStatus(in);
  auto p = OnlyProblem(r, "node node2: no capture program on zmv1p1");
  EXPECT_NE(p["hint"].get<std::string>().find("restart mesh-agent on node2"), std::string::npos);
  EXPECT_NE(p["hint"].get<std::string>().find("re-attaches a removed program within seconds"), std::string::npos);
  EXPECT_EQ(r["agents"][1]["attachments_ok"], 1);
}

// A program someone detached or displaced and the agent put back first: healthy, but said (for 15 minutes).
TEST(Status, RepairedProgramIsAWarningNotAProblem) {
  auto in = Healthy();
  auto* at = in.status.mutable_agents(1)->mutable_last_report()->mutable_attachments(1);
  at->set_repairs(2);
  at->set_last_repair_unix(kNow - 40);
  at->set_last_repair("ingress detached");
  auto r = BuildStatus(in);
  EXPECT_TRUE(r["healthy"].get<bool>()) << r["problems"].dump(1);
  ASSERT_EQ(r["warnings"].size(), 1u) << r["warnings"].dump(1);
  const std::string msg = r["warnings"][0]["message"];
  EXPECT_NE(msg.find("node node2: the agent re-attached its programs on zmv1p1 first 40s ago (ingress detached; "
                     "repairs since the agent started: 2)"),
            std::string::npos)
      << msg;
  EXPECT_NE(r["warnings"][0]["hint"].get<std::string>().find("bpftool net show dev zmv1p1"), std::string::npos);
  EXPECT_EQ(r["agents"][1]["attachments"][1]["repairs"], 2);
  std::string human = RenderStatus(r);
  EXPECT_NE(human.find("WARNINGS (1)"), std::string::npos) << human;
  EXPECT_NE(human.find("no problems found"), std::string::npos) << human;
  EXPECT_LE(MaxLine(human), 100u) << human;

  at->set_last_repair_unix(kNow - 16 * 60);  // an old repair is history: in the JSON, not a warning
  r = BuildStatus(in);
  EXPECT_TRUE(r["warnings"].empty()) << r["warnings"].dump(1);
  EXPECT_EQ(r["agents"][1]["attachments"][1]["repairs"], 2);
}

TEST(Status, ProgramBehindOthersIsAWarning) {
  auto in = Healthy();
  in.status.mutable_agents(0)->mutable_last_report()->mutable_attachments(0)->set_position(2);
  auto r = BuildStatus(in);
  EXPECT_TRUE(r["healthy"].get<bool>());
  ASSERT_EQ(r["warnings"].size(), 1u);
  EXPECT_NE(r["warnings"][0]["message"].get<std::string>().find("on eth0 runs behind 2 other tcx program(s)"),
            std::string::npos)
      << r["warnings"].dump(1);
  EXPECT_EQ(r["warnings"][0]["node"], "node1");
}

TEST(Status, CertificateExpiring) {
  auto in = Healthy();
  in.cert_warn_seconds = 3600;
  in.status.mutable_agents(0)->mutable_last_report()->mutable_certs(0)->set_not_after_unix(kNow + 90);
  auto r = BuildStatus(in);
  OnlyProblem(r, "expires in 1m30s");
  EXPECT_EQ(r["soonest_cert_expiry"]["node"], "node1");
  in.status.mutable_agents(0)->mutable_last_report()->mutable_certs(0)->set_not_after_unix(kNow - 60);
  OnlyProblem(BuildStatus(in), "expired 1m ago");
}

TEST(Status, WorkloadOnANodeWithoutAgent) {
  auto in = Healthy();
  auto* w = in.resources.add_resources()->mutable_workload();
  w->set_name("ghost");
  w->set_namespace_("shop");
  w->set_node("node9");
  w->set_enrolled(true);
  auto p = OnlyProblem(BuildStatus(in), "workload shop/ghost is on node node9, which has no agent");
  EXPECT_NE(p["hint"].get<std::string>().find("start mesh-agent on node9"), std::string::npos);
  w->set_enrolled(false);  // not enrolled: nothing to capture, nothing wrong
  EXPECT_TRUE(BuildStatus(in)["healthy"].get<bool>());
}

TEST(Status, ManifestErrorsKeepTheLastGoodVersion) {
  auto in = Healthy();
  auto* e = in.status.add_manifest_errors();
  e->set_file("bad.yaml");
  e->set_line(3);
  e->set_reason("unknown field 'spec.foo'");
  auto p = OnlyProblem(BuildStatus(in), "manifest bad.yaml:3: unknown field");
  EXPECT_NE(p["hint"].get<std::string>().find("version 7"), std::string::npos);
}

TEST(Status, CredentialsAboutToExpire) {
  auto in = Healthy();
  auto* info = in.status.mutable_controller();
  auto add = [&](const char* kind, const char* name, int64_t not_after) {
    auto* c = info->add_credentials();
    c->set_kind(kind);
    c->set_name(name);
    c->set_not_after_unix(not_after);
  };
  add("ca", "CN=zeromesh root CA", kNow + 3650LL * 86400);
  add("trust-root", "CN=zeromesh root CA", kNow + 3650LL * 86400);
  add("serving-cert", "mesh-controller.zeromesh", kNow + 12 * 3600);
  add("join-token", "node3", 0);  // never expires
  EXPECT_TRUE(BuildStatus(in)["healthy"].get<bool>()) << BuildStatus(in)["problems"].dump(1);
  EXPECT_NE(RenderStatus(BuildStatus(in)).find("CN=zeromesh root CA, expires in"), std::string::npos);
  info->mutable_credentials(1)->set_not_after_unix(kNow + 10LL * 86400);
  auto p = OnlyProblem(BuildStatus(in), "trust root 'CN=zeromesh root CA' expires in 10d");
  EXPECT_NE(p["hint"].get<std::string>().find("remove the old root"), std::string::npos);
  info->mutable_credentials(1)->set_not_after_unix(kNow + 3650LL * 86400);
  info->mutable_credentials(3)->set_not_after_unix(kNow - 60);
  p = OnlyProblem(BuildStatus(in), "the join token of node node3 expired 1m ago");
  EXPECT_NE(p["hint"].get<std::string>().find("meshctl join-token create node3"), std::string::npos);
  info->mutable_credentials(3)->set_not_after_unix(0);
  info->mutable_credentials(2)->set_not_after_unix(kNow + 60);
  OnlyProblem(BuildStatus(in), "the controller's serving certificate expires in 1m");
}

TEST(Status, CaKeyReachableFromAgentPods) {
  auto in = Healthy();
  in.status.mutable_controller()->add_security_problems(
      "pod zeromesh-system/agent-x mounts the CA Secret zeromesh-system/zeromesh-ca (volume 'ca')");
  auto p = OnlyProblem(BuildStatus(in), "mounts the CA Secret");
  EXPECT_NE(p["hint"].get<std::string>().find("trust-bundle ConfigMap"), std::string::npos);
}

TEST(Status, CertificatesFromAPreviousSigner) {
  auto in = Healthy();
  in.status.mutable_controller()->set_ca_signer("new");
  for (int i = 0; i < 2; i++)
    in.status.mutable_agents(i)->mutable_last_report()->mutable_certs(0)->set_ca_signer("new");
  EXPECT_TRUE(BuildStatus(in)["healthy"].get<bool>());
  in.status.mutable_agents(1)->mutable_last_report()->mutable_certs(0)->set_ca_signer("old");
  auto p = OnlyProblem(BuildStatus(in), "node node2 holds 1 certificate(s) issued by a previous CA signer");
  EXPECT_EQ(p["node"], "node2");
}

TEST(Status, LongNamesStillFit) {
  auto in = Healthy();
  AddAgent(in, std::string(120, 'n'))->set_connected(false);
  auto r = BuildStatus(in);
  EXPECT_FALSE(r["healthy"].get<bool>());
  EXPECT_LE(MaxLine(RenderStatus(r)), 100u) << RenderStatus(r);
}

// A Service selecting |pods| (workload keys) with one port |port| -> |target| that says |protocol|.
void AddService(StatusInput& in, const std::string& name, uint32_t port, uint32_t target, v1::AppProtocol protocol,
                std::initializer_list<const char*> pods) {
  auto* s = in.resources.add_resources()->mutable_service();
  s->set_namespace_("shop");
  s->set_name(name);
  auto* p = s->add_ports();
  p->set_port(port);
  p->set_target_port(target);
  p->set_resolved_protocol(protocol);
  for (const char* pod : pods) s->add_endpoints()->set_workload(pod);
}

// Services that disagree on a pod port: a warning naming both Services (with port and protocol) and the pod port,
// never a problem; Services that agree (HTTP2 and GRPC are both HTTP/2) say nothing.
TEST(Status, APodPortServicesDeclareWithDifferentProtocolsIsAWarning) {
  for (bool reversed : {false, true}) {
    SCOPED_TRACE(reversed ? "Services listed in reverse" : "in order");
    auto in = Healthy();
    std::vector<std::function<void()>> add = {
        [&] {
          AddService(in, "web-grpc", 81, 8080, v1::APP_GRPC, {"shop/node1-pod", "shop/node2-pod"});
        },
        [&] {
          AddService(in, "web", 80, 8080, v1::APP_HTTP, {"shop/node1-pod", "shop/node2-pod"});
        },
        [&] { AddService(in, "db", 5432, 5432, v1::APP_TCP, {"shop/node1-pod"}); },
        [&] { AddService(in, "db-http", 80, 5432, v1::APP_HTTP, {"shop/node1-pod"}); },
        [&] { AddService(in, "rpc", 90, 9090, v1::APP_GRPC, {"shop/node1-pod"}); },
        [&] { AddService(in, "h2", 91, 9090, v1::APP_HTTP2, {"shop/node1-pod"}); },
        [&] { AddService(in, "site", 80, 7000, v1::APP_HTTP, {"shop/node1-pod"}); },
        [&] { AddService(in, "site-too", 81, 7000, v1::APP_HTTP, {"shop/node1-pod"}); }};
    if (reversed) std::reverse(add.begin(), add.end());
    for (auto& f : add) f();
    auto r = BuildStatus(in);
    EXPECT_TRUE(r["healthy"].get<bool>()) << r["problems"].dump(1);
    ASSERT_EQ(r["warnings"].size(), 2u) << r["warnings"].dump(1);
    EXPECT_EQ(r["warnings"][0]["message"],
              "Services shop/db (port 5432, TCP) and shop/db-http (port 80, HTTP) declare pod port 5432 of "
              "shop/node1-pod with different protocols");
    const std::string tcp_hint = r["warnings"][0]["hint"];
    EXPECT_NE(tcp_hint.find("parses it as HTTP/1.1"), std::string::npos) << tcp_hint;
    EXPECT_NE(tcp_hint.find("refused where TrafficPermission http rules apply"), std::string::npos) << tcp_hint;
    EXPECT_NE(tcp_hint.find("metrics and spans name shop/db-http"), std::string::npos) << tcp_hint;
    EXPECT_EQ(r["warnings"][1]["message"],
              "Services shop/web (port 80, HTTP) and shop/web-grpc (port 81, GRPC) declare pod port 8080 of "
              "shop/node1-pod (and 1 more pods) with different protocols");
    const std::string h2_hint = r["warnings"][1]["hint"];
    EXPECT_NE(h2_hint.find("sniffs each connection"), std::string::npos) << h2_hint;
    EXPECT_NE(h2_hint.find("metrics and spans name shop/web "), std::string::npos) << h2_hint;
    EXPECT_EQ(h2_hint.find("byte stream"), std::string::npos) << h2_hint;
    std::string human = RenderStatus(r);
    EXPECT_NE(human.find("WARNINGS (2)"), std::string::npos) << human;
    EXPECT_LE(MaxLine(human), 100u) << human;
  }
}

}  // namespace
}  // namespace zm::meshctl
