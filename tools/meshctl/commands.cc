#include "tools/meshctl/commands.h"

#include <cstdlib>
#include <ctime>
#include <memory>

#include "tools/meshctl/check.h"
#include "tools/meshctl/client.h"
#include "tools/meshctl/join_token.h"
#include "tools/meshctl/kube/session.h"
#include "tools/meshctl/route_views.h"
#include "tools/meshctl/stat_views.h"
#include "tools/meshctl/status_report.h"
#include "tools/meshctl/views.h"

namespace zm::meshctl {
namespace {

int64_t DurationFlag(const Invocation& inv, const char* name, int64_t fallback) {
  int64_t v = fallback;
  auto it = inv.flags.find(name);
  if (it != inv.flags.end()) ParseDuration(it->second, &v);  // validated by ParseArgs
  return v;
}

// Prints `j` as the chosen format, or through `human` for tables.
void Print(const Invocation& inv, const nlohmann::json& j, std::string (*human)(const nlohmann::json&),
           std::string* out) {
  *out += inv.format == Format::kTable ? human(j) : Render(j, inv.format);
}

int Status(const Invocation& inv, const Connection& conn, Client* client, std::string* out) {
  StatusInput in;
  in.controller = conn.description.empty() ? inv.controller : conn.description;
  if (inv.controller.empty()) {
    in.unreachable_hint = "check the controller pods (kubectl -n " + inv.kube_namespace +
                          " get pods -l app.kubernetes.io/component=controller) and their logs";
  }
  in.now_unix = std::time(nullptr);
  in.cert_warn_seconds = DurationFlag(inv, "cert-warn", 3600);
  in.stale_seconds = DurationFlag(inv, "stale", 45);
  in.reachable = client->GetStatus(&in.status, &in.error) && client->GetResources(&in.resources, &in.error);
  auto report = BuildStatus(in);
  Print(inv, report, RenderStatus, out);
  return report["healthy"].get<bool>() ? kExitOk : kExitProblems;
}

int JoinTokenCreate(const Invocation& inv, std::string* out) {
  int64_t ttl = kDefaultJoinTokenTtl;
  auto it = inv.flags.find("ttl");
  if (it != inv.flags.end()) ttl = it->second == "never" ? 0 : DurationFlag(inv, "ttl", ttl);  // validated
  auto j = CreateJoinToken(inv.args.at(1), ttl, std::time(nullptr));
  *out += inv.format == Format::kTable ? RenderJoinToken(j) : Render(j, inv.format);
  return kExitOk;
}

}  // namespace

int Run(const Invocation& inv, std::string* out, std::string* err) {
  const std::string& cmd = inv.command->name;
  if (cmd == "check") {
    auto j = ChecksJson(RunLocalChecks());
    Print(inv, j, RenderChecks, out);
    return j["healthy"].get<bool>() ? kExitOk : kExitProblems;
  }
  if (cmd == "join-token") return JoinTokenCreate(inv, out);
  Connection conn;
  conn.controller = inv.controller;
  conn.token = inv.token;
  conn.ca_cert = inv.ca_cert;
  conn.timeout = std::chrono::seconds(inv.timeout_seconds);
  std::string error;
  std::unique_ptr<kube::KubeSession> kube;  // Kubernetes mode: outlives the client (it relays its connections)
  if (inv.controller.empty()) {
    kube::KubeOptions ko{inv.kubeconfig, inv.context, inv.kube_namespace, inv.ca_cert,
                         static_cast<int>(inv.timeout_seconds)};
    bool usage = false;
    kube = kube::KubeSession::Open(
        ko, [](const char* n) { return std::getenv(n); }, &error, &usage);
    if (!kube) {
      *err += "meshctl: " + error + "\n";
      return usage ? kExitUsage : kExitProblems;
    }
    conn.controller = kube->address();
    conn.token.clear();  // the API server authorized the port-forward; the operator port asks for nothing else
    conn.ca_pem = kube->root_pem();
    conn.description = kube->Describe();
    conn.transport_error = [k = kube.get()] { return k->last_tunnel_error(); };
  }
  auto client = Client::Create(conn, &error);
  if (!client) {
    *err += "meshctl: " + error + "\n";
    return kExitUsage;
  }
  if (cmd == "status") return Status(inv, conn, client.get(), out);

  zeromesh::v1::ResourceSet rs;
  zeromesh::v1::MeshStatus st;
  bool ok = true;
  if (cmd != "certs" && cmd != "stat") ok = client->GetResources(&rs, &error);
  if (ok && (cmd == "certs" || cmd == "config-dump" || cmd == "stat")) ok = client->GetStatus(&st, &error);
  if (!ok) {
    *err += "meshctl: " + error + "\n";
    return kExitProblems;
  }
  if (cmd == "workloads") {
    Print(inv, WorkloadsJson(rs), RenderWorkloads, out);
  } else if (cmd == "services") {
    Print(inv, ServicesJson(rs), RenderServices, out);
  } else if (cmd == "routes") {
    Print(inv, RoutesJson(rs), RenderRoutes, out);
  } else if (cmd == "stat") {
    auto it = inv.flags.find("reporter");
    Print(inv, StatJson(st, it == inv.flags.end() ? "source" : it->second, inv.args.empty() ? "" : inv.args[0]),
          RenderStat, out);
  } else if (cmd == "policies") {
    Print(inv, PoliciesJson(rs), RenderPolicies, out);
  } else if (cmd == "certs") {
    auto j = CertsJson(st, std::time(nullptr), DurationFlag(inv, "cert-warn", 3600));
    Print(inv, j, RenderCerts, out);
    for (const auto& c : j) {
      if (c["expiring"].get<bool>()) return kExitProblems;
    }
  } else if (cmd == "config-dump") {
    const std::string& node = inv.flags.at("node");
    auto j = ConfigDumpJson(rs, st, node);
    if (j.is_null()) {
      *err += "meshctl: the controller knows no agent or workload on node '" + node + "'\n";
      return kExitProblems;
    }
    *out += Render(j, inv.format == Format::kYaml ? Format::kYaml : Format::kJson);
  }
  return kExitOk;
}

}  // namespace zm::meshctl
