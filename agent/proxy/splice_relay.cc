#include "agent/proxy/splice_relay.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "agent/proxy/socket_util.h"
#include "common/log.h"

namespace zm::proxy {
namespace {
constexpr uint32_t kEvents = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
constexpr int kRoundsPerTurn = 16;  // then yield to other connections of this worker
}  // namespace

void SpliceRelay::Start(WorkerContext& ctx, int downstream, int upstream, std::string what, ConnRecord rec,
                        ServiceConn svc) {
  new SpliceRelay(ctx, downstream, upstream, std::move(what), std::move(rec), std::move(svc));
}

SpliceRelay::SpliceRelay(WorkerContext& ctx, int down, int up, std::string what, ConnRecord rec, ServiceConn svc)
    : ctx_(ctx), fd_{down, up}, what_(std::move(what)), svc_(std::move(svc)) {
  ctx_.live.insert(this);
  // No flow: another object reports this connection (an HBONE stream whose destination handler fell back to bytes).
  if (rec.flow[0] != '\0') track_.Open(ctx_.observer(), std::move(rec));
  for (int i = 0; i < 2; ++i) {
    end_[i].relay = this;
    end_[i].idx = i;
    int p[2];
    if (pipe2(p, O_NONBLOCK | O_CLOEXEC) != 0) {
      Fail(0, "pipe2 failed");
      return;
    }
    dir_[i].pipe_r = p[0];
    dir_[i].pipe_w = p[1];
    int cap = fcntl(p[1], F_SETPIPE_SZ, static_cast<int>(ctx_.opts.pipe_size));
    if (cap <= 0) cap = fcntl(p[1], F_GETPIPE_SZ);
    pipe_cap_ = static_cast<size_t>(cap > 0 ? cap : 65536);
  }
  TuneStream(down);
  ctx_.loop.Add(down, kEvents, &end_[0]);
  ctx_.loop.Add(up, kEvents, &end_[1]);
  auto timeout = svc_.connect_timeout.count() > 0 ? svc_.connect_timeout : ctx_.opts.connect_timeout;
  timer_ = ctx_.loop.AddTimer(timeout, [this] {
    timer_ = 0;
    ProxyStats::Add(ctx_.stats.upstream_failures);
    if (!ConnectFailed("upstream connect timed out")) Fail(0, "upstream connect timed out");
  });
}

bool SpliceRelay::ConnectFailed(const char* why) {
  svc_.lease.Failed();
  if (!svc_.retry || done_ || fd_[0] < 0) return false;
  // Nothing was read from the downstream socket yet (Pump waits for the connect): hand it back untouched.
  int down = fd_[0];
  ctx_.loop.Remove(down);
  fd_[0] = -1;
  auto retry = std::move(svc_.retry);
  track_.SetError(std::string(why) + " (retried on another endpoint)");
  done_ = true;
  Finish();  // resets the upstream attempt only
  ctx_.loop.Post([retry = std::move(retry), down] { retry(down); });
  return true;
}

SpliceRelay::~SpliceRelay() {
  ctx_.loop.CancelTimer(timer_);
  ctx_.loop.CancelTimer(idle_timer_);
  ctx_.loop.Unready(&end_[0]);
  ctx_.loop.Unready(&end_[1]);
  ctx_.live.erase(this);
}

void SpliceRelay::ForceClose() {
  Fail(0, "proxy stopping");
}

void SpliceRelay::OnEvent(int idx, uint32_t ev) {
  if (done_) return;
  if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) readable_[idx] = true;
  if (ev & (EPOLLOUT | EPOLLHUP | EPOLLERR)) writable_[idx] = true;
  if (!connected_) {
    if (idx != 1 || !(ev & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
    int err = ConnectResult(fd_[1]);
    if (err != 0) {
      ProxyStats::Add(ctx_.stats.upstream_failures);
      if (!ConnectFailed(std::strerror(err))) Fail(0, std::strerror(err));
      return;
    }
    OnConnected();
  }
  Pump();
}

void SpliceRelay::OnConnected() {
  connected_ = true;
  svc_.lease.Connected();
  svc_.retry = nullptr;  // never after this point; also frees the snapshot the retry held
  if (svc_.idle_timeout.count() > 0) ArmIdle();
  ctx_.loop.CancelTimer(timer_);
  timer_ = 0;
}

void SpliceRelay::ArmIdle() {
  idle_timer_ = ctx_.loop.AddTimer(svc_.idle_timeout / kIdleChecks, [this] {
    idle_timer_ = 0;
    if (done_) return;
    if (active_) {
      active_ = false;
      quiet_checks_ = 0;
    } else if (++quiet_checks_ >= kIdleChecks) {
      Fail(0, "idle timeout");
      return;
    }
    ArmIdle();
  });
}

void SpliceRelay::Pump() {
  if (done_ || !connected_) return;
  for (int round = 0; round < kRoundsPerTurn; ++round) {
    bool progress = false;
    if (!PumpDir(0, &progress) || !PumpDir(1, &progress)) return;
    if (dir_[0].shut && dir_[1].shut) {
      Finish();
      return;
    }
    if (!progress) return;
  }
  ctx_.loop.MarkReady(&end_[0]);  // still busy: continue next turn
}

bool SpliceRelay::PumpDir(int from, bool* progress) {
  int to = 1 - from;
  Dir& d = dir_[from];
  if (!d.eof && readable_[from] && d.in_pipe < pipe_cap_) {
    ssize_t n = splice(fd_[from], nullptr, d.pipe_w, nullptr, pipe_cap_ - d.in_pipe, SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
    if (n > 0) {
      d.in_pipe += static_cast<size_t>(n);
      active_ = true;
      ProxyStats::Add(from == 0 ? ctx_.stats.bytes_out : ctx_.stats.bytes_in, static_cast<uint64_t>(n));
      if (from == 0) {
        track_.AddSent(static_cast<uint64_t>(n));
      } else {
        track_.AddReceived(static_cast<uint64_t>(n));
      }
      *progress = true;
    } else if (n == 0) {
      d.eof = true;
      *progress = true;
    } else if (errno == EAGAIN) {
      readable_[from] = false;  // (or the pipe is full by slots; a drain below re-arms reading)
    } else if (errno != EINTR) {
      Fail(errno, "read");
      return false;
    }
  }
  if (d.in_pipe > 0 && writable_[to]) {
    ssize_t n = splice(d.pipe_r, nullptr, fd_[to], nullptr, d.in_pipe, SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
    if (n > 0) {
      d.in_pipe -= static_cast<size_t>(n);
      if (!d.eof) readable_[from] = true;
      *progress = true;
    } else if (n < 0 && errno == EAGAIN) {
      writable_[to] = false;
    } else if (n < 0 && errno != EINTR) {
      Fail(errno, "write");
      return false;
    }
  }
  if (d.eof && d.in_pipe == 0 && !d.shut) {
    shutdown(fd_[to], SHUT_WR);
    d.shut = true;
    *progress = true;
  }
  return true;
}

// Any error tears down both sides with RST so neither peer mistakes a failure for a clean end of stream.
void SpliceRelay::Fail(int err, const char* why) {
  if (done_) return;
  done_ = true;
  // A connect that failed is worth an operator's attention (the source sees a reset it cannot explain); a reset of
  // an established flow is the peers' business.
  if (connected_) {
    log::Debug("relay reset", {{"flow", what_}, {"reason", why}, {"errno", err ? std::strerror(err) : ""}});
  } else {
    log::Info("upstream connect failed", {{"flow", what_}, {"reason", why}});
  }
  track_.SetError(err ? std::string(why) + ": " + std::strerror(err) : std::string(why));
  ProxyStats::Add(ctx_.stats.resets);
  Finish();
}

void SpliceRelay::Finish() {
  bool reset = done_;
  done_ = true;
  for (int i = 0; i < 2; ++i) {
    if (fd_[i] >= 0) {
      ctx_.loop.Remove(fd_[i]);
      if (reset) {
        ResetAndClose(fd_[i]);
      } else {
        close(fd_[i]);
      }
      fd_[i] = -1;
    }
    if (dir_[i].pipe_r >= 0) close(dir_[i].pipe_r);
    if (dir_[i].pipe_w >= 0) close(dir_[i].pipe_w);
    dir_[i].pipe_r = dir_[i].pipe_w = -1;
  }
  ProxyStats::Add(ctx_.stats.connections_closed);
  track_.Close();
  ctx_.loop.DeleteLater(this);
}

}  // namespace zm::proxy
