// zm-echod: an epoll echo server for the benchmarks. Every byte read is written back; the connection closes when the
// client closes. Used as the server of zm-rr (ping-pong latency) and zm-connrate (connect, 1 request, close).
//
//   zm-echod PORT [THREADS]        (listens on 0.0.0.0:PORT, SO_REUSEPORT, one epoll loop per thread)
#include <sys/epoll.h>

#include <thread>

#include "bench/tools/bench_util.h"

namespace {

struct Conn {
  std::string pending;  // bytes read but not yet written back (the client is not reading)
};

void Loop(int port) {
  int lfd = zmbench::ListenReusePort(zmbench::Addr("0.0.0.0", port));
  int ep = epoll_create1(EPOLL_CLOEXEC);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = lfd;
  epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
  std::vector<Conn*> conns;
  std::vector<char> buf(1 << 16);
  epoll_event events[256];
  auto drop = [&](int fd) {
    epoll_ctl(ep, EPOLL_CTL_DEL, fd, nullptr);
    close(fd);
    delete conns[static_cast<size_t>(fd)];
    conns[static_cast<size_t>(fd)] = nullptr;
  };
  for (;;) {
    int n = epoll_wait(ep, events, 256, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      zmbench::Die("epoll_wait");
    }
    for (int i = 0; i < n; ++i) {
      int fd = events[i].data.fd;
      if (fd == lfd) {
        for (;;) {
          int c = accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (c < 0) break;
          zmbench::NoDelay(c);
          if (conns.size() <= static_cast<size_t>(c)) conns.resize(static_cast<size_t>(c) + 1024, nullptr);
          conns[static_cast<size_t>(c)] = new Conn();
          epoll_event cev{};
          cev.events = EPOLLIN | EPOLLRDHUP;
          cev.data.fd = c;
          epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
        }
        continue;
      }
      Conn* conn = conns[static_cast<size_t>(fd)];
      if (!conn) continue;
      if (!conn->pending.empty()) {  // EPOLLOUT: flush, then read again
        ssize_t w = write(fd, conn->pending.data(), conn->pending.size());
        if (w < 0 && errno != EAGAIN) {
          drop(fd);
          continue;
        }
        if (w > 0) conn->pending.erase(0, static_cast<size_t>(w));
        if (conn->pending.empty()) {
          epoll_event cev{};
          cev.events = EPOLLIN | EPOLLRDHUP;
          cev.data.fd = fd;
          epoll_ctl(ep, EPOLL_CTL_MOD, fd, &cev);
        }
        continue;
      }
      ssize_t r = read(fd, buf.data(), buf.size());
      if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
        drop(fd);
        continue;
      }
      if (r < 0) continue;
      ssize_t w = write(fd, buf.data(), static_cast<size_t>(r));
      if (w < 0 && errno != EAGAIN) {
        drop(fd);
        continue;
      }
      if (w < 0) w = 0;
      if (w < r) {
        conn->pending.assign(buf.data() + w, static_cast<size_t>(r - w));
        epoll_event cev{};
        cev.events = EPOLLOUT;
        cev.data.fd = fd;
        epoll_ctl(ep, EPOLL_CTL_MOD, fd, &cev);
      }
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: zm-echod PORT [THREADS]\n");
    return 2;
  }
  zmbench::RaiseFdLimit();
  int port = std::atoi(argv[1]);
  int threads = argc > 2 ? std::atoi(argv[2]) : 2;
  std::vector<std::thread> ts;
  for (int i = 1; i < threads; ++i) ts.emplace_back(Loop, port);
  Loop(port);
}
