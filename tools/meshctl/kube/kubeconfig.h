// Which kubeconfig meshctl reads, as kubectl would: --kubeconfig FILE, else $KUBECONFIG (a colon-separated list that
// kubectl merges; meshctl reads the first entry that exists), else $HOME/.kube/config.
#pragma once

#include <functional>
#include <string>

namespace zm::meshctl::kube {

// The path, or "" with *error naming what was looked for.
std::string FindKubeconfig(const std::string& flag, const std::function<const char*(const char*)>& getenv,
                           std::string* error);

}  // namespace zm::meshctl::kube
