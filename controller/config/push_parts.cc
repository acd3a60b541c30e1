#include "controller/config/push_parts.h"

#include <google/protobuf/io/coded_stream.h>

#include <cstdint>

#include "controller/config/snapshot.h"

namespace zm::ctrl {
namespace v1 = zeromesh::v1;

namespace {

// The part header: everything but the resources.
v1::ConfigPush Header(const v1::ConfigPush& push) {
  v1::ConfigPush h;
  h.set_version(push.version());
  h.set_epoch(push.epoch());
  h.set_full(push.full());
  h.set_base_version(push.base_version());
  h.set_trust_bundle_pem(push.trust_bundle_pem());
  h.set_ca_signer(push.ca_signer());
  return h;
}

}  // namespace

std::vector<v1::ConfigPush> SplitPush(v1::ConfigPush push, size_t max_bytes) {
  std::vector<v1::ConfigPush> parts;
  if (push.ByteSizeLong() <= max_bytes) {
    push.set_more(false);
    parts.push_back(std::move(push));
    return parts;
  }
  v1::ConfigPush part = Header(push);
  *part.mutable_removed() = std::move(*push.mutable_removed());
  size_t bytes = part.ByteSizeLong();
  auto* upserted = push.mutable_upserted();
  for (int i = 0; i < upserted->size(); ++i) {
    v1::Resource* r = upserted->Mutable(i);
    size_t size = r->ByteSizeLong() + 8;  // + field tag and length
    if (bytes + size > max_bytes && part.upserted_size() + part.removed_size() > 0) {
      part.set_more(true);
      parts.push_back(std::move(part));
      part = Header(push);
      bytes = part.ByteSizeLong();
    }
    part.add_upserted()->Swap(r);
    bytes += size;
  }
  part.set_more(false);
  parts.push_back(std::move(part));
  return parts;
}

v1::ConfigPush JoinParts(const std::vector<v1::ConfigPush>& parts) {
  if (parts.empty()) return {};
  v1::ConfigPush whole = Header(parts.front());
  for (const auto& p : parts) {
    for (const auto& k : p.removed()) *whole.add_removed() = k;
    for (const auto& r : p.upserted()) *whole.add_upserted() = r;
  }
  return whole;
}

std::vector<std::string> EncodeParts(const std::vector<v1::ConfigPush>& parts) {
  std::vector<std::string> out;
  out.reserve(parts.size());
  for (const auto& p : parts) out.push_back(p.SerializeAsString());
  return out;
}

std::vector<std::string> EncodeFullPush(const Snapshot& s, const std::string& epoch, const std::string& bundle,
                                        size_t max_bytes) {
  const v1::ConfigPush header = FullPushHeader(s, epoch, bundle);
  // A push that fits stays one part, as in SplitPush: its encoded size is the header's plus, per resource, the
  // field's one-byte tag (upserted = 5), the length and the resource.
  size_t total = header.ByteSizeLong();
  for (const auto& [key, r] : s.resources) {
    size_t n = r->ByteSizeLong();
    total += 1 + google::protobuf::io::CodedOutputStream::VarintSize64(n) + n;
  }
  if (total <= max_bytes) max_bytes = SIZE_MAX;
  std::vector<std::string> out;
  v1::ConfigPush part = header;
  size_t bytes = part.ByteSizeLong();
  for (const auto& [key, r] : s.resources) {
    size_t size = r->ByteSizeLong() + 8;  // + field tag and length
    if (bytes + size > max_bytes && part.upserted_size() > 0) {
      part.set_more(true);
      out.push_back(part.SerializeAsString());
      part = header;
      bytes = part.ByteSizeLong();
    }
    *part.add_upserted() = *r;
    bytes += size;
  }
  part.set_more(false);
  out.push_back(part.SerializeAsString());
  return out;
}

bool DecodeParts(const std::vector<std::string>& encoded, std::vector<v1::ConfigPush>* parts) {
  parts->clear();
  parts->resize(encoded.size());
  for (size_t i = 0; i < encoded.size(); ++i) {
    if (!(*parts)[i].ParseFromString(encoded[i])) return false;
  }
  return true;
}

}  // namespace zm::ctrl
