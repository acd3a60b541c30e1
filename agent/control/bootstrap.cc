#include "agent/control/bootstrap.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

#include <cctype>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/log.h"

namespace zm::agent::control {
namespace {

bool ReadAll(const std::string& path, std::string* out, std::string* error) {
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    *error = path + ": cannot open";
    return false;
  }
  std::stringstream ss;
  ss << f.rdbuf();
  *out = ss.str();
  return true;
}

}  // namespace

bool ParseBootstrap(const std::string& json_text, const std::string& path, Bootstrap* out, std::string* error) {
  nlohmann::json j = nlohmann::json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    *error = path + ": not a JSON object";
    return false;
  }
  static const char* kKnown[] = {"controller", "node", "token", "tokenFile", "caCert", "serverName"};
  for (const auto& [k, v] : j.items()) {
    bool known = false;
    for (const char* n : kKnown) known = known || k == n;
    if (!known) {
      *error = path + ": unknown field '" + k + "'";
      return false;
    }
    if (!v.is_string() || v.get<std::string>().empty()) {
      *error = path + ": '" + k + "' must be a non-empty string";
      return false;
    }
  }
  for (const char* required : {"controller", "caCert"}) {
    if (!j.contains(required)) {
      *error = path + ": missing required field '" + required + "'";
      return false;
    }
  }
  if (j.contains("token") == j.contains("tokenFile")) {
    *error = path + ": give exactly one of 'token' (a join token) or 'tokenFile' (a projected ServiceAccount token)";
    return false;
  }
  Bootstrap b;
  b.controller = j["controller"];
  if (j.contains("node")) b.node = j["node"];
  if (j.contains("token")) b.token = j["token"];
  if (j.contains("tokenFile")) b.token_file = j["tokenFile"];
  b.ca_cert_path = j["caCert"];
  if (j.contains("serverName")) b.server_name = j["serverName"];
  if (b.controller.find(':') == std::string::npos) {
    *error = path + ": 'controller' must be host:port";
    return false;
  }
  if (!b.ca_cert_path.empty() && b.ca_cert_path[0] != '/' && path.find('/') != std::string::npos) {
    b.ca_cert_path = path.substr(0, path.rfind('/') + 1) + b.ca_cert_path;
  }
  std::string why;
  if (!ReadAll(b.ca_cert_path, &b.ca_cert_pem, &why)) {
    *error = path + ": caCert: " + why;
    return false;
  }
  if (b.ca_cert_pem.find("-----BEGIN CERTIFICATE-----") == std::string::npos) {
    *error = path + ": caCert: " + b.ca_cert_path + " holds no PEM certificate";
    return false;
  }
  b.trust = std::make_shared<ControllerTrust>(b.ca_cert_path, b.ca_cert_pem);
  *out = std::move(b);
  return true;
}

bool LoadBootstrap(const std::string& path, Bootstrap* out, std::string* error) {
  std::string text;
  if (!ReadAll(path, &text, error)) return false;
  return ParseBootstrap(text, path, out, error);
}

std::shared_ptr<grpc::Channel> MakeChannel(const Bootstrap& b) {
  auto trust = b.trust ? b.trust : std::make_shared<ControllerTrust>("", b.ca_cert_pem);
  grpc::ChannelArguments args;
  args.SetSslTargetNameOverride(b.server_name);
  // Notice a dead controller within ~15 s even when no config changes flow.
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 10000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  // gRPC also uses this as the minimum time a connection attempt (TCP + TLS handshake) may take: at 100 ms a busy
  // node abandons handshakes forever ("tcp handshaker shutdown"). The retry delay is the initial backoff above.
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 5000);
  // Retry a refusing address (a standby: only the leader listens) every second at most, so a standby that takes the
  // lead is found within a second.
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  // Dial every replica's address at once and use whichever accepts. pick_first tries them one after another, and an
  // address whose pod is gone drops the SYN: each such address then cost a whole connect timeout (5 s above), so
  // after a controller rollout agents were without a controller for 10 s and more.
  args.SetLoadBalancingPolicyName("round_robin");
  // A rollout replaces every replica's address behind the headless Service. gRPC re-resolves the name when no
  // address accepts, but by default at most every 30 s.
  args.SetInt(GRPC_ARG_DNS_MIN_TIME_BETWEEN_RESOLUTIONS_MS, 1000);
  return grpc::CreateCustomChannel(b.controller, ControllerChannelCredentials(trust, b.server_name), args);
}

std::string CurrentToken(const Bootstrap& b) {
  if (b.token_file.empty()) return b.token;
  std::string text, error;
  if (!ReadAll(b.token_file, &text, &error)) {
    log::Warn("cannot read the ServiceAccount token file; the controller will refuse this call", {{"error", error}});
    return "";
  }
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
  return text;
}

void AddAuth(grpc::ClientContext* ctx, const Bootstrap& b) {
  ctx->AddMetadata("authorization", "Bearer " + CurrentToken(b));
  ctx->AddMetadata("x-zeromesh-node", b.node);
}

}  // namespace zm::agent::control
