// Sends the proxies' spans to an OTLP receiver without ever making a proxy worker wait: Add() takes the span into a
// bounded queue under a short lock (a full queue drops it and counts the drop), and the exporter's own thread sends
// batches of up to max_batch spans whenever that many are waiting or flush_interval has passed since the last send.
// A failed send drops its batch (counted; logged at most every 30 s): a collector that is down costs nothing else.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "agent/metrics/span_encode.h"

namespace zm::metrics {

struct SpanExporterOptions {
  std::string node;  // resource attribute k8s.node.name
  size_t max_queue = 4096;
  size_t max_batch = 512;
  std::chrono::milliseconds flush_interval{1000};
};

class SpanExporter {
 public:
  // Sends one request; false (with *error) when it failed. Called on the exporter's thread only.
  using Sender = std::function<bool(const otlp::ExportTraceServiceRequest&, std::string* error)>;

  SpanExporter(SpanExporterOptions opts, Sender send);
  ~SpanExporter();  // Stop()
  SpanExporter(const SpanExporter&) = delete;
  SpanExporter& operator=(const SpanExporter&) = delete;

  // Any thread. False when the queue was full (the span is dropped and counted).
  bool Add(otlp::Span span);
  // Sends one last batch of what is queued (the rest is dropped and counted), then ends the thread. Idempotent.
  void Stop();

  uint64_t exported() const { return exported_.load(std::memory_order_relaxed); }
  uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }  // queue full
  uint64_t failed() const { return failed_.load(std::memory_order_relaxed); }    // spans of failed sends
  uint64_t batches() const { return batches_.load(std::memory_order_relaxed); }

 private:
  void Run();
  void SendBatch(std::vector<otlp::Span>* batch);

  const SpanExporterOptions opts_;
  Sender send_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<otlp::Span> queue_;
  bool stopping_ = false;
  std::atomic<uint64_t> exported_{0}, dropped_{0}, failed_{0}, batches_{0};
  std::chrono::steady_clock::time_point last_error_log_{};
  std::thread thread_;
};

// The Sender for an OTLP/gRPC receiver: agent/metrics/otlp_grpc_sender.h.

}  // namespace zm::metrics
