// zm-connrate: new-connection rate and many-open-connections load for the benchmarks (server: zm-echod).
//
//   zm-connrate rate HOST PORT SECONDS [CONNS] [SIZE] [MAX]
//       CONNS threads (default 4), each in a loop: connect, send SIZE bytes (default 16), read the SIZE-byte echo,
//       close. Stops after SECONDS or MAX completed connections in total (default 2,000,000). Prints JSON.
//   zm-connrate hold HOST PORT N SECONDS
//       Opens N connections, echoes once on each (so each is established end to end), prints a JSON "ready" line,
//       then keeps them open until stdin is closed or SECONDS pass, and closes them.
#include <poll.h>

#include <atomic>
#include <thread>

#include "bench/tools/bench_util.h"

namespace {

int Rate(const sockaddr_in& a, double seconds, int conns, size_t size, uint64_t max) {
  std::atomic<uint64_t> done{0}, failed{0};
  std::atomic<bool> stop{false};
  std::vector<std::vector<double>> lat(static_cast<size_t>(conns));
  auto start = zmbench::Clock::now();
  auto until = start + std::chrono::duration_cast<zmbench::Clock::duration>(std::chrono::duration<double>(seconds));
  std::vector<std::thread> ts;
  for (int t = 0; t < conns; ++t) {
    ts.emplace_back([&, t] {
      std::string out(size, 'c'), in(size, '\0');
      auto& mine = lat[static_cast<size_t>(t)];
      while (!stop.load(std::memory_order_relaxed)) {
        auto t0 = zmbench::Clock::now();
        if (t0 >= until) break;
        int fd = zmbench::Connect(a);
        bool ok = fd >= 0 && zmbench::WriteAll(fd, out.data(), size) && zmbench::ReadExact(fd, in.data(), size);
        if (fd >= 0) close(fd);
        if (!ok) {
          failed.fetch_add(1, std::memory_order_relaxed);
          usleep(1000);  // do not spin on a refused destination
          continue;
        }
        if (mine.size() < 1'000'000)
          mine.push_back(std::chrono::duration<double, std::micro>(zmbench::Clock::now() - t0).count());
        if (done.fetch_add(1, std::memory_order_relaxed) + 1 >= max) stop = true;
      }
    });
  }
  for (auto& t : ts) t.join();
  double secs = zmbench::Seconds(zmbench::Clock::now() - start);
  std::vector<double> all;
  for (auto& v : lat) all.insert(all.end(), v.begin(), v.end());
  std::sort(all.begin(), all.end());
  std::printf(
      "{\"connections\": %llu, \"failed\": %llu, \"seconds\": %.3f, \"per_second\": %.1f, \"parallel\": %d, "
      "\"latency_p50_us\": %.1f, \"latency_p99_us\": %.1f}\n",
      static_cast<unsigned long long>(done.load()), static_cast<unsigned long long>(failed.load()), secs,
      static_cast<double>(done.load()) / secs, conns, zmbench::Percentile(all, 50), zmbench::Percentile(all, 99));
  return done.load() > 0 ? 0 : 1;
}

int Hold(const sockaddr_in& a, int n, double seconds) {
  zmbench::RaiseFdLimit();
  std::vector<int> fds;
  int failed = 0;
  char buf[8];
  for (int i = 0; i < n; ++i) {
    int fd = zmbench::Connect(a, 10);
    if (fd < 0 || !zmbench::WriteAll(fd, "holdconn", 8) || !zmbench::ReadExact(fd, buf, 8)) {
      if (fd >= 0) close(fd);
      ++failed;
      continue;
    }
    fds.push_back(fd);
  }
  std::printf("{\"open\": %zu, \"failed\": %d}\n", fds.size(), failed);
  std::fflush(stdout);
  pollfd p{0, POLLIN, 0};
  poll(&p, 1, static_cast<int>(seconds * 1000));  // stdin readable (EOF) or timeout
  for (int fd : fds) close(fd);
  return fds.empty() ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 5 && std::strcmp(argv[1], "rate") == 0) {
    sockaddr_in a = zmbench::Addr(argv[2], std::atoi(argv[3]));
    int conns = argc > 5 ? std::atoi(argv[5]) : 4;
    size_t size = argc > 6 ? static_cast<size_t>(std::atol(argv[6])) : 16;
    uint64_t max = argc > 7 ? std::strtoull(argv[7], nullptr, 10) : 2'000'000;
    return Rate(a, std::atof(argv[4]), std::max(conns, 1), std::max<size_t>(size, 1), max);
  }
  if (argc >= 6 && std::strcmp(argv[1], "hold") == 0) {
    sockaddr_in a = zmbench::Addr(argv[2], std::atoi(argv[3]));
    return Hold(a, std::atoi(argv[4]), std::atof(argv[5]));
  }
  std::fprintf(stderr,
               "usage: zm-connrate rate HOST PORT SECONDS [CONNS] [SIZE] [MAX]\n"
               "       zm-connrate hold HOST PORT N SECONDS\n");
  return 2;
}
