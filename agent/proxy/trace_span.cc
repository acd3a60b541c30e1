#include "agent/proxy/trace_span.h"

#include <cmath>

#include "agent/proxy/trace_context.h"

namespace zm::proxy {
namespace {

void AppendHex(std::string* out, uint64_t v) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (int shift = 60; shift >= 0; shift -= 4) out->push_back(kHex[(v >> shift) & 0xf]);
}

uint8_t HexByte(std::string_view s) {
  auto nibble = [](char c) { return static_cast<uint8_t>(c <= '9' ? c - '0' : c - 'a' + 10); };
  return static_cast<uint8_t>(nibble(s[0]) << 4 | nibble(s[1]));
}

}  // namespace

SpanIdSource::SpanIdSource() {
  std::random_device rd;
  std::seed_seq seq{rd(), rd(), rd(), rd()};
  rng_.seed(seq);
}

std::string SpanIdSource::SpanId() {
  uint64_t v = 0;
  while (v == 0) v = rng_();
  std::string out;
  out.reserve(16);
  AppendHex(&out, v);
  return out;
}

std::string SpanIdSource::TraceId() {
  uint64_t hi = 0, lo = 0;
  while (hi == 0 && lo == 0) {
    hi = rng_();
    lo = rng_();
  }
  std::string out;
  out.reserve(32);
  AppendHex(&out, hi);
  AppendHex(&out, lo);
  return out;
}

bool SpanIdSource::Sample(uint32_t ppm) {
  if (ppm >= 1000000) return true;
  if (ppm == 0) return false;
  return rng_() % 1000000 < ppm;
}

uint32_t SamplingPpm(double percentage) {
  if (!(percentage > 0)) return 0;  // NaN too
  if (percentage >= 100) return 1000000;
  return static_cast<uint32_t>(std::lround(percentage * 10000));
}

SpanContext ChildSpan(std::string_view incoming, uint32_t ppm, SpanIdSource& ids) {
  SpanContext s;
  if (ValidTraceparent(incoming)) {
    s.trace_id = std::string(incoming.substr(3, 32));
    s.parent_id = std::string(incoming.substr(36, 16));
    // Only the sampled bit is ours to pass on: other bits of a future version are not defined for version 00.
    s.flags = HexByte(incoming.substr(53, 2)) & 1;
  } else {
    s.trace_id = ids.TraceId();
    s.flags = ids.Sample(ppm) ? 1 : 0;
  }
  s.span_id = ids.SpanId();
  return s;
}

std::string ToTraceparent(const SpanContext& s) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "00-";
  out.reserve(55);
  out += s.trace_id;
  out += '-';
  out += s.span_id;
  out += '-';
  out.push_back(kHex[s.flags >> 4]);
  out.push_back(kHex[s.flags & 0xf]);
  return out;
}

}  // namespace zm::proxy
