#include "agent/control/controller_trust.h"

#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_certificate_verifier.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "common/log.h"
#include "common/tls/chain.h"
#include "common/tls/pem.h"

namespace zm::agent::control {
namespace {

constexpr auto kFileRecheck = std::chrono::seconds(2);

class ControllerVerifier : public grpc::experimental::ExternalCertificateVerifier {
 public:
  ControllerVerifier(std::shared_ptr<ControllerTrust> trust, std::string host)
      : trust_(std::move(trust)), host_(std::move(host)) {}

  bool Verify(grpc::experimental::TlsCustomVerificationCheckRequest* request, std::function<void(grpc::Status)>,
              grpc::Status* sync_status) override {
    auto chain = request->peer_cert_full_chain();
    std::string why = trust_->Verify(std::string(chain.data(), chain.size()), host_);
    if (!why.empty()) log::Warn("controller certificate rejected", {{"error", why}});
    *sync_status = why.empty() ? grpc::Status::OK
                               : grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "controller certificate: " + why);
    return true;  // answered synchronously
  }
  void Cancel(grpc::experimental::TlsCustomVerificationCheckRequest*) override {}

 private:
  std::shared_ptr<ControllerTrust> trust_;
  const std::string host_;
};

}  // namespace

ControllerTrust::ControllerTrust(std::string ca_file, std::string initial_pem)
    : ca_file_(std::move(ca_file)), file_pem_(std::move(initial_pem)) {
  next_file_check_ = std::chrono::steady_clock::now() + kFileRecheck;
}

void ControllerTrust::SetPushedBundle(const std::string& pem) {
  std::lock_guard<std::mutex> lock(mu_);
  pushed_pem_ = pem;
}

void ControllerTrust::RefreshFileLocked() {
  auto now = std::chrono::steady_clock::now();
  if (ca_file_.empty() || now < next_file_check_) return;
  next_file_check_ = now + kFileRecheck;
  std::string text, error;
  tls::CertList certs;
  // A file being replaced or emptied keeps the roots read before.
  if (tls::ReadFile(ca_file_, &text, &error) && tls::ParsePemCerts(text, &certs, &error)) file_pem_ = text;
}

std::string ControllerTrust::RootsPem() {
  std::lock_guard<std::mutex> lock(mu_);
  RefreshFileLocked();
  return file_pem_ + pushed_pem_;
}

std::string ControllerTrust::Verify(const std::string& chain_pem, const std::string& host) {
  std::string file_pem, pushed_pem;
  {
    std::lock_guard<std::mutex> lock(mu_);
    RefreshFileLocked();
    file_pem = file_pem_;
    pushed_pem = pushed_pem_;
  }
  tls::CertList chain, roots;
  std::string error;
  if (!tls::ParsePemCerts(chain_pem, &chain, &error)) return "unreadable certificate chain: " + error;
  // Each source on its own: one that does not parse (an empty push, a bad bootstrap file) must not hide the other.
  for (const std::string* pem : {&file_pem, &pushed_pem}) {
    tls::CertList some;
    if (tls::ParsePemCerts(*pem, &some, &error)) {
      for (auto& c : some) roots.push_back(std::move(c));
    }
  }
  if (std::string why; !tls::VerifyChain(chain, roots, &why)) {
    return "does not chain to a trusted mesh root (" + why + ")";
  }
  if (X509_check_host(chain[0].get(), host.data(), host.size(), 0, nullptr) != 1) {
    ERR_clear_error();
    return "not issued for " + host;
  }
  return "";
}

std::shared_ptr<grpc::ChannelCredentials> ControllerChannelCredentials(std::shared_ptr<ControllerTrust> trust,
                                                                       std::string server_name) {
  grpc::experimental::TlsChannelCredentialsOptions opts;
  // Roots handed to gRPC only so that it never looks for a system bundle (a minimal image has none); they are not
  // what decides: gRPC's own check would pin them at channel creation, so ControllerVerifier checks chain and name.
  opts.set_certificate_provider(std::make_shared<grpc::experimental::StaticDataCertificateProvider>(trust->RootsPem()));
  opts.watch_root_certs();
  opts.set_verify_server_certs(false);
  opts.set_check_call_host(false);
  opts.set_certificate_verifier(grpc::experimental::ExternalCertificateVerifier::Create<ControllerVerifier>(
      std::move(trust), std::move(server_name)));
  return grpc::experimental::TlsCredentials(opts);
}

}  // namespace zm::agent::control
