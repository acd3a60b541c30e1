// Structured logging: one JSON object per line on stderr, e.g.
//   {"ts":"2026-11-26T12:00:00.123Z","level":"info","component":"agent","msg":"attached","ifname":"zmv1p1"}
// Usage: zm::log::Info("attached", {{"ifname", name}, {"ifindex", idx}});
#pragma once

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace zm::log {

enum class Level { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

// Process-wide settings; call once at start-up (not thread-safe against concurrent logging).
void SetComponent(std::string_view component);
void SetMinLevel(Level level);
Level ParseLevel(std::string_view name);  // "debug"|"info"|"warn"|"error"; unknown -> kInfo

// RFC 3339 UTC with milliseconds, e.g. 2026-11-26T12:00:00.123Z (the "ts" of every log line).
std::string FormatTimestamp(std::chrono::system_clock::time_point t);

void Write(Level level, std::string_view msg, const nlohmann::json& fields = nlohmann::json::object());

inline void Debug(std::string_view msg, const nlohmann::json& f = nlohmann::json::object()) {
  Write(Level::kDebug, msg, f);
}
inline void Info(std::string_view msg, const nlohmann::json& f = nlohmann::json::object()) {
  Write(Level::kInfo, msg, f);
}
inline void Warn(std::string_view msg, const nlohmann::json& f = nlohmann::json::object()) {
  Write(Level::kWarn, msg, f);
}
inline void Error(std::string_view msg, const nlohmann::json& f = nlohmann::json::object()) {
  Write(Level::kError, msg, f);
}

}  // namespace zm::log
