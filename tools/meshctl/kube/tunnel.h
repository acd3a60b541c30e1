// One port-forward stream to a pod's port through the Kubernetes API server: a WebSocket upgrade of
// GET /api/v1/namespaces/NS/pods/POD/portforward?ports=PORT (subprotocol v4.channel.k8s.io, channels.h), authenticated
// with the kubeconfig's own credentials (client certificate, bearer token or token file). kube-apiserver proxies
// it to the kubelet, which proxies it to the runtime's streaming server; the runtime dials PORT on the pod's loopback.
// One tunnel is one TCP connection to the pod. The transport is libcurl's CONNECT_ONLY connection (k8s::Http), so
// TLS trust and client certificates are handled exactly as for every other API request. Not thread-safe: one relay
// thread drives it (non-blocking Read/Write, poll on fd()).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "controller/k8s/http.h"
#include "tools/meshctl/kube/channels.h"
#include "tools/meshctl/kube/websocket.h"

namespace zm::meshctl::kube {

struct PodPort {
  std::string ns, pod;
  uint16_t port = 0;
};

class Tunnel {
 public:
  // nullptr with *error: the API server unreachable, the upgrade refused (401, 403 with the permission it needs,
  // 404), or a bad handshake.
  static std::unique_ptr<Tunnel> Open(const k8s::Http& api, const PodPort& target, int timeout_seconds,
                                      std::string* error);
  ~Tunnel();

  int fd() const { return fd_; }
  enum class State { kOpen, kClosed, kFailed };
  // Reads what the connection has now (answers pings): bytes from the pod are appended to *data. kClosed once the
  // stream ended cleanly; kFailed with error() (the runtime's error-channel text, or a protocol/transport error).
  State Read(std::string* data);
  // Queues bytes for the pod and sends what the connection takes now; false with error() on a send failure.
  bool Write(std::string_view data);
  bool Flush();
  bool pending() const { return out_pos_ < out_.size(); }
  void Close();  // a close frame, best effort
  const std::string& error() const { return error_; }

 private:
  Tunnel(k8s::RawConnection conn, int fd, uint16_t port) : conn_(std::move(conn)), fd_(fd), demux_(port) {}
  bool Fail(std::string why);

  k8s::RawConnection conn_;
  int fd_;
  ws::Reader reader_{false};
  PortForwardDemux demux_;
  std::string out_;
  size_t out_pos_ = 0;
  bool closed_ = false;
  std::string error_;
};

}  // namespace zm::meshctl::kube
