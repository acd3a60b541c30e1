// Which per-request handler the destination proxy puts in front of a pod port (agent/proxy/destination_l7.h).
#include "agent/proxy/destination_l7.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <string>

#include "agent/proxy/socket_util.h"
#include "agent/state/mesh_snapshot.h"

namespace zm::proxy {
namespace {

using agent::PortProtocol;

net::SockAddr Addr(const char* ip, uint16_t port) {
  return net::SockAddr{*net::IpAddr::Parse(ip), port};
}

agent::MeshSnapshot Snapshot() {
  agent::Service svc;
  svc.name = "web";
  svc.ns = "shop";
  svc.ports = {{80, 8080, PortProtocol::kHttp},
               {81, 8081, PortProtocol::kHttp2},
               {9090, 9090, PortProtocol::kGrpc},
               {5432, 5432, PortProtocol::kTcp}};
  svc.endpoints.push_back({Addr("10.244.1.11", 0).ip, "shop/web", "node1"});
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

// Two Services selecting pod port 8080 of 10.244.1.11 with |a| and |b| (their order in the snapshot as given).
agent::MeshSnapshot Disagreeing(PortProtocol a, PortProtocol b) {
  agent::Service first, second;
  first.name = "one";
  second.name = "two";
  first.ns = second.ns = "shop";
  first.ports = {{80, 8080, a}};
  second.ports = {{81, 8080, b}};
  first.endpoints.push_back({Addr("10.244.1.11", 0).ip, "shop/web", "node1"});
  second.endpoints = first.endpoints;
  return agent::MeshSnapshot("cluster.local", "node1", agent::MeshMode::kStrict, {}, {second, first});
}

// HTTP/1.1 and HTTP/2: each connection is sniffed, with or without per-request decisions, whichever Service is first.
TEST(DestinationL7, HttpAndHttp2DeclaredOnOnePortAreSniffed) {
  for (PortProtocol h2 : {PortProtocol::kGrpc, PortProtocol::kHttp2}) {
    for (bool per_request : {false, true}) {
      EXPECT_EQ(DestinationL7For(Disagreeing(PortProtocol::kHttp, h2), Addr("10.244.1.11", 8080), per_request),
                DestinationL7::kHttp1OrHttp2);
      EXPECT_EQ(DestinationL7For(Disagreeing(h2, PortProtocol::kHttp), Addr("10.244.1.11", 8080), per_request),
                DestinationL7::kHttp1OrHttp2);
    }
  }
  // HTTP/2 and gRPC agree: both are the HTTP/2 handler's.
  EXPECT_EQ(DestinationL7For(Disagreeing(PortProtocol::kHttp2, PortProtocol::kGrpc), Addr("10.244.1.11", 8080), false),
            DestinationL7::kHttp2);
}

// An HTTP protocol and TCP: the HTTP handler, whose byte-stream fallback serves TCP clients (and which refuses what
// it cannot parse when requests are decided).
TEST(DestinationL7, HttpAndTcpDeclaredOnOnePortKeepTheHttpHandler) {
  for (bool per_request : {false, true}) {
    EXPECT_EQ(
        DestinationL7For(Disagreeing(PortProtocol::kTcp, PortProtocol::kHttp), Addr("10.244.1.11", 8080), per_request),
        DestinationL7::kHttp1);
    EXPECT_EQ(
        DestinationL7For(Disagreeing(PortProtocol::kGrpc, PortProtocol::kTcp), Addr("10.244.1.11", 8080), per_request),
        DestinationL7::kHttp2);
  }
  // Every Service says TCP: the byte relay, unless requests must be decided.
  agent::MeshSnapshot tcp = Disagreeing(PortProtocol::kTcp, PortProtocol::kTcp);
  EXPECT_EQ(DestinationL7For(tcp, Addr("10.244.1.11", 8080), false), DestinationL7::kNone);
  EXPECT_EQ(DestinationL7For(tcp, Addr("10.244.1.11", 8080), true), DestinationL7::kHttp1);
}

TEST(DestinationL7, SniffingTellsTheHttp2PrefaceFromAnythingElse) {
  const std::string preface("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
  EXPECT_EQ(SniffHttpVersion(preface, false), DestinationL7::kHttp2);
  EXPECT_EQ(SniffHttpVersion(preface + std::string("\0\0\0\4", 4), false), DestinationL7::kHttp2);
  for (size_t n = 1; n < preface.size(); ++n) {  // a prefix waits for more, unless nothing more will come
    EXPECT_EQ(SniffHttpVersion(preface.substr(0, n), false), DestinationL7::kHttp1OrHttp2) << n;
    EXPECT_EQ(SniffHttpVersion(preface.substr(0, n), true), DestinationL7::kHttp1) << n;
  }
  EXPECT_EQ(SniffHttpVersion("", false), DestinationL7::kHttp1OrHttp2);
  EXPECT_EQ(SniffHttpVersion("G", false), DestinationL7::kHttp1);
  EXPECT_EQ(SniffHttpVersion("POST / HTTP/1.1\r\n", false), DestinationL7::kHttp1);  // "P" fits, "PO" does not
  EXPECT_EQ(SniffHttpVersion("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\r", false), DestinationL7::kHttp1);
  EXPECT_EQ(SniffHttpVersion("\x16\x03\x01", false), DestinationL7::kHttp1);  // TLS: not HTTP at all, HTTP/1.1 decides
  EXPECT_EQ(kHttpSniffBytes, preface.size());
}

}  // namespace
}  // namespace zm::proxy
