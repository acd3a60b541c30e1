#include "tools/meshctl/join_token.h"

#include <openssl/base64.h>
#include <openssl/mem.h>
#include <openssl/rand.h>

#include <ctime>
#include <stdexcept>

#include "common/tls/digest.h"

namespace zm::meshctl {
namespace {

std::string Base64Url(const uint8_t* data, size_t n) {
  std::string out(4 * ((n + 2) / 3) + 1, '\0');
  size_t len = EVP_EncodeBlock(reinterpret_cast<uint8_t*>(out.data()), data, n);
  out.resize(len);
  while (!out.empty() && out.back() == '=') out.pop_back();
  for (auto& c : out) c = c == '+' ? '-' : c == '/' ? '_' : c;
  return out;
}

std::string Rfc3339(int64_t unix_seconds) {
  time_t t = static_cast<time_t>(unix_seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace

bool ValidNodeName(const std::string& node, std::string* error) {
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); };
  bool ok = !node.empty() && node.size() <= 253 && alnum(node[0]);
  for (char c : node) ok = ok && (alnum(c) || c == '.' || c == '-' || c == '_');
  if (!ok) {
    *error = "node name '" + node + "' must be 1-253 letters, digits, '.', '-' or '_', starting with a letter or digit";
  }
  return ok;
}

nlohmann::json CreateJoinToken(const std::string& node, int64_t ttl_seconds, int64_t now_unix) {
  uint8_t raw[32];
  if (RAND_bytes(raw, sizeof(raw)) != 1) throw std::runtime_error("no randomness available");
  std::string token = Base64Url(raw, sizeof(raw));
  OPENSSL_cleanse(raw, sizeof(raw));
  nlohmann::json j = {{"node", node}, {"token", token}, {"sha256", tls::Sha256Hex(token)}, {"expires", nullptr}};
  if (ttl_seconds > 0) j["expires"] = Rfc3339(now_unix + ttl_seconds);
  return j;
}

std::string JoinTokenEntry(const nlohmann::json& created) {
  std::string entry = created["node"].get<std::string>() + ": {sha256: " + created["sha256"].get<std::string>();
  if (!created["expires"].is_null()) entry += ", expires: \"" + created["expires"].get<std::string>() + "\"";
  return entry + "}";
}

std::string RenderJoinToken(const nlohmann::json& created) {
  const std::string node = created["node"].get<std::string>();
  std::string expires = created["expires"].is_null() ? "never" : created["expires"].get<std::string>();
  return "# The join token of node " + node + " (expires " + expires +
         "). Give it to that node's agent only (its bootstrap \"token\"):\n" + created["token"].get<std::string>() +
         "\n# Add this line to the controller's join-token file, replacing any entry of " + node +
         " (re-read without a restart):\n" + JoinTokenEntry(created) + "\n";
}

}  // namespace zm::meshctl
