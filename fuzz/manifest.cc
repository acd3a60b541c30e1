// A universal-mode manifest file (controller/manifest): YAML with several documents, decoded, then checked as a set
// and resolved against its Namespaces. Besides "no crash, no leak, no UB, no stack overflow on deep YAML", every
// error names a line of the input.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "controller/manifest/manifest.h"
#include "controller/manifest/namespaces.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  zm::manifest::Result result;
  zm::manifest::DecodeText(text, "fuzz.yaml", {}, &result);
  zm::manifest::CheckSet(&result);
  zm::manifest::ApplyNamespaces(&result);
  for (const auto& e : result.errors) {
    if (e.reason.empty() || e.file != "fuzz.yaml") std::abort();
  }
  return 0;
}
