// A weighted backend Service of a route (TCPRoute split or HTTPRoute rule).
#pragma once

#include <cstdint>
#include <string>

namespace zm::agent {

struct BackendRef {
  std::string ns;
  std::string name;
  uint16_t port = 0;  // a port of the backend Service
  uint32_t weight = 0;
};

}  // namespace zm::agent
