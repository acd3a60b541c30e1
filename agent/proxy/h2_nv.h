// One nghttp2 header field from two views. nghttp2 copies names and values when a frame is submitted (no
// NGHTTP2_NV_FLAG_NO_COPY_*), so the views only need to outlive the submit call; the casts are its C API's.
#pragma once

#include <nghttp2/nghttp2.h>

#include <cstdint>
#include <string_view>

namespace zm::proxy {

inline nghttp2_nv Nv(std::string_view name, std::string_view value) {
  return {reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
          reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(), value.size(), NGHTTP2_NV_FLAG_NONE};
}

}  // namespace zm::proxy
