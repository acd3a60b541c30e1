#include "agent/traffic/grpc_match.h"

#include <tuple>

#include "agent/traffic/http_match.h"

namespace zm::traffic {
namespace {

bool PartMatches(agent::HttpMatchType type, const std::string& want, const std::shared_ptr<const re2::RE2>& re,
                 std::string_view got) {
  if (want.empty()) return true;
  if (type != agent::HttpMatchType::kRegex) return got == want;
  // A regex that did not compile never matches (as for HTTPRoute).
  return re != nullptr && re->ok() && re2::RE2::FullMatch(re2::StringPiece(got.data(), got.size()), *re);
}

using Specificity = std::tuple<size_t, size_t, size_t>;
Specificity SpecificityOf(const agent::HttpRouteMatch& m) {
  size_t service = 0, method = 0;
  if (m.has_grpc_method && m.grpc_method.type == agent::HttpMatchType::kExact) {
    service = m.grpc_method.service.size();
    method = m.grpc_method.method.size();
  }
  return {service, method, m.headers.size()};
}

}  // namespace

bool ParseGrpcPath(std::string_view path, std::string_view* service, std::string_view* method) {
  if (path.size() < 4 || path.front() != '/') return false;
  size_t slash = path.find('/', 1);
  if (slash == std::string_view::npos || slash == 1 || slash + 1 == path.size()) return false;
  std::string_view m = path.substr(slash + 1);
  if (m.find('/') != std::string_view::npos || m.find('?') != std::string_view::npos) return false;
  *service = path.substr(1, slash - 1);
  *method = m;
  return true;
}

bool GrpcMethodMatches(const agent::GrpcMethodMatch& m, std::string_view service, std::string_view method) {
  if (service.empty() && method.empty()) return false;  // not a gRPC call: no method match can hold
  return PartMatches(m.type, m.service, m.service_regex, service) &&
         PartMatches(m.type, m.method, m.method_regex, method);
}

const agent::HttpRouteRule* MatchGrpcRule(const std::vector<const agent::HttpRouteRule*>& rules, std::string_view path,
                                          const std::vector<std::pair<std::string, std::string>>* headers,
                                          const agent::HttpRouteMatch** matched) {
  static const agent::HttpRouteMatch kMatchAll;
  std::string_view service, method;
  if (!ParseGrpcPath(path, &service, &method)) service = method = {};
  const agent::HttpRouteRule* best = nullptr;
  const agent::HttpRouteMatch* best_match = nullptr;
  Specificity best_spec{};
  for (const agent::HttpRouteRule* rule : rules) {
    auto consider = [&](const agent::HttpRouteMatch& m) {
      if (m.has_grpc_method && !GrpcMethodMatches(m.grpc_method, service, method)) return;
      if (!HeadersMatch(m.headers, headers)) return;
      Specificity s = SpecificityOf(m);
      if (best == nullptr || s > best_spec) {
        best = rule;
        best_match = &m;
        best_spec = s;
      }
    };
    if (rule->matches.empty()) consider(kMatchAll);  // a rule without matches takes every request
    for (const auto& m : rule->matches) consider(m);
  }
  if (matched != nullptr) *matched = best_match;
  return best;
}

}  // namespace zm::traffic
