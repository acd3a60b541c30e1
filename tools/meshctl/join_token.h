// `meshctl join-token create NODE [--ttl 720h]`: a fresh join token for one node's agent and the hashed entry for the
// controller's join-token file (format: controller/auth/join_tokens.h). Offline: no controller is contacted.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

namespace zm::meshctl {

// 90 days: well outside meshctl status's 30-day "credential expires soon" window, so a new token is not a problem.
inline constexpr int64_t kDefaultJoinTokenTtl = 2160 * 3600;

// Node names printed into a YAML key unquoted: letters, digits, '.', '-', '_' (starting with a letter or digit).
bool ValidNodeName(const std::string& node, std::string* error);
// {node, token (32 random bytes, base64url), sha256 (hex of the token), expires (RFC 3339 UTC, or null: never)}.
// `ttl_seconds` 0 means the token never expires.
nlohmann::json CreateJoinToken(const std::string& node, int64_t ttl_seconds, int64_t now_unix);
// The line for the controller's file: node: {sha256: HEX, expires: "TIME"}
std::string JoinTokenEntry(const nlohmann::json& created);
// The default (table) output: the token, where it goes, and the entry.
std::string RenderJoinToken(const nlohmann::json& created);

}  // namespace zm::meshctl
