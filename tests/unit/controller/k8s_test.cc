// Kubernetes source pieces without an API server: kubeconfig parsing, the object translation, and the reflector's
// list/watch protocol (resourceVersion, bookmarks, relist on 410 Gone) against a scripted plain-HTTP fake.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "controller/auth/token_review.h"
#include "controller/ca/authority.h"
#include "controller/k8s/base64.h"
#include "controller/k8s/ca_exposure.h"
#include "controller/k8s/client_config.h"
#include "controller/k8s/pod_fields.h"
#include "controller/k8s/reflector.h"
#include "controller/k8s/translate.h"

namespace zm::k8s {
namespace {
using nlohmann::json;

// ---- kubeconfig -----------------------------------------------------------------------------------------------------

// One scratch directory per test process, removed when the process exits.
struct TempDir {
  std::filesystem::path path = std::filesystem::temp_directory_path() / ("zm-k8s-unit-" + std::to_string(::getpid()));
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

std::string WriteTemp(const std::string& name, const std::string& text) {
  static TempDir dir;
  auto path = dir.path / name;
  std::filesystem::create_directories(path.parent_path());
  std::ofstream(path) << text;
  return path.string();
}

TEST(Kubeconfig, TokenAndInlineCa) {
  std::string path = WriteTemp("a.kubeconfig", R"(
apiVersion: v1
kind: Config
current-context: b
clusters:
  - name: one
    cluster: {server: "https://10.0.0.1:6443/", certificate-authority-data: "aGVsbG8="}
users:
  - name: u
    user: {token: abc}
contexts:
  - name: a
    context: {cluster: nope, user: u}
  - name: b
    context: {cluster: one, user: u}
)");
  std::string err;
  auto c = LoadKubeconfig(path, &err);
  ASSERT_TRUE(c) << err;
  EXPECT_EQ(c->server, "https://10.0.0.1:6443");
  EXPECT_EQ(c->ca_pem, "hello");
  EXPECT_EQ(c->token, "abc");
  EXPECT_EQ(c->Describe().find("abc"), std::string::npos);  // never the secret
}

TEST(Kubeconfig, ClientCertFilesRelativeToTheConfig) {
  WriteTemp("client.crt", "CERT");
  WriteTemp("client.key", "KEY");
  std::string path = WriteTemp("b.kubeconfig", R"(
current-context: c
clusters: [{name: k, cluster: {server: "https://127.0.0.1:1", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {client-certificate: client.crt, client-key: client.key}}]
contexts: [{name: c, context: {cluster: k, user: u}}]
)");
  std::string err;
  auto c = LoadKubeconfig(path, &err);
  ASSERT_TRUE(c) << err;
  EXPECT_EQ(c->client_cert_pem, "CERT");
  EXPECT_EQ(c->client_key_pem, "KEY");
  EXPECT_TRUE(c->insecure);
}

TEST(Kubeconfig, ClearErrors) {
  std::string err;
  EXPECT_FALSE(LoadKubeconfig("/nonexistent/kubeconfig", &err));
  EXPECT_NE(err.find("/nonexistent/kubeconfig"), std::string::npos) << err;
  std::string path = WriteTemp("c.kubeconfig", R"(
current-context: c
clusters: [{name: k, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {exec: {command: aws}}}]
contexts: [{name: c, context: {cluster: k, user: u}}]
)");
  EXPECT_FALSE(LoadKubeconfig(path, &err));
  EXPECT_NE(err.find("exec"), std::string::npos) << err;
  path = WriteTemp("d.kubeconfig", "current-context: x\ncontexts: []\n");
  EXPECT_FALSE(LoadKubeconfig(path, &err));
  EXPECT_NE(err.find("no usable context"), std::string::npos) << err;
}

TEST(InCluster, NeedsTheServiceEnvironment) {
  ::unsetenv("KUBERNETES_SERVICE_HOST");
  std::string err;
  EXPECT_FALSE(InClusterConfig(&err, "/nonexistent"));
  EXPECT_NE(err.find("KUBERNETES_SERVICE_HOST"), std::string::npos) << err;
}

TEST(InCluster, ServiceAccountFiles) {
  std::string ca = WriteTemp("sa/ca.crt", "CA PEM");
  WriteTemp("sa/token", "tok\n");
  std::string dir = ca.substr(0, ca.rfind('/'));
  ::setenv("KUBERNETES_SERVICE_HOST", "fd00::1", 1);
  ::setenv("KUBERNETES_SERVICE_PORT", "443", 1);
  std::string err;
  auto c = InClusterConfig(&err, dir);
  ::unsetenv("KUBERNETES_SERVICE_HOST");
  ::unsetenv("KUBERNETES_SERVICE_PORT");
  ASSERT_TRUE(c) << err;
  EXPECT_EQ(c->server, "https://[fd00::1]:443");
  EXPECT_EQ(c->ca_pem, "CA PEM");
  EXPECT_EQ(c->token_file, dir + "/token");  // re-read per request: projected tokens rotate
  EXPECT_FALSE(InClusterConfig(&err, dir + "/missing"));
}

// ---- translation ----------------------------------------------------------------------------------------------------

json Pod(const std::string& ns, const std::string& name, const std::string& ip, json labels = json::object(),
         const std::string& phase = "Running") {
  return {{"metadata", {{"namespace", ns}, {"name", name}, {"labels", labels}}},
          {"spec", {{"nodeName", "n1"}, {"serviceAccountName", "sa-" + name}}},
          {"status", {{"phase", phase}, {"podIP", ip}}}};
}

Objects Cluster() {
  Objects o;
  o.namespaces["/mesh"] = {{"metadata", {{"name", "mesh"}, {"labels", {{kMeshLabel, kMeshEnabled}}}}}};
  o.namespaces["/other"] = {{"metadata", {{"name", "other"}}}};
  o.pods["mesh/a"] = Pod("mesh", "a", "10.0.0.1", {{"app", "a"}});
  o.pods["mesh/out"] = Pod("mesh", "out", "10.0.0.2", {{kMeshLabel, "disabled"}});
  o.pods["mesh/done"] = Pod("mesh", "done", "10.0.0.3", json::object(), "Succeeded");
  o.pods["other/b"] = Pod("other", "b", "10.0.0.4");
  o.pods["other/in"] = Pod("other", "in", "10.0.0.5", {{kMeshLabel, kMeshEnabled}});
  json host = Pod("mesh", "host", "192.168.0.1");
  host["spec"]["hostNetwork"] = true;
  o.pods["mesh/host"] = host;
  return o;
}

std::map<std::string, zeromesh::v1::Resource> ByKey(const Translation& t) {
  std::map<std::string, zeromesh::v1::Resource> out;
  for (const auto& l : t.resources) out[manifest::KeyOf(l.resource)] = l.resource;
  return out;
}

TEST(Translate, WorkloadsFollowNamespaceAndPodLabels) {
  Translation t = Translate(Cluster(), {});
  auto r = ByKey(t);
  ASSERT_TRUE(r.count("Workload/mesh/a"));
  const auto& a = r["Workload/mesh/a"].workload();
  EXPECT_EQ(a.service_account(), "sa-a");
  EXPECT_EQ(a.node(), "n1");
  EXPECT_EQ(a.ip(), "10.0.0.1");
  EXPECT_TRUE(a.enrolled());
  EXPECT_EQ(a.labels().at("app"), "a");
  ASSERT_TRUE(r.count("Workload/mesh/out"));
  EXPECT_FALSE(r["Workload/mesh/out"].workload().enrolled());
  ASSERT_TRUE(r.count("Workload/other/in"));
  EXPECT_TRUE(r["Workload/other/in"].workload().enrolled());
  // Outside the mesh but listed, so that its node's agent lets it go direct instead of holding its traffic.
  ASSERT_TRUE(r.count("Workload/other/b"));
  EXPECT_FALSE(r["Workload/other/b"].workload().enrolled());
  EXPECT_FALSE(r.count("Workload/mesh/done"));
  EXPECT_FALSE(r.count("Workload/mesh/host"));
  EXPECT_EQ(t.workloads, 4u);
  EXPECT_EQ(t.enrolled, 2u);
}

TEST(Translate, ProbePortsOfContainersAndSidecarsResolvedLikeTheKubelet) {
  Objects o = Cluster();
  json app = {{"name", "app"},
              {"ports", {{{"name", "http"}, {"containerPort", 8080}}, {{"name", "admin"}, {"containerPort", 9901}}}},
              {"livenessProbe", {{"httpGet", {{"path", "/healthz"}, {"port", "http"}}}}},
              {"readinessProbe", {{"tcpSocket", {{"port", 8081}}}}},
              {"startupProbe", {{"grpc", {{"port", 9090}}}}}};
  json elsewhere = {{"name", "elsewhere"},
                    {"livenessProbe", {{"httpGet", {{"host", "10.9.9.9"}, {"port", 7000}}}}},
                    {"readinessProbe", {{"tcpSocket", {{"port", "no-such-name"}}}}},
                    {"startupProbe", {{"tcpSocket", {{"port", 70000}}}}}};
  json sidecar = {
      {"name", "sidecar"}, {"restartPolicy", "Always"}, {"readinessProbe", {{"tcpSocket", {{"port", 15000}}}}}};
  json init = {{"name", "init"},
               {"readinessProbe", {{"tcpSocket", {{"port", 16000}}}}}};  // runs to completion: never probed
  o.pods["mesh/a"]["spec"]["containers"] = {app, elsewhere};
  o.pods["mesh/a"]["spec"]["initContainers"] = {sidecar, init};
  auto r = ByKey(Translate(o, {}));
  const auto& ports = r["Workload/mesh/a"].workload().probe_ports();
  EXPECT_EQ(std::vector<uint32_t>(ports.begin(), ports.end()), (std::vector<uint32_t>{8080, 8081, 9090, 15000}));
  EXPECT_EQ(r["Workload/other/b"].workload().probe_ports_size(), 0);
}

// The pod cache keeps only what the controller reads: a pod as the API server returns it translates (workload,
// identity, probe ports) and is judged for CA exposure exactly as its trimmed copy.
TEST(PodFields, TrimmingChangesNothingTheControllerReads) {
  json full = json::parse(R"({
    "apiVersion": "v1", "kind": "Pod",
    "metadata": {"name": "a", "namespace": "mesh", "uid": "u-1", "resourceVersion": "42",
                 "creationTimestamp": "2026-01-01T00:00:00Z", "labels": {"app": "a"},
                 "annotations": {"kubectl.kubernetes.io/restartedAt": "2026-01-01T00:00:00Z"},
                 "ownerReferences": [{"kind": "ReplicaSet", "name": "a-1", "uid": "rs"}],
                 "managedFields": [{"manager": "kubelet", "fieldsV1": {"f:status": {}}}]},
    "spec": {"nodeName": "n1", "serviceAccountName": "sa-a", "restartPolicy": "Always", "dnsPolicy": "ClusterFirst",
             "containers": [{"name": "app", "image": "example/app:1", "command": ["/app"], "args": ["--x"],
                             "env": [{"name": "A", "value": "1"}], "resources": {"limits": {"cpu": "1"}},
                             "volumeMounts": [{"name": "ca", "mountPath": "/ca"}],
                             "ports": [{"name": "http", "containerPort": 8080}],
                             "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http"}},
                             "readinessProbe": {"tcpSocket": {"port": 8081}}}],
             "initContainers": [{"name": "sidecar", "image": "example/s:1", "restartPolicy": "Always",
                                 "startupProbe": {"grpc": {"port": 9090}}}],
             "volumes": [{"name": "data", "emptyDir": {}},
                         {"name": "ca", "secret": {"secretName": "zeromesh-ca"}},
                         {"name": "proj", "projected": {"sources": [{"serviceAccountToken": {"path": "t"}},
                                                                   {"secret": {"name": "other"}}]}}]},
    "status": {"phase": "Running", "podIP": "10.0.0.1", "podIPs": [{"ip": "10.0.0.1"}], "hostIP": "10.99.0.1",
               "conditions": [{"type": "Ready", "status": "True"}],
               "containerStatuses": [{"name": "app", "ready": true, "restartCount": 0, "image": "example/app:1",
                                      "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}}]}
  })");
  json trimmed = full;
  TrimPod(&trimmed);
  EXPECT_LT(trimmed.dump().size(), full.dump().size()) << trimmed.dump();
  EXPECT_FALSE(trimmed["metadata"].contains("managedFields"));
  EXPECT_FALSE(trimmed["metadata"].contains("annotations"));
  EXPECT_FALSE(trimmed["spec"]["containers"][0].contains("env"));
  EXPECT_FALSE(trimmed["status"].contains("containerStatuses"));
  EXPECT_EQ(trimmed["spec"]["volumes"].size(), 2u);  // the secret and the projected one naming a secret

  Objects a = Cluster(), b = Cluster();
  a.pods["mesh/a"] = full;
  b.pods["mesh/a"] = trimmed;
  auto ra = ByKey(Translate(a, {})), rb = ByKey(Translate(b, {}));
  ASSERT_EQ(ra.size(), rb.size());
  for (const auto& [key, res] : ra) {
    ASSERT_TRUE(rb.count(key)) << key;
    EXPECT_EQ(res.SerializeAsString(), rb[key].SerializeAsString()) << key;
  }
  EXPECT_EQ(ra["Workload/mesh/a"].workload().probe_ports_size(), 3);
  for (const char* secret : {"zeromesh-ca", "other"}) {
    EXPECT_EQ(PodsMountingSecret(a.pods, "mesh", secret), PodsMountingSecret(b.pods, "mesh", secret)) << secret;
    EXPECT_EQ(PodsMountingSecret(b.pods, "mesh", secret).size(), 1u) << secret;
  }
  EXPECT_EQ(trimmed["metadata"]["uid"], "u-1");  // the token reviewer's pod binding
  EXPECT_EQ(trimmed["spec"]["nodeName"], "n1");
}

TEST(Translate, AnInvalidUpdateKeepsTheLastAcceptedGeneration) {
  auto perm = [](const std::string& uid, int generation, const std::string& block) {
    return json{{"metadata", {{"namespace", "ns"}, {"name", "p"}, {"uid", uid}, {"generation", generation}}},
                {"spec", {{"action", "DENY"}, {"sources", {{"ipBlocks", {block}}}}}}};
  };
  Objects o;
  o.permissions["ns/p"] = perm("u1", 1, "10.1.0.0/16");
  Translation first = Translate(o, {});
  ASSERT_EQ(first.accepted.count("TrafficPermission/ns/p"), 1u);

  // Generation 2 is invalid: generation 1 stays in force, and says so.
  o.permissions["ns/p"] = perm("u1", 2, "300.0.0.0/8");
  o.last_good = &first.accepted;
  Translation second = Translate(o, {});
  auto r = ByKey(second);
  ASSERT_TRUE(r.count("TrafficPermission/ns/p"));
  EXPECT_EQ(r["TrafficPermission/ns/p"].traffic_permission().sources().ip_blocks(0), "10.1.0.0/16");
  ASSERT_EQ(second.statuses.size(), 1u);
  EXPECT_FALSE(second.statuses[0].accepted);
  EXPECT_EQ(second.statuses[0].generation, 2);
  EXPECT_NE(second.statuses[0].message.find("300.0.0.0/8"), std::string::npos);
  EXPECT_NE(second.statuses[0].message.find("generation 1 (the last accepted) stays in force"), std::string::npos)
      << second.statuses[0].message;
  EXPECT_EQ(second.errors.size(), 1u);
  EXPECT_EQ(second.permissions, 1u);
  // ... and keeps doing so on the next pass.
  ASSERT_EQ(second.accepted.count("TrafficPermission/ns/p"), 1u);
  o.last_good = &second.accepted;
  EXPECT_TRUE(ByKey(Translate(o, {})).count("TrafficPermission/ns/p"));

  // A deleted and re-created object (new uid) does not inherit the old one's rules.
  o.permissions["ns/p"] = perm("u2", 1, "300.0.0.0/8");
  Translation third = Translate(o, {});
  EXPECT_FALSE(ByKey(third).count("TrafficPermission/ns/p"));
  EXPECT_EQ(third.statuses[0].message.find("stays in force"), std::string::npos);
}

// ---- the CA Secret's encoding ---------------------------------------------------------------------------------------

TEST(CaSecret, Base64AndAGeneratedRootLoadsBack) {
  for (const std::string& in : std::vector<std::string>{"", "a", "ab", "abc", "abcd", std::string("\0\xff\x10", 3)}) {
    auto out = Base64Decode(Base64Encode(in));
    ASSERT_TRUE(out) << in;
    EXPECT_EQ(*out, in);
  }
  EXPECT_EQ(Base64Encode("zeromesh"), "emVyb21lc2g=");
  EXPECT_FALSE(Base64Decode("not base64!"));
  std::string err;
  auto root = ca::Authority::GenerateRootPem(&err);
  ASSERT_TRUE(root) << err;
  auto ca = ca::Authority::FromPem(root->cert_pem, root->key_pem, std::nullopt, {"c", "k", "b"}, &err);
  ASSERT_TRUE(ca) << err;
  EXPECT_EQ(ca->trust_bundle_pem(), root->cert_pem);
  auto other = ca::Authority::GenerateRootPem(&err);
  EXPECT_FALSE(ca::Authority::FromPem(root->cert_pem, other->key_pem, std::nullopt, {"c", "k", "b"}, &err));
  EXPECT_NE(err.find("does not match"), std::string::npos) << err;
}

// ---- agent tokens (TokenReview answers) -----------------------------------------------------------------------------

json Review(bool ok, const std::string& user, json extra = json::object()) {
  json status = {{"authenticated", ok}};
  if (ok) status["user"] = {{"username", user}, {"extra", extra}};
  if (ok) status["audiences"] = json::array({"zeromesh"});  // reviewed for our audience
  if (!ok) status["error"] = "token has expired";
  return {{"kind", "TokenReview"}, {"status", status}};
}

json AgentExtra(const std::string& node = "") {
  json e = {{"authentication.kubernetes.io/pod-name", {"agent-x"}}, {"authentication.kubernetes.io/pod-uid", {"u1"}}};
  if (!node.empty()) e["authentication.kubernetes.io/node-name"] = {node};
  return e;
}

TEST(TokenReview, OnlyTheAgentAccountWithAPodBinding) {
  ctrl::TokenReviewOptions opts;  // zeromesh-system/zeromesh-agent, audience zeromesh
  const std::string agent = "system:serviceaccount:zeromesh-system:zeromesh-agent";
  ctrl::ReviewedToken t;
  auto st = ctrl::ParseTokenReview(Review(true, agent, AgentExtra("n1")), opts, &t);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(t.pod_namespace, "zeromesh-system");
  EXPECT_EQ(t.pod_name, "agent-x");
  EXPECT_EQ(t.pod_uid, "u1");
  EXPECT_EQ(t.node_claim, "n1");

  st = ctrl::ParseTokenReview(Review(false, ""), opts, &t);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_NE(st.error_message().find("token has expired"), std::string::npos);
  st = ctrl::ParseTokenReview(Review(true, "system:serviceaccount:shop:frontend", AgentExtra()), opts, &t);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_NE(st.error_message().find("only ServiceAccount zeromesh-system/zeromesh-agent"), std::string::npos);
  st = ctrl::ParseTokenReview(Review(true, agent), opts, &t);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_NE(st.error_message().find("not bound to a pod"), std::string::npos);
  st = ctrl::ParseTokenReview(json::object(), opts, &t);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE);
}

TEST(TokenReview, TheNodeIsWhereTheBoundPodRuns) {
  ctrl::ReviewedToken t{"zeromesh-system", "agent-x", "u1", ""};
  json pod = {{"metadata", {{"uid", "u1"}}}, {"spec", {{"nodeName", "n1"}}}};
  std::string node;
  ASSERT_TRUE(ctrl::NodeOfReviewedPod(t, pod, &node).ok());
  EXPECT_EQ(node, "n1");
  t.node_claim = "n2";  // the token says another node than the pod: refuse
  EXPECT_EQ(ctrl::NodeOfReviewedPod(t, pod, &node).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  t.node_claim = "n1";
  json recreated = pod;
  recreated["metadata"]["uid"] = "u2";  // the pod the token was bound to is gone
  EXPECT_EQ(ctrl::NodeOfReviewedPod(t, recreated, &node).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  json unscheduled = {{"metadata", {{"uid", "u1"}}}, {"spec", json::object()}};
  EXPECT_EQ(ctrl::NodeOfReviewedPod(t, unscheduled, &node).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(ctrl::NodeOfReviewedPod(t, std::nullopt, &node).error_code(), grpc::StatusCode::UNAVAILABLE);
}

TEST(Translate, RouteServicePolicyWarnsOfAMissingRule) {
  Objects o;
  auto policy = [](const std::string& name, const std::string& route, const std::string& section) {
    json target = {{"group", "gateway.networking.k8s.io"}, {"kind", "HTTPRoute"}, {"name", route}};
    if (!section.empty()) target["sectionName"] = section;
    return json{{"metadata", {{"namespace", "ns"}, {"name", name}, {"generation", 1}}},
                {"spec", {{"targetRef", target}, {"http", {{"rateLimit", {{"requests", 5}}}}}}}};
  };
  o.service_policies["ns/good"] = policy("good", "web", "api");
  o.service_policies["ns/no-rule"] = policy("no-rule", "web", "other");
  o.service_policies["ns/no-route"] = policy("no-route", "nothing", "");
  o.http_routes["ns/web"] = {
      {"metadata", {{"namespace", "ns"}, {"name", "web"}}},
      {"spec",
       {{"parentRefs", json::array({{{"kind", "Service"}, {"name", "s"}}})},
        {"rules", json::array({{{"name", "api"}, {"backendRefs", json::array({{{"name", "s"}, {"port", 80}}})}}})}}}};
  Translation t = Translate(o, {});
  auto r = ByKey(t);
  ASSERT_TRUE(r.count("ServicePolicy/ns/good"));
  EXPECT_EQ(r["ServicePolicy/ns/good"].service_policy().http_rate_limit().requests(), 5u);
  EXPECT_TRUE(r.count("ServicePolicy/ns/no-rule"));  // accepted: it applies once the rule exists
  std::map<std::string, CrdStatus> st;
  for (const auto& s : t.statuses) st[s.name] = s;
  EXPECT_TRUE(st["good"].accepted);
  EXPECT_EQ(st["good"].message.find("warning"), std::string::npos) << st["good"].message;
  EXPECT_TRUE(st["no-rule"].accepted);
  EXPECT_NE(st["no-rule"].message.find("HTTPRoute ns/web has no rule named 'other'"), std::string::npos)
      << st["no-rule"].message;
  EXPECT_NE(st["no-route"].message.find("there is no HTTPRoute ns/nothing"), std::string::npos)
      << st["no-route"].message;
}

TEST(Translate, ServicePoliciesAndGatewayTcpRoutes) {
  Objects o;
  o.service_policies["ns/p"] = {
      {"metadata", {{"namespace", "ns"}, {"name", "p"}, {"generation", 1}}},
      {"spec", {{"targetRef", {{"kind", "Service"}, {"name", "s"}}}, {"retries", {{"attempts", 2}}}}}};
  o.tcp_routes["ns/r"] = {
      {"metadata", {{"namespace", "ns"}, {"name", "r"}}},
      {"spec",
       {{"parentRefs", json::array({{{"group", ""}, {"kind", "Service"}, {"name", "s"}, {"port", 80}}})},
        {"rules", json::array({{{"backendRefs", json::array({{{"name", "s-v2"}, {"port", 80}, {"weight", 3}}})}}})}}}};
  o.tcp_routes["ns/to-gateway"] = {
      {"metadata", {{"namespace", "ns"}, {"name", "to-gateway"}}},
      {"spec",
       {{"parentRefs", json::array({{{"group", "gateway.networking.k8s.io"}, {"kind", "Gateway"}, {"name", "gw"}}})},
        {"rules", json::array({{{"backendRefs", json::array({{{"name", "s"}, {"port", 80}}})}}})}}}};
  Translation t = Translate(o, {});
  auto r = ByKey(t);
  ASSERT_TRUE(r.count("ServicePolicy/ns/p"));
  EXPECT_EQ(r["ServicePolicy/ns/p"].service_policy().target_service(), "s");
  EXPECT_EQ(r["ServicePolicy/ns/p"].service_policy().retry_attempts(), 2u);
  ASSERT_TRUE(r.count("TCPRoute/ns/r")) << (t.errors.empty() ? "" : t.errors[0].reason);
  EXPECT_EQ(r["TCPRoute/ns/r"].tcp_route().rules(0).backend_refs(0).weight(), 3u);
  EXPECT_FALSE(r.count("TCPRoute/ns/to-gateway"));
  ASSERT_EQ(t.errors.size(), 1u);
  EXPECT_EQ(t.errors[0].file, "TCPRoute/ns/to-gateway");
  // Our CRD gets its condition; the route gets Gateway API's per-parent status for its Service parent only (the
  // Gateway parent's status belongs to that Gateway's controller).
  ASSERT_EQ(t.statuses.size(), 2u);
  std::map<std::string, CrdStatus> st;
  for (const auto& s : t.statuses) st[s.resource] = s;
  EXPECT_TRUE(st["servicepolicies"].accepted);
  EXPECT_TRUE(st["servicepolicies"].parent_refs.is_null());
  CrdStatus route = st["tcproutes"];
  EXPECT_EQ(route.name, "r");
  EXPECT_EQ(route.api_prefix, kGatewayApiPrefix);
  ASSERT_EQ(route.parent_refs.size(), 1u);
  // Another controller's entry survives our write; once written, ours is up to date (no write loop).
  json other = {
      {"parentRef", {{"name", "gw"}}}, {"controllerName", "example.com/gateway"}, {"conditions", json::array()}};
  route.current_status = {{"parents", json::array({other})}};
  EXPECT_FALSE(StatusUpToDate(route));
  json patch = StatusPatch(route, "2026-03-01T00:00:00Z");
  const json& parents = patch["status"]["parents"];
  ASSERT_EQ(parents.size(), 2u);
  EXPECT_EQ(parents[0], other);
  EXPECT_EQ(parents[1]["controllerName"], kGatewayControllerName);
  EXPECT_EQ(parents[1]["parentRef"]["name"], "s");
  EXPECT_EQ(parents[1]["conditions"][0]["type"], "Accepted");
  EXPECT_EQ(parents[1]["conditions"][0]["status"], "True");
  route.current_status = patch["status"];
  EXPECT_TRUE(StatusUpToDate(route));
  EXPECT_EQ(StatusPatch(route, "2026-04-01T00:00:00Z")["status"]["parents"][1]["conditions"][0]["lastTransitionTime"],
            "2026-03-01T00:00:00Z");
}

TEST(Translate, ServiceEndpointsAndNamedTargetPorts) {
  Objects o = Cluster();
  o.services["mesh/s"] = {{"metadata", {{"namespace", "mesh"}, {"name", "s"}}},
                          {"spec",
                           {{"clusterIP", "10.96.0.10"},
                            {"ports", json::array({{{"name", "web"}, {"port", 80}, {"targetPort", "http"}},
                                                   {{"name", "u"}, {"port", 53}, {"protocol", "UDP"}}})}}}};
  o.services["mesh/headless"] = {{"metadata", {{"namespace", "mesh"}, {"name", "headless"}}},
                                 {"spec", {{"clusterIP", "None"}, {"ports", json::array({{{"port", 80}}})}}}};
  o.endpoint_slices["mesh/s-1"] = {
      {"metadata", {{"namespace", "mesh"}, {"name", "s-1"}, {"labels", {{"kubernetes.io/service-name", "s"}}}}},
      {"addressType", "IPv4"},
      {"endpoints", json::array({{{"addresses", {"10.0.0.1"}}, {"conditions", {{"ready", true}}}, {"nodeName", "n1"}},
                                 {{"addresses", {"10.0.0.9"}}, {"conditions", {{"ready", false}}}}})},
      {"ports", json::array({{{"name", "web"}, {"port", 8080}}})}};
  auto r = ByKey(Translate(o, {}));
  ASSERT_TRUE(r.count("Service/mesh/s"));
  EXPECT_FALSE(r.count("Service/mesh/headless"));
  const auto& s = r["Service/mesh/s"].service();
  EXPECT_EQ(s.vip(), "10.96.0.10");
  ASSERT_EQ(s.ports_size(), 1);
  EXPECT_EQ(s.ports(0).port(), 80u);
  EXPECT_EQ(s.ports(0).target_port(), 8080u);
  ASSERT_EQ(s.endpoints_size(), 1);
  EXPECT_EQ(s.endpoints(0).ip(), "10.0.0.1");
  EXPECT_EQ(s.endpoints(0).node(), "n1");
}

TEST(Translate, CrdsAreValidatedLikeManifestsAndGetStatus) {
  Objects o;
  o.permissions["ns/ok"] = {{"metadata", {{"namespace", "ns"}, {"name", "ok"}, {"generation", 3}}},
                            {"spec", {{"action", "ALLOW"}, {"sources", {{"namespaces", {"ns"}}}}}}};
  o.permissions["ns/bad"] = {{"metadata", {{"namespace", "ns"}, {"name", "bad"}, {"generation", 1}}},
                             {"spec", {{"action", "ALLOW"}, {"sources", {{"ipBlocks", {"300.0.0.0/8"}}}}}}};
  o.mesh_configs["/old"] = {{"metadata", {{"name", "old"}, {"creationTimestamp", "2026-01-01T00:00:00Z"}}},
                            {"spec", {{"trustDomain", "a.test"}}}};
  o.mesh_configs["/new"] = {{"metadata", {{"name", "new"}, {"creationTimestamp", "2026-02-01T00:00:00Z"}}},
                            {"spec", {{"trustDomain", "b.test"}}}};
  Translation t = Translate(o, {});
  auto r = ByKey(t);
  EXPECT_TRUE(r.count("TrafficPermission/ns/ok"));
  EXPECT_FALSE(r.count("TrafficPermission/ns/bad"));
  ASSERT_TRUE(r.count("MeshConfig//old"));
  EXPECT_EQ(r["MeshConfig//old"].mesh_config().trust_domain(), "a.test");
  EXPECT_FALSE(r.count("MeshConfig//new"));
  ASSERT_EQ(t.statuses.size(), 4u);
  std::map<std::string, CrdStatus> st;
  for (const auto& s : t.statuses) st[s.name] = s;
  EXPECT_TRUE(st["ok"].accepted);
  EXPECT_EQ(st["ok"].generation, 3);
  EXPECT_FALSE(st["bad"].accepted);
  EXPECT_EQ(st["bad"].reason, "Invalid");
  EXPECT_NE(st["bad"].message.find("300.0.0.0/8"), std::string::npos) << st["bad"].message;
  EXPECT_NE(st["new"].message.find("'old' is in effect"), std::string::npos) << st["new"].message;
  EXPECT_EQ(t.errors.size(), 2u);

  // The patch, once applied, makes the status up to date (no write loop); a new generation makes it stale.
  CrdStatus s = st["ok"];
  EXPECT_FALSE(StatusUpToDate(s));
  s.current_status = StatusPatch(s, "2026-03-01T00:00:00Z")["status"];
  EXPECT_TRUE(StatusUpToDate(s));
  EXPECT_EQ(StatusPatch(s, "2026-04-01T00:00:00Z")["status"]["conditions"][0]["lastTransitionTime"],
            "2026-03-01T00:00:00Z");  // unchanged status keeps its transition time
  s.generation = 4;
  EXPECT_FALSE(StatusUpToDate(s));
}

// ---- reflector ------------------------------------------------------------------------------------------------------

// Serves one scripted response per connection, in order; records each request line. The last response repeats.
class FakeApi {
 public:
  explicit FakeApi(std::vector<std::function<std::string()>> script) : script_(std::move(script)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
    socklen_t len = sizeof(a);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    ::listen(fd_, 16);
    thread_ = std::thread([this] { Serve(); });
  }
  ~FakeApi() {
    stop_ = true;
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    thread_.join();
  }
  int port() const { return port_; }
  std::vector<std::string> requests() {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }

  static std::string Json(int status, const json& body) {
    std::string b = body.dump();
    return "HTTP/1.1 " + std::to_string(status) +
           " X\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(b.size()) +
           "\r\nConnection: close\r\n\r\n" + b;
  }
  static std::string Events(const std::vector<json>& events) {
    std::string b;
    for (const auto& e : events) b += e.dump() + "\n";
    return "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(b.size()) +
           "\r\nConnection: close\r\n\r\n" + b;
  }

 private:
  void Serve() {
    size_t i = 0;
    while (!stop_) {
      int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      std::string req;
      char buf[4096];
      while (req.find("\r\n\r\n") == std::string::npos) {
        ssize_t n = ::read(c, buf, sizeof(buf));
        if (n <= 0) break;
        req.append(buf, static_cast<size_t>(n));
      }
      {
        std::lock_guard<std::mutex> lock(mu_);
        requests_.push_back(req.substr(0, req.find("\r\n")));
      }
      std::string resp = script_[std::min(i++, script_.size() - 1)]();
      (void)!::write(c, resp.data(), resp.size());
      ::close(c);
    }
  }
  std::vector<std::function<std::string()>> script_;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::mutex mu_;
  std::vector<std::string> requests_;
};

json Obj(const std::string& name, const std::string& rv) {
  return {{"metadata", {{"namespace", "ns"}, {"name", name}, {"resourceVersion", rv}, {"managedFields", {1, 2}}}}};
}

TEST(Reflector, ListWatchBookmarkAndRelistOnGone) {
  FakeApi api({
      [] {
        return FakeApi::Json(200, {{"metadata", {{"resourceVersion", "10"}}}, {"items", {Obj("a", "5")}}});
      },
      [] {
        return FakeApi::Events({{{"type", "ADDED"}, {"object", Obj("b", "11")}},
                                {{"type", "BOOKMARK"}, {"object", {{"metadata", {{"resourceVersion", "15"}}}}}}});
      },
      [] {
        return FakeApi::Events({{{"type", "ERROR"}, {"object", {{"code", 410}, {"message", "too old"}}}}});
      },
      [] {
        return FakeApi::Json(200, {{"metadata", {{"resourceVersion", "20"}}}, {"items", {Obj("c", "19")}}});
      },
      [] {
        return FakeApi::Events({{{"type", "DELETED"}, {"object", Obj("c", "21")}}});
      },
      [] { return FakeApi::Events({}); },
  });
  ClientConfig cfg;
  cfg.server = "http://127.0.0.1:" + std::to_string(api.port());
  Http http(cfg);
  std::atomic<int> changes{0};
  Reflector r(&http, "Thing", "/api/v1/things", [&] { changes++; });
  std::atomic<bool> stop{false};
  std::thread t([&] { r.Run(stop); });
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (api.requests().size() < 6 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  stop = true;
  t.join();
  auto reqs = api.requests();
  ASSERT_GE(reqs.size(), 6u);
  EXPECT_EQ(reqs[0], "GET /api/v1/things?limit=500&resourceVersion=0 HTTP/1.1");  // first list: the watch cache
  EXPECT_NE(reqs[1].find("watch=1&allowWatchBookmarks=true&resourceVersion=10&"), std::string::npos) << reqs[1];
  EXPECT_NE(reqs[2].find("resourceVersion=15&"), std::string::npos) << reqs[2];  // resumes after the bookmark
  EXPECT_EQ(reqs[3], "GET /api/v1/things?limit=500 HTTP/1.1");                   // 410 Gone: relist
  EXPECT_NE(reqs[4].find("resourceVersion=20&"), std::string::npos) << reqs[4];
  EXPECT_NE(reqs[5].find("resourceVersion=21&"), std::string::npos) << reqs[5];
  EXPECT_TRUE(r.synced());
  EXPECT_TRUE(r.Snapshot().empty());  // the relist dropped a and b, the watch deleted c
  EXPECT_GE(changes.load(), 4);
}

TEST(Reflector, ErrorsBackOffAndRecover) {
  FakeApi api({
      [] {
        return FakeApi::Json(403, {{"kind", "Status"}, {"message", "forbidden: things"}});
      },
      [] {
        return FakeApi::Json(200, {{"metadata", {{"resourceVersion", "1"}}}, {"items", {Obj("a", "1")}}});
      },
      [] { return FakeApi::Events({}); },
  });
  ClientConfig cfg;
  cfg.server = "http://127.0.0.1:" + std::to_string(api.port());
  Http http(cfg);
  Reflector r(&http, "Thing", "/api/v1/things", [] {});
  std::atomic<bool> stop{false};
  std::thread t([&] { r.Run(stop); });
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!r.synced() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  stop = true;
  t.join();
  EXPECT_TRUE(r.synced());
  auto snap = r.Snapshot();
  ASSERT_EQ(snap.size(), 1u);
  EXPECT_FALSE(snap["ns/a"]["metadata"].contains("managedFields"));  // trimmed
  EXPECT_EQ(r.last_error(), "");
}

}  // namespace
}  // namespace zm::k8s
