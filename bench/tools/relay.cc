// zm-relay: the cheapest user-space TCP relay, the floor that bench/floor.py puts under every node-proxy figure. Each
// accepted connection gets its own connection to a fixed target, and bytes are read into user space and written on:
// what a TLS proxy must do at the least, without the encryption, the framing, policy, telemetry or timers.
//
//   zm-relay THREADS LISTEN_IP:PORT=TARGET_IP:PORT [LISTEN_IP:PORT=TARGET_IP:PORT ...]
//
// One epoll loop per thread (edge-triggered), each with its own SO_REUSEPORT listener per mapping, so the kernel
// spreads the connections. One read buffer per thread (256 KiB, like the agent's TLS read-ahead): a read is written on
// at once, and only what the receiver does not take is kept for that direction, which then stops reading until it is
// sent (backpressure). A FIN is passed on as a half-close; an error or a reset closes both sides.
#include <fcntl.h>
#include <sys/epoll.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "bench/tools/bench_util.h"

namespace {

constexpr size_t kReadBuffer = 256 << 10;

struct Mapping {
  sockaddr_in listen{};
  sockaddr_in target{};
};

struct Pair;

// What an epoll entry points at: a listener (of mappings_[mapping]) or a connection end.
struct Handle {
  bool listener = false;
  int fd = -1;
  size_t mapping = 0;
};

// One side of a relayed connection. |pending| holds bytes read from this side that the other side has not taken.
struct End : Handle {
  Pair* pair = nullptr;
  End* peer = nullptr;
  bool connected = true;  // the target side: false until its non-blocking connect finishes
  bool eof = false;       // FIN read from this side (and passed on once |pending| is sent)
  bool shut = false;      // FIN written to this side
  bool hup = false;       // epoll reported a hang-up: read to the end from now on (its edge is spent)
  std::string pending;
};

struct Pair {
  End client, target;
  bool dead = false;
};

class Loop {
 public:
  explicit Loop(const std::vector<Mapping>& mappings) : mappings_(mappings), buf_(new char[kReadBuffer]) {
    ep_ = epoll_create1(EPOLL_CLOEXEC);
    if (ep_ < 0) zmbench::Die("epoll_create1");
    for (size_t i = 0; i < mappings_.size(); ++i) Listen(i);
  }

  void Run() {
    epoll_event events[256];
    for (;;) {
      int n = epoll_wait(ep_, events, 256, -1);
      if (n < 0) {
        if (errno == EINTR) continue;
        zmbench::Die("epoll_wait");
      }
      for (int i = 0; i < n; ++i) {
        auto* h = static_cast<Handle*>(events[i].data.ptr);
        if (h->listener) {
          Accept(*h);
        } else if (auto* e = static_cast<End*>(h); !e->pair->dead) {
          OnEvent(e, events[i].events);
        }
      }
      // Freed only after the batch: a later event of the same batch may name the other end of a closed pair.
      for (Pair* p : dead_) delete p;
      dead_.clear();
    }
  }

 private:
  void Listen(size_t i) {
    int fd = zmbench::ListenReusePort(mappings_[i].listen);
    auto h = std::make_unique<Handle>();
    h->listener = true;
    h->fd = fd;
    h->mapping = i;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = h.get();
    if (epoll_ctl(ep_, EPOLL_CTL_ADD, fd, &ev) != 0) zmbench::Die("epoll_ctl");
    listeners_.push_back(std::move(h));
  }

  void Accept(const Handle& listener) {
    for (;;) {
      int c = accept4(listener.fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (c < 0) return;  // EAGAIN, or the connection went away before we took it
      zmbench::NoDelay(c);
      int t = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (t < 0) {
        close(c);
        continue;
      }
      zmbench::NoDelay(t);
      const sockaddr_in& dst = mappings_[listener.mapping].target;
      int rc = connect(t, reinterpret_cast<const sockaddr*>(&dst), sizeof dst);
      if (rc != 0 && errno != EINPROGRESS) {
        close(c);
        close(t);
        continue;
      }
      auto* p = new Pair();
      p->client.pair = p->target.pair = p;
      p->client.peer = &p->target;
      p->target.peer = &p->client;
      p->client.fd = c;
      p->target.fd = t;
      p->target.connected = rc == 0;
      Register(&p->client);
      Register(&p->target);
    }
  }

  void Register(End* e) {
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    ev.data.ptr = static_cast<Handle*>(e);
    if (epoll_ctl(ep_, EPOLL_CTL_ADD, e->fd, &ev) != 0) Kill(e->pair);
  }

  void OnEvent(End* e, uint32_t ev) {
    if (ev & EPOLLERR) return Kill(e->pair);
    if (!e->connected) {
      if (!(ev & EPOLLOUT)) return;
      int err = 0;
      socklen_t len = sizeof err;
      if (getsockopt(e->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) return Kill(e->pair);
      e->connected = true;
      Pump(e->peer, /*to_the_end=*/true);  // the client's edges came while the target was not connected: read all
      if (e->pair->dead) return;
    }
    // The peer's bytes that were waiting for |e|. Only then: edge-triggered epoll reports EPOLLOUT with every event of
    // a writable socket, and a pump would cost the peer a read that finds nothing.
    if ((ev & EPOLLOUT) && !e->peer->pending.empty()) Pump(e->peer, /*to_the_end=*/false);
    if (e->pair->dead) return;
    if (ev & (EPOLLRDHUP | EPOLLHUP)) e->hup = true;
    if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP)) Pump(e, /*to_the_end=*/false);
  }

