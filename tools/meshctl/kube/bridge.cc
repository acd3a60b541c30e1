#include "tools/meshctl/kube/bridge.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace zm::meshctl::kube {
namespace {

void SetNonBlocking(int fd) {
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
}

}  // namespace

std::unique_ptr<Bridge> Bridge::Start(Dial dial, std::unique_ptr<Tunnel> first, std::string* error) {
  std::unique_ptr<Bridge> b(new Bridge());
  b->dial_ = std::move(dial);
  b->first_ = std::move(first);
  b->listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  b->stop_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (b->listen_fd_ < 0 || b->stop_fd_ < 0 ||
      ::bind(b->listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::listen(b->listen_fd_, 16) != 0 || ::getsockname(b->listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    *error = std::string("cannot listen on 127.0.0.1 for the port-forward: ") + std::strerror(errno);
    return nullptr;
  }
  b->port_ = ntohs(addr.sin_port);
  b->accept_thread_ = std::thread([p = b.get()] { p->Accept(); });
  return b;
}

Bridge::~Bridge() {
  if (stop_fd_ >= 0) {
    uint64_t one = 1;
    (void)!::write(stop_fd_, &one, sizeof(one));
  }
  if (accept_thread_.joinable()) accept_thread_.join();
  std::vector<std::thread> relays;
  {
    std::lock_guard<std::mutex> lock(mu_);
    relays.swap(relays_);
  }
  for (auto& t : relays) t.join();
  if (listen_fd_ >= 0) ::close(listen_fd_);
  if (stop_fd_ >= 0) ::close(stop_fd_);
}

std::string Bridge::last_error() const {
  std::lock_guard<std::mutex> lock(mu_);
  return last_error_;
}

void Bridge::SetError(const std::string& e) {
  std::lock_guard<std::mutex> lock(mu_);
  last_error_ = e;
}

void Bridge::Accept() {
  while (true) {
    pollfd p[2] = {{listen_fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
    if (::poll(p, 2, -1) < 0 && errno != EINTR) return;
    if (p[1].revents) return;
    if (!(p[0].revents & POLLIN)) continue;
    int local = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (local < 0) continue;
    connections_++;
    std::unique_ptr<Tunnel> tunnel = std::move(first_);
    std::string error;
    if (!tunnel) tunnel = dial_(&error);
    if (!tunnel) {
      SetError(error);
      ::close(local);  // gRPC sees the connection fail; the RPC's error is explained with last_error()
      continue;
    }
    std::lock_guard<std::mutex> lock(mu_);
    relays_.emplace_back([this, local, t = tunnel.release()]() mutable { Relay(local, std::unique_ptr<Tunnel>(t)); });
  }
}

void Bridge::Relay(int local, std::unique_ptr<Tunnel> tunnel) {
  SetNonBlocking(local);
  std::string to_local;  // bytes from the pod not yet written to the local socket
  bool local_eof = false;
  char buf[32768];
  while (true) {
    Tunnel::State state = tunnel->Read(&to_local);
    while (!to_local.empty()) {
      ssize_t n = ::send(local, to_local.data(), to_local.size(), MSG_NOSIGNAL);
      if (n <= 0) break;
      to_local.erase(0, static_cast<size_t>(n));
    }
    if (state == Tunnel::State::kFailed) {
      SetError(tunnel->error());
      break;
    }
    if (state == Tunnel::State::kClosed && to_local.empty()) break;
    if (local_eof && !tunnel->pending()) break;
    // Back-pressure: read the local side only while the tunnel keeps up, and the tunnel while the local side does.
    short local_events =
        static_cast<short>((!local_eof && !tunnel->pending() ? POLLIN : 0) | (to_local.empty() ? 0 : POLLOUT));
    short tunnel_events = static_cast<short>((to_local.empty() ? POLLIN : 0) | (tunnel->pending() ? POLLOUT : 0));
    pollfd p[3] = {{local, local_events, 0}, {tunnel->fd(), tunnel_events, 0}, {stop_fd_, POLLIN, 0}};
    if (::poll(p, 3, 1000) < 0 && errno != EINTR) break;
    if (p[2].revents) break;
    if (p[1].revents & POLLOUT) tunnel->Flush();
    if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t n = ::recv(local, buf, sizeof(buf), 0);
      if (n > 0) {
        if (!tunnel->Write(std::string_view(buf, static_cast<size_t>(n)))) {
          SetError(tunnel->error());
          break;
        }
      } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
        local_eof = true;
      }
    }
  }
  tunnel->Close();
  ::close(local);
}

}  // namespace zm::meshctl::kube
