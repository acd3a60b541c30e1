# Third-party dependencies, all from Debian 12 except BoringSSL and civetweb, which tools/deps.sh builds statically from
# Debian's source packages (see third_party/*/CMakeLists.txt for why).

set(ZM_DEPS "$ENV{ZM_DEPS}")
if(NOT ZM_DEPS)
  set(ZM_DEPS /opt/zeromesh-deps)
endif()
set(BORINGSSL_ROOT "${ZM_DEPS}/boringssl-13.0.0+r24" CACHE PATH "static BoringSSL install prefix")
if(NOT EXISTS "${BORINGSSL_ROOT}/lib/libssl.a")
  message(FATAL_ERROR "BoringSSL not found in ${BORINGSSL_ROOT}: run tools/deps.sh first")
endif()
add_library(boringssl::crypto STATIC IMPORTED GLOBAL)
set_target_properties(boringssl::crypto PROPERTIES
  IMPORTED_LOCATION "${BORINGSSL_ROOT}/lib/libcrypto.a"
  INTERFACE_INCLUDE_DIRECTORIES "${BORINGSSL_ROOT}/include"
  INTERFACE_LINK_LIBRARIES Threads::Threads)
add_library(boringssl::ssl STATIC IMPORTED GLOBAL)
set_target_properties(boringssl::ssl PROPERTIES
  IMPORTED_LOCATION "${BORINGSSL_ROOT}/lib/libssl.a"
  INTERFACE_LINK_LIBRARIES boringssl::crypto)
# Every binary that uses BoringSSL loads all of it up front (link options come before any library on the link line):
# otherwise a static library of ours whose BoringSSL calls are resolved late can bind them to the OpenSSL 3 that gRPC,
# curl or civetweb put on the line first, and crash (SSL_CTX from one library, TLS_method from the other).
set_property(TARGET boringssl::crypto APPEND PROPERTY INTERFACE_LINK_OPTIONS
  "SHELL:-Wl,--whole-archive ${BORINGSSL_ROOT}/lib/libssl.a ${BORINGSSL_ROOT}/lib/libcrypto.a -Wl,--no-whole-archive")

# civetweb with IPv6 (zm_http's listeners), in place of Debian's libcivetweb, which has none.
set(CIVETWEB_ROOT "${ZM_DEPS}/civetweb-1.15+dfsg-4" CACHE PATH "static civetweb install prefix")
if(NOT EXISTS "${CIVETWEB_ROOT}/lib/libcivetweb.a")
  message(FATAL_ERROR "civetweb not found in ${CIVETWEB_ROOT}: run tools/deps.sh first")
endif()
add_library(zm::civetweb STATIC IMPORTED GLOBAL)
set_target_properties(zm::civetweb PROPERTIES
  IMPORTED_LOCATION "${CIVETWEB_ROOT}/lib/libcivetweb.a"
  INTERFACE_INCLUDE_DIRECTORIES "${CIVETWEB_ROOT}/include"
  INTERFACE_LINK_LIBRARIES Threads::Threads)

find_package(Protobuf REQUIRED)
find_package(gRPC CONFIG REQUIRED)
find_package(GTest REQUIRED)
find_package(benchmark REQUIRED)
find_package(nlohmann_json 3 REQUIRED)
find_package(yaml-cpp REQUIRED)
find_package(prometheus-cpp CONFIG REQUIRED)
pkg_check_modules(NGHTTP2 REQUIRED IMPORTED_TARGET libnghttp2)
pkg_check_modules(LIBBPF REQUIRED IMPORTED_TARGET libbpf)
# nftables rules over nfnetlink (the agent's conntrack bypass for steered packets).
pkg_check_modules(LIBNFTNL REQUIRED IMPORTED_TARGET libnftnl)
pkg_check_modules(LIBMNL REQUIRED IMPORTED_TARGET libmnl)
pkg_check_modules(LIBCURL REQUIRED IMPORTED_TARGET libcurl)

find_program(CLANG clang REQUIRED)
find_program(BPFTOOL bpftool PATHS /usr/sbin /sbin REQUIRED)
find_program(PROTOC protoc REQUIRED)
find_program(GRPC_CPP_PLUGIN grpc_cpp_plugin REQUIRED)
