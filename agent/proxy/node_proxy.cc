#include "agent/proxy/node_proxy.h"

#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <thread>

#include "agent/proxy/socket_util.h"
#include "agent/proxy/worker.h"
#include "common/log.h"

namespace zm::proxy {
namespace {

constexpr const char* kListenerNames[3] = {"outbound", "hbone", "plaintext"};

// IPv6 switched off for this network namespace (net.ipv6.conf.all.disable_ipv6 = 1): no IPv6 listeners.
bool Ipv6Disabled(const std::string& sysctl) {
  std::ifstream f(sysctl);
  char c = '0';
  return f.get(c) && c == '1';
}

}  // namespace

NodeProxy::NodeProxy(ProxyOptions opts, agent::SnapshotHolder& snapshots, agent::CertStore& certs)
    : opts_(std::move(opts)), snapshots_(snapshots), certs_(certs), peers_(opts_.max_connections_per_peer) {}

NodeProxy::~NodeProxy() {
  Stop();
}

bool NodeProxy::Start(std::string* error) {
  signal(SIGPIPE, SIG_IGN);  // TLS and splice write to sockets that peers may have closed
  RaiseFdLimit();
  const uint16_t ports[3] = {opts_.outbound_port, opts_.hbone_port, opts_.plaintext_port};
  for (int i = 0; i < 3; ++i) {
    std::string why;
    fds_[i] = MakeListener(opts_.listen_addr, ports[i], opts_.transparent_listeners, opts_.socket_mark, &why);
    if (fds_[i] < 0) {
      *error = std::string(kListenerNames[i]) + " listener: " + why;
      Stop();
      return false;
    }
    ports_[i] = LocalPort(fds_[i]);
  }
  if (!StartIpv6Listeners(error)) {
    Stop();
    return false;
  }
  int n = opts_.workers > 0 ? opts_.workers : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  for (int i = 0; i < n; ++i)
    workers_.push_back(
        std::make_unique<Worker>(opts_, stats_, snapshots_, certs_, fds_, &balancer_, &limiter_, &peers_));
  std::vector<Worker*> all;
  for (auto& w : workers_) all.push_back(w.get());
  for (auto& w : workers_) w->SetSiblings(all);
  subscription_ = snapshots_.Subscribe([this] {
    for (auto& w : workers_) w->OnSnapshotChanged();
  });
  for (auto& w : workers_) w->Start();
  rlimit fds{};
  getrlimit(RLIMIT_NOFILE, &fds);
  log::Info("node proxy started", {{"workers", n},
                                   {"outbound_port", ports_[0]},
                                   {"hbone_port", ports_[1]},
                                   {"plaintext_port", ports_[2]},
                                   {"ipv6", has_ipv6()},
                                   {"fd_limit", static_cast<uint64_t>(fds.rlim_cur)}});
  return true;
}

bool NodeProxy::StartIpv6Listeners(std::string* error) {
  if (opts_.listen_addr6.empty()) return true;
  if (Ipv6Disabled(opts_.ipv6_disabled_sysctl)) {
    log::Info("node proxy: IPv6 is disabled on this node, IPv4 listeners only", {{"sysctl", "disable_ipv6=1"}});
    return true;
  }
  const uint16_t ports[3] = {opts_.outbound_port, opts_.hbone_port, opts_.plaintext_port};
  for (int i = 0; i < 3; ++i) {
    std::string why;
    int err = 0;
    int fd = MakeListener(opts_.listen_addr6, ports[i], opts_.transparent_listeners, opts_.socket_mark, &why, &err);
    if (fd < 0 && (err == EAFNOSUPPORT || err == EADDRNOTAVAIL) && i == 0) {
      // No IPv6 in this kernel, or not on the listening address: the node runs IPv4 only.
      log::Info("node proxy: no IPv6 on this node, IPv4 listeners only", {{"reason", why}});
      return true;
    }
    if (fd < 0) {
      *error = std::string(kListenerNames[i]) + " IPv6 listener: " + why;
      return false;
    }
    fds_[3 + i] = fd;
    ports_[3 + i] = LocalPort(fd);
  }
  return true;
}

void NodeProxy::Drain() {
  for (auto& w : workers_) w->Drain();
}

void NodeProxy::Stop() {
  if (subscription_ != 0) {
    snapshots_.Unsubscribe(subscription_);
    subscription_ = 0;
  }
  for (auto& w : workers_) w->Stop();
  workers_.clear();
  for (int& fd : fds_) {
    if (fd >= 0) close(fd);
    fd = -1;
  }
}

}  // namespace zm::proxy
