// Plaintext relay between two TCP sockets using splice() through pipes (zero-copy, matches direct throughput):
// used for passthrough, same-node delivery and PERMISSIVE plaintext. Waits for the upstream connect (with timeout),
// propagates FIN per direction and RST both ways; backpressure comes from the pipe filling up.
#pragma once

#include <cstdint>
#include <string>

#include "agent/proxy/conn_observer.h"
#include "agent/proxy/service_conn.h"
#include "agent/proxy/worker_context.h"

namespace zm::proxy {

class SpliceRelay : public Closable {
 public:
  // Takes ownership of both fds; |upstream| may still be connecting. Deletes itself when done. |rec| describes the
  // connection for the observer (downstream is the source side). |svc|: see service_conn.h.
  static void Start(WorkerContext& ctx, int downstream, int upstream, std::string what, ConnRecord rec = {},
                    ServiceConn svc = {});
  void ForceClose() override;
  ~SpliceRelay() override;  // via EventLoop::DeleteLater only

 private:
  struct End : IoHandler {
    SpliceRelay* relay;
    int idx;
    void OnIo(uint32_t ev) override { relay->OnEvent(idx, ev); }
    void OnReady() override { relay->Pump(); }
  };
  struct Dir {
    int pipe_r = -1, pipe_w = -1;
    size_t in_pipe = 0;
    bool eof = false;   // read side saw FIN
    bool shut = false;  // FIN forwarded
  };

  SpliceRelay(WorkerContext& ctx, int down, int up, std::string what, ConnRecord rec, ServiceConn svc);
  void OnEvent(int idx, uint32_t ev);
  void OnConnected();
  // The upstream connect failed: retry through svc_.retry when allowed (true), else the caller fails the relay.
  bool ConnectFailed(const char* why);
  void ArmIdle();
  void Pump();
  // Moves bytes fd[from] -> fd[1-from]; returns false when the relay was torn down.
  bool PumpDir(int from, bool* progress);
  void Fail(int reset_side_errno_from, const char* why);
  void Finish();

  WorkerContext& ctx_;
  int fd_[2];  // 0 downstream (client), 1 upstream
  End end_[2];
  Dir dir_[2];  // dir_[i]: bytes read from fd_[i]
  bool readable_[2] = {false, false};
  bool writable_[2] = {false, false};
  bool connected_ = false;
  bool done_ = false;
  size_t pipe_cap_ = 0;
  uint64_t timer_ = 0;
  std::string what_;
  ConnTracker track_;
  ServiceConn svc_;
  bool active_ = false;  // bytes moved since the last idle check
  int quiet_checks_ = 0;
  uint64_t idle_timer_ = 0;
};

}  // namespace zm::proxy
