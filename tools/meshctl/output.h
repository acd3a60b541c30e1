// meshctl's output conventions (kubectl habits): human tables by default, fitted to 100 columns; -o json|yaml for
// machines; exit codes 0 (ok / healthy), 1 (problems found or the request failed), 2 (usage error).
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace zm::meshctl {

enum ExitCode { kExitOk = 0, kExitProblems = 1, kExitUsage = 2 };
enum class Format { kTable, kJson, kYaml };
inline constexpr size_t kMaxWidth = 100;

// A table with a header row. Render() pads columns with two spaces between them; when the natural width exceeds
// max_width the widest columns are shortened and their cells end in "...".
class Table {
 public:
  explicit Table(std::vector<std::string> header) : header_(std::move(header)) {}
  void Add(std::vector<std::string> row);
  bool empty() const { return rows_.empty(); }
  // Column `i` is never shortened (addresses: "fd00:10:244:1..." names no pod); the others give way first.
  void KeepWhole(size_t i) { keep_whole_.at(i) = true; }
  std::string Render(size_t max_width = kMaxWidth) const;

 private:
  std::vector<std::string> header_;
  std::vector<bool> keep_whole_ = std::vector<bool>(header_.size(), false);
  std::vector<std::vector<std::string>> rows_;
};

// Word-wraps `text` for printing after an `indent`-column prefix: no line is longer than `width` - `indent`, and
// continuation lines start with `indent` spaces, so every printed line fits in `width` columns.
std::string Wrap(const std::string& text, size_t width, size_t indent);
std::string ToYaml(const nlohmann::json& j);
std::string Render(const nlohmann::json& j, Format f);       // json (2-space indent) or yaml; never kTable
std::string HumanDuration(int64_t seconds);                  // 1h5m, 2m30s, 45s, 3d4h; "-" prefix when negative
bool ParseDuration(const std::string& s, int64_t* seconds);  // "90s", "5m", "1h", "1h30m", "2d"

}  // namespace zm::meshctl
