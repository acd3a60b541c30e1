// Mesh resources of namespace "shop" for the controller's compile and snapshot tests, so that they build their
// meshes alike: a workload on node1 (service account "default") labelled app=<app>, a Service selecting app=<app>.
#pragma once

#include <string>

#include "controller/manifest/manifest.h"
#include "zeromesh/v1/resources.pb.h"

namespace zm::test {

inline zeromesh::v1::Resource Workload(const std::string& name, const std::string& ip, const std::string& app) {
  zeromesh::v1::Resource r;
  auto* w = r.mutable_workload();
  w->set_name(name);
  w->set_namespace_("shop");
  w->set_ip(ip);
  w->set_node("node1");
  w->set_service_account("default");
  (*w->mutable_labels())["app"] = app;
  return r;
}

// |vip| empty: a Service without a cluster IP.
inline zeromesh::v1::Resource Service(const std::string& name, const std::string& app, const std::string& vip = "") {
  zeromesh::v1::Resource r;
  auto* s = r.mutable_service();
  s->set_name(name);
  s->set_namespace_("shop");
  if (!vip.empty()) s->set_vip(vip);
  (*s->mutable_selector())["app"] = app;
  return r;
}

// |r| as the manifest loader hands it over (no file, line or digest).
inline manifest::Located Given(const zeromesh::v1::Resource& r) {
  manifest::Located l;
  l.resource = r;
  return l;
}

}  // namespace zm::test
