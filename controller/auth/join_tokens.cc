#include "controller/auth/join_tokens.h"

#include <openssl/mem.h>
#include <openssl/sha.h>
#include <yaml-cpp/yaml.h>

#include <cctype>
#include <ctime>
#include <set>

#include "common/tls/digest.h"
#include "controller/fs_util.h"

namespace zm::ctrl {
namespace {

constexpr const char* kExampleTime = "2027-01-03T00:00:00Z";

TokenDigest Digest(std::string_view token) {
  TokenDigest d;
  SHA256(reinterpret_cast<const uint8_t*>(token.data()), token.size(), d.data());
  return d;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool ParseDigest(const std::string& hex, TokenDigest* out) {
  if (hex.size() != 2 * out->size()) return false;
  for (size_t i = 0; i < out->size(); i++) {
    int hi = HexValue(hex[2 * i]), lo = HexValue(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    (*out)[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return true;
}

std::string Line(const YAML::Node& n) {
  return "line " + std::to_string(n.Mark().line + 1) + ": ";
}

// The hashed form: {sha256: HEX, expires: TIME}. Fills digest and info.expires_unix.
bool ParseEntry(const std::string& node, const YAML::Node& entry, TokenDigest* digest, JoinTokenInfo* info,
                std::string* error) {
  bool have_digest = false;
  for (const auto& kv : entry) {
    const std::string key = kv.first.IsScalar() ? kv.first.Scalar() : "";
    if (key != "sha256" && key != "expires") {
      *error =
          Line(kv.first) + "node '" + node + "': unknown key '" + key + "' (expected sha256 and optionally expires)";
      return false;
    }
    if (!kv.second.IsScalar()) {
      *error = Line(kv.first) + "node '" + node + "': " + key + " must be a string";
      return false;
    }
    const std::string& value = kv.second.Scalar();
    if (key == "sha256") {
      if (!ParseDigest(value, digest)) {
        *error = Line(kv.second) + "node '" + node +
                 "': sha256 must be 64 hex digits (the SHA-256 of the token, as meshctl join-token create prints it)";
        return false;
      }
      have_digest = true;
    } else {
      std::string why;
      if (!ParseRfc3339Utc(value, &info->expires_unix, &why)) {
        *error = Line(kv.second) + "node '" + node + "': expires: " + why;
        return false;
      }
    }
  }
  if (!have_digest) {
    *error = Line(entry) + "node '" + node + "': the entry has no sha256";
    return false;
  }
  return true;
}

}  // namespace

std::optional<JoinTokens> JoinTokens::Parse(const std::string& text, std::string* error) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    *error = "line " + std::to_string(e.mark.line + 1) + ": bad YAML: " + e.msg;
    return std::nullopt;
  }
  if (root.IsNull()) {
    // Most likely a file caught mid-write: refusing it keeps the tokens in force. Revoking all of them is explicit.
    *error = "the file has no entries (write '{}' to revoke every token)";
    return std::nullopt;
  }
  if (!root.IsMap()) {
    *error = "expected a YAML mapping 'node: {sha256: HEX, expires: TIME}' (or the legacy 'node: token')";
    return std::nullopt;
  }
  JoinTokens out;
  std::set<std::string> nodes;
  std::set<TokenDigest> digests;
  for (const auto& kv : root) {
    std::string where = Line(kv.first);
    if (!kv.first.IsScalar() || kv.first.Scalar().empty()) {
      *error = where + "expected a node name as the key";
      return std::nullopt;
    }
    const std::string& node = kv.first.Scalar();
    Entry e;
    e.info.node = node;
    if (kv.second.IsScalar()) {
      // Legacy plaintext: hashed here, never kept.
      const std::string& token = kv.second.Scalar();
      if (token.size() < kMinTokenLength) {
        *error =
            where + "token for node '" + node + "' is shorter than " + std::to_string(kMinTokenLength) + " characters";
        return std::nullopt;
      }
      e.digest = Digest(token);
      e.info.plaintext = true;
    } else if (kv.second.IsMap()) {
      if (!ParseEntry(node, kv.second, &e.digest, &e.info, error)) return std::nullopt;
    } else {
      *error = where + "node '" + node + "': expected {sha256: HEX, expires: TIME} (or a plaintext token)";
      return std::nullopt;
    }
    if (!nodes.insert(node).second) {
      *error = where + "node '" + node + "' is listed twice";
      return std::nullopt;
    }
    if (!digests.insert(e.digest).second) {
      *error = where + "token of node '" + node + "' is also used by another node";
      return std::nullopt;
    }
    out.entries_.push_back(std::move(e));
  }
  return out;
}

std::optional<JoinTokens> JoinTokens::Load(const std::string& path, std::string* error) {
  auto text = ReadFile(path, error, 1 << 20);
  if (!text) return std::nullopt;
  auto t = Parse(*text, error);
  OPENSSL_cleanse(text->data(), text->size());  // legacy entries hold plaintext tokens
  if (!t) *error = path + ": " + *error;
  return t;
}

JoinTokenMatch JoinTokens::Match(std::string_view token, int64_t now_unix) const {
  // Compare against every digest so timing reveals neither which entry matched nor where.
  TokenDigest d = Digest(token);
  const Entry* found = nullptr;
  for (const auto& e : entries_) {
    if (CRYPTO_memcmp(e.digest.data(), d.data(), d.size()) == 0) found = &e;
  }
  JoinTokenMatch m;
  if (!found) return m;
  m.node = found->info.node;
  m.expires_unix = found->info.expires_unix;
  bool expired = m.expires_unix != 0 && now_unix >= m.expires_unix;
  m.result = expired ? JoinTokenMatch::Result::kExpired : JoinTokenMatch::Result::kValid;
  return m;
}

std::vector<JoinTokenInfo> JoinTokens::Describe() const {
  std::vector<JoinTokenInfo> out;
  for (const auto& e : entries_) out.push_back(e.info);
  return out;
}

size_t JoinTokens::plaintext_count() const {
  size_t n = 0;
  for (const auto& e : entries_) n += e.info.plaintext;
  return n;
}

std::string JoinTokenSha256Hex(std::string_view token) {
  return tls::Sha256Hex(token);
}

bool ParseRfc3339Utc(const std::string& s, int64_t* unix_seconds, std::string* error) {
  auto bad = [&](const std::string& why) {
    *error = "'" + s + "' " + why + " (expected an RFC 3339 UTC time such as " + kExampleTime + ")";
    return false;
  };
  auto digits = [&](size_t pos, size_t n, int* out) {
    if (pos + n > s.size()) return false;
    int v = 0;
    for (size_t i = pos; i < pos + n; i++) {
      if (!std::isdigit(static_cast<unsigned char>(s[i]))) return false;
      v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
  };
  int year, mon, day, hour, min, sec;
  if (s.size() < 20 || !digits(0, 4, &year) || s[4] != '-' || !digits(5, 2, &mon) || s[7] != '-' ||
      !digits(8, 2, &day) || (s[10] != 'T' && s[10] != 't') || !digits(11, 2, &hour) || s[13] != ':' ||
      !digits(14, 2, &min) || s[16] != ':' || !digits(17, 2, &sec)) {
    return bad("is not a time");
  }
  size_t i = 19;
  if (s[i] == '.') {
    size_t start = ++i;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) i++;
    if (i == start) return bad("has no digits after the decimal point");
  }
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) return bad("is not in UTC: write it with a trailing Z");
  if (i + 1 != s.size() || (s[i] != 'Z' && s[i] != 'z')) return bad("is not a time");
  std::tm tm{};
  tm.tm_year = year - 1900;
  tm.tm_mon = mon - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = min;
  tm.tm_sec = sec;
  time_t t = timegm(&tm);
  // timegm normalizes (Feb 30 -> Mar 2): a date that does not survive the round trip does not exist.
  if (mon < 1 || mon > 12 || hour > 23 || min > 59 || sec > 59 || tm.tm_mday != day || tm.tm_mon != mon - 1) {
    return bad("is not a valid date and time");
  }
  if (t <= 0) return bad("is not after 1970");
  *unix_seconds = static_cast<int64_t>(t);
  return true;
}

std::string FormatRfc3339Utc(int64_t unix_seconds) {
  time_t t = static_cast<time_t>(unix_seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace zm::ctrl
