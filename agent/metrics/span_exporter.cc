#include "agent/metrics/span_exporter.h"

#include "common/log.h"

namespace zm::metrics {

SpanExporter::SpanExporter(SpanExporterOptions opts, Sender send) : opts_(std::move(opts)), send_(std::move(send)) {
  thread_ = std::thread([this] { Run(); });
}

SpanExporter::~SpanExporter() {
  Stop();
}

bool SpanExporter::Add(otlp::Span span) {
  bool wake = false;
  {
    std::lock_guard lock(mu_);
    if (stopping_ || queue_.size() >= opts_.max_queue) {
      dropped_.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    queue_.push_back(std::move(span));
    wake = queue_.size() >= opts_.max_batch;
  }
  if (wake) cv_.notify_one();
  return true;
}

void SpanExporter::Stop() {
  {
    std::lock_guard lock(mu_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
  }
  cv_.notify_one();
  if (thread_.joinable()) thread_.join();
}

void SpanExporter::Run() {
  std::vector<otlp::Span> batch;
  auto next_flush = std::chrono::steady_clock::now() + opts_.flush_interval;
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait_until(lock, next_flush, [&] { return stopping_ || queue_.size() >= opts_.max_batch; });
    const bool stopping = stopping_;
    // Take at most one batch per wake-up; the rest stays queued (and bounded) for the next round.
    while (!queue_.empty() && batch.size() < opts_.max_batch) {
      batch.push_back(std::move(queue_.front()));
      queue_.pop_front();
    }
    const bool more = !queue_.empty();
    if (!batch.empty()) {
      lock.unlock();  // the network is never touched under the lock
      SendBatch(&batch);
      lock.lock();
    }
    if (stopping) {  // one last batch only: a collector that is down must not hold the agent's exit for long
      dropped_.fetch_add(queue_.size(), std::memory_order_relaxed);
      queue_.clear();
      return;
    }
    if (!more) next_flush = std::chrono::steady_clock::now() + opts_.flush_interval;
  }
}

void SpanExporter::SendBatch(std::vector<otlp::Span>* batch) {
  const size_t n = batch->size();
  otlp::ExportTraceServiceRequest req = MakeExportRequest(opts_.node, batch);
  std::string error;
  batches_.fetch_add(1, std::memory_order_relaxed);
  if (send_(req, &error)) {
    exported_.fetch_add(n, std::memory_order_relaxed);
    return;
  }
  failed_.fetch_add(n, std::memory_order_relaxed);
  auto now = std::chrono::steady_clock::now();
  if (now - last_error_log_ >= std::chrono::seconds(30)) {
    last_error_log_ = now;
    log::Warn("span export failed", {{"error", error}, {"spans", static_cast<int64_t>(n)}});
  }
}

}  // namespace zm::metrics
