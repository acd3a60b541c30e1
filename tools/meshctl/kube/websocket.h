// WebSocket framing (RFC 6455) for meshctl's port-forward through the Kubernetes API server. Written here because no
// maintained WebSocket library links against this project's TLS: Debian's libwebsockets is built on OpenSSL, and
// libcurl 7.88 has no WebSocket API; the frames are small enough to own (the transport is libcurl's CONNECT_ONLY
// connection, see tunnel.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>

namespace zm::meshctl::kube::ws {

enum Opcode : uint8_t { kContinuation = 0, kText = 1, kBinary = 2, kClose = 8, kPing = 9, kPong = 10 };

// One frame. A client masks every frame with a 4-byte key (RFC 6455 5.3); a server passes mask = nullptr.
std::string EncodeFrame(Opcode op, std::string_view payload, bool fin, const uint8_t* mask);
// A client frame with a fresh random mask.
std::string ClientFrame(Opcode op, std::string_view payload);

// Sec-WebSocket-Key: 16 random bytes, base64. AcceptValue: the Sec-WebSocket-Accept a server answers for `key`.
std::string HandshakeKey();
std::string AcceptValue(const std::string& key);

// Close frame payload: 2-byte status code (network order) + UTF-8 reason.
std::string ClosePayload(uint16_t code, std::string_view reason);
// false if the payload is 1 byte (malformed); an empty payload gives code 1005 ("no status").
bool ParseClose(std::string_view payload, uint16_t* code, std::string* reason);

struct Message {
  Opcode op = kBinary;  // kText/kBinary (reassembled), or a control frame (kClose/kPing/kPong)
  std::string payload;
};

// Reads one direction's frames incrementally: reassembles fragmented data messages and hands out control frames
// (allowed between fragments) as they come. Any violation (reserved bits or opcodes, a fragmented or oversized
// control frame, a continuation without a start, a new message inside a fragmented one, the wrong masking for the
// direction, a message over `max_message`) ends the stream: Feed returns false and error() says which.
class Reader {
 public:
  // `masked`: frames must carry a mask (a server reading a client); a client reading a server expects none.
  explicit Reader(bool masked, size_t max_message = 16u << 20) : masked_(masked), max_message_(max_message) {}

  bool Feed(std::string_view bytes);
  bool Next(Message* out);  // the next complete message, if any
  const std::string& error() const { return error_; }

 private:
  bool Parse();  // moves complete frames from buf_ to the ready queue

  bool masked_;
  size_t max_message_;
  std::string buf_;
  bool in_fragment_ = false;
  Opcode fragment_op_ = kBinary;
  std::string fragment_;
  std::deque<Message> ready_;
  std::string error_;
};

}  // namespace zm::meshctl::kube::ws