  // Moves |src|'s bytes to its peer until |src| is drained, the peer stops taking them, or |src| ends. A short read
  // means drained (edge-triggered: new bytes raise a new event), except after a hang-up, whose edge is spent: then
  // read until EOF.
  void Pump(End* src, bool to_the_end) {
    End* dst = src->peer;
    if (!dst->connected || src->pair->dead) return;
    if (!src->pending.empty() && !Send(src, src->pending.data(), src->pending.size(), /*from_pending=*/true)) return;
    while (!src->eof) {
      ssize_t n = read(src->fd, buf_.get(), kReadBuffer);
      if (n > 0) {
        if (!Send(src, buf_.get(), static_cast<size_t>(n), /*from_pending=*/false)) return;
        if (static_cast<size_t>(n) < kReadBuffer && !to_the_end && !src->hup) return;
        continue;
      }
      if (n == 0) {
        src->eof = true;
        break;
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN) return;
      return Kill(src->pair);
    }
    if (src->pending.empty() && !dst->shut) {
      shutdown(dst->fd, SHUT_WR);
      dst->shut = true;
    }
    if (src->eof && dst->eof && src->pending.empty() && dst->pending.empty()) Kill(src->pair);
  }

  // Writes |n| bytes from |src| to its peer; keeps what the peer does not take in src->pending. False when src must
  // stop reading (bytes left over, or the pair was closed).
  bool Send(End* src, const char* p, size_t n, bool from_pending) {
    size_t done = 0;
    while (done < n) {
      ssize_t w = send(src->peer->fd, p + done, n - done, MSG_NOSIGNAL);
      if (w > 0) {
        done += static_cast<size_t>(w);
        continue;
      }
      if (w < 0 && errno == EINTR) continue;
      if (w < 0 && errno == EAGAIN) break;
      Kill(src->pair);
      return false;
    }
    if (from_pending) {
      src->pending.erase(0, done);
    } else if (done < n) {
      src->pending.assign(p + done, n - done);
    }
    return src->pending.empty();
  }

  void Kill(Pair* p) {
    if (p->dead) return;
    p->dead = true;
    // close() takes the socket out of the epoll set too (its only reference): no EPOLL_CTL_DEL call.
    close(p->client.fd);
    close(p->target.fd);
    dead_.push_back(p);
  }

  const std::vector<Mapping>& mappings_;
  std::unique_ptr<char[]> buf_;
  int ep_ = -1;
  std::vector<std::unique_ptr<Handle>> listeners_;
  std::vector<Pair*> dead_;
};

bool ParseEndpoint(const std::string& s, sockaddr_in* out) {
  auto colon = s.rfind(':');
  if (colon == std::string::npos) return false;
  int port = std::atoi(s.c_str() + colon + 1);
  if (port <= 0 || port > 65535) return false;
  *out = zmbench::Addr(s.substr(0, colon).c_str(), port);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: zm-relay THREADS LISTEN_IP:PORT=TARGET_IP:PORT [...]\n");
    return 2;
  }
  int threads = std::atoi(argv[1]);
  if (threads < 1 || threads > 64) {
    std::fprintf(stderr, "zm-relay: THREADS must be 1-64, got '%s'\n", argv[1]);
    return 2;
  }
  std::vector<Mapping> mappings;
  for (int i = 2; i < argc; ++i) {
    std::string arg = argv[i];
    auto eq = arg.find('=');
    Mapping m;
    if (eq == std::string::npos || !ParseEndpoint(arg.substr(0, eq), &m.listen) ||
        !ParseEndpoint(arg.substr(eq + 1), &m.target)) {
      std::fprintf(stderr, "zm-relay: bad mapping '%s' (want LISTEN_IP:PORT=TARGET_IP:PORT)\n", argv[i]);
      return 2;
    }
    mappings.push_back(m);
  }
  zmbench::RaiseFdLimit();
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&mappings] {
      Loop loop(mappings);
      loop.Run();
    });
  }
  for (auto& w : workers) w.join();
  return 0;
}
