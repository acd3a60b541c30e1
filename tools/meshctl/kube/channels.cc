#include "tools/meshctl/kube/channels.h"

namespace zm::meshctl::kube {

bool PortForwardDemux::OnMessage(std::string_view msg, std::string* data) {
  if (!error_.empty()) return false;
  if (msg.empty()) return true;  // no channel byte: nothing to deliver
  const uint8_t channel = static_cast<uint8_t>(msg[0]);
  if (channel > 1) {
    error_ = "port-forward: message on channel " + std::to_string(channel) + " (one port was asked: channels 0 and 1)";
    return false;
  }
  msg.remove_prefix(1);
  std::string& prefix = prefix_[channel];
  while (prefix.size() < 2 && !msg.empty()) {
    prefix += msg[0];
    msg.remove_prefix(1);
    if (prefix.size() == 2) {
      uint16_t got = static_cast<uint16_t>(static_cast<uint8_t>(prefix[0]) | (static_cast<uint8_t>(prefix[1]) << 8));
      if (got != port_) {
        error_ = "port-forward: channel " + std::to_string(channel) + " is for port " + std::to_string(got) +
                 ", expected " + std::to_string(port_);
        return false;
      }
    }
  }
  if (channel == 0) {
    data->append(msg);
  } else if (remote_error_.size() < 4096) {
    remote_error_.append(msg.substr(0, 4096 - remote_error_.size()));
  }
  return true;
}

std::string PortForwardDemux::DataMessage(std::string_view data) {
  std::string out(1, '\0');
  out.append(data);
  return out;
}

}  // namespace zm::meshctl::kube
