#include "agent/metrics/agent_health.h"

#include "common/metrics/metrics_hub.h"

namespace zm::metrics {
namespace {

using Families = std::vector<prometheus::MetricFamily>;

void Gauge(Families* out, const char* name, const char* help, double v) {
  auto f = GaugeFamily(name, help);
  AddSample(&f, v);
  out->push_back(std::move(f));
}

void Counter(Families* out, const char* name, const char* help, uint64_t v) {
  auto f = CounterFamily(name, help);
  AddSample(&f, static_cast<double>(v));
  out->push_back(std::move(f));
}

uint64_t Load(const std::atomic<uint64_t>& a) {
  return a.load(std::memory_order_relaxed);
}

void CaptureFamilies(Families* out, const agent::bpf::CaptureStats& c) {
  auto captured = CounterFamily("zeromesh_bpf_captured_total",
                                "New connections the tc program steered into a proxy listener, by listener.");
  AddSample(&captured, static_cast<double>(c.captured_outbound), {{"listener", "outbound"}});
  AddSample(&captured, static_cast<double>(c.captured_hbone), {{"listener", "hbone"}});
  AddSample(&captured, static_cast<double>(c.captured_plaintext), {{"listener", "plaintext"}});
  out->push_back(std::move(captured));
  auto dropped = CounterFamily("zeromesh_bpf_dropped_total", "Packets the tc program dropped, by reason.");
  AddSample(&dropped, static_cast<double>(c.dropped_fail_closed), {{"reason", "fail_closed"}});
  AddSample(&dropped, static_cast<double>(c.dropped_orphan), {{"reason", "orphan"}});
  AddSample(&dropped, static_cast<double>(c.dropped_node_plaintext), {{"reason", "node_plaintext"}});
  AddSample(&dropped, static_cast<double>(c.dropped_fragment), {{"reason", "fragment"}});
  AddSample(&dropped, static_cast<double>(c.dropped_ipv6), {{"reason", "ipv6"}});
  AddSample(&dropped, static_cast<double>(c.dropped_udp), {{"reason", "udp"}});
  out->push_back(std::move(dropped));
  Counter(out, "zeromesh_bpf_probes_passed_total",
          "Connections from the node's own network namespace to a STRICT pod's declared probe port.", c.passed_probe);
  Counter(out, "zeromesh_bpf_assigned_established_total",
          "Packets assigned to an existing proxy socket by 4-tuple lookup.", c.assigned_established);
  Counter(out, "zeromesh_bpf_assign_errors_total", "bpf_sk_assign failures.", c.assign_errors);
  Counter(out, "zeromesh_bpf_passed_fail_open_total",
          "SYNs of PERMISSIVE pods let through because no proxy listener was present.", c.passed_fail_open);
  Counter(out, "zeromesh_bpf_attach_repairs_total",
          "tcx links of ours re-attached first in their chain after another program got ahead or someone detached "
          "them.",
          c.attach_repairs);
}

void ProxyFamilies(Families* out, const proxy::ProxyStats& s) {
  auto accepted =
      CounterFamily("zeromesh_proxy_accepted_total", "Connections accepted by the node proxy, by listener.");
  AddSample(&accepted, static_cast<double>(Load(s.outbound_accepted)), {{"listener", "outbound"}});
  AddSample(&accepted, static_cast<double>(Load(s.hbone_accepted)), {{"listener", "hbone"}});
  AddSample(&accepted, static_cast<double>(Load(s.plaintext_accepted)), {{"listener", "plaintext"}});
  out->push_back(std::move(accepted));
  auto bytes = CounterFamily("zeromesh_proxy_bytes_total", "Bytes relayed by the node proxy, by direction.");
  AddSample(&bytes, static_cast<double>(Load(s.bytes_out)), {{"direction", "client_to_server"}});
  AddSample(&bytes, static_cast<double>(Load(s.bytes_in)), {{"direction", "server_to_client"}});
  out->push_back(std::move(bytes));
  const struct {
    const char* name;
    const char* help;
    const std::atomic<uint64_t>& v;
  } counters[] = {
      {"zeromesh_proxy_hbone_sessions_opened_total", "Outgoing pooled HBONE (TLS) connections opened.",
       s.hbone_sessions_opened},
      {"zeromesh_proxy_hbone_streams_opened_total", "HBONE CONNECT streams sent.", s.hbone_streams_opened},
      {"zeromesh_proxy_hbone_streams_queued_total",
       "HBONE CONNECT streams that waited because their pool was at its connection and stream limits.",
       s.hbone_streams_queued},
      {"zeromesh_proxy_hbone_streams_accepted_total", "HBONE CONNECT streams answered 200.", s.hbone_streams_accepted},
      {"zeromesh_proxy_passthrough_total", "Connections relayed in plaintext outside the mesh.", s.passthrough},
      {"zeromesh_proxy_same_node_total", "Connections between two workloads of this node.", s.same_node},
      {"zeromesh_proxy_connections_closed_total", "Connections the node proxy closed.", s.connections_closed},
      {"zeromesh_proxy_denials_total",
       "Connections denied (policy, STRICT, unknown source), and HTTP requests denied by TrafficPermission http rules.",
       s.denials},
      {"zeromesh_proxy_tls_failures_total", "TLS failures (handshake, certificates).", s.tls_failures},
      {"zeromesh_proxy_upstream_failures_total", "Upstream connects that failed or timed out.", s.upstream_failures},
      {"zeromesh_proxy_hbone_redials_total", "HBONE connects dialled again on a fresh socket (refused or unanswered).",
       s.hbone_redials},
      {"zeromesh_proxy_bad_requests_total", "HBONE requests answered 400.", s.bad_requests},
      {"zeromesh_proxy_held_unknown_source_total",
       "Connections held until the agent could serve them: source or destination pod not known yet, or its certificate "
       "not issued.",
       s.held_unknown_source},
      {"zeromesh_proxy_held_refused_total",
       "Connections refused instead of held: the proxy worker already held max_held_connections.", s.held_refused},
      {"zeromesh_proxy_hbone_handshake_timeouts_total",
       "Inbound HBONE connections closed because the TLS handshake did not complete within the handshake timeout.",
       s.hbone_handshake_timeouts},
      {"zeromesh_proxy_hbone_header_timeouts_total",
       "Inbound HBONE connections closed because no CONNECT request arrived within the header timeout after the "
       "handshake.",
       s.hbone_header_timeouts},
      {"zeromesh_proxy_hbone_peer_limit_refused_total",
       "Inbound HBONE connections refused: their source address already had max_connections_per_peer connections.",
       s.hbone_peer_limit_refused},
      {"zeromesh_proxy_resets_total", "Connections torn down with RST.", s.resets},
      {"zeromesh_service_connections_total", "Connections to a Service VIP routed to an endpoint.",
       s.service_connections},
      {"zeromesh_service_no_endpoint_total", "Connections to a Service refused: no usable endpoint or port.",
       s.service_no_endpoint},
      {"zeromesh_circuit_breaker_rejections_total", "Connections refused by a Service's circuit breaker.",
       s.circuit_breaker_rejections},
      {"zeromesh_connect_retries_total", "Upstream connects retried on another endpoint.", s.connect_retries},
      {"zeromesh_ratelimit_rejections_total", "New connections refused by a destination Service's rate limit.",
       s.ratelimit_rejections},
      {"zeromesh_http_retry_budget_exhausted_total",
       "HTTP retries not made because the worker's retry budget (20 % of requests in flight, at least 3) was spent.",
       s.http_retry_budget_exhausted},
      {"zeromesh_http_timeouts_total", "HTTP requests answered 504 (or reset) by an HTTPRoute timeout.",
       s.http_timeouts},
      {"zeromesh_http_mirrored_total", "Copies of HTTP requests sent to a RequestMirror backend.", s.http_mirrored},
      {"zeromesh_http_mirror_dropped_total",
       "RequestMirror copies not sent: body over the 64 KiB bound, no mirror endpoint, or too many in flight.",
       s.http_mirror_dropped},
      {"zeromesh_http_upstream_connections_opened_total",
       "HTTP/1.1 upstream streams opened to an endpoint by the source proxy.", s.http_upstream_opened},
      {"zeromesh_http_upstream_connections_reused_total",
       "Requests sent over an idle pooled HTTP/1.1 upstream stream that another client connection opened.",
       s.http_upstream_reused},
      {"zeromesh_destination_protocol_fallbacks_total",
       "Connections to a pod's HTTP Service port that the destination proxy relayed as bytes: their first bytes were "
       "not an HTTP request, or the pod spoke first.",
       s.destination_protocol_fallbacks},
  };
  for (const auto& c : counters) Counter(out, c.name, c.help, Load(c.v));
}

}  // namespace

std::vector<prometheus::MetricFamily> HealthFamilies(const AgentHealth& h) {
  Families out;
  Gauge(&out, "zeromesh_agent_ready",
        "1 when the agent serves traffic: BPF attached, listeners in place, config applied.", h.ready ? 1 : 0);
  auto programs = GaugeFamily("zeromesh_bpf_programs_attached", "tcx capture program attachments, by interface role.");
  AddSample(&programs, static_cast<double>(h.uplink_programs), {{"role", "uplink"}});
  AddSample(&programs, static_cast<double>(h.pod_veth_programs), {{"role", "pod"}});
  out.push_back(std::move(programs));
  Gauge(&out, "zeromesh_pod_veths_attached", "Pod veths with the capture program attached.",
        static_cast<double>(h.pod_veth_programs));
  Gauge(&out, "zeromesh_local_pods", "Pods of this node in the applied config.", static_cast<double>(h.local_pods));
  Gauge(&out, "zeromesh_bpf_listeners_in_sockmap",
        "Proxy listeners present in the BPF SOCKMAPs (of zeromesh_bpf_listeners_expected).",
        static_cast<double>(h.listeners_in_sockmap));
  Gauge(&out, "zeromesh_bpf_listeners_expected",
        "Proxy listeners the node's SOCKMAPs should hold: 3 per address family it captures (IPv4, IPv6).",
        static_cast<double>(h.listeners_expected));
  Gauge(&out, "zeromesh_config_version", "Version of the config applied (local config: applied snapshots).",
        static_cast<double>(h.config_version));
  if (h.soonest_cert_expiry_seconds) {
    Gauge(&out, "zeromesh_certificate_expiry_seconds", "Seconds until the soonest local workload certificate expires.",
          *h.soonest_cert_expiry_seconds);
  }
  if (h.controller_connected) {
    Gauge(&out, "zeromesh_controller_connected", "1 while the config stream to the controller is up.",
          *h.controller_connected ? 1 : 0);
  }
  if (h.capture) CaptureFamilies(&out, *h.capture);
  if (h.proxy) ProxyFamilies(&out, *h.proxy);
  return out;
}

}  // namespace zm::metrics
