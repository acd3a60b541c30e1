#include "controller/manifest/resource_digest.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <openssl/sha.h>

#include <string>

namespace zm::manifest {

Digest ResourceDigest(const zeromesh::v1::Resource& r) {
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream raw(&bytes);
    google::protobuf::io::CodedOutputStream coded(&raw);
    coded.SetSerializationDeterministic(true);
    r.SerializeToCodedStream(&coded);
  }
  Digest d;
  SHA256(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), d.data());
  return d;
}

}  // namespace zm::manifest
