#include "agent/admin/cert_info.h"

#include <openssl/asn1.h>
#include <openssl/bn.h>
#include <openssl/mem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <algorithm>
#include <map>

namespace zm::admin {
namespace {

// Unix seconds of an ASN1_TIME (BoringSSL of this vintage has ASN1_TIME_diff but no ASN1_TIME_to_posix).
bool ToUnix(const ASN1_TIME* t, int64_t* out) {
  bssl::UniquePtr<ASN1_TIME> epoch(ASN1_TIME_set(nullptr, 0));
  int days = 0, secs = 0;
  if (!epoch || !t || !ASN1_TIME_diff(&days, &secs, epoch.get(), t)) return false;
  *out = static_cast<int64_t>(days) * 86400 + secs;
  return true;
}

std::string SerialHex(const X509* cert) {
  bssl::UniquePtr<BIGNUM> bn(ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), nullptr));
  if (!bn) return "";
  char* hex = BN_bn2hex(bn.get());
  std::string out = hex ? hex : "";
  OPENSSL_free(hex);
  return out;
}

}  // namespace

std::vector<CertInfo> LocalCerts(const agent::MeshSnapshot* snap, const agent::CertStore& certs, int64_t now_unix) {
  std::map<std::string, CertInfo> by_id;
  if (!snap) return {};
  for (const auto& w : snap->workloads()) {
    if (!snap->IsLocal(w) || !w.enrolled) continue;
    tls::SpiffeId id = snap->IdentityOf(w);
    CertInfo& info = by_id[id.ToString()];
    info.workloads.push_back(w.ns + "/" + w.name);
    if (!info.identity.empty()) continue;
    info.identity = id.ToString();
    auto tls = certs.Get(id);
    const X509* leaf = tls && tls->server_ctx ? SSL_CTX_get0_certificate(tls->server_ctx.get()) : nullptr;
    if (!leaf) continue;
    info.present =
        ToUnix(X509_get0_notBefore(leaf), &info.not_before) && ToUnix(X509_get0_notAfter(leaf), &info.not_after);
    info.serial = SerialHex(leaf);
    info.seconds_left = info.not_after - now_unix;
  }
  std::vector<CertInfo> out;
  for (auto& [id, info] : by_id) {
    std::sort(info.workloads.begin(), info.workloads.end());
    out.push_back(std::move(info));
  }
  return out;
}

std::optional<double> SoonestExpirySeconds(const std::vector<CertInfo>& certs) {
  std::optional<double> soonest;
  for (const auto& c : certs) {
    if (c.present && (!soonest || c.seconds_left < *soonest)) soonest = static_cast<double>(c.seconds_left);
  }
  return soonest;
}

nlohmann::json CertsJson(const std::vector<CertInfo>& certs) {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& c : certs) {
    nlohmann::json j = {{"identity", c.identity}, {"workloads", c.workloads}, {"present", c.present}};
    if (c.present) {
      j["serial"] = c.serial;
      j["not_before"] = c.not_before;
      j["not_after"] = c.not_after;
      j["seconds_left"] = c.seconds_left;
    }
    list.push_back(std::move(j));
  }
  return {{"certificates", std::move(list)}};
}

}  // namespace zm::admin
