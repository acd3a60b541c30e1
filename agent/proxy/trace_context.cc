#include "agent/proxy/trace_context.h"

namespace zm::proxy {
namespace {

bool LowerHex(std::string_view s) {
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

bool AllZero(std::string_view s) {
  return s.find_first_not_of('0') == std::string_view::npos;
}

}  // namespace

bool ValidTraceparent(std::string_view v) {
  if (v.size() < 55 || v[2] != '-' || v[35] != '-' || v[52] != '-') return false;
  std::string_view version = v.substr(0, 2), trace = v.substr(3, 32), parent = v.substr(36, 16),
                   flags = v.substr(53, 2);
  if (!LowerHex(version) || !LowerHex(trace) || !LowerHex(parent) || !LowerHex(flags)) return false;
  if (version == "ff" || AllZero(trace) || AllZero(parent)) return false;
  if (version == "00") return v.size() == 55;
  return v.size() == 55 || v[55] == '-';
}

bool AppendBaggage(std::string* into, std::string_view line) {
  for (char c : line) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return false;
  }
  if (line.empty()) return true;
  size_t need = line.size() + (into->empty() ? 0 : 1);
  if (into->size() + need > kMaxBaggageBytes) return false;
  if (!into->empty()) into->push_back(',');
  into->append(line);
  return true;
}

}  // namespace zm::proxy
