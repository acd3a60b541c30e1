#include "tools/meshctl/output.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cstdlib>
#include <sstream>

namespace zm::meshctl {
namespace {

std::string Fit(const std::string& s, size_t width) {
  if (s.size() <= width) return s;
  if (width <= 3) return s.substr(0, width);
  return s.substr(0, width - 3) + "...";
}

YAML::Node ToYamlNode(const nlohmann::json& j) {
  YAML::Node n;
  switch (j.type()) {
    case nlohmann::json::value_t::object:
      n = YAML::Node(YAML::NodeType::Map);
      for (const auto& [k, v] : j.items()) n[k] = ToYamlNode(v);
      return n;
    case nlohmann::json::value_t::array:
      n = YAML::Node(YAML::NodeType::Sequence);
      for (const auto& v : j) n.push_back(ToYamlNode(v));
      return n;
    case nlohmann::json::value_t::string:
      return YAML::Node(j.get<std::string>());
    case nlohmann::json::value_t::null:
      return YAML::Node(YAML::NodeType::Null);
    default:
      return YAML::Node(j.dump());  // numbers and booleans print as themselves
  }
}

}  // namespace

void Table::Add(std::vector<std::string> row) {
  row.resize(header_.size());
  rows_.push_back(std::move(row));
}

std::string Table::Render(size_t max_width) const {
  const size_t n = header_.size();
  std::vector<size_t> w(n, 0);
  auto measure = [&](const std::vector<std::string>& r) {
    for (size_t i = 0; i < n; i++) w[i] = std::max(w[i], r[i].size());
  };
  measure(header_);
  for (const auto& r : rows_) measure(r);
  auto total = [&] {
    size_t t = n > 0 ? 2 * (n - 1) : 0;
    for (size_t x : w) t += x;
    return t;
  };
  // Shorten the widest column one character at a time (never below 6, never one kept whole) until the table fits.
  while (total() > max_width) {
    size_t widest = n;
    for (size_t i = 0; i < n; i++) {
      if (!keep_whole_[i] && (widest == n || w[i] > w[widest])) widest = i;
    }
    if (widest == n || w[widest] <= 6) break;
    --w[widest];
  }
  std::string out;
  auto line = [&](const std::vector<std::string>& r) {
    std::string l;
    for (size_t i = 0; i < n; i++) {
      std::string cell = Fit(r[i], w[i]);
      l += cell;
      if (i + 1 < n) l += std::string(w[i] - cell.size() + 2, ' ');
    }
    while (!l.empty() && l.back() == ' ') l.pop_back();
    out += l + "\n";
  };
  line(header_);
  for (const auto& r : rows_) line(r);
  return out;
}

std::string Wrap(const std::string& text, size_t width, size_t indent) {
  const size_t limit = width > indent + 10 ? width - indent : 10;
  std::istringstream in(text);
  std::string word, out, line;
  auto flush = [&] {
    out += line + "\n" + std::string(indent, ' ');
    line.clear();
  };
  while (in >> word) {
    if (!line.empty() && line.size() + 1 + word.size() > limit) flush();
    while (word.size() > limit) {  // a word longer than a line is cut rather than overflowing
      if (!line.empty()) flush();
      line = word.substr(0, limit);
      word = word.substr(limit);
      flush();
    }
    line += (line.empty() ? "" : " ") + word;
  }
  return out + line;
}

std::string ToYaml(const nlohmann::json& j) {
  YAML::Emitter e;
  e << ToYamlNode(j);
  return std::string(e.c_str()) + "\n";
}

std::string Render(const nlohmann::json& j, Format f) {
  if (f == Format::kYaml) return ToYaml(j);
  return j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

std::string HumanDuration(int64_t seconds) {
  if (seconds < 0) return "-" + HumanDuration(-seconds);
  int64_t d = seconds / 86400, h = seconds % 86400 / 3600, m = seconds % 3600 / 60, s = seconds % 60;
  if (d > 0) return std::to_string(d) + "d" + (h ? std::to_string(h) + "h" : "");
  if (h > 0) return std::to_string(h) + "h" + (m ? std::to_string(m) + "m" : "");
  if (m > 0) return std::to_string(m) + "m" + (s ? std::to_string(s) + "s" : "");
  return std::to_string(s) + "s";
}

bool ParseDuration(const std::string& s, int64_t* seconds) {
  if (s.empty()) return false;
  int64_t total = 0;
  size_t i = 0;
  while (i < s.size()) {
    size_t start = i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') i++;
    if (i == start || i == s.size() || i - start > 9) return false;
    int64_t v = std::strtoll(s.substr(start, i - start).c_str(), nullptr, 10);
    switch (s[i++]) {
      case 's':
        total += v;
        break;
      case 'm':
        total += v * 60;
        break;
      case 'h':
        total += v * 3600;
        break;
      case 'd':
        total += v * 86400;
        break;
      default:
        return false;
    }
  }
  *seconds = total;
  return true;
}

}  // namespace zm::meshctl
