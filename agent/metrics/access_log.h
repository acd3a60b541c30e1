// Access log: one JSON line per proxied connection when it ends, on stdout (or any fd), e.g.
//   {"time":"2026-11-26T12:00:00.123Z","msg":"access","reporter":"source","flow":"hbone-outbound",
//    "src.addr":"10.244.1.11:40312","src.workload":"client","src.namespace":"default",
//    "src.identity":"spiffe://cluster.local/ns/default/sa/client","dst.addr":"10.244.2.11:8080",...,
//    "bytes_sent":1048576,"bytes_received":65,"duration_ms":12.5,"decision":"allow"}
// Denials and failed connections are always logged; clean ones are sampled at |sample_rate|.
// Worker threads format their line and append it to one of a few sharded buffers (a short per-shard lock, rarely
// contended); a flusher thread writes the buffers out. Lines are dropped (and counted) when the output cannot keep up.
#pragma once

#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

#include "agent/proxy/conn_observer.h"
#include "agent/proxy/request_record.h"

namespace zm::metrics {

struct AccessLogOptions {
  bool enabled = true;
  double sample_rate = 1.0;  // of clean connections, 0..1
  int fd = STDOUT_FILENO;
  std::chrono::milliseconds flush_interval{200};
  size_t max_buffered = 4 << 20;  // bytes per shard before lines are dropped
};

// One line, newline-terminated. |end| is the wall-clock time the connection ended.
std::string FormatAccessLogLine(const proxy::ConnRecord& r, std::chrono::system_clock::time_point end,
                                std::chrono::steady_clock::duration duration);
// One line per HTTP request of the L7 path, e.g.
//   {"time":"...","msg":"request","reporter":"source","src.addr":"10.244.1.11:40312","src.workload":"client",...,
//    "dst.addr":"10.244.2.11:8080","dst.workload":"web-v2",...,"dst.service":"shop/web-v2","route":"shop/canary#0",
//    "method":"GET","path":"/api/items?x=1","status":200,"duration_ms":1.25,"request_bytes":78,
//    "response_bytes":112,"attempts":1,"upstream":"10.244.2.11:8080","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736"}
// The path is cut at 1024 bytes; trace_id is the traceparent's when the request carried a valid one; attempts counts
// the tries (1 + HTTPRoute retries; "upstream" is the last try's).
std::string FormatRequestLogLine(const proxy::RequestRecord& r, std::chrono::system_clock::time_point end);

class AccessLog {
 public:
  explicit AccessLog(AccessLogOptions opts);
  ~AccessLog();  // flushes
  AccessLog(const AccessLog&) = delete;
  AccessLog& operator=(const AccessLog&) = delete;

  void Record(const proxy::ConnRecord& r);  // any thread
  // Failed requests (no response, 5xx) and denied ones are always logged; the others are sampled at |sample_rate|.
  void RecordRequest(const proxy::RequestRecord& r);
  void Flush();  // writes everything buffered so far

  uint64_t written() const { return written_.load(std::memory_order_relaxed); }
  uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }
  uint64_t sampled_out() const { return sampled_out_.load(std::memory_order_relaxed); }

 private:
  static constexpr size_t kShards = 8;
  struct alignas(64) Shard {
    std::mutex mu;
    std::string buf;
    uint64_t lines = 0;
  };
  bool Sampled();
  void Append(const std::string& line);
  void Run();
  void WriteOut(const std::string& data, uint64_t lines);  // write_mu_ held

  const AccessLogOptions opts_;
  std::array<Shard, kShards> shards_;
  std::mutex write_mu_;  // one flush at a time: keeps lines whole on pipes, and Flush() complete
  std::mutex run_mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::atomic<uint64_t> written_{0}, dropped_{0}, sampled_out_{0};
  std::thread flusher_;
};

}  // namespace zm::metrics
