#include "tools/meshctl/protocol_conflicts.h"

#include <algorithm>
#include <map>
#include <set>
#include <tuple>
#include <utility>

#include "tools/meshctl/route_views.h"

namespace zm::meshctl {
namespace v1 = zeromesh::v1;
namespace {

// What the destination proxy makes of a declaration: HTTP2 and GRPC are one handler, so they never disagree.
enum class Handler { kTcp, kHttp1, kHttp2 };

Handler HandlerOf(v1::AppProtocol p) {
  switch (p) {
    case v1::APP_HTTP:
      return Handler::kHttp1;
    case v1::APP_HTTP2:
    case v1::APP_GRPC:
      return Handler::kHttp2;
    default:
      return Handler::kTcp;
  }
}

struct Declaration {
  std::string service;  // namespace/name
  uint32_t port = 0;    // the Service's port
  v1::AppProtocol protocol = v1::APP_TCP;

  auto Tie() const { return std::tie(service, port, protocol); }
  bool operator<(const Declaration& o) const { return Tie() < o.Tie(); }
  bool operator==(const Declaration& o) const { return Tie() == o.Tie(); }
};

std::string Describe(const Declaration& d) {
  return d.service + " (port " + std::to_string(d.port) + ", " + ProtocolName(d.protocol) + ")";
}

std::string Join(const std::vector<Declaration>& decls) {
  std::string out;
  for (size_t i = 0; i < decls.size(); ++i) {
    if (i > 0) out += i + 1 == decls.size() ? " and " : ", ";
    out += Describe(decls[i]);
  }
  return out;
}

std::string Hint(const std::vector<Declaration>& decls, const std::set<Handler>& handlers) {
  std::string named;  // the first HTTP declaration by namespace/name: decls are sorted
  for (const auto& d : decls) {
    if (HandlerOf(d.protocol) != Handler::kTcp) {
      named = d.service;
      break;
    }
  }
  std::string hint;
  if (handlers.count(Handler::kHttp1) && handlers.count(Handler::kHttp2)) {
    hint = "the destination proxy sniffs each connection (the HTTP/2 preface: HTTP/2, anything else: HTTP/1.1)";
  } else {
    hint =
        std::string("the destination proxy parses it as ") + (handlers.count(Handler::kHttp2) ? "HTTP/2" : "HTTP/1.1");
  }
  if (handlers.count(Handler::kTcp)) {
    hint += "; clients that speak no HTTP get a byte stream, but are refused where TrafficPermission http rules apply";
  }
  return hint + "; request metrics and spans name " + named +
         " (the first HTTP Service by namespace/name). Give each protocol its own port, or make the appProtocols "
         "agree (docs/design.md, L7 routes)";
}

}  // namespace

std::vector<ProtocolConflict> FindProtocolConflicts(const v1::ResourceSet& resources) {
  // (target port, pod) -> every declaration of it; a pod is its workload, or the endpoint's address outside the mesh.
  std::map<std::pair<uint32_t, std::string>, std::vector<Declaration>> declared;
  for (const auto& r : resources.resources()) {
    if (!r.has_service()) continue;
    const v1::Service& s = r.service();
    for (const auto& p : s.ports()) {
      uint32_t target = p.target_port() != 0 ? p.target_port() : p.port();
      for (const auto& e : s.endpoints()) {
        declared[{target, e.workload().empty() ? e.ip() : e.workload()}].push_back(
            {s.namespace_() + "/" + s.name(), p.port(), p.resolved_protocol()});
      }
    }
  }
  // Pods with the same disagreement on the same port make one finding (a Deployment's replicas).
  std::map<std::pair<uint32_t, std::vector<Declaration>>, std::vector<std::string>> pods_of;
  std::map<std::pair<uint32_t, std::vector<Declaration>>, std::set<Handler>> handlers_of;
  for (auto& [where, decls] : declared) {
    std::sort(decls.begin(), decls.end());
    decls.erase(std::unique(decls.begin(), decls.end()), decls.end());
    std::set<Handler> handlers;
    for (const auto& d : decls) handlers.insert(HandlerOf(d.protocol));
    if (handlers.size() < 2) continue;
    auto key = std::make_pair(where.first, decls);
    pods_of[key].push_back(where.second);
    handlers_of[key] = handlers;
  }
  std::vector<ProtocolConflict> out;
  for (const auto& [key, pods] : pods_of) {
    const auto& [target, decls] = key;
    std::string message = "Services " + Join(decls) + " declare pod port " + std::to_string(target) + " of " +
                          pods.front() +
                          (pods.size() > 1 ? " (and " + std::to_string(pods.size() - 1) + " more pods)" : "") +
                          " with different protocols";
    out.push_back({std::move(message), Hint(decls, handlers_of[key])});
  }
  return out;
}

}  // namespace zm::meshctl
