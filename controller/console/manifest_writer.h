// How the wizard applies a manifest in universal mode: written atomically into the controller's manifest directory
// under a name of its own, then the directory is re-read at once; if the controller rejects the file (a duplicate,
// a conflict with what is already there), the previous content is put back and the controller's reasons returned.
// The last good configuration never stops running (the controller keeps it on any error).
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "controller/console/kube_apply.h"

namespace zm::ctrl::console {

struct ManifestSink {
  std::string dir;                                                        // "" in Kubernetes mode: nothing is written
  std::function<void()> reload;                                           // re-read the directory now
  std::function<std::vector<std::string>(const std::string&)> errors_in;  // the controller's errors about a file name
  // Kubernetes mode (dir empty): set per request by the API, bound to the signed-in user's token.
  std::function<KubeApplyResult(const std::string& manifest)> kube_apply;
  std::function<std::map<std::string, std::string>(const std::string& ns)> namespace_labels;
};

struct WriteResult {
  bool ok = false;
  std::string path;
  std::vector<std::string> errors;  // why it was refused (and rolled back)
};

// |file| is a plain file name (no '/'), |content| the whole YAML. Reads nothing back but errors.
WriteResult WriteManifest(const ManifestSink& sink, const std::string& file, const std::string& content);
// The current content of a file the wizard wrote earlier ("" when absent).
std::string ReadManifest(const ManifestSink& sink, const std::string& file);

}  // namespace zm::ctrl::console
