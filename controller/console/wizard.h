// The onboarding wizard's four steps (docs/ui.md): enroll a namespace, choose its mode (with a preflight listing
// the plaintext clients STRICT would cut off), a first policy suggested from observed traffic, a canary split.
// Each step previews the manifest it writes and the equivalent kubectl command; `apply` writes it (universal mode:
// the manifest directory, see manifest_writer.h). Kubernetes mode: the console does not write with the user's
// credentials yet, so the step answers with the command to run.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "controller/console/manifest_writer.h"
#include "controller/console/mesh_inputs.h"

namespace zm::ctrl::console {

struct StepResult {
  int status = 200;  // 400 bad request, 409 the controller refused the manifest (rolled back)
  nlohmann::json body;
};

class Wizard {
 public:
  Wizard(const MeshInputs& in, const ManifestSink& sink) : in_(in), sink_(sink) {}

  // |req| is the request body; "apply": true writes (the caller has checked the user may write).
  StepResult Enroll(const nlohmann::json& req) const;
  StepResult Mode(const nlohmann::json& req) const;
  StepResult Policy(const nlohmann::json& req) const;
  StepResult Canary(const nlohmann::json& req) const;

  static std::string NamespaceFile(const std::string& ns) { return "namespace-" + ns + ".yaml"; }

 private:
  // The Namespace manifest with |set| applied on top of the labels its file has now, and |defaults| for labels it
  // does not have. *had (optional): the labels it had.
  std::string NamespaceManifest(const std::string& ns, const std::map<std::string, std::string>& set,
                                const std::map<std::string, std::string>& defaults = {},
                                std::map<std::string, std::string>* had = nullptr) const;
  // Writes when req.apply; fills manifest/kubectl/applied/written (and the errors and status on a refusal).
  StepResult Finish(const nlohmann::json& req, nlohmann::json body, const std::string& file,
                    const std::string& manifest, const std::string& kubectl) const;

  const MeshInputs& in_;
  const ManifestSink& sink_;
};

// A namespace name as the API accepts it (DNS-1123 label); false with *error.
bool ValidNamespaceParam(const nlohmann::json& req, std::string* ns, std::string* error);

}  // namespace zm::ctrl::console
