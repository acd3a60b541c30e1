// Base64 (standard alphabet, padded) for Kubernetes data fields: kubeconfig "*-data" and Secret data.
#pragma once

#include <optional>
#include <string>

namespace zm::k8s {

std::string Base64Encode(const std::string& in);
// Tolerates line breaks and spaces (kubeconfigs wrap long values); nullopt if the rest is not base64.
std::optional<std::string> Base64Decode(const std::string& in);

}  // namespace zm::k8s
