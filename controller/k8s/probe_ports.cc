#include "controller/k8s/probe_ports.h"

#include <algorithm>
#include <optional>

namespace zm::k8s {
namespace {

using nlohmann::json;

const json& Member(const json& j, const char* key) {
  static const json kNull;
  if (!j.is_object()) return kNull;
  auto it = j.find(key);
  return it == j.end() ? kNull : *it;
}

// A probe's port: a number, or the name of one of the container's ports.
std::optional<uint32_t> Resolve(const json& port, const json& container) {
  if (port.is_number_integer()) {
    auto v = port.get<int64_t>();
    if (v >= 1 && v <= 65535) return static_cast<uint32_t>(v);
    return std::nullopt;
  }
  if (!port.is_string()) return std::nullopt;
  const json& ports = Member(container, "ports");
  if (!ports.is_array()) return std::nullopt;
  for (const json& p : ports) {
    const json& name = Member(p, "name");
    const json& number = Member(p, "containerPort");
    if (name.is_string() && name == port && number.is_number_integer()) return Resolve(number, container);
  }
  return std::nullopt;
}

void FromContainer(const json& c, std::vector<uint32_t>* out) {
  for (const char* kind : {"livenessProbe", "readinessProbe", "startupProbe"}) {
    const json& probe = Member(c, kind);
    if (!probe.is_object()) continue;
    const json& http = Member(probe, "httpGet");
    if (http.is_object() && !Member(http, "host").is_string()) {
      if (auto p = Resolve(Member(http, "port"), c)) out->push_back(*p);
    }
    if (auto p = Resolve(Member(Member(probe, "tcpSocket"), "port"), c)) out->push_back(*p);
    if (auto p = Resolve(Member(Member(probe, "grpc"), "port"), c)) out->push_back(*p);
  }
}

}  // namespace

std::vector<uint32_t> ProbePorts(const json& pod) {
  std::vector<uint32_t> out;
  const json& spec = Member(pod, "spec");
  if (const json& cs = Member(spec, "containers"); cs.is_array()) {
    for (const json& c : cs) FromContainer(c, &out);
  }
  if (const json& init = Member(spec, "initContainers"); init.is_array()) {
    for (const json& c : init) {
      if (Member(c, "restartPolicy") == "Always") FromContainer(c, &out);
    }
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

}  // namespace zm::k8s
