// The path a TrafficPermission's http rules are matched against, normalized the way Istio's default (BASE) does so
// that "/public/../private" cannot pass as "/public/...": percent-encoded unreserved characters are decoded (other
// escapes keep their bytes, hex upper-cased) and dot segments removed (RFC 3986 6.2.2, 5.2.4). Encoded slashes and
// backslashes (%2F, %5C) and NUL (%00) are refused: the backend might decode them into the separators the policy did
// not see (Envoy's REJECT_REQUEST for escaped slashes).
#pragma once

#include <string>
#include <string_view>

namespace zm::proxy {

// |target|: a request-target (origin-form "/a/b?q", absolute-form "http://h/a?q", "*", or a CONNECT's authority).
// *path: the normalized path without the query ("" for authority-form, "*" for asterisk-form). False with *error for
// a target that cannot be matched safely (answered 400).
bool NormalizePolicyPath(std::string_view target, std::string* path, std::string* error);

}  // namespace zm::proxy
