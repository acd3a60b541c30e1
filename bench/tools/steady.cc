// zm-steady: a steady request rate of SIZE-byte request/response exchanges over CONNS persistent TCP connections to
// zm-echod, paced (open loop): a request every 1/RATE s goes to the next connection with no exchange in flight. The
// benchmark measures the proxies' CPU over the run (bench/dataplane.py: agent vCPU at 1,000 requests/s, the figure
// Istio publishes for ztunnel). Prints one JSON object: requests sent and answered, achieved rate, requests that
// found every connection busy (skipped, so the offered rate is honest), round-trip percentiles in µs.
//
//   zm-steady HOST PORT CONNS RATE SIZE SECONDS
#include <poll.h>
#include <sys/epoll.h>

#include <thread>

#include "bench/tools/bench_util.h"

namespace {

struct Conn {
  int fd = -1;
  bool busy = false;
  size_t got = 0;
  zmbench::Clock::time_point sent;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc < 7) {
    std::fprintf(stderr, "usage: zm-steady HOST PORT CONNS RATE SIZE SECONDS\n");
    return 2;
  }
  zmbench::RaiseFdLimit();
  sockaddr_in a = zmbench::Addr(argv[1], std::atoi(argv[2]));
  const int nconns = std::max(1, std::atoi(argv[3]));
  const double rate = std::max(1.0, std::atof(argv[4]));
  const size_t size = std::max<size_t>(1, static_cast<size_t>(std::atol(argv[5])));
  const double seconds = std::atof(argv[6]);

  std::vector<Conn> conns(static_cast<size_t>(nconns));
  int ep = epoll_create1(EPOLL_CLOEXEC);
  for (int i = 0; i < nconns; ++i) {
    int fd = zmbench::Connect(a);
    if (fd < 0) zmbench::Die("connect");
    conns[static_cast<size_t>(i)].fd = fd;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u32 = static_cast<uint32_t>(i);
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) zmbench::Die("epoll_ctl");
  }
  std::string out(size, 'x');
  std::vector<char> in(size);
  std::vector<double> rtt_us;
  rtt_us.reserve(static_cast<size_t>(rate * seconds) + 16);
  const auto interval = std::chrono::duration_cast<zmbench::Clock::duration>(std::chrono::duration<double>(1.0 / rate));
  const auto start = zmbench::Clock::now();
  const auto until =
      start + std::chrono::duration_cast<zmbench::Clock::duration>(std::chrono::duration<double>(seconds));
  auto next = start;
  size_t sent = 0, answered = 0, skipped = 0, rr = 0;
  epoll_event events[256];
  for (;;) {
    auto now = zmbench::Clock::now();
    while (next <= now && next < until) {  // every request due by now (catches up after a late wake-up)
      size_t tried = 0;
      while (tried < conns.size() && conns[rr].busy) {
        rr = (rr + 1) % conns.size();
        ++tried;
      }
      if (tried == conns.size()) {
        ++skipped;
      } else {
        Conn& c = conns[rr];
        if (!zmbench::WriteAll(c.fd, out.data(), size)) zmbench::Die("write");
        c.busy = true;
        c.got = 0;
        c.sent = next;  // from when it was due: a late send counts against the latency (no coordinated omission)
        ++sent;
        rr = (rr + 1) % conns.size();
      }
      next += interval;
    }
    bool in_flight = false;
    for (const auto& c : conns) in_flight = in_flight || c.busy;
    if (now >= until && !in_flight) break;
    if (now >= until + std::chrono::seconds(5)) break;  // answers that never come are reported as such
    auto wait = next < until ? std::chrono::duration_cast<std::chrono::milliseconds>(next - now).count() : 100;
    int n = epoll_wait(ep, events, 256, static_cast<int>(std::max<int64_t>(0, wait)));
    if (n < 0 && errno != EINTR) zmbench::Die("epoll_wait");
    for (int i = 0; i < n; ++i) {
      Conn& c = conns[events[i].data.u32];
      ssize_t r = read(c.fd, in.data(), size - c.got);
      if (r <= 0) {
        if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
        zmbench::Die("read (connection closed)");
      }
      c.got += static_cast<size_t>(r);
      if (c.busy && c.got == size) {
        c.busy = false;
        ++answered;
        rtt_us.push_back(std::chrono::duration<double, std::micro>(zmbench::Clock::now() - c.sent).count());
      }
    }
  }
  double secs = zmbench::Seconds(zmbench::Clock::now() - start);
  for (auto& c : conns) close(c.fd);
  std::sort(rtt_us.begin(), rtt_us.end());
  std::printf(
      "{\"conns\": %d, \"offered_rate\": %.1f, \"size\": %zu, \"seconds\": %.3f, \"sent\": %zu, \"answered\": %zu, "
      "\"skipped\": %zu, \"rate\": %.1f, \"p50_us\": %.2f, \"p99_us\": %.2f}\n",
      nconns, rate, size, secs, sent, answered, skipped, static_cast<double>(answered) / seconds,
      zmbench::Percentile(rtt_us, 50), zmbench::Percentile(rtt_us, 99));
  return answered == sent ? 0 : 1;
}
