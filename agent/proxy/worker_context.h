// Per-worker state shared by every connection object owned by that worker thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <unordered_set>
#include <vector>

#include "agent/proxy/byte_queue.h"
#include "agent/proxy/event_loop.h"
#include "agent/proxy/options.h"
#include "agent/proxy/page_buffers.h"
#include "agent/proxy/peer_limit.h"
#include "agent/proxy/retry_policy.h"
#include "agent/proxy/trace_span.h"
#include "agent/state/cert_store.h"
#include "agent/state/mesh_snapshot.h"
#include "agent/traffic/balancer.h"
#include "agent/traffic/rate_limiter.h"

namespace zm::proxy {

class HbonePool;
class UpstreamPool;

// Anything the worker must tear down when the proxy stops.
class Closable {
 public:
  virtual ~Closable() = default;
  virtual void ForceClose() = 0;
  // The agent is draining (a restart or upgrade): take no new work, finish what is open.
  virtual void Drain() {}
};

struct WorkerContext {
  WorkerContext(const ProxyOptions& o, ProxyStats& s, agent::SnapshotHolder& snaps, agent::CertStore& c)
      : opts(o), stats(s), snapshots(snaps), certs(c) {}

  EventLoop loop;
  BlockPool blocks;
  PageBuffers buffers;  // TLS read-ahead and write batches, the decrypt scratch (ReadTls)
  const ProxyOptions& opts;
  ProxyStats& stats;
  agent::SnapshotHolder& snapshots;
  agent::CertStore& certs;
  HbonePool* pool = nullptr;
  traffic::Balancer* balancer = nullptr;    // shared by all workers (owned by NodeProxy)
  traffic::RateLimiter* limiter = nullptr;  // likewise
  PeerLimit* peers = nullptr;               // likewise; nullptr: no per-peer limit
  UpstreamPool* upstreams = nullptr;        // idle HTTP/1.1 upstream streams of this worker; nullptr: not shared
  ConnObserver* observer() const { return opts.observer.get(); }
  void ReportTlsFailure(TlsFailure why) const {
    if (opts.observer) opts.observer->OnTlsFailure(why);
  }
  HttpWorkerState http;   // HTTP retries (budget, backoff) and RequestMirror copies of this worker
  SpanIdSource span_ids;  // trace and span ids of this worker's requests (ProxyOptions::tracing)
  std::unordered_set<Closable*> live;
  // HBONE sessions and streams of this worker, plus connections handed to it (Worker::Accept) it has not taken yet:
  // the bulk work Accept balances the workers by. Written by this worker, read by the others.
  std::atomic<int> load{0};
};

}  // namespace zm::proxy
