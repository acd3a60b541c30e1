// Who may use the console, per controller mode. The browser sends a bearer token in a header (never a cookie, so a
// page on another site cannot make the browser send it: no CSRF by construction).
//   universal mode: a join token from the controller's join-token file; the entry named "admin" (meshctl's) may
//                   write, any other valid entry (a node's) may only read.
//   Kubernetes:     the user's own token, checked with TokenReview; reads need `list trafficpermissions.zeromesh.io`
//                   and writes `create trafficpermissions.zeromesh.io` cluster-wide (SubjectAccessReview). Verdicts
//                   are cached briefly so a page polling every 2 s costs the API server one review a minute.
#pragma once

#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>

#include "controller/auth/join_token_file.h"
#include "controller/k8s/http.h"

namespace zm::ctrl::console {

struct ConsoleUser {
  std::string name;  // shown in the UI: never the token itself
  bool can_write = false;
};

struct AuthResult {
  int status = 0;     // 0: authenticated; else the HTTP status to answer (401, 403, 503)
  std::string error;  // why, one line
  ConsoleUser user;
};

class ConsoleAuth {
 public:
  virtual ~ConsoleAuth() = default;
  virtual AuthResult Authenticate(const std::string& token) const = 0;
  virtual const char* mode() const = 0;  // "universal" | "kubernetes"
};

inline constexpr char kAdminTokenName[] = "admin";

class JoinTokenAuth final : public ConsoleAuth {
 public:
  explicit JoinTokenAuth(const JoinTokenFile* tokens) : tokens_(tokens) {}
  AuthResult Authenticate(const std::string& token) const override;
  const char* mode() const override { return "universal"; }

 private:
  const JoinTokenFile* tokens_;
};

class KubernetesAuth final : public ConsoleAuth {
 public:
  explicit KubernetesAuth(const k8s::Http* http, std::chrono::seconds cache_ttl = std::chrono::seconds(30))
      : http_(http), ttl_(cache_ttl) {}
  AuthResult Authenticate(const std::string& token) const override;
  const char* mode() const override { return "kubernetes"; }

 private:
  AuthResult Review(const std::string& token) const;
  // SubjectAccessReview for `verb` on trafficpermissions.zeromesh.io; false with *error on a failed call.
  bool Allowed(const std::string& user, const nlohmann::json& groups, const std::string& uid, const char* verb,
               bool* allowed, std::string* error) const;

  const k8s::Http* http_;
  const std::chrono::seconds ttl_;
  static constexpr size_t kMaxCached = 1024;
  static constexpr std::chrono::seconds kRefusalTtl{3};
  mutable std::mutex mu_;
  struct Cached {
    AuthResult result;
    std::chrono::steady_clock::time_point at;
  };
  mutable std::map<std::string, Cached> cache_;  // by SHA-256 of the token, never the token
};

}  // namespace zm::ctrl::console
