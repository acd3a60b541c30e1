#include "tools/meshctl/kube/kubeconfig.h"

#include <sys/stat.h>

namespace zm::meshctl::kube {
namespace {

bool IsFile(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

}  // namespace

std::string FindKubeconfig(const std::string& flag, const std::function<const char*(const char*)>& getenv,
                           std::string* error) {
  if (!flag.empty()) {
    if (IsFile(flag)) return flag;
    *error = "--kubeconfig " + flag + ": no such file";
    return "";
  }
  const char* env = getenv("KUBECONFIG");
  if (env && *env) {
    std::string list = env;
    for (size_t start = 0; start <= list.size();) {
      size_t colon = list.find(':', start);
      if (colon == std::string::npos) colon = list.size();
      std::string entry = list.substr(start, colon - start);
      if (!entry.empty() && IsFile(entry)) return entry;
      start = colon + 1;
    }
    *error = "KUBECONFIG=" + list + ": none of its files exists";
    return "";
  }
  const char* home = getenv("HOME");
  std::string path = std::string(home && *home ? home : "") + "/.kube/config";
  if (home && *home && IsFile(path)) return path;
  *error = "no kubeconfig found (--kubeconfig, $KUBECONFIG, " + (home && *home ? path : "$HOME/.kube/config") +
           "): give one to find the controller through Kubernetes, or --controller HOST:PORT (env ZEROMESH_CONTROLLER) "
           "for universal mode";
  return "";
}

}  // namespace zm::meshctl::kube
