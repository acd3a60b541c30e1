#include "agent/metrics/access_log.h"

#include <cerrno>
#include <cstdio>
#include <ctime>
#include <functional>
#include <random>

#include "agent/proxy/trace_context.h"
#include "common/log.h"

namespace zm::metrics {
namespace {

// JSON string body. Bytes >= 0x80 become \u00XX: the line stays valid JSON whatever an error message carries.
void AppendEscaped(std::string* out, std::string_view s) {
  static const char kHex[] = "0123456789abcdef";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out->push_back('\\');
      out->push_back(static_cast<char>(c));
    } else if (c < 0x20 || c >= 0x80) {
      out->append("\\u00");
      out->push_back(kHex[c >> 4]);
      out->push_back(kHex[c & 0xf]);
    } else {
      out->push_back(static_cast<char>(c));
    }
  }
}

void Field(std::string* out, const char* key, std::string_view value) {
  out->append(",\"");
  out->append(key);
  out->append("\":\"");
  AppendEscaped(out, value);
  out->push_back('"');
}

void Number(std::string* out, const char* key, uint64_t v) {
  out->append(",\"");
  out->append(key);
  out->append("\":");
  out->append(std::to_string(v));
}

// "10.0.0.1:80", "[fd00::1]:80"; the address alone when there is no port (HBONE inbound without a forwarded port).
std::string Addr(const net::SockAddr& a) {
  return a.port ? a.ToString() : a.ip.ToString();
}

void PeerFields(std::string* out, const char* side, const proxy::Peer& p) {
  std::string k(side);
  Field(out, (k + ".addr").c_str(), Addr(p.addr));
  if (!p.workload.empty()) Field(out, (k + ".workload").c_str(), p.workload);
  if (!p.ns.empty()) Field(out, (k + ".namespace").c_str(), p.ns);
  if (!p.principal.empty()) Field(out, (k + ".identity").c_str(), p.principal);
}

}  // namespace

std::string FormatAccessLogLine(const proxy::ConnRecord& r, std::chrono::system_clock::time_point end,
                                std::chrono::steady_clock::duration duration) {
  std::string out;
  out.reserve(512);
  out.append("{\"time\":\"");
  out.append(zm::log::FormatTimestamp(end));
  out.append("\",\"msg\":\"access\"");
  Field(&out, "reporter", r.reporter == proxy::Reporter::kSource ? "source" : "destination");
  Field(&out, "flow", r.flow ? r.flow : "");
  PeerFields(&out, "src", r.source);
  PeerFields(&out, "dst", r.destination);
  Number(&out, "bytes_sent", r.sent);
  Number(&out, "bytes_received", r.received);
  char ms[32];
  std::snprintf(ms, sizeof(ms), "%.3f", std::chrono::duration<double, std::milli>(duration).count());
  out.append(",\"duration_ms\":");
  out.append(ms);
  Field(&out, "decision", r.decision == proxy::Decision::kDeny ? "deny" : "allow");
  if (r.decision == proxy::Decision::kDeny) Field(&out, "policy", r.policy);
  if (!r.error.empty()) Field(&out, "error", r.error);
  if (!r.traceparent.empty()) Field(&out, "traceparent", r.traceparent);
  if (!r.baggage.empty()) Field(&out, "baggage", r.baggage);
  out.append("}\n");
  return out;
}

std::string FormatRequestLogLine(const proxy::RequestRecord& r, std::chrono::system_clock::time_point end) {
  constexpr size_t kMaxPath = 1024;
  std::string out;
  out.reserve(640);
  out.append("{\"time\":\"");
  out.append(zm::log::FormatTimestamp(end));
  out.append("\",\"msg\":\"request\"");
  Field(&out, "reporter", r.reporter == proxy::Reporter::kSource ? "source" : "destination");
  PeerFields(&out, "src", r.source);
  PeerFields(&out, "dst", r.destination);
  if (!r.destination_service.empty()) Field(&out, "dst.service", r.destination_service);
  if (!r.route.empty()) Field(&out, "route", r.route);
  Field(&out, "method", r.method);
  Field(&out, "path", std::string_view(r.path).substr(0, kMaxPath));
  Number(&out, "status", static_cast<uint64_t>(r.status));
  if (!r.grpc_status.empty()) Field(&out, "grpc_status", r.grpc_status);
  char ms[32];
  std::snprintf(ms, sizeof(ms), "%.3f", std::chrono::duration<double, std::milli>(r.duration).count());
  out.append(",\"duration_ms\":");
  out.append(ms);
  Number(&out, "request_bytes", r.request_bytes);
  Number(&out, "response_bytes", r.response_bytes);
  Number(&out, "attempts", r.attempts);
  if (!r.destination.addr.ip.empty()) Field(&out, "upstream", Addr(r.destination.addr));
  if (proxy::ValidTraceparent(r.traceparent)) Field(&out, "trace_id", std::string_view(r.traceparent).substr(3, 32));
  if (!r.error.empty()) Field(&out, "error", r.error);
  if (!r.policy.empty()) {
    Field(&out, "decision", "deny");
    Field(&out, "policy", r.policy);
  }
  if (!r.fault.empty()) {  // a route's ServicePolicy answered (ratelimited, abort) or delayed it
    Field(&out, "fault", r.fault);
    Field(&out, "fault_policy", r.fault_policy);
  }
  out.append("}\n");
  return out;
}

