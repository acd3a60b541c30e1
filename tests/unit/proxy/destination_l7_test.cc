// Which per-request handler the destination proxy puts in front of a pod port (agent/proxy/destination_l7.h).
#include "agent/proxy/destination_l7.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include "agent/proxy/socket_util.h"
#include "agent/state/mesh_snapshot.h"

namespace zm::proxy {
namespace {

using agent::PortProtocol;

sockaddr_in Addr(const char* ip, uint16_t port) {
  return MakeAddr(inet_addr(ip), port);
}

agent::MeshSnapshot Snapshot() {
  agent::Service svc;
  svc.name = "web";
  svc.ns = "shop";
  svc.ports = {{80, 8080, PortProtocol::kHttp},
               {81, 8081, PortProtocol::kHttp2},
               {9090, 9090, PortProtocol::kGrpc},
               {5432, 5432, PortProtocol::kTcp}};
  svc.endpoints.push_back({Addr("10.244.1.11", 0).sin_addr.s_addr, "shop/web", "node1"});
  return agent::MeshSnapshot("cluster.local", "node1", agent::MeshMode::kStrict, {}, {svc});
}

TEST(DestinationL7, HttpServicePortsGetTheirHandlerAlways) {
  agent::MeshSnapshot s = Snapshot();
  EXPECT_EQ(DestinationL7For(s, Addr("10.244.1.11", 8080), false), DestinationL7::kHttp1);
  EXPECT_EQ(DestinationL7For(s, Addr("10.244.1.11", 8081), false), DestinationL7::kHttp2);
  EXPECT_EQ(DestinationL7For(s, Addr("10.244.1.11", 9090), false), DestinationL7::kHttp2);
}

TEST(DestinationL7, OtherPortsKeepTheByteRelay) {
  agent::MeshSnapshot s = Snapshot();
  EXPECT_EQ(DestinationL7For(s, Addr("10.244.1.11", 5432), false), DestinationL7::kNone);  // TCP Service port
  EXPECT_EQ(DestinationL7For(s, Addr("10.244.1.11", 80), false), DestinationL7::kNone);  // the Service's, not the pod's
  EXPECT_EQ(DestinationL7For(s, Addr("10.244.1.11", 7000), false), DestinationL7::kNone);  // no Service
  EXPECT_EQ(DestinationL7For(s, Addr("10.244.9.9", 8080), false), DestinationL7::kNone);   // not an endpoint
}

// Per-request decisions need a parser whatever the port says: never a byte relay that would bypass them.
TEST(DestinationL7, PerRequestPolicyAlwaysParses) {
  agent::MeshSnapshot s = Snapshot();
  EXPECT_EQ(DestinationL7For(s, Addr("10.244.1.11", 8080), true), DestinationL7::kHttp1);
  EXPECT_EQ(DestinationL7For(s, Addr("10.244.1.11", 5432), true), DestinationL7::kHttp1);
  EXPECT_EQ(DestinationL7For(s, Addr("10.244.1.11", 7000), true), DestinationL7::kHttp1);
  // HTTP/2 ports: each stream is decided by the HTTP/2 handler.
  EXPECT_EQ(DestinationL7For(s, Addr("10.244.1.11", 8081), true), DestinationL7::kHttp2);
  EXPECT_EQ(DestinationL7For(s, Addr("10.244.1.11", 9090), true), DestinationL7::kHttp2);
}

}  // namespace
}  // namespace zm::proxy
