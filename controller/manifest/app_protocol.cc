#include "controller/manifest/app_protocol.h"

#include <algorithm>
#include <cctype>

namespace zm::manifest {
namespace v1 = zeromesh::v1;
namespace {

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

// "http" matches "http" and "http-web", not "httpd".
bool NamePrefix(const std::string& name, const std::string& prefix) {
  return name == prefix || name.rfind(prefix + "-", 0) == 0;
}

}  // namespace

v1::AppProtocol ResolveAppProtocol(const std::string& app_protocol, const std::string& port_name) {
  if (!app_protocol.empty()) {
    std::string p = Lower(app_protocol);
    if (p == "http") return v1::APP_HTTP;
    if (p == "kubernetes.io/h2c" || p == "http2") return v1::APP_HTTP2;
    if (p == "grpc") return v1::APP_GRPC;
    return v1::APP_TCP;
  }
  std::string n = Lower(port_name);
  if (NamePrefix(n, "http2")) return v1::APP_HTTP2;
  if (NamePrefix(n, "http")) return v1::APP_HTTP;
  if (NamePrefix(n, "grpc")) return v1::APP_GRPC;
  return v1::APP_TCP;
}

std::string CheckAppProtocol(const std::string& s) {
  if (s.empty() || s.size() > 253 + 1 + 63) return "must be 1 to 317 characters (e.g. http, kubernetes.io/h2c)";
  for (unsigned char c : s) {
    if (!std::isalnum(c) && c != '-' && c != '.' && c != '_' && c != '/') {
      return "'" + s + "' is not a protocol name (letters, digits, '-', '.', '_' and '/')";
    }
  }
  return "";
}

}  // namespace zm::manifest
