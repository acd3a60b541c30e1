// File helpers for the controller (CA files, manifests, join tokens).
#pragma once

#include <optional>
#include <string>

namespace zm::ctrl {

// Whole file, or nullopt (with *error set) if it cannot be read or exceeds max_bytes.
std::optional<std::string> ReadFile(const std::string& path, std::string* error, size_t max_bytes = 16 << 20);
// Atomic write (temp file + fsync + rename) with the given permission bits.
bool WriteFileAtomic(const std::string& path, const std::string& data, unsigned mode, std::string* error);

}  // namespace zm::ctrl
