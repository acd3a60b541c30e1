// Universal-mode agent authentication: per-node join tokens. The node is whatever the token belongs to.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace zm::ctrl {

constexpr const char* kNodeMetadata = "x-zeromesh-node";
constexpr size_t kMinTokenLength = 16;

class JoinTokens {
 public:
  // YAML mapping "node: token" (one per line works too). Rejects short or duplicate tokens.
  static std::optional<JoinTokens> Parse(const std::string& text, std::string* error);
  static std::optional<JoinTokens> Load(const std::string& path, std::string* error);

  // Constant-time in the token contents.
  std::optional<std::string> NodeFor(std::string_view token) const;
  size_t size() const { return node_by_token_.size(); }

 private:
  std::map<std::string, std::string> node_by_token_;
};

}  // namespace zm::ctrl
