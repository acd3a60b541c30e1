#include "agent/metrics/sockmap_metrics.h"

#include "common/metrics/metrics_hub.h"

namespace zm::metrics {

std::vector<prometheus::MetricFamily> SockmapFamilies(bool requested, bool on, const agent::bpf::SockmapStats& s,
                                                      uint64_t proxy_add_errors) {
  std::vector<prometheus::MetricFamily> out;
  auto wanted = GaugeFamily("zeromesh_sockmap_requested",
                            "1 when the agent's --sockmap asks for sk_msg redirection. 1 with zeromesh_sockmap_enabled "
                            "0: it could not be turned on (--sockops-cgroup auto found no pod cgroup; see the log).");
  AddSample(&wanted, requested ? 1.0 : 0.0);
  out.push_back(std::move(wanted));
  auto enabled = GaugeFamily("zeromesh_sockmap_enabled",
                             "1 when node-local sk_msg redirection between pods and the proxy is loaded and on.");
  AddSample(&enabled, on ? 1.0 : 0.0);
  out.push_back(std::move(enabled));
  auto counter = [&out](const char* name, const char* help, uint64_t v) {
    auto f = CounterFamily(name, help);
    AddSample(&f, static_cast<double>(v));
    out.push_back(std::move(f));
  };
  counter("zeromesh_sockmap_redirected_bytes_total",
          "Bytes sent between a pod and the proxy by sk_msg redirection instead of TCP.", s.redirected_bytes);
  counter("zeromesh_sockmap_redirected_messages_total", "sendmsg calls redirected by sk_msg.", s.redirected_msgs);
  auto passed = CounterFamily("zeromesh_sockmap_passed_total",
                              "Sends of sockets in the sockmap that went by TCP, by reason: no_peer (the other side "
                              "is not in the map), backpressure (the reader had too much unread), tcp_pending (earlier "
                              "TCP bytes not yet read).");
  AddSample(&passed, static_cast<double>(s.passed_no_peer), {{"reason", "no_peer"}});
  AddSample(&passed, static_cast<double>(s.passed_backpressure), {{"reason", "backpressure"}});
  AddSample(&passed, static_cast<double>(s.passed_tcp_pending), {{"reason", "tcp_pending"}});
  out.push_back(std::move(passed));
  counter("zeromesh_sockmap_demotions_total", "Proxy-to-pod flows that went back to TCP for good.", s.demoted_to_pod);
  counter("zeromesh_sockmap_pod_sockets_total", "Pod sockets the sock_ops program put in the sockmap.",
          s.sockets_added);
  auto errors = CounterFamily("zeromesh_sockmap_add_errors_total",
                              "Sockets that could not enter the sockmap (map full, socket gone), by side.");
  AddSample(&errors, static_cast<double>(s.add_errors), {{"side", "pod"}});
  AddSample(&errors, static_cast<double>(proxy_add_errors), {{"side", "proxy"}});
  out.push_back(std::move(errors));
  return out;
}

}  // namespace zm::metrics
