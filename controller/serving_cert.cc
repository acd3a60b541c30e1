#include "controller/serving_cert.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>

#include "common/log.h"
#include "controller/ca/x509_util.h"
#include "controller/fs_util.h"

namespace zm::ctrl {

ServingCert::~ServingCert() {
  Stop();
}

bool ServingCert::Init(std::string* error) {
  if (spec_.dir.empty()) {
    const char* tmp = std::getenv("TMPDIR");
    std::string tmpl = std::string(tmp && *tmp ? tmp : "/tmp") + "/zeromesh-serving-XXXXXX";
    if (!::mkdtemp(tmpl.data())) {
      *error = "cannot create a directory for the serving certificate under " + tmpl + ": " + std::strerror(errno);
      return false;
    }
    dir_ = tmpl;
    owns_dir_ = true;
  } else {
    dir_ = spec_.dir;
    if (::mkdir(dir_.c_str(), 0700) != 0 && errno != EEXIST) {
      *error = "--serving-cert-dir " + dir_ + ": " + std::strerror(errno);
      return false;
    }
  }
  return Issue(error);
}

bool ServingCert::Issue(std::string* error) {
  auto key = ca::GenerateP256Key();
  if (!key) {
    *error = "serving key generation failed";
    return false;
  }
  ca::LeafSpec leaf;
  leaf.public_key = key.get();
  leaf.dns = spec_.dns;
  leaf.ips = spec_.ips;
  leaf.ttl_seconds = spec_.ttl_seconds;
  auto authority = ca_->Current();
  auto issued = authority->Issue(leaf, error);
  if (!issued) return false;
  // Key first, then certificate, each replaced atomically; gRPC's watcher re-reads a pair whose files changed while
  // it read them.
  if (!WriteFileAtomic(key_path(), ca::KeyToPem(key.get()), 0600, error) ||
      !WriteFileAtomic(cert_path(), issued->chain_pem, 0644, error)) {
    return false;
  }
  int64_t now = std::time(nullptr);
  std::lock_guard<std::mutex> lock(mu_);
  not_after_ = issued->not_after_unix;
  renew_at_ = now + std::max<int64_t>(1, (not_after_ - now) / 2);
  log::Info("serving certificate issued", {{"dns", spec_.dns.empty() ? "" : spec_.dns[0]},
                                           {"not_after", not_after_},
                                           {"signer", authority->signer().subject}});
  return true;
}

void ServingCert::Start() {
  thread_ = std::thread([this] { Run(); });
}

void ServingCert::RenewNow() {
  std::lock_guard<std::mutex> lock(mu_);
  renew_now_ = true;
  cv_.notify_all();
}

void ServingCert::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    auto due = std::chrono::system_clock::from_time_t(static_cast<time_t>(renew_at_));
    cv_.wait_until(lock, due, [&] { return stop_ || renew_now_ || std::chrono::system_clock::now() >= due; });
    if (stop_) break;
    renew_now_ = false;
    lock.unlock();
    std::string error;
    bool ok = Issue(&error);
    lock.lock();
    if (ok) {
      renewals_++;
    } else {
      // Keep serving the current certificate; try again soon (it is valid until not_after_).
      log::Error("serving certificate renewal failed; retrying in 5s", {{"error", error}});
      renew_at_ = std::time(nullptr) + 5;
    }
  }
}

void ServingCert::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (owns_dir_) {
    ::unlink(key_path().c_str());
    ::unlink(cert_path().c_str());
    ::rmdir(dir_.c_str());
    owns_dir_ = false;
  }
}

int64_t ServingCert::not_after_unix() const {
  std::lock_guard<std::mutex> lock(mu_);
  return not_after_;
}

uint64_t ServingCert::renewals() const {
  std::lock_guard<std::mutex> lock(mu_);
  return renewals_;
}

}  // namespace zm::ctrl
