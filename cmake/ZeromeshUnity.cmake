# Unity builds for the sanitizer presets (ZM_UNITY_BUILD, set by asan and tsan): each target's sources compile in
# batches, so the heavy third-party headers (gRPC, protobuf, GoogleTest, nlohmann/json, yaml-cpp) are parsed, and
# their inline functions instrumented and compiled, once per batch instead of once per file. The default preset keeps
# one file per compile: it proves that every file includes what it uses, and its (benchmarked) binaries keep their
# code generation.
#
# A batch is one translation unit: the files below define a file-local name (anonymous namespace, or a constant two
# headers declare) that another file of their target also defines, so they compile on their own.
set_target_properties(zm_llhttp PROPERTIES UNITY_BUILD OFF)  # generated C, file-local names throughout

function(zm_unity_skip dir)
  list(TRANSFORM ARGN PREPEND "${CMAKE_SOURCE_DIR}/${dir}/")
  set_source_files_properties(${ARGN} DIRECTORY "${CMAKE_SOURCE_DIR}/${dir}"
                              PROPERTIES SKIP_UNITY_BUILD_INCLUSION ON)
endfunction()

zm_unity_skip(agent/metrics request_metrics.cc)
zm_unity_skip(agent/proxy inbound_http.cc)
zm_unity_skip(agent/traffic http_match.cc)
zm_unity_skip(controller manifest/load.cc manifest/permission_http_decode.cc manifest/route_policy_decode.cc
              manifest/traffic_decode.cc)
zm_unity_skip(tools/meshctl views.cc)
zm_unity_skip(tests/unit/controller ca_sign_test.cc fuzz_test.cc k8s_dual_stack_test.cc manifest_test.cc
              namespace_test.cc permission_http_test.cc reference_grant_test.cc spiffe_rule_test.cc)
zm_unity_skip(tests/unit/meshctl meshctl_dual_stack_test.cc meshctl_status_test.cc)
zm_unity_skip(tests/unit/traffic request_balancing_test.cc)
zm_unity_skip(tests/integration/bpf tc_fallback_test.cc tcx_chain_test.cc)
