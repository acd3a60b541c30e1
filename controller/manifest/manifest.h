// Universal mode: Kubernetes-style YAML manifests (apiVersion zeromesh.io/v1alpha1) -> mesh resources.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "zeromesh/v1/resources.pb.h"

namespace zm::manifest {

constexpr const char* kApiVersion = "zeromesh.io/v1alpha1";

struct Error {
  std::string file;
  int line = 0;  // 1-based; 0 = whole file
  std::string reason;
};

struct Located {
  zeromesh::v1::Resource resource;
  std::string file;
  int line = 0;
};

struct Result {
  std::vector<Located> resources;
  std::vector<Error> errors;
  bool ok() const { return errors.empty(); }
};

struct Limits {
  uint32_t max_cert_ttl_seconds = 86400;
};

// Decodes every document of one file's text (documents may be separated by ---). Appends to `out`.
void DecodeText(const std::string& text, const std::string& file, const Limits& limits, Result* out);
// Cross-document checks over a whole set: duplicate names, duplicate workload IPs / service VIPs, >1 MeshConfig.
void CheckSet(Result* r);
// What each file decoded to last time, so a change to one file re-decodes only that file (with 10,000 workloads,
// decoding everything again costs about a second per change).
class DecodeCache {
 public:
  // Decoded documents and errors of `text` from `file`: reused when the file's text is unchanged.
  const Result& Decode(const std::string& file, std::string text, const Limits& limits);
  // Forgets files not in `present` (deleted ones).
  void Retain(const std::vector<std::string>& present);

 private:
  struct Entry {
    std::string text;
    Result decoded;
  };
  std::map<std::string, Entry> files_;
};

// Reads every *.yaml / *.yml file directly in `dir` (hidden files skipped), decodes and checks the set.
Result LoadDir(const std::string& dir, const Limits& limits, DecodeCache* cache = nullptr);

// "<Kind>/<namespace>/<name>": unique resource key.
std::string KeyOf(const zeromesh::v1::Resource& r);
std::string KindName(const zeromesh::v1::Resource& r);

}  // namespace zm::manifest
