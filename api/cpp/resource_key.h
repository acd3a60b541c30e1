// The identity of a resource on the wire (kind, namespace, name): the controller names removed resources with it and
// the agent indexes what it holds by it, so both sides must derive it the same way.
#pragma once

#include "zeromesh/v1/resources.pb.h"

namespace zm::api {

// KIND_UNSPECIFIED for an empty Resource.
zeromesh::v1::ResourceKey KeyOf(const zeromesh::v1::Resource& r);

}  // namespace zm::api
