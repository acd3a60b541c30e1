#include "tools/meshctl/kube/websocket.h"

#include <openssl/base64.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

namespace zm::meshctl::kube::ws {
namespace {

constexpr const char* kGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";  // RFC 6455 section 1.3

std::string Base64(const uint8_t* data, size_t n) {
  std::string out(4 * ((n + 2) / 3) + 1, '\0');
  size_t len = EVP_EncodeBlock(reinterpret_cast<uint8_t*>(out.data()), data, n);
  out.resize(len);
  return out;
}

bool IsControl(uint8_t op) {
  return op >= 8;
}

}  // namespace

std::string EncodeFrame(Opcode op, std::string_view payload, bool fin, const uint8_t* mask) {
  std::string out;
  out.reserve(payload.size() + 14);
  out += static_cast<char>((fin ? 0x80 : 0) | op);
  const uint8_t mask_bit = mask ? 0x80 : 0;
  if (payload.size() < 126) {
    out += static_cast<char>(mask_bit | payload.size());
  } else if (payload.size() <= 0xffff) {
    out += static_cast<char>(mask_bit | 126);
    out += static_cast<char>(payload.size() >> 8);
    out += static_cast<char>(payload.size() & 0xff);
  } else {
    out += static_cast<char>(mask_bit | 127);
    for (int shift = 56; shift >= 0; shift -= 8) out += static_cast<char>((uint64_t{payload.size()} >> shift) & 0xff);
  }
  if (!mask) {
    out.append(payload);
    return out;
  }
  out.append(reinterpret_cast<const char*>(mask), 4);
  size_t start = out.size();
  out.append(payload);
  for (size_t i = 0; i < payload.size(); i++) out[start + i] = static_cast<char>(out[start + i] ^ mask[i & 3]);
  return out;
}

std::string ClientFrame(Opcode op, std::string_view payload) {
  uint8_t mask[4];
  RAND_bytes(mask, sizeof(mask));
  return EncodeFrame(op, payload, true, mask);
}

std::string HandshakeKey() {
  uint8_t nonce[16];
  RAND_bytes(nonce, sizeof(nonce));
  return Base64(nonce, sizeof(nonce));
}

std::string AcceptValue(const std::string& key) {
  std::string in = key + kGuid;
  uint8_t digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const uint8_t*>(in.data()), in.size(), digest);
  return Base64(digest, sizeof(digest));
}

std::string ClosePayload(uint16_t code, std::string_view reason) {
  std::string out;
  out += static_cast<char>(code >> 8);
  out += static_cast<char>(code & 0xff);
  out.append(reason.substr(0, 123));  // a control frame carries at most 125 bytes
  return out;
}

bool ParseClose(std::string_view payload, uint16_t* code, std::string* reason) {
  if (payload.empty()) {
    *code = 1005;
    reason->clear();
    return true;
  }
  if (payload.size() < 2) return false;
  *code = static_cast<uint16_t>((static_cast<uint8_t>(payload[0]) << 8) | static_cast<uint8_t>(payload[1]));
  *reason = std::string(payload.substr(2));
  return true;
}

bool Reader::Feed(std::string_view bytes) {
  if (!error_.empty()) return false;
  buf_.append(bytes);
  return Parse();
}

bool Reader::Next(Message* out) {
  if (ready_.empty()) return false;
  *out = std::move(ready_.front());
  ready_.pop_front();
  return true;
}

bool Reader::Parse() {
  auto fail = [this](std::string why) {
    error_ = "websocket: " + std::move(why);
    return false;
  };
  while (true) {
    if (buf_.size() < 2) return true;
    const auto* b = reinterpret_cast<const uint8_t*>(buf_.data());
    const bool fin = b[0] & 0x80;
    const uint8_t op = b[0] & 0x0f;
    if (b[0] & 0x70) return fail("reserved bits set (no extension was negotiated)");
    if (op != kContinuation && op != kText && op != kBinary && op != kClose && op != kPing && op != kPong) {
      return fail("reserved opcode " + std::to_string(op));
    }
    const bool has_mask = b[1] & 0x80;
    if (has_mask != masked_) return fail(masked_ ? "unmasked frame from a client" : "masked frame from the server");
    uint64_t len = b[1] & 0x7f;
    size_t header = 2;
    if (len == 126) {
      if (buf_.size() < 4) return true;
      len = (uint64_t{b[2]} << 8) | b[3];
      header = 4;
    } else if (len == 127) {
      if (buf_.size() < 10) return true;
      len = 0;
      for (int i = 0; i < 8; i++) len = (len << 8) | b[2 + i];
      if (len >> 63) return fail("64-bit length with the most significant bit set");
      header = 10;
    }
    if (IsControl(op) && (!fin || len > 125)) return fail("control frame fragmented or longer than 125 bytes");
    if (len > max_message_ || (!IsControl(op) && fragment_.size() + len > max_message_)) {
      return fail("message larger than " + std::to_string(max_message_) + " bytes");
    }
    const size_t mask_at = header;
    if (has_mask) header += 4;
    if (buf_.size() < header + len) return true;
    std::string payload = buf_.substr(header, len);
    if (has_mask) {
      for (size_t i = 0; i < payload.size(); i++) payload[i] = static_cast<char>(payload[i] ^ b[mask_at + (i & 3)]);
    }
    buf_.erase(0, header + len);
    if (IsControl(op)) {
      ready_.push_back({static_cast<Opcode>(op), std::move(payload)});
      continue;
    }
    if (op == kContinuation) {
      if (!in_fragment_) return fail("continuation frame without a message to continue");
      fragment_ += payload;
    } else {
      if (in_fragment_) return fail("new data frame inside a fragmented message");
      fragment_op_ = static_cast<Opcode>(op);
      fragment_ = std::move(payload);
    }
    in_fragment_ = !fin;
    if (fin) {
      ready_.push_back({fragment_op_, std::move(fragment_)});
      fragment_.clear();
    }
  }
}

}  // namespace zm::meshctl::kube::ws
