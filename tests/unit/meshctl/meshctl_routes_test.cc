// `meshctl routes` and the services view's protocol and attached routes, from a ResourceSet with one route of each
// kind.
#include <google/protobuf/text_format.h>
#include <gtest/gtest.h>

#include "tools/meshctl/output.h"
#include "tools/meshctl/route_views.h"
#include "tools/meshctl/views.h"

namespace zm::meshctl {
namespace {

zeromesh::v1::ResourceSet Mesh() {
  zeromesh::v1::ResourceSet rs;
  const char* text = R"pb(
    resources {
      service {
        name: "backend"
        namespace: "shop"
        vip: "10.96.0.10"
        ports { name: "http" port: 80 target_port: 8080 resolved_protocol: APP_HTTP }
      }
    }
    resources {
      service {
        name: "db"
        namespace: "shop"
        vip: "10.96.0.11"
        ports { port: 5432 target_port: 5432 }
      }
    }
    resources {
      http_route {
        name: "canary"
        namespace: "shop"
        parent_refs { kind: "Service" name: "backend" port: 80 }
        rules {
          matches { headers { name: "x-canary" value: "1" } }
          filters { request_header_modifier { set { name: "x-via" value: "mesh" } } }
          backend_refs { name: "backend-v2" port: 80 weight: 1 }
        }
        rules {
          matches {
            method: "GET"
            path { type: MATCH_PREFIX value: "/api" }
          }
          matches { path { type: MATCH_REGEX value: "/v[0-9]+/.*" } }
          backend_refs { name: "backend-v1" port: 80 weight: 3 }
          backend_refs { name: "backend-v2" namespace: "canary" port: 80 weight: 1 }
          retry { attempts: 2 codes: 503 }
        }
      }
    }
    resources {
      grpc_route {
        name: "cart"
        namespace: "shop"
        parent_refs { name: "backend" }
        rules {
          matches { method { service: "shop.Cart" method: "Get" } }
          backend_refs { name: "backend-v1" weight: 1 }
        }
      }
    }
    resources {
      tcp_route {
        name: "db-split"
        namespace: "shop"
        parent_refs { name: "db" port: 5432 }
        rules {
          backend_refs { name: "db-a" weight: 90 }
          backend_refs { name: "db-b" weight: 10 }
        }
      }
    }
  )pb";
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &rs));
  return rs;
}

TEST(MeshctlRoutes, OneEntryPerRouteWithMatchesFiltersAndShares) {
  auto j = RoutesJson(Mesh());
  ASSERT_EQ(j.size(), 3u);
  EXPECT_EQ(j[0]["kind"], "HTTPRoute");
  EXPECT_EQ(j[0]["parents"][0]["service"], "shop/backend");
  EXPECT_EQ(j[0]["rules"][0]["matches"][0], "x-canary=1");
  EXPECT_EQ(j[0]["rules"][0]["filters"][0]["type"], "RequestHeaderModifier");
  EXPECT_EQ(j[0]["rules"][1]["matches"][0], "GET /api*");
  EXPECT_EQ(j[0]["rules"][1]["matches"][1], "~/v[0-9]+/.*");
  EXPECT_DOUBLE_EQ(j[0]["rules"][1]["backends"][0]["share_percent"].get<double>(), 75.0);
  EXPECT_EQ(j[0]["rules"][1]["backends"][1]["service"], "canary/backend-v2");  // cross-namespace kept
  EXPECT_EQ(j[0]["rules"][1]["retry"]["attempts"], 2);
  EXPECT_EQ(j[1]["kind"], "GRPCRoute");
  EXPECT_EQ(j[1]["rules"][0]["matches"][0], "shop.Cart/Get");
  EXPECT_EQ(j[2]["kind"], "TCPRoute");
  EXPECT_DOUBLE_EQ(j[2]["rules"][0]["backends"][1]["share_percent"].get<double>(), 10.0);

  const std::string table = RenderRoutes(j);
  EXPECT_NE(table.find("HTTPRoute/canary"), std::string::npos) << table;
  EXPECT_NE(table.find("backend:80"), std::string::npos) << table;
  EXPECT_NE(table.find("db-b 10%"), std::string::npos) << table;
  EXPECT_NE(table.find("backend-v1 75%, canary/"), std::string::npos) << table;
  for (size_t start = 0, nl; (nl = table.find('\n', start)) != std::string::npos; start = nl + 1) {
    EXPECT_LE(nl - start, kMaxWidth) << table;
  }
  EXPECT_EQ(RenderRoutes(nlohmann::json::array()), "no routes\n");
}

TEST(MeshctlRoutes, ServicesShowProtocolAndAttachedRoutes) {
  auto j = ServicesJson(Mesh());
  ASSERT_EQ(j.size(), 2u);
  EXPECT_EQ(j[0]["ports"][0]["protocol"], "HTTP");
  EXPECT_EQ(j[0]["routes"], nlohmann::json({"HTTPRoute/canary", "GRPCRoute/cart"}));
  EXPECT_EQ(j[1]["ports"][0]["protocol"], "TCP");
  EXPECT_EQ(j[1]["routes"], nlohmann::json({"TCPRoute/db-split"}));
  const std::string table = RenderServices(j);
  EXPECT_NE(table.find("80->8080/HTTP"), std::string::npos) << table;
  EXPECT_NE(table.find("5432->5432 "), std::string::npos) << table;  // TCP ports stay as they were
}

}  // namespace
}  // namespace zm::meshctl
