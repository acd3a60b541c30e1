// Universal mode end to end, in process: a dual-stack and an IPv6-only workload and a dual-stack Service written as
// manifests reach an agent's control plane over the real config stream; the agent's snapshot finds each workload by
// any of its addresses, the Service by either VIP, and holds one endpoint per address.
#include <gtest/gtest.h>

#include <algorithm>

#include "agent/control/control_plane.h"
#include "tests/unit/controller/test_env.h"

namespace zm::test {
namespace {

net::IpAddr Ip(const char* s) {
  return *net::IpAddr::Parse(s);
}

TEST(DualStackStream, ManifestAddressesReachTheAgentSnapshot) {
  auto env = NewEnv();
  const std::string head = "apiVersion: zeromesh.io/v1alpha1\n";
  WriteFile(env.manifests + "/mesh.yaml",
            head +
                "kind: Workload\nmetadata: {name: web-1, namespace: shop, labels: {app: web}}\n"
                "spec: {serviceAccount: web, node: node1, ips: [10.244.1.11, 'FD00:10:244:1::B']}\n---\n" +
                head +
                "kind: Workload\nmetadata: {name: web-2, namespace: shop, labels: {app: web}}\n"
                "spec: {serviceAccount: web, node: node2, ip: 'fd00:10:244:2::c'}\n---\n" +
                head +
                "kind: Service\nmetadata: {name: web, namespace: shop}\n"
                "spec: {vips: ['fd00:96::a', 10.96.0.10], ports: [{port: 80, targetPort: 8080}], "
                "selector: {app: web}}\n");
  env.Start(/*watch=*/false);
  agent::SnapshotHolder snapshots;
  agent::InMemoryCertStore certs;
  agent::control::ControlPlane cp(env.BootstrapFor("node1", kTokenNode1), &snapshots, &certs, {});
  cp.Start();
  ASSERT_TRUE(WaitFor([&] { return snapshots.Get() != nullptr; }, 5000));
  auto snap = snapshots.Get();
  ASSERT_EQ(snap->size(), 2u);
  const agent::Workload* dual = snap->Find(Ip("fd00:10:244:1::b"));
  ASSERT_NE(dual, nullptr);
  EXPECT_EQ(dual->name, "web-1");
  EXPECT_EQ(snap->Find(Ip("10.244.1.11")), dual);
  EXPECT_EQ(dual->ips, (std::vector<net::IpAddr>{Ip("10.244.1.11"), Ip("fd00:10:244:1::b")}));
  ASSERT_NE(snap->Find(Ip("fd00:10:244:2::c")), nullptr);
  EXPECT_EQ(snap->Find(Ip("fd00:10:244:2::c"))->name, "web-2");

  const agent::Service* svc = snap->FindService(Ip("10.96.0.10"));
  ASSERT_NE(svc, nullptr);
  EXPECT_EQ(snap->FindService(Ip("fd00:96::a")), svc);
  std::vector<std::string> eps;
  for (const auto& e : svc->endpoints) eps.push_back(e.ip.ToString());
  std::sort(eps.begin(), eps.end());
  EXPECT_EQ(eps, (std::vector<std::string>{"10.244.1.11", "fd00:10:244:1::b", "fd00:10:244:2::c"}));
  cp.Stop();
  env.Stop();
  RemoveTree(env.dir);
}

}  // namespace
}  // namespace zm::test
