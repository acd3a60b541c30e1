#include "agent/state/service.h"

namespace zm::agent {

const char* LbAlgorithmName(LbAlgorithm a) {
  switch (a) {
    case LbAlgorithm::kLeastConnections:
      return "LeastConnections";
    case LbAlgorithm::kPowerOfTwoChoices:
      return "PowerOfTwoChoices";
    case LbAlgorithm::kLeastRequest:
      return "LeastRequest";
    case LbAlgorithm::kEwma:
      return "EWMA";
    case LbAlgorithm::kRoundRobin:
      break;
  }
  return "RoundRobin";
}

bool ParseLbAlgorithm(const std::string& s, LbAlgorithm* out) {
  for (LbAlgorithm a : {LbAlgorithm::kRoundRobin, LbAlgorithm::kLeastConnections, LbAlgorithm::kPowerOfTwoChoices,
                        LbAlgorithm::kLeastRequest, LbAlgorithm::kEwma}) {
    if (s == LbAlgorithmName(a)) {
      *out = a;
      return true;
    }
  }
  return false;
}

const ServicePortMap* Service::FindPort(uint16_t port) const {
  for (const auto& p : ports) {
    if (p.port == port) return &p;
  }
  return nullptr;
}

const TrafficSplit* Service::FindSplit(uint16_t port) const {
  const TrafficSplit* any = nullptr;
  for (const auto& s : splits) {
    if (s.port == port) return &s;
    if (s.port == 0) any = &s;
  }
  return any;
}

namespace {

std::vector<const HttpRouteRule*> RulesFor(const std::vector<HttpRouting>& routes, uint16_t port) {
  std::vector<const HttpRouteRule*> out;
  for (bool exact : {true, false}) {
    for (const auto& r : routes) {
      if (exact ? r.port != port : r.port != 0) continue;
      for (const auto& rule : r.rules) out.push_back(&rule);
    }
  }
  return out;
}

}  // namespace

std::vector<const HttpRouteRule*> Service::HttpRulesFor(uint16_t port) const {
  return RulesFor(http_routes, port);
}

std::vector<const HttpRouteRule*> Service::GrpcRulesFor(uint16_t port) const {
  return RulesFor(grpc_routes, port);
}

}  // namespace zm::agent
