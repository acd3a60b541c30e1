// Kubernetes objects of a dual-stack or IPv6-only cluster -> mesh resources: pods' status.podIPs, Services'
// spec.clusterIPs, IPv6 EndpointSlices, and the endpoints Compile then ties to their workloads.
#include <gtest/gtest.h>

#include "controller/config/snapshot.h"
#include "controller/k8s/translate.h"

namespace zm::k8s {
namespace {
using nlohmann::json;

// A Running pod in the meshed namespace "mesh": podIP is the first of `ips` (as the kubelet reports them).
json Pod(const std::string& name, const std::vector<std::string>& ips) {
  json pod_ips = json::array();
  for (const auto& ip : ips) pod_ips.push_back({{"ip", ip}});
  return {{"metadata", {{"namespace", "mesh"}, {"name", name}, {"labels", {{"app", "web"}}}}},
          {"spec", {{"nodeName", "n1"}, {"serviceAccountName", "sa"}}},
          {"status", {{"phase", "Running"}, {"podIP", ips.empty() ? "" : ips[0]}, {"podIPs", pod_ips}}}};
}

json Slice(const std::string& name, const std::string& type, const std::vector<std::string>& addresses) {
  json eps = json::array();
  for (const auto& a : addresses)
    eps.push_back({{"addresses", {a}}, {"conditions", {{"ready", true}}}, {"nodeName", "n1"}});
  return {{"metadata", {{"namespace", "mesh"}, {"name", name}, {"labels", {{"kubernetes.io/service-name", "web"}}}}},
          {"addressType", type},
          {"endpoints", eps},
          {"ports", json::array({{{"name", "http"}, {"port", 8080}}})}};
}

Objects Cluster() {
  Objects o;
  o.namespaces["/mesh"] = {{"metadata", {{"name", "mesh"}, {"labels", {{kMeshLabel, kMeshEnabled}}}}}};
  return o;
}

std::map<std::string, zeromesh::v1::Resource> ByKey(const Translation& t) {
  std::map<std::string, zeromesh::v1::Resource> out;
  for (const auto& l : t.resources) out[manifest::KeyOf(l.resource)] = l.resource;
  return out;
}

std::vector<std::string> List(const google::protobuf::RepeatedPtrField<std::string>& f) {
  return {f.begin(), f.end()};
}

TEST(TranslateDualStack, DualStackAndIpv6OnlyPods) {
  Objects o = Cluster();
  o.pods["mesh/dual"] = Pod("dual", {"10.244.1.5", "FD00:10:244:1:0:0:0:5"});
  o.pods["mesh/six"] = Pod("six", {"fd00:10:244:1::6"});
  o.pods["mesh/six-first"] = Pod("six-first", {"fd00:10:244:1::7", "10.244.1.7"});
  o.pods["mesh/four"] = Pod("four", {"10.244.1.8"});
  o.pods["mesh/four"]["status"].erase("podIPs");  // older kubelets: podIP alone
  o.pods["mesh/bad"] = Pod("bad", {"not-an-ip", "fd00:10:244:1::9"});
  Translation t = Translate(o, {});
  auto r = ByKey(t);
  ASSERT_TRUE(r.count("Workload/mesh/dual"));
  const auto& dual = r["Workload/mesh/dual"].workload();
  EXPECT_EQ(dual.ip(), "10.244.1.5");
  EXPECT_EQ(List(dual.ips()), (std::vector<std::string>{"10.244.1.5", "fd00:10:244:1::5"}));  // canonical text
  EXPECT_TRUE(dual.enrolled());
  ASSERT_TRUE(r.count("Workload/mesh/six"));
  EXPECT_EQ(r["Workload/mesh/six"].workload().ip(), "fd00:10:244:1::6");
  EXPECT_EQ(r["Workload/mesh/six"].workload().ips_size(), 0);  // one address: just ip
  EXPECT_TRUE(r["Workload/mesh/six"].workload().enrolled());
  EXPECT_EQ(r["Workload/mesh/six-first"].workload().ip(), "fd00:10:244:1::7");
  EXPECT_EQ(List(r["Workload/mesh/six-first"].workload().ips()),
            (std::vector<std::string>{"fd00:10:244:1::7", "10.244.1.7"}));
  EXPECT_EQ(r["Workload/mesh/four"].workload().ip(), "10.244.1.8");
  EXPECT_EQ(r["Workload/mesh/four"].workload().ips_size(), 0);
  // An unparsable podIP is dropped, the valid podIPs entry stays.
  EXPECT_EQ(r["Workload/mesh/bad"].workload().ip(), "fd00:10:244:1::9");
  EXPECT_EQ(t.workloads, 5u);
}

// A reused address belongs to the pod listed first (a stale pod may still hold it); the check is per address, so a
// pod keeps its other family, and a pod left with none is no workload.
TEST(TranslateDualStack, TheStaleIpCheckAppliesPerAddress) {
  Objects o = Cluster();
  o.pods["mesh/a"] = Pod("a", {"10.244.1.5", "fd00:10:244:1::5"});
  o.pods["mesh/b"] = Pod("b", {"10.244.1.6", "fd00:10:244:1::5"});  // the IPv6 address is a's
  o.pods["mesh/c"] = Pod("c", {"fd00:10:244:1::5", "10.244.1.6"});  // both taken
  o.pods["mesh/d"] = Pod("d", {"FD00:10:244:1::5", "10.244.1.9"});  // a's, in other text
  Translation t = Translate(o, {});
  auto r = ByKey(t);
  EXPECT_EQ(List(r["Workload/mesh/a"].workload().ips()), (std::vector<std::string>{"10.244.1.5", "fd00:10:244:1::5"}));
  EXPECT_EQ(r["Workload/mesh/b"].workload().ip(), "10.244.1.6");
  EXPECT_EQ(r["Workload/mesh/b"].workload().ips_size(), 0);
  EXPECT_FALSE(r.count("Workload/mesh/c"));
  EXPECT_EQ(r["Workload/mesh/d"].workload().ip(), "10.244.1.9");
  EXPECT_EQ(t.workloads, 3u);
}

TEST(TranslateDualStack, DualStackServiceWithAnIpv6EndpointSlice) {
  Objects o = Cluster();
  o.pods["mesh/a"] = Pod("a", {"10.244.1.5", "fd00:10:244:1::5"});
  o.services["mesh/web"] = {{"metadata", {{"namespace", "mesh"}, {"name", "web"}}},
                            {"spec",
                             {{"clusterIP", "fd00:96::10"},
                              {"clusterIPs", {"fd00:96::10", "10.96.0.10"}},
                              {"ports", json::array({{{"name", "http"}, {"port", 80}, {"targetPort", "http"}}})}}}};
  o.endpoint_slices["mesh/web-4"] = Slice("web-4", "IPv4", {"10.244.1.5"});
  o.endpoint_slices["mesh/web-6"] = Slice("web-6", "IPv6", {"FD00:10:244:1::5", "10.244.1.99"});  // 2nd: wrong family
  o.endpoint_slices["mesh/web-f"] = Slice("web-f", "FQDN", {"web.example.com"});
  auto r = ByKey(Translate(o, {}));
  ASSERT_TRUE(r.count("Service/mesh/web"));
  const auto& s = r["Service/mesh/web"].service();
  EXPECT_EQ(s.vip(), "fd00:96::10");
  EXPECT_EQ(List(s.vips()), (std::vector<std::string>{"fd00:96::10", "10.96.0.10"}));
  ASSERT_EQ(s.ports_size(), 1);
  EXPECT_EQ(s.ports(0).target_port(), 8080u);
  std::vector<std::string> eps;
  for (const auto& e : s.endpoints()) eps.push_back(e.ip() + "@" + e.node());
  std::sort(eps.begin(), eps.end());
  EXPECT_EQ(eps, (std::vector<std::string>{"10.244.1.5@n1", "fd00:10:244:1::5@n1"}));

  // Compile ties each endpoint to the pod's workload: a dual-stack pod is one endpoint per family.
  Translation t = Translate(o, {});
  auto snap = ctrl::Compile(std::move(t.resources), ctrl::MeshDefaults{});
  const auto& compiled = snap->resources.at("Service/mesh/web")->service();
  ASSERT_EQ(compiled.endpoints_size(), 2);
  for (const auto& e : compiled.endpoints()) EXPECT_EQ(e.workload(), "mesh/a") << e.ip();
}

TEST(TranslateDualStack, Ipv6OnlyServiceAndHeadlessOnes) {
  Objects o = Cluster();
  auto svc = [](const std::string& name, json spec) {
    spec["ports"] = json::array({{{"port", 80}}});
    return json{{"metadata", {{"namespace", "mesh"}, {"name", name}}}, {"spec", spec}};
  };
  o.services["mesh/six"] = svc("six", {{"clusterIP", "fd00:96::20"}, {"clusterIPs", {"fd00:96::20"}}});
  o.services["mesh/none"] = svc("none", {{"clusterIP", "None"}, {"clusterIPs", {"None"}}});
  o.services["mesh/bad"] = svc("bad", {{"clusterIP", "fd00:96::zz"}});
  auto r = ByKey(Translate(o, {}));
  ASSERT_TRUE(r.count("Service/mesh/six"));
  EXPECT_EQ(r["Service/mesh/six"].service().vip(), "fd00:96::20");
  EXPECT_EQ(r["Service/mesh/six"].service().vips_size(), 0);
  EXPECT_FALSE(r.count("Service/mesh/none"));
  EXPECT_FALSE(r.count("Service/mesh/bad"));
}

}  // namespace
}  // namespace zm::k8s
