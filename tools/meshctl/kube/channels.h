// The kubelet's WebSocket port-forward protocol, as kube-apiserver passes it through to the kubelet and the container
// runtime's streaming server (k8s.io/kubelet/pkg/cri/streaming/portforward/websocket.go, subprotocol
// v4.channel.k8s.io, binary): every message starts with a channel byte; port i of ?ports= has the data channel 2i
// and the error channel 2i+1; the first two bytes the server sends on each channel are that port, little-endian.
// The client writes [0] + bytes on the data channel and never the port. meshctl forwards one port, so channels 0/1.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace zm::meshctl::kube {

inline constexpr const char* kPortForwardProtocol = "v4.channel.k8s.io";

class PortForwardDemux {
 public:
  explicit PortForwardDemux(uint16_t port) : port_(port) {}

  // One binary message from the server: channel-0 bytes are appended to *data, channel-1 text to remote_error().
  // false with error() when the message breaks the protocol (unknown channel, wrong port prefix).
  bool OnMessage(std::string_view msg, std::string* data);
  // What the runtime reported on the error channel (e.g. "... connect: connection refused"); "" if nothing.
  const std::string& remote_error() const { return remote_error_; }
  const std::string& error() const { return error_; }

  static std::string DataMessage(std::string_view data);  // client -> server, channel 0

 private:
  uint16_t port_;
  std::string prefix_[2];  // the port bytes seen so far, per channel (they may span messages)
  std::string remote_error_;
  std::string error_;
};

}  // namespace zm::meshctl::kube
