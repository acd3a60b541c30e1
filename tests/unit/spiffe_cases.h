// One table of SPIFFE IDs, run against tls::ParseSpiffeId (tests/unit/proxy/tls_test.cc) and through the CA's CSR
// check (tests/unit/controller/spiffe_rule_test.cc): the CA and the data plane must agree on every row.
#pragma once

#include <string>
#include <vector>

namespace zm::test {

struct SpiffeCase {
  std::string id;
  std::string error;  // "" = valid; else a substring of the error
};

inline std::vector<SpiffeCase> SpiffeCases() {
  std::string label63(63, 'n'), label64(64, 'n');
  std::string sa253 = std::string(63, 'a') + "." + std::string(63, 'b') + "." + std::string(63, 'c') + "." +
                      std::string(61, 'd');  // 253 characters
  std::string td255(255, 't');
  return {
      {"spiffe://cluster.local/ns/default/sa/sa-a", ""},
      {"spiffe://my_td-1.example/ns/kube-system/sa/system.reader-2", ""},
      {"spiffe://cluster.local/ns/" + label63 + "/sa/x", ""},
      {"spiffe://cluster.local/ns/a/sa/" + sa253, ""},
      {"spiffe://" + td255 + "/ns/a/sa/b", ""},
      {"spiffe://cluster.local/ns/0/sa/9", ""},
      // A namespace is a DNS-1123 label: the CA used to accept '.', which agents refused.
      {"spiffe://cluster.local/ns/a.b/sa/x",
       "invalid namespace 'a.b': '.' is not allowed; a Kubernetes namespace is a DNS-1123 label"},
      {"spiffe://cluster.local/ns/" + label64 + "/sa/x", "invalid namespace '" + label64 + "': longer than 63"},
      {"spiffe://cluster.local/ns/-a/sa/x", "invalid namespace '-a': must start and end with a letter or digit"},
      {"spiffe://cluster.local/ns/a-/sa/x", "invalid namespace 'a-': must start and end"},
      {"spiffe://cluster.local/ns/Shop/sa/x", "invalid namespace 'Shop': uppercase letters are not allowed"},
      {"spiffe://cluster.local/ns/a_b/sa/x", "invalid namespace 'a_b': '_' is not allowed"},
      {"spiffe://cluster.local/ns//sa/b", "invalid namespace '': it is empty"},
      {"spiffe://cluster.local/ns/a%2f/sa/b", "invalid namespace 'a%2f': '%' is not allowed"},
      // A service account is a DNS-1123 subdomain.
      {"spiffe://cluster.local/ns/a/sa/", "invalid service account '': it is empty"},
      {"spiffe://cluster.local/ns/a/sa/x..y", "invalid service account 'x..y': an empty part is not allowed"},
      {"spiffe://cluster.local/ns/a/sa/x.-y", "invalid service account 'x.-y': must start and end"},
      {"spiffe://cluster.local/ns/a/sa/x" + sa253, "longer than 253 characters"},
      {"spiffe://cluster.local/ns/a/sa/b_c", "invalid service account 'b_c': '_' is not allowed"},
      {"spiffe://cluster.local/ns/a/sa/b/c", "invalid service account 'b/c': '/' is not allowed"},
      {"spiffe://cluster.local/ns/a/sa/b?x=1", "'?' is not allowed"},
      {"spiffe://cluster.local/ns/a/sa/b#f", "'#' is not allowed"},
      // The trust domain follows the SPIFFE spec.
      {"spiffe://Cluster.local/ns/a/sa/b", "invalid trust domain 'Cluster.local': uppercase letters are not allowed"},
      {"spiffe://t" + td255 + "/ns/a/sa/b", "longer than 255 characters"},
      {"spiffe://cluster.local:443/ns/a/sa/b", "invalid trust domain 'cluster.local:443': ':' is not allowed"},
      {"spiffe://user@cluster.local/ns/a/sa/b", "'@' is not allowed"},
      {"spiffe:///ns/a/sa/b", "invalid trust domain '': it is empty"},
      // Shape.
      {"spiffe://cluster.local", "SPIFFE ID has no path"},
      {"spiffe://cluster.local/sa/b/ns/a", "SPIFFE ID path must be /ns/<namespace>/sa/<service-account>"},
      {"spiffe://cluster.local/ns/a", "SPIFFE ID path must be"},
      {"SPIFFE://cluster.local/ns/a/sa/b", "must start with \"spiffe://\""},
      {"https://cluster.local/ns/a/sa/b", "must start with \"spiffe://\""},
  };
}

}  // namespace zm::test
