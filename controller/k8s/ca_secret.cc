#include "controller/k8s/ca_secret.h"

#include <nlohmann/json.hpp>
#include <thread>

#include "common/log.h"
#include "controller/k8s/base64.h"

namespace zm::k8s {
namespace {

using nlohmann::json;

std::unique_ptr<ca::Authority> FromSecret(const json& secret, const std::string& ref, std::string* error) {
  const json* data = secret.is_object() && secret.contains("data") ? &secret["data"] : nullptr;
  auto field = [&](const char* key, std::string* out) {
    if (!data || !data->is_object() || !data->contains(key) || !(*data)[key].is_string()) return false;
    auto decoded = Base64Decode((*data)[key].get<std::string>());
    if (decoded) *out = std::move(*decoded);
    return decoded.has_value();
  };
  std::string cert, key, bundle;
  if (!field("tls.crt", &cert) || !field("tls.key", &key)) {
    *error = "Secret " + ref + " has no usable tls.crt and tls.key; fix or delete it (a deleted Secret is regenerated)";
    return nullptr;
  }
  std::optional<std::string> roots;
  if (field("ca.crt", &bundle) && !bundle.empty()) roots = bundle;
  return ca::Authority::FromPem(
      cert, key, roots, {"Secret " + ref + " tls.crt", "Secret " + ref + " tls.key", "Secret " + ref + " ca.crt"},
      error);
}

}  // namespace

std::unique_ptr<ca::Authority> LoadCaSecret(const Http& http, const std::string& ns, const std::string& name,
                                            std::string* error) {
  const std::string ref = ns + "/" + name;
  HttpResponse got = http.Request("GET", "/api/v1/namespaces/" + ns + "/secrets/" + name, "", "", 10);
  if (!got.ok()) {
    *error = "cannot read the CA Secret " + ref + ": " + got.Describe();
    return nullptr;
  }
  return FromSecret(json::parse(got.body, nullptr, false), ref, error);
}

std::unique_ptr<ca::Authority> LoadOrCreateCaSecret(const Http& http, const std::string& ns, const std::string& name,
                                                    std::chrono::seconds wait, std::string* error) {
  const std::string ref = ns + "/" + name;
  const std::string path = "/api/v1/namespaces/" + ns + "/secrets/" + name;
  const auto deadline = std::chrono::steady_clock::now() + wait;
  std::string last;
  while (true) {
    HttpResponse got = http.Request("GET", path, "", "", 10);
    if (got.ok()) {
      auto secret = json::parse(got.body, nullptr, false);
      auto ca = FromSecret(secret, ref, error);
      if (ca) log::Info("mesh CA loaded", {{"secret", ref}});
      return ca;
    }
    if (got.status == 404) {
      auto root = ca::Authority::GenerateRootPem(error);
      if (!root) return nullptr;
      json secret = {{"apiVersion", "v1"},
                     {"kind", "Secret"},
                     {"type", "kubernetes.io/tls"},
                     {"metadata",
                      {{"name", name},
                       {"namespace", ns},
                       {"labels",
                        {{"app.kubernetes.io/name", "zeromesh"},
                         {"app.kubernetes.io/component", "ca"},
                         {"app.kubernetes.io/managed-by", "mesh-controller"}}}}},
                     {"data",
                      {{"tls.crt", Base64Encode(root->cert_pem)},
                       {"tls.key", Base64Encode(root->key_pem)},
                       {"ca.crt", Base64Encode(root->cert_pem)}}}};
      HttpResponse made =
          http.Request("POST", "/api/v1/namespaces/" + ns + "/secrets", secret.dump(), "application/json", 10);
      if (made.ok()) {
        log::Info("generated the mesh root CA and stored it", {{"secret", ref}});
        return ca::Authority::FromPem(root->cert_pem, root->key_pem, std::nullopt, {"generated", "generated", ""},
                                      error);
      }
      if (made.status == 409) continue;  // another replica created it first: load that one
      got = made;
    }
    if (got.status == 403 || got.status == 401) {
      *error = "cannot read or create the CA Secret " + ref + ": " + got.Describe() +
               " (the controller's ServiceAccount needs get and create on it; the chart's Role grants them)";
      return nullptr;
    }
    last = got.Describe();
    if (std::chrono::steady_clock::now() > deadline) {
      *error = "cannot reach the CA Secret " + ref + " for " + std::to_string(wait.count()) + "s: " + last;
      return nullptr;
    }
    log::Warn("CA Secret not reachable yet; retrying", {{"secret", ref}, {"error", last}});
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
}

}  // namespace zm::k8s
