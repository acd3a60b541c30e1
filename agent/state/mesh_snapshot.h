// The agent's view of the mesh: an immutable snapshot, swapped atomically as a whole. Worker threads take one
// shared_ptr per new connection, so a connection sees one consistent version from start to end.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "agent/state/service.h"
#include "common/net/ip_addr.h"
#include "common/tls/spiffe.h"

namespace zm::agent {

enum class MeshMode { kStrict, kPermissive };

const char* MeshModeName(MeshMode m);

struct Workload {
  std::string name;
  std::string ns;
  std::string service_account;
  std::string node;
  std::vector<net::IpAddr> ips;  // every address of the pod (one per family), the primary first
  bool enrolled = false;
  MeshMode mode = MeshMode::kStrict;
  std::vector<uint16_t> probe_ports = {};  // the only ports the node's own netns may reach in plaintext (STRICT)
  std::string mesh_label = {};  // the pod's own zeromesh.io/mesh label ("" if unset): it overrides its namespace's
};

// Every protocol the Services selecting one pod port declare for it. Two Services may disagree (one says HTTP/1.1,
// another gRPC, or TCP): the destination proxy then serves each (destination_l7.h), and `meshctl status` warns.
struct EndpointPort {
  // The first Service, by namespace/name, that declares an HTTP protocol (HTTP/1.1, HTTP/2, gRPC) for the port, and
  // that protocol: it names the port's requests in metrics and spans. nullptr when every declaration is TCP.
  const Service* http_service = nullptr;
  PortProtocol http_protocol = PortProtocol::kTcp;
  uint8_t declared = 0;  // bit 1 << PortProtocol per protocol declared; 0: no Service selects the port

  bool Declares(PortProtocol p) const { return (declared >> static_cast<unsigned>(p)) & 1u; }
};

class MeshSnapshot {
 public:
  MeshSnapshot(std::string trust_domain, std::string node, MeshMode default_mode, std::vector<Workload> workloads,
               std::vector<Service> services = {});

  const std::string& trust_domain() const { return trust_domain_; }
  const std::string& node() const { return node_; }
  MeshMode default_mode() const { return default_mode_; }
  // MeshConfig strictUdp: Allow. False: STRICT pods get DNS only over UDP (the capture program drops the rest).
  bool strict_udp_allowed() const { return strict_udp_allowed_; }
  void set_strict_udp_allowed(bool on) { strict_udp_allowed_ = on; }
  // MeshConfig tracing.samplingPercentage in parts per million: the share of new traces the proxies sample.
  uint32_t tracing_sampling_ppm() const { return tracing_sampling_ppm_; }
  void set_tracing_sampling_ppm(uint32_t ppm) { tracing_sampling_ppm_ = ppm; }
  // MeshConfig excludeCidrs ("10.0.0.0/8", validated): destinations pods reach directly, never captured.
  const std::vector<std::string>& exclude_cidrs() const { return exclude_cidrs_; }
  void set_exclude_cidrs(std::vector<std::string> cidrs) { exclude_cidrs_ = std::move(cidrs); }
  size_t size() const { return workloads_.size(); }
  const std::vector<Workload>& workloads() const { return workloads_; }

  // nullptr when the IP (either family) is not an address of a mesh workload.
  const Workload* Find(const net::IpAddr& ip) const;
  bool IsLocal(const Workload& w) const { return w.node == node_; }
  tls::SpiffeId IdentityOf(const Workload& w) const { return {trust_domain_, w.ns, w.service_account}; }

  const std::vector<Service>& services() const { return services_; }
  // nullptr when the IP (either family) is not a Service VIP.
  const Service* FindService(const net::IpAddr& vip) const;
  const Service* FindService(const std::string& ns, const std::string& name) const;
  // What the Services selecting pod port |ip|:|target_port| (host order port) declare for it:
  // the destination proxy asks for every new connection, so it is an index lookup.
  EndpointPort FindEndpointPort(const net::IpAddr& ip, uint16_t target_port) const;
  // FindEndpointPort's http_service (its protocol in |*protocol|), nullptr when no Service declares HTTP there.
  const Service* FindServiceOfEndpoint(const net::IpAddr& ip, uint16_t target_port, PortProtocol* protocol) const;

 private:
  std::string trust_domain_;
  std::string node_;
  MeshMode default_mode_;
  bool strict_udp_allowed_ = false;
  uint32_t tracing_sampling_ppm_ = 10000;  // 1 %, MeshConfig's default
  std::vector<std::string> exclude_cidrs_;
  std::vector<Workload> workloads_;
  std::unordered_map<net::IpAddr, size_t> by_ip_;  // every address of every workload -> workloads_ index
  std::vector<Service> services_;
  std::unordered_map<net::IpAddr, size_t> service_by_vip_;
  std::unordered_map<std::string, size_t> service_by_key_;  // "<namespace>/<name>"
  struct EndpointEntry {
    uint32_t service = UINT32_MAX;  // EndpointPort::http_service's index, UINT32_MAX: none
    PortProtocol protocol = PortProtocol::kTcp;
    uint8_t declared = 0;
  };
  std::unordered_map<net::SockAddr, EndpointEntry> by_endpoint_port_;  // key: endpoint ip and target port
};

// Holds the current snapshot; Set() notifies subscribers (e.g. proxy workers holding connections from unknown pods).
class SnapshotHolder {
 public:
  std::shared_ptr<const MeshSnapshot> Get() const;
  void Set(std::shared_ptr<const MeshSnapshot> snap);

  // The callback runs on the thread calling Set(); keep it short (e.g. write to an eventfd).
  int Subscribe(std::function<void()> cb);
  void Unsubscribe(int id);

 private:
  mutable std::mutex mu_;
  std::shared_ptr<const MeshSnapshot> current_;
  std::mutex subs_mu_;
  std::map<int, std::function<void()>> subs_;
  int next_id_ = 1;
};

}  // namespace zm::agent
