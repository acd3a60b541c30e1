// A universal-mode manifest file (controller/manifest): YAML with several documents, decoded and then checked as a
// set. Besides "no crash, no leak, no UB, no stack overflow on deep YAML", every error names a line of the input.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "controller/manifest/manifest.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  zm::manifest::Result result;
  zm::manifest::DecodeText(text, "fuzz.yaml", {}, &result);
  zm::manifest::CheckSet(&result);
  for (const auto& e : result.errors) {
    if (e.reason.empty() || e.file != "fuzz.yaml") std::abort();
  }
  return 0;
}
