// Universal-mode agent authentication: per-node join tokens. The node is whatever the token belongs to.
//
// The join-token file is a YAML mapping from node name to that node's entry:
//
//   node1: {sha256: 3f5a...c9 (64 hex digits: SHA-256 of the token), expires: "2027-01-03T00:00:00Z"}
//   node2: {sha256: 9b1e...07}          # no expires: never expires
//   node3: plaintext-token-of-node3     # legacy form: hashed at once on load, warned about
//
// `meshctl join-token create NODE` prints a fresh token for the node and its entry. Only SHA-256 digests are kept in
// memory; a presented token is hashed and compared against every digest in constant time. `expires` is an RFC 3339
// UTC time ("...Z"); from then on the token is refused.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace zm::ctrl {

constexpr const char* kNodeMetadata = "x-zeromesh-node";
constexpr size_t kMinTokenLength = 16;  // legacy plaintext entries (generated tokens are 43 characters)

using TokenDigest = std::array<uint8_t, 32>;

// One entry as the controller reports it (meshctl status warns about expiring tokens).
struct JoinTokenInfo {
  std::string node;
  int64_t expires_unix = 0;  // 0: never
  bool plaintext = false;    // given in the legacy plaintext form
};

// The outcome of presenting a token.
struct JoinTokenMatch {
  enum class Result { kUnknown, kValid, kExpired };
  Result result = Result::kUnknown;
  std::string node;          // kValid, kExpired
  int64_t expires_unix = 0;  // kExpired: when it expired
};

class JoinTokens {
 public:
  // The file format above. Errors name the line ("line 3: ..."). Rejects duplicate nodes, a digest listed twice,
  // malformed digests or times, unknown keys, short plaintext tokens and an empty file ("{}" is no tokens).
  static std::optional<JoinTokens> Parse(const std::string& text, std::string* error);
  static std::optional<JoinTokens> Load(const std::string& path, std::string* error);

  // Constant-time in the token contents; `now_unix` decides expiry.
  JoinTokenMatch Match(std::string_view token, int64_t now_unix) const;
  std::vector<JoinTokenInfo> Describe() const;
  size_t size() const { return entries_.size(); }
  size_t plaintext_count() const;

 private:
  struct Entry {
    TokenDigest digest;
    JoinTokenInfo info;
  };
  std::vector<Entry> entries_;
};

// SHA-256 of `token` as 64 lowercase hex digits (the `sha256:` of an entry).
std::string JoinTokenSha256Hex(std::string_view token);
// "2027-01-03T00:00:00Z" <-> Unix seconds. Parse accepts fractional seconds and rejects offsets other than Z and
// impossible dates; false with *error saying what is wrong.
bool ParseRfc3339Utc(const std::string& s, int64_t* unix_seconds, std::string* error);
std::string FormatRfc3339Utc(int64_t unix_seconds);

}  // namespace zm::ctrl
