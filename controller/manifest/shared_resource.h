// A decoded mesh resource held by reference: the decode cache, the list LoadDir hands to the compiler and the compiled
// snapshots share one object. A reload of 100,000 workloads used to copy every one of them out of the cache (about
// 200 MB at once) and the snapshot kept a second copy of each; now a reload copies pointers and a snapshot holds the
// cache's workload unless the compile changed it. Writers get their own copy when anyone else holds it (copy on write).
#pragma once

#include <memory>
#include <utility>

#include "zeromesh/v1/resources.pb.h"

namespace zm::manifest {

class SharedResource {
 public:
  SharedResource() = default;  // the empty Resource, allocated on first write
  // Implicit, like the value it replaces: `located.resource = workload_resource;`.
  SharedResource(zeromesh::v1::Resource r)  // NOLINT(google-explicit-constructor)
      : p_(std::make_shared<zeromesh::v1::Resource>(std::move(r))) {}

  const zeromesh::v1::Resource& operator*() const { return p_ ? *p_ : zeromesh::v1::Resource::default_instance(); }
  const zeromesh::v1::Resource* operator->() const { return &**this; }
  operator const zeromesh::v1::Resource&() const { return **this; }  // NOLINT(google-explicit-constructor)

  // The resource to change: copied first unless this is its only holder. Holders only ever drop references from
  // other threads (snapshots being freed), so a count of one cannot grow behind our back.
  zeromesh::v1::Resource* Mutable() {
    if (!p_) {
      p_ = std::make_shared<zeromesh::v1::Resource>();
    } else if (p_.use_count() > 1) {
      p_ = std::make_shared<zeromesh::v1::Resource>(*p_);
    }
    return p_.get();
  }
  // For a snapshot: the same object, read-only from now on for everyone (a later Mutable copies).
  std::shared_ptr<const zeromesh::v1::Resource> Share() const {
    return p_ ? std::shared_ptr<const zeromesh::v1::Resource>(p_) : std::make_shared<const zeromesh::v1::Resource>();
  }
  // Whether `other` is this very object (not merely an equal one).
  bool SameObject(const SharedResource& other) const { return p_ == other.p_; }

 private:
  std::shared_ptr<zeromesh::v1::Resource> p_;
};

}  // namespace zm::manifest