AccessLog::AccessLog(AccessLogOptions opts) : opts_(std::move(opts)) {
  if (opts_.enabled) flusher_ = std::thread([this] { Run(); });
}

AccessLog::~AccessLog() {
  {
    std::lock_guard l(run_mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (flusher_.joinable()) flusher_.join();
  Flush();
}

bool AccessLog::Sampled() {
  if (opts_.sample_rate >= 1.0) return true;
  if (opts_.sample_rate <= 0.0) return false;
  thread_local std::minstd_rand rng(static_cast<unsigned>(std::hash<std::thread::id>{}(std::this_thread::get_id())));
  return std::uniform_real_distribution<double>(0.0, 1.0)(rng) < opts_.sample_rate;
}

void AccessLog::Record(const proxy::ConnRecord& r) {
  if (!opts_.enabled) return;
  bool always = r.decision == proxy::Decision::kDeny || !r.error.empty();
  if (!always && !Sampled()) {
    sampled_out_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  auto duration = r.start.time_since_epoch().count() ? std::chrono::steady_clock::now() - r.start
                                                     : std::chrono::steady_clock::duration::zero();
  Append(FormatAccessLogLine(r, std::chrono::system_clock::now(), duration));
}

void AccessLog::RecordRequest(const proxy::RequestRecord& r) {
  if (!opts_.enabled) return;
  // A failed gRPC call is a failure even inside a 200.
  const bool always = r.status == 0 || r.status >= 500 || !r.error.empty() || !r.policy.empty() ||
                      (!r.grpc_status.empty() && r.grpc_status != "0");
  if (!always && !Sampled()) {
    sampled_out_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  Append(FormatRequestLogLine(r, std::chrono::system_clock::now()));
}

void AccessLog::Append(const std::string& line) {
  thread_local size_t shard_index = std::hash<std::thread::id>{}(std::this_thread::get_id()) % kShards;
  Shard& s = shards_[shard_index];
  std::lock_guard l(s.mu);
  if (s.buf.size() + line.size() > opts_.max_buffered) {
    dropped_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  s.buf += line;
  ++s.lines;
}

void AccessLog::Flush() {
  // Held across swap and write: when Flush() returns, lines another flusher had already taken are written too.
  std::lock_guard l(write_mu_);
  for (Shard& s : shards_) {
    std::string data;
    uint64_t lines;
    {
      std::lock_guard l(s.mu);
      data.swap(s.buf);
      lines = s.lines;
      s.lines = 0;
    }
    if (!data.empty()) WriteOut(data, lines);
  }
}

void AccessLog::WriteOut(const std::string& data, uint64_t lines) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = write(opts_.fd, data.data() + off, data.size() - off);
    if (n > 0) {
      off += static_cast<size_t>(n);
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      break;  // closed or broken output: never block the agent on it
    }
  }
  if (off == data.size()) {
    written_.fetch_add(lines, std::memory_order_relaxed);
    return;
  }
  // Count what did not make it, by whole lines.
  uint64_t lost = 0;
  for (size_t i = off; i < data.size(); ++i) lost += data[i] == '\n';
  written_.fetch_add(lines - lost, std::memory_order_relaxed);
  dropped_.fetch_add(lost, std::memory_order_relaxed);
}

void AccessLog::Run() {
  std::unique_lock l(run_mu_);
  while (!stop_) {
    cv_.wait_for(l, opts_.flush_interval, [this] { return stop_; });
    l.unlock();
    Flush();
    l.lock();
  }
}

}  // namespace zm::metrics
