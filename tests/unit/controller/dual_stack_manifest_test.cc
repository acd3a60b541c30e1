// Universal-mode manifests with IPv6: Workload ip/ips and Service vip/vips (one address per family, canonical text),
// IPv6 endpoints, ipBlocks and excludeCidrs, the precise errors for bad values, and the endpoints Compile derives
// from selectors for dual-stack workloads.
#include <gtest/gtest.h>

#include "controller/config/snapshot.h"
#include "controller/manifest/manifest.h"
#include "controller/manifest/yaml_reader.h"

namespace zm::test {
namespace {

const std::string kHead = "apiVersion: zeromesh.io/v1alpha1\n";

manifest::Result Decode(const std::string& text) {
  manifest::Result r;
  manifest::DecodeText(text, "m.yaml", manifest::Limits{}, &r);
  manifest::CheckSet(&r);
  return r;
}

std::string Workload(const std::string& name, const std::string& addresses) {
  return kHead + "kind: Workload\nmetadata: {name: " + name + ", namespace: ns, labels: {app: web}}\nspec:\n" +
         "  node: n1\n" + addresses;
}

std::string AllErrors(const manifest::Result& r) {
  std::string all;
  for (const auto& e : r.errors) all += std::to_string(e.line) + ": " + e.reason + "\n";
  return all;
}

// The single error: its line and a part of its reason.
void ExpectError(const std::string& text, int line, const std::string& needle) {
  auto r = Decode(text);
  ASSERT_EQ(r.errors.size(), 1u) << AllErrors(r);
  EXPECT_EQ(r.errors[0].line, line) << r.errors[0].reason;
  EXPECT_NE(r.errors[0].reason.find(needle), std::string::npos) << r.errors[0].reason;
}

std::vector<std::string> List(const google::protobuf::RepeatedPtrField<std::string>& f) {
  return {f.begin(), f.end()};
}

TEST(DualStackManifest, WorkloadAddresses) {
  // Both families, the IPv6 one in non-canonical text: stored canonical, ip first.
  auto r = Decode(Workload("a", "  ip: 10.0.0.1\n  ips: ['FD00:0:0::0001', 10.0.0.1]\n"));
  ASSERT_TRUE(r.ok()) << AllErrors(r);
  const auto& a = r.resources[0].resource->workload();
  EXPECT_EQ(a.ip(), "10.0.0.1");
  EXPECT_EQ(List(a.ips()), (std::vector<std::string>{"10.0.0.1", "fd00::1"}));

  // ips alone: the first is the primary address.
  r = Decode(Workload("b", "  ips: [fd00::2, 10.0.0.2]\n"));
  ASSERT_TRUE(r.ok()) << AllErrors(r);
  EXPECT_EQ(r.resources[0].resource->workload().ip(), "fd00::2");
  EXPECT_EQ(List(r.resources[0].resource->workload().ips()), (std::vector<std::string>{"fd00::2", "10.0.0.2"}));

  // IPv6-only, one address: no list (the proto's "empty means just ip").
  r = Decode(Workload("c", "  ip: fd00::3\n"));
  ASSERT_TRUE(r.ok()) << AllErrors(r);
  EXPECT_EQ(r.resources[0].resource->workload().ip(), "fd00::3");
  EXPECT_EQ(r.resources[0].resource->workload().ips_size(), 0);
  r = Decode(Workload("d", "  ips: [fd00::4]\n"));
  ASSERT_TRUE(r.ok()) << AllErrors(r);
  EXPECT_EQ(r.resources[0].resource->workload().ip(), "fd00::4");
  EXPECT_EQ(r.resources[0].resource->workload().ips_size(), 0);

  // IPv4 as before: unchanged text, no list.
  r = Decode(Workload("e", "  ip: 10.0.0.5\n"));
  ASSERT_TRUE(r.ok()) << AllErrors(r);
  EXPECT_EQ(r.resources[0].resource->workload().ip(), "10.0.0.5");
  EXPECT_EQ(r.resources[0].resource->workload().ips_size(), 0);
}

TEST(DualStackManifest, ServiceAddressesEndpointsAndCidrs) {
  auto r =
      Decode(kHead +
             "kind: Service\nmetadata: {name: web, namespace: ns}\n"
             "spec:\n  vips: [10.96.0.10, 'fd00:96::a']\n  ports: [{port: 80}]\n"
             "  endpoints: ['FD00::7', 10.0.0.7]\n---\n" +
             kHead +
             "kind: TrafficPermission\nmetadata: {name: p, namespace: ns}\n"
             "spec:\n  action: ALLOW\n  sources: {ipBlocks: [10.0.0.0/8, 'FD00:10::/32', '2001:db8::1/128']}\n"
             "---\n" +
             kHead + "kind: MeshConfig\nmetadata: {name: m}\nspec: {excludeCidrs: ['fd00:96::/112', 10.96.0.0/12]}\n");
  ASSERT_TRUE(r.ok()) << AllErrors(r);
  const auto& s = r.resources[0].resource->service();
  EXPECT_EQ(s.vip(), "10.96.0.10");
  EXPECT_EQ(List(s.vips()), (std::vector<std::string>{"10.96.0.10", "fd00:96::a"}));
  ASSERT_EQ(s.endpoints_size(), 2);
  EXPECT_EQ(s.endpoints(0).ip(), "fd00::7");
  EXPECT_EQ(s.endpoints(1).ip(), "10.0.0.7");
  EXPECT_EQ(List(r.resources[1].resource->traffic_permission().sources().ip_blocks()),
            (std::vector<std::string>{"10.0.0.0/8", "fd00:10::/32", "2001:db8::1/128"}));
  EXPECT_EQ(List(r.resources[2].resource->mesh_config().exclude_cidrs()),
            (std::vector<std::string>{"fd00:96::/112", "10.96.0.0/12"}));
}

TEST(DualStackManifest, BadValuesSayWhichFieldWhichValueAndWhy) {
  ExpectError(Workload("a", "  ip: fd00::zz\n"), 6, "'spec.ip': 'fd00::zz' is not an IPv6 address");
  ExpectError(Workload("a", "  ip: 10.0.0.300\n"), 6, "'spec.ip': '10.0.0.300' is not an IPv4 address");
  ExpectError(Workload("a", "  ip: '[fd00::1]'\n"), 6, "without brackets");
  ExpectError(Workload("a", "  ip: 'fe80::1%eth0'\n"), 6, "a zone (%...) is not allowed");
  ExpectError(Workload("a", "  ip: '::ffff:10.0.0.1'\n"), 6,
              "IPv4-mapped IPv6 address: write the IPv4 address 10.0.0.1");
  ExpectError(Workload("a", "  ips: [10.0.0.1, 'fd00::1', 'fd00::2']\n"), 6,
              "'spec.ips[2]': fd00::2 is a second IPv6 address (after fd00::1): at most one address per family");
  ExpectError(Workload("a", "  ips: [10.0.0.1, 10.0.0.2]\n"), 6, "is a second IPv4 address");
  ExpectError(Workload("a", "  ip: 10.0.0.9\n  ips: [10.0.0.1, 'fd00::1']\n"), 6,
              "'spec.ip': 10.0.0.9 is not among 'spec.ips' (10.0.0.1, fd00::1)");
  ExpectError(Workload("a", "  ips: [10.0.0.1, 'fd00::g']\n"), 6, "'spec.ips[1]': 'fd00::g' is not an IPv6 address");
  ExpectError(Workload("a", "  ips: []\n"), 6, "'spec.ips' must not be empty");
  ExpectError(Workload("a", ""), 5, "missing required field 'spec.ip'");
  ExpectError(kHead + "kind: Service\nmetadata: {name: s}\nspec:\n  vip: 'fd00::1::2'\n  ports: [{port: 80}]\n", 5,
              "'spec.vip': 'fd00::1::2' is not an IPv6 address");
  ExpectError(
      kHead + "kind: Service\nmetadata: {name: s}\nspec:\n  vips: ['fd00::1', 'fd00::2']\n  ports: [{port: 80}]\n", 5,
      "'spec.vips[1]'");
  ExpectError(kHead + "kind: Service\nmetadata: {name: s}\nspec:\n  ports: [{port: 80}]\n  endpoints: ['fd00::x']\n", 6,
              "'spec.endpoints[0]': 'fd00::x' is not an IPv6 address");
  auto perm = [](const std::string& block) {
    return kHead +
           "kind: TrafficPermission\nmetadata: {name: p}\nspec:\n  action: ALLOW\n  sources:\n    ipBlocks: ['" +
           block + "']\n    namespaces: [a]\n";
  };
  ExpectError(perm("fd00::1/64"), 7,
              "'spec.sources.ipBlocks[0]': 'fd00::1/64' has host bits set (did you mean fd00::/64?)");
  ExpectError(perm("fd00::/129"), 7, "'fd00::/129' is not a CIDR: prefix length must be 0..128");
  ExpectError(perm("10.0.0.0/33"), 7, "prefix length must be 0..32");
  ExpectError(perm("fd00::"), 7, "'fd00::' is not a CIDR (expected a.b.c.d/len or an IPv6 prefix such as fd00::/64)");
  ExpectError(perm("fd0g::/16"), 7, "'fd0g::/16' is not a CIDR: 'fd0g::' is not an IPv6 address");
  ExpectError(kHead + "kind: MeshConfig\nmetadata: {name: m}\nspec:\n  excludeCidrs: ['fd00:96::1/112']\n", 5,
              "'spec.excludeCidrs[0]': 'fd00:96::1/112' has host bits set (did you mean fd00:96::/112?)");
}

TEST(DualStackManifest, DuplicateAddressesAcrossFamilies) {
  auto r = Decode(Workload("a", "  ips: [10.0.0.1, 'fd00::1']\n") + "---\n" +
                  Workload("b", "  ips: [10.0.0.2, 'FD00::1']\n"));
  ASSERT_EQ(r.errors.size(), 1u) << AllErrors(r);
  EXPECT_NE(r.errors[0].reason.find("duplicate workload IP fd00::1 (also used at m.yaml:1)"), std::string::npos)
      << r.errors[0].reason;
  r = Decode(kHead +
             "kind: Service\nmetadata: {name: s1}\nspec: {vips: [10.96.0.1, 'fd00::a'], ports: [{port: 80}]}\n" +
             "---\n" + kHead + "kind: Service\nmetadata: {name: s2}\nspec: {vip: 'fd00::a', ports: [{port: 80}]}\n");
  ASSERT_EQ(r.errors.size(), 1u) << AllErrors(r);
  EXPECT_NE(r.errors[0].reason.find("duplicate service VIP fd00::a"), std::string::npos) << r.errors[0].reason;
}

// Endpoints from a selector: every address of a selected workload in the Service's own families (a single-stack
// IPv4 Service keeps its IPv4 endpoints only, as Kubernetes fills its EndpointSlices).
TEST(DualStackManifest, SelectorEndpointsPerAddressOfTheServiceFamilies) {
  auto service = [](const std::string& name, const std::string& addresses) {
    return kHead + "kind: Service\nmetadata: {name: " + name + ", namespace: ns}\nspec:\n" + addresses +
           "  ports: [{port: 80}]\n  selector: {app: web}\n";
  };
  auto r =
      Decode(Workload("dual", "  ips: [10.0.0.1, 'fd00::1']\n") + "---\n" + Workload("v6", "  ip: 'fd00::2'\n") +
             "---\n" + Workload("v4", "  ip: 10.0.0.3\n") + "---\n" +
             service("both", "  vips: [10.96.0.1, 'fd00:96::1']\n") + "---\n" + service("four", "  vip: 10.96.0.2\n") +
             "---\n" + service("six", "  vip: 'fd00:96::3'\n") + "---\n" + service("novip", ""));
  ASSERT_TRUE(r.ok()) << AllErrors(r);
  auto snap = ctrl::Compile(std::move(r.resources), ctrl::MeshDefaults{});
  auto endpoints = [&](const std::string& name) {
    std::vector<std::string> out;
    for (const auto& e : snap->resources.at("Service/ns/" + name)->service().endpoints()) {
      out.push_back(e.ip() + "=" + e.workload() + "@" + e.node());
    }
    return out;
  };
  const std::vector<std::string> all = {"10.0.0.1=ns/dual@n1", "10.0.0.3=ns/v4@n1", "fd00::1=ns/dual@n1",
                                        "fd00::2=ns/v6@n1"};
  EXPECT_EQ(endpoints("both"), all);
  EXPECT_EQ(endpoints("novip"), all);
  EXPECT_EQ(endpoints("four"), (std::vector<std::string>{"10.0.0.1=ns/dual@n1", "10.0.0.3=ns/v4@n1"}));
  EXPECT_EQ(endpoints("six"), (std::vector<std::string>{"fd00::1=ns/dual@n1", "fd00::2=ns/v6@n1"}));
}

TEST(DualStackManifest, AddressChecks) {
  EXPECT_EQ(manifest::CheckIp("fd00::1"), "");
  EXPECT_EQ(manifest::CheckIp("10.0.0.1"), "");
  EXPECT_NE(manifest::CheckIp(""), "");
  EXPECT_NE(manifest::CheckIp("10.0.0.1:80"), "");
  EXPECT_EQ(manifest::CheckCidr("::/0"), "");
  EXPECT_EQ(manifest::CheckCidr("fd00::/8"), "");
  EXPECT_NE(manifest::CheckCidr("fd00::/"), "");
  EXPECT_NE(manifest::CheckCidr("fd00::/-1"), "");
  EXPECT_NE(manifest::CheckCidr("fd00::/0128"), "");
  EXPECT_EQ(manifest::CanonicalIp("FD00:0::1"), "fd00::1");
  EXPECT_EQ(manifest::CanonicalCidr("FD00:0::/16"), "fd00::/16");
  EXPECT_EQ(manifest::CanonicalIp("10.0.0.1"), "10.0.0.1");
}

// YAML reads an unquoted address ending in "::" as a mapping ({"fd00:": null}) in a list, in a [...] list or a block
// one, and cannot parse it as a mapping's value: the error names the item, what YAML made of it and how to write it.
// Quoted, the same address is accepted.
TEST(DualStackManifest, UnquotedAddressEndingInColons) {
  const std::string hint =
      "must be a string, but YAML read the unquoted fd00:: as a mapping (its last ':' starts a "
      "value): quote it ('fd00::')";
  ExpectError(Workload("a", "  ips: [10.0.0.1, fd00::]\n"), 6, "'spec.ips[1]' " + hint);
  ExpectError(Workload("a", "  ips:\n  - 10.0.0.1\n  - fd00::\n"), 8, "'spec.ips[1]' " + hint);
  ExpectError(kHead + "kind: Service\nmetadata: {name: s, namespace: ns}\nspec:\n  vip: 10.96.0.5\n" +
                  "  vips: [10.96.0.5, fd00::]\n  selector: {app: web}\n  ports: [{name: p, port: 80}]\n",
              6, "'spec.vips[1]' " + hint);
  ExpectError(Workload("a", "  ip: fd00::  \n"), 6, "bad YAML: illegal map value (YAML read the unquoted fd00:: as");
  ExpectError(Workload("a", "  ip: fd00::\n"), 6, "quote it ('fd00::')");
  // Other shapes keep their plain errors.
  for (const char* other : {"  ips: [10.0.0.1, {x: y}]\n", "  ips: [10.0.0.1, x:]\n"}) {
    auto r = Decode(Workload("a", other));
    ASSERT_EQ(r.errors.size(), 1u) << other << AllErrors(r);
    EXPECT_NE(r.errors[0].reason.find("'spec.ips[1]' must be a string"), std::string::npos) << r.errors[0].reason;
    EXPECT_EQ(r.errors[0].reason.find("YAML read"), std::string::npos) << r.errors[0].reason;
  }
  auto r = Decode(Workload("a", "  ip: x: y\n"));
  ASSERT_EQ(r.errors.size(), 1u) << AllErrors(r);
  EXPECT_EQ(r.errors[0].reason, "bad YAML: illegal map value");

  for (const char* ok :
       {"  ips: [10.0.0.1, 'fd00::']\n", "  ips:\n  - 10.0.0.1\n  - \"fd00::\"\n", "  ip: 'fd00::'\n"}) {
    r = Decode(Workload("a", ok));
    ASSERT_TRUE(r.ok()) << ok << AllErrors(r);
    EXPECT_EQ(r.resources[0].resource->workload().ip(),
              std::string(ok).find("10.0") != std::string::npos ? "10.0.0.1" : "fd00::");
  }
}

}  // namespace
}  // namespace zm::test
