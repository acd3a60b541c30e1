#include "controller/auth/join_tokens.h"

#include <openssl/mem.h>
#include <yaml-cpp/yaml.h>

#include <set>

#include "controller/fs_util.h"

namespace zm::ctrl {

std::optional<JoinTokens> JoinTokens::Parse(const std::string& text, std::string* error) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    *error = "line " + std::to_string(e.mark.line + 1) + ": bad YAML: " + e.msg;
    return std::nullopt;
  }
  if (!root.IsMap()) {
    *error = "expected 'node: token' lines (a YAML mapping)";
    return std::nullopt;
  }
  JoinTokens out;
  std::set<std::string> nodes;
  for (const auto& kv : root) {
    std::string where = "line " + std::to_string(kv.first.Mark().line + 1) + ": ";
    if (!kv.first.IsScalar() || !kv.second.IsScalar() || kv.first.Scalar().empty()) {
      *error = where + "expected 'node: token'";
      return std::nullopt;
    }
    const std::string& node = kv.first.Scalar();
    const std::string& token = kv.second.Scalar();
    if (token.size() < kMinTokenLength) {
      *error =
          where + "token for node '" + node + "' is shorter than " + std::to_string(kMinTokenLength) + " characters";
      return std::nullopt;
    }
    if (!nodes.insert(node).second) {
      *error = where + "node '" + node + "' is listed twice";
      return std::nullopt;
    }
    if (!out.node_by_token_.emplace(token, node).second) {
      *error = where + "token of node '" + node + "' is also used by another node";
      return std::nullopt;
    }
  }
  return out;
}

std::optional<JoinTokens> JoinTokens::Load(const std::string& path, std::string* error) {
  auto text = ReadFile(path, error, 1 << 20);
  if (!text) return std::nullopt;
  auto t = Parse(*text, error);
  if (!t) *error = path + ": " + *error;
  return t;
}

std::optional<std::string> JoinTokens::NodeFor(std::string_view token) const {
  // Compare against every entry so timing reveals neither which token nor how much of it matched.
  std::optional<std::string> found;
  for (const auto& [t, node] : node_by_token_) {
    bool eq = t.size() == token.size() && CRYPTO_memcmp(t.data(), token.data(), t.size()) == 0;
    if (eq) found = node;
  }
  return found;
}

}  // namespace zm::ctrl
