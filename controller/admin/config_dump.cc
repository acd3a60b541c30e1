#include "controller/admin/config_dump.h"

#include <google/protobuf/util/json_util.h>

namespace zm::ctrl {

nlohmann::json ProtoJson(const google::protobuf::Message& msg) {
  std::string text;
  google::protobuf::util::JsonPrintOptions opts;
  opts.always_print_primitive_fields = false;
  if (!google::protobuf::util::MessageToJsonString(msg, &text, opts).ok()) {
    return {{"error", "cannot print " + msg.GetTypeName()}};
  }
  return nlohmann::json::parse(text, nullptr, false);
}

nlohmann::json ControllerConfigDump(const ConfigStore& store, const AgentRegistry& agents) {
  nlohmann::json out;
  out["epoch"] = store.epoch();
  auto snap = store.Current();
  out["version"] = snap ? snap->version : 0;
  out["created_unix"] = snap ? snap->created_unix : 0;
  out["trust_domain"] = snap ? snap->mesh.trust_domain() : "";
  out["resources"] = nlohmann::json::array();
  if (snap) {
    for (const auto& [key, r] : snap->resources)
      out["resources"].push_back({{"key", key}, {"resource", ProtoJson(*r)}});
  }
  out["manifest_errors"] = nlohmann::json::array();
  for (const auto& e : store.errors()) {
    out["manifest_errors"].push_back({{"file", e.file}, {"line", e.line}, {"reason", e.reason}});
  }
  out["agents"] = nlohmann::json::array();
  for (const auto& a : agents.List()) {
    out["agents"].push_back({{"node", a.node()},
                             {"connected", a.connected()},
                             {"sent_version", a.sent_version()},
                             {"acked_version", a.acked_version()},
                             {"nacked_version", a.nacked_version()},
                             {"nack_error", a.nack_error()},
                             {"last_report_unix", a.last_report_unix()}});
  }
  return out;
}

}  // namespace zm::ctrl
