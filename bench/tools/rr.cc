// zm-rr: request/response latency on one persistent TCP connection (ping-pong against zm-echod).
// Sends SIZE bytes, waits for the SIZE-byte echo, records the round trip; repeats for SECONDS (after a short
// warm-up that is not recorded) or MAX round trips. Prints one JSON object with round-trip percentiles in µs.
//
//   zm-rr HOST PORT SIZE SECONDS [MAX]
#include "bench/tools/bench_util.h"

int main(int argc, char** argv) {
  if (argc < 5) {
    std::fprintf(stderr, "usage: zm-rr HOST PORT SIZE SECONDS [MAX]\n");
    return 2;
  }
  sockaddr_in a = zmbench::Addr(argv[1], std::atoi(argv[2]));
  size_t size = static_cast<size_t>(std::atol(argv[3]));
  double seconds = std::atof(argv[4]);
  size_t max = argc > 5 ? static_cast<size_t>(std::atol(argv[5])) : 5'000'000;
  if (size == 0) size = 1;
  int fd = zmbench::Connect(a);
  if (fd < 0) zmbench::Die("connect");
  std::string out(size, 'x'), in(size, '\0');
  std::vector<double> rtt_us;
  rtt_us.reserve(std::min<size_t>(max, 1'000'000));
  auto start = zmbench::Clock::now();
  auto warm_until = start + std::chrono::milliseconds(200);
  auto until =
      warm_until + std::chrono::duration_cast<zmbench::Clock::duration>(std::chrono::duration<double>(seconds));
  for (;;) {
    auto t0 = zmbench::Clock::now();
    if (t0 >= until || rtt_us.size() >= max) break;
    if (!zmbench::WriteAll(fd, out.data(), size) || !zmbench::ReadExact(fd, in.data(), size)) zmbench::Die("echo");
    auto t1 = zmbench::Clock::now();
    if (t0 >= warm_until) rtt_us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
  }
  double secs = zmbench::Seconds(zmbench::Clock::now() - warm_until);
  close(fd);
  std::sort(rtt_us.begin(), rtt_us.end());
  double sum = 0;
  for (double v : rtt_us) sum += v;
  std::printf(
      "{\"size\": %zu, \"round_trips\": %zu, \"seconds\": %.3f, \"p50_us\": %.2f, \"p90_us\": %.2f, \"p99_us\": %.2f, "
      "\"p999_us\": %.2f, \"mean_us\": %.2f, \"max_us\": %.2f}\n",
      size, rtt_us.size(), secs, zmbench::Percentile(rtt_us, 50), zmbench::Percentile(rtt_us, 90),
      zmbench::Percentile(rtt_us, 99), zmbench::Percentile(rtt_us, 99.9),
      rtt_us.empty() ? 0.0 : sum / static_cast<double>(rtt_us.size()), rtt_us.empty() ? 0.0 : rtt_us.back());
  return rtt_us.empty() ? 1 : 0;
}
