#include "agent/control/cert_manager.h"

#include <openssl/x509.h>

#include <algorithm>
#include <cstdlib>
#include <ctime>

#include "agent/control/csr.h"
#include "common/log.h"
#include "common/tls/pem.h"

namespace zm::agent::control {
namespace v1 = zeromesh::v1;
using Clock = std::chrono::steady_clock;

namespace {

// The leaf's notAfter as unix seconds; 0 if unreadable.
int64_t LeafNotAfter(const std::string& chain_pem) {
  tls::CertList certs;
  std::string err;
  if (!tls::ParsePemCerts(chain_pem, &certs, &err) || certs.empty()) return 0;
  bssl::UniquePtr<ASN1_TIME> epoch(ASN1_TIME_set(nullptr, 0));
  int days = 0, secs = 0;
  if (!epoch || !ASN1_TIME_diff(&days, &secs, epoch.get(), X509_get0_notAfter(certs[0].get()))) return 0;
  return static_cast<int64_t>(days) * 86400 + secs;
}

}  // namespace

CertManager::CertManager(Bootstrap bootstrap, Options opts, UpdateFn on_update, RemoveFn on_remove)
    : bootstrap_(std::move(bootstrap)),
      opts_(opts),
      on_update_(std::move(on_update)),
      on_remove_(std::move(on_remove)),
      stub_(v1::Identity::NewStub(MakeChannel(bootstrap_))) {}

CertManager::~CertManager() {
  Stop();
}

void CertManager::Start() {
  thread_ = std::thread([this] { Run(); });
}

void CertManager::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    if (active_) active_->TryCancel();  // a CSR waiting for an unreachable controller must not delay shutdown
    cv_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
}

void CertManager::SetIdentities(const std::set<std::string>& ids) {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& id : ids) {
    if (entries_.count(id)) continue;
    Entry e;
    e.due = Clock::now();
    e.backoff = std::make_unique<Backoff>(opts_.initial_retry, opts_.max_retry);
    entries_.emplace(id, std::move(e));
  }
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (ids.count(it->first)) {
      ++it;
      continue;
    }
    if (it->second.current) removed_.push_back(it->first);  // reported from Run(), where all callbacks happen
    it = entries_.erase(it);
  }
  cv_.notify_all();
}

void CertManager::SetSigner(const std::string& signer) {
  std::lock_guard<std::mutex> lock(mu_);
  if (signer.empty() || signer == signer_) return;
  signer_ = signer;
  size_t n = 0;
  for (auto& [id, e] : entries_) {
    if (!e.current || e.current->ca_signer == signer) continue;
    // Spread the re-issues (a node may hold many identities; the controller serves every node at once).
    auto spread = opts_.resign_spread.count() > 0 ? std::chrono::milliseconds(std::rand() % opts_.resign_spread.count())
                                                  : std::chrono::milliseconds(0);
    e.due = std::min(e.due, Clock::now() + spread);
    n++;
  }
  if (n > 0) log::Info("cert: the CA signer changed; re-issuing", {{"certificates", n}, {"signer", signer}});
  cv_.notify_all();
}

std::optional<IssuedIdentity> CertManager::Get(const std::string& spiffe_id) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(spiffe_id);
  return it == entries_.end() ? std::nullopt : it->second.current;
}

std::vector<IssuedIdentity> CertManager::All() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<IssuedIdentity> out;
  for (const auto& [id, e] : entries_) {
    if (e.current) out.push_back(*e.current);
  }
  return out;
}

std::map<std::string, std::string> CertManager::Errors() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::map<std::string, std::string> out;
  for (const auto& [id, e] : entries_) {
    if (!e.error.empty()) out[id] = e.error;
  }
  return out;
}

uint64_t CertManager::issued_count() const {
  std::lock_guard<std::mutex> lock(mu_);
  return issued_;
}

bool CertManager::Issue(const std::string& id, IssuedIdentity* out, std::string* error) {
  KeyAndCsr kc;
  if (!GenerateKeyAndCsr(id, &kc, error)) return false;
  grpc::ClientContext ctx;
  AddAuth(&ctx, bootstrap_);
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  ctx.set_wait_for_ready(true);  // poll the channel while it (re)connects, up to the deadline
  v1::SignRequest req;
  req.set_csr_pem(kc.csr_pem);
  req.set_ttl_seconds(opts_.ttl_seconds);
  v1::SignResponse resp;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stop_) {
      *error = "stopping";
      return false;
    }
    active_ = &ctx;
  }
  grpc::Status st = stub_->Sign(&ctx, req, &resp);
  {
    std::lock_guard<std::mutex> lock(mu_);
    active_ = nullptr;
  }
  if (!st.ok()) {
    *error = "Identity.Sign: " + st.error_message();
    return false;
  }
  out->spiffe_id = id;
  out->cert_chain_pem = resp.cert_chain_pem();
  out->key_pem = kc.key_pem;
  out->trust_bundle_pem = resp.trust_bundle_pem();
  out->ca_signer = resp.ca_signer();
  out->not_after_unix = LeafNotAfter(resp.cert_chain_pem());
  if (out->not_after_unix <= std::time(nullptr)) {
    *error = "controller returned an unreadable or expired certificate";
    return false;
  }
  return true;
}

void CertManager::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    if (!removed_.empty()) {
      auto removed = std::move(removed_);
      removed_.clear();
      lock.unlock();
      for (const auto& id : removed) on_remove_(id);
      lock.lock();
      continue;
    }
    auto next = entries_.end();
    for (auto it = entries_.begin(); it != entries_.end(); ++it) {
      if (next == entries_.end() || it->second.due < next->second.due) next = it;
    }
    if (next == entries_.end()) {
      cv_.wait(lock);
      continue;
    }
    if (next->second.due > Clock::now()) {
      // A copy: wait_until reads the deadline again after waking, and SetIdentities may erase the entry meanwhile.
      const Clock::time_point due = next->second.due;
      cv_.wait_until(lock, due);
      continue;
    }
    std::string id = next->first;
    lock.unlock();
    IssuedIdentity issued;
    std::string error;
    bool ok = Issue(id, &issued, &error);
    lock.lock();
    auto it = entries_.find(id);
    if (it == entries_.end()) continue;  // no longer wanted
    Entry& e = it->second;
    if (!ok) {
      e.error = error;
      auto delay = e.backoff->Next();
      e.due = Clock::now() + delay;
      log::Warn("cert: issue failed", {{"id", id}, {"error", error}, {"retry_ms", delay.count()}});
      continue;
    }
    int64_t lifetime = issued.not_after_unix - std::time(nullptr);
    e.due = Clock::now() + std::chrono::milliseconds(static_cast<int64_t>(lifetime * 1000 * opts_.renew_fraction));
    // Issued by a signer other than the one the config names (a rotation raced this call): again, shortly.
    if (!signer_.empty() && issued.ca_signer != signer_)
      e.due = Clock::now() + opts_.resign_spread + opts_.initial_retry;
    e.backoff->Reset();
    e.error.clear();
    e.current = issued;
    issued_++;
    log::Info("cert: issued", {{"id", id}, {"not_after", issued.not_after_unix}});
    lock.unlock();
    on_update_(issued);
    lock.lock();
  }
}

}  // namespace zm::agent::control
