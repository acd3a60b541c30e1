"""IPv6 in the mesh (issue 16): a dual-stack simulated cluster and an IPv6-only one, real controller, agents and BPF.

Dual-stack topology (every pod has 10.244.<node>.<10+j> and fd00:10:244:<node>::<10+j>, ip = the IPv4 one):
  node1: client (enrolled, STRICT), plain (not enrolled)
  node2: server (enrolled, STRICT), perm (enrolled, PERMISSIVE), plain2 (not enrolled)
  Service echo: vips 10.96.0.50 and fd00:10:96::50, port 80 -> server:8080
  Service web: vips 10.96.0.51 and fd00:10:96::51, port 80 -> server:9080 (appProtocol http, python's http.server)
  TrafficPermission: DENY plaintext from fd00:10:244:1::/64 (node1's IPv6 pods) to perm.
IPv6-only topology: client on node1, server on node2 (enrolled, STRICT), nodes and controller on IPv6 too; Service
  echo: vip fd00:10:96::60, port 80 -> server:8080.
Every pod runs podtool's server on [::]:8080 (both families). Captures on node1's uplink leave out the control
connection (15012): what remains must be HBONE (TLS to 15008) only.
"""

import json
import subprocess
import sys
import time
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "cluster"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "traffic"))
import zmcluster  # noqa: E402
from mesh_case import MeshCase, service_yaml  # noqa: E402

PODTOOL = str(Path(__file__).resolve().parents[2] / "cluster" / "podtool.py")
PORT = 8080
VIP4, VIP6 = "10.96.0.50", "fd00:10:96::50"
VIP6_ONLY = "fd00:10:96::60"  # the IPv6-only cluster's Service echo
WEB_VIP4, WEB_VIP6 = "10.96.0.51", "fd00:10:96::51"  # Service web: HTTP (the L7 path), port 80 -> server:9080
METRICS_PORT = 15020  # the agent's default --metrics-addr (0.0.0.0)
WIRE = "tcp and not port 15012"  # the uplink's TCP but the agents' control connection to the controller


def host_of(addr_text: str) -> str:
    """"10.0.0.1:80" -> "10.0.0.1", "[fd00::1]:80" -> "fd00::1"."""
    return addr_text.rsplit(":", 1)[0].strip("[]")


class MeshedCase(MeshCase):
    """A cluster with the controller (mesh_case's frame); subclasses fill it in setUpMesh and set FAMILIES."""

    TMP_PREFIX = "zm-dualstack-"
    LOGS = ("controller", "agent-node1", "agent-node2")

    @classmethod
    def pod(cls, node, name, **workload):
        """A pod running podtool's server on [::]:8080, with its Workload manifest."""
        pod = cls.cluster.add_pod(node, name)
        cls.cp.workload(pod, **workload)
        cls.cluster.popen(pod, [sys.executable, PODTOOL, "serve", str(PORT), "::"], stdout=subprocess.DEVNULL)
        return pod

    @classmethod
    def wait_ok(cls, pod, host, port=PORT, timeout=10):
        """Until a connection from |pod| to host:port gets the server's reply (the mesh has its config)."""
        deadline = time.time() + timeout
        while True:
            out = cls.try_connect(pod, host, port, 1)
            if out["ok"]:
                return
            if time.time() > deadline:
                raise AssertionError(f"{pod.name} -> {zmcluster.host_port(host, port)} never worked: {out}\n"
                                     f"agent node1: {cls.cp.log('agent-node1', 2000)}\n"
                                     f"agent node2: {cls.cp.log('agent-node2', 2000)}")
            time.sleep(0.1)

    @classmethod
    def try_connect(cls, pod, host, port=PORT, timeout=2):
        res = cls.cluster.run(pod, [sys.executable, PODTOOL, "try", host, str(port), str(timeout)], text=True,
                              timeout=30)
        return json.loads(res.stdout)

    def tool(self, pod, *args, timeout=30):
        res = self.cluster.run(pod, [sys.executable, PODTOOL, *map(str, args)], timeout=timeout, text=True)
        self.assertEqual(res.returncode, 0, f"podtool {args} in {pod.name}: {res.stderr}\n"
                         f"agent node1: {self.cp.log('agent-node1', 1500)}\n"
                         f"agent node2: {self.cp.log('agent-node2', 1500)}")
        return json.loads(res.stdout)

    def assert_meshed(self, client, host, port, marker, hbone_to):
        """Three echoes from |client| to host:port carrying |marker|: all answered, the marker never on node1's uplink,
        every captured packet HBONE (15008; an earlier test's pooled tunnel may close meanwhile), the echoes' through
        hbone_to:15008."""
        cap = self.cluster.capture("node1", "eth0", WIRE)
        self.addCleanup(cap.cleanup)
        for _ in range(3):
            out = self.tool(client, "echo", host, port, marker)
            self.assertTrue(out["ok"], out)
        self.assertNotIn(marker.encode(), cap.data(), "plaintext marker seen on the wire")
        packets = cap.summary()
        self.assertTrue(packets, "no packets captured")
        self.assertEqual([p for p in packets if ".15008" not in p], [], "TCP on the wire other than HBONE")
        self.assertTrue(any(f"> {hbone_to}.15008:" in p for p in packets), f"no HBONE to {hbone_to}:15008: {packets}")

    def log_entry(self, node, msg="access", **fields):
        """The first JSON line |msg| of |node|'s agent log carrying every field as given (values compared as text, a
        trailing "*" matching any non-empty rest); waits up to 3 s, as an access line is written when the connection
        ends."""
        def matches(entry):
            return all(len(str(entry.get(k, ""))) > len(v) - 1 and str(entry.get(k)).startswith(v[:-1])
                       if v.endswith("*") else str(entry.get(k)) == v for k, v in fields.items())
        deadline = time.time() + 3
        while True:
            for line in self.cp.log(f"agent-{node}").splitlines():
                entry = json.loads(line) if line.startswith("{") and f'"msg":"{msg}"' in line else None
                if entry and matches(entry):
                    return entry
            if time.time() > deadline:
                self.fail(f"no {msg} line with {fields} from {node}: {self.cp.log(f'agent-{node}', 3000)}")
            time.sleep(0.1)

    def assert_peer(self, client, host, port, server):
        """The server sees |client|'s own address of host's family; the client sees the address it dialled."""
        out = self.tool(client, "peer", host, port)
        v6 = zmcluster.is_v6(host)
        self.assertEqual(host_of(out["server_sees_peer"]), client.ip6 if v6 else client.ip4, out)
        self.assertEqual(out["client_sees_peer"], zmcluster.host_port(host, port), out)
        self.assertEqual(host_of(out["server_local"]), server.ip6 if v6 else server.ip4, out)

    def assert_fails_closed_and_recovers(self, client, host):
        """SIGKILL of node1's agent: new connections from |client| (STRICT) to host:8080 fail and nothing but the dead
        tunnels' teardown leaves node1; once the agent is started again they work."""
        node1 = self.cluster.node("node1")
        cap = self.cluster.capture(node1, "eth0", WIRE)
        self.addCleanup(cap.cleanup)
        self.cp.kill_agent(node1)
        try:
            for _ in range(2):
                out = self.try_connect(client, host, PORT, 0.5)
                self.assertFalse(out["ok"], f"a connection to {host} succeeded with no agent: {out}")
            packets = cap.summary()
            # The dead agent's tunnels close (the kernel's FINs to 15008); nothing may go to the application's port.
            self.assertEqual([p for p in packets if f".{PORT}" in p or ".15008" not in p], [],
                             "a connection went past the mesh while the agent was dead")
        finally:
            t0 = time.monotonic()
            self.cp.start_agent(node1, wait=False)
            while not self.try_connect(client, host, PORT, 0.5)["ok"]:
                self.assertLess(time.monotonic() - t0, 10, self.cp.log("agent-node1", 3000))
                time.sleep(0.05)
            print(f"connections to {host} work again {time.monotonic() - t0:.3f}s after the agent was started",
                  file=sys.stderr)
            self.cp.wait_agent_ready(node1)


class DualStackTest(MeshedCase):
    FAMILIES = ("ipv4", "ipv6")

    @classmethod
    def setUpMesh(cls, c):
        cp = cls.cp
        cls.client = cls.pod("node1", "client", sa="client")
        cls.plain = cls.pod("node1", "plain", enrolled=False)
        cls.server = cls.pod("node2", "server", sa="server")
        cls.perm = cls.pod("node2", "perm", sa="perm", mode="PERMISSIVE")
        cls.plain2 = cls.pod("node2", "plain2", enrolled=False)
        cp.write("service-echo.yaml", service_yaml("default", "echo", VIP4, {"app": "server"}, [("tcp", 80, PORT)],
                                                   vips=[VIP4, VIP6]))
        cp.write("service-web.yaml", service_yaml("default", "web", WEB_VIP4, {"app": "server"},
                                                  [("http", 80, 9080, "http")], vips=[WEB_VIP4, WEB_VIP6]))
        c.popen(cls.server, [sys.executable, "-m", "http.server", "9080", "--bind", "::"], stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL)
        cp.permission("no-node1-v6-plaintext", "default", "DENY", {"app": "perm"},
                      {"ipBlocks": [f"{c.node('node1').pod_cidr6}"]})
        cp.start()
        for host, port in ((cls.server.ip4, PORT), (cls.server.ip6, PORT), (VIP4, 80), (VIP6, 80), (WEB_VIP6, 80)):
            cls.wait_ok(cls.client, host, port)

    # (a) IPv6 pod to pod across nodes.
    def test_ipv6_pod_to_pod_is_meshed_and_keeps_the_source(self):
        self.assert_meshed(self.client, self.server.ip6, PORT, "ZEROMESH-V6-MARKER-POD", self.server.ip6)
        self.assert_peer(self.client, self.server.ip6, PORT, self.server)
        # The destination proxy logs the verified identity and the client's IPv6 address.
        self.log_entry("node2", reporter="destination", **{"src.addr": f"[{self.client.ip6}]:*",
                                                            "src.identity": self.cp.spiffe_id("default", "client"),
                                                            "dst.addr": f"[{self.server.ip6}]:{PORT}"})

    # Metrics: an IPv6 connection is counted for its workload pair, like an IPv4 one, on both ends.
    def test_ipv6_connections_are_counted_for_the_workload_pair(self):
        def closed(node, reporter):
            url = f"http://{node.ip4}:{METRICS_PORT}/metrics"
            res = self.cluster.run(node, ["curl", "-sS", "--max-time", "5", url], text=True, timeout=15)
            self.assertEqual(res.returncode, 0, res.stderr)
            want = (f'reporter="{reporter}"', 'source_workload="client"', 'destination_workload="server"')
            return sum(float(line.rsplit(" ", 1)[1]) for line in res.stdout.splitlines()
                       if line.startswith("zeromesh_tcp_connections_closed_total{") and all(w in line for w in want))

        nodes = {"source": self.cluster.node("node1"), "destination": self.cluster.node("node2")}
        before = {r: closed(n, r) for r, n in nodes.items()}
        self.assertTrue(self.tool(self.client, "echo", self.server.ip6, PORT, "count-me")["ok"])
        deadline = time.time() + 3  # a connection is counted when it closes
        while any(closed(n, r) == before[r] for r, n in nodes.items()) and time.time() < deadline:
            time.sleep(0.1)
        self.assertEqual({r: closed(n, r) - before[r] for r, n in nodes.items()}, {"source": 1, "destination": 1})

    # (b) an IPv6 Service VIP: its IPv6 endpoint, through the tunnel.
    def test_ipv6_service_vip_is_meshed(self):
        self.assert_meshed(self.client, VIP6, 80, "ZEROMESH-V6-MARKER-VIP", self.server.ip6)
        self.assert_peer(self.client, VIP6, 80, self.server)

    # HTTP over IPv6 through an HTTP Service: the per-request (L7) path of both proxies.
    def test_http_to_an_ipv6_vip_is_meshed_per_request(self):
        marker = "ZEROMESH-V6-MARKER-HTTP"
        cap = self.cluster.capture("node1", "eth0", WIRE)
        self.addCleanup(cap.cleanup)
        res = self.cluster.run(self.client, ["curl", "-sS", "-g", "-o", "/dev/null", "-w", "%{http_code} %{remote_ip}",
                                             "-H", f"X-Marker: {marker}", f"http://[{WEB_VIP6}]/?{marker}"], text=True,
                               timeout=30)
        self.assertEqual(res.stdout.strip(), f"200 {WEB_VIP6}", res.stderr)
        self.assertNotIn(marker.encode(), cap.data(), "plaintext marker seen on the wire")
        packets = cap.summary()
        self.assertEqual([p for p in packets if ".15008" not in p], [], "TCP on the wire other than HBONE")
        self.assertTrue(any(f"> {self.server.ip6}.15008:" in p for p in packets), packets)
        self.log_entry("node2", "request", reporter="destination", status="200", method="GET",
                       **{"src.addr": f"[{self.client.ip6}]:*", "src.identity": self.cp.spiffe_id("default", "client")})

    # (c) the same pods' IPv4 is meshed as before.
    def test_ipv4_of_the_same_pods_is_still_meshed(self):
        self.assert_meshed(self.client, self.server.ip4, PORT, "ZEROMESH-V4-MARKER-POD", self.server.ip4)
        self.assert_peer(self.client, self.server.ip4, PORT, self.server)
        self.assert_meshed(self.client, VIP4, 80, "ZEROMESH-V4-MARKER-VIP", self.server.ip4)

    # (d) STRICT fails closed for IPv6 while node1's agent is dead, and recovers when it is back.
    def test_strict_ipv6_fails_closed_after_agent_sigkill(self):
        self.assert_fails_closed_and_recovers(self.client, self.server.ip6)

    # STRICT refuses IPv6 plaintext from outside the mesh (the same source reaches a pod outside the mesh).
    def test_strict_refuses_ipv6_plaintext_from_outside_the_mesh(self):
        out = self.tool(self.plain, "peer", self.plain2.ip6, PORT)
        self.assertEqual(host_of(out["server_sees_peer"]), self.plain.ip6, out)
        out = self.try_connect(self.plain, self.server.ip6, PORT, 1)
        self.assertFalse(out["ok"], f"plaintext IPv6 reached a STRICT pod: {out}")
        self.log_entry("node2", "connection refused", flow="plaintext", src=f"[{self.plain.ip6}]:*",
                       dst=f"[{self.server.ip6}]:{PORT}", reason="destination is STRICT: plaintext refused")

    # (f) ipBlocks of IPv6 on a PERMISSIVE pod: plaintext from inside the CIDR denied, from outside it allowed.
    def test_ipv6_ip_block_decides_plaintext_to_a_permissive_pod(self):
        out = self.try_connect(self.plain, self.perm.ip6)
        self.assertFalse(out["ok"], f"plaintext from {self.plain.ip6} passed the DENY of its /64: {out}")
        self.log_entry("node2", decision="deny", policy="default/no-node1-v6-plaintext", flow="plaintext",
                         **{"src.addr": f"[{self.plain.ip6}]:*", "dst.addr": f"[{self.perm.ip6}]:{PORT}"})
        out = self.tool(self.plain, "peer", self.perm.ip4, PORT)  # its IPv4 is not in the block
        self.assertEqual(host_of(out["server_sees_peer"]), self.plain.ip4, out)
        out = self.tool(self.plain2, "peer", self.perm.ip6, PORT)  # node2's /64 is not either
        self.assertEqual(host_of(out["server_sees_peer"]), self.plain2.ip6, out)


# (e) a cluster with no IPv4 at all: nodes, controller and pods on IPv6.
class Ipv6OnlyTest(MeshedCase):
    FAMILIES = ("ipv6",)

    @classmethod
    def setUpMesh(cls, c):
        cp = cls.cp
        cls.client = cls.pod("node1", "client", sa="client")
        cls.server = cls.pod("node2", "server", sa="server")
        cp.write("service-echo.yaml", service_yaml("default", "echo", VIP6_ONLY, {"app": "server"},
                                                   [("tcp", 80, PORT)]))
        cp.start()
        cls.wait_ok(cls.client, cls.server.ip)
        cls.wait_ok(cls.client, VIP6_ONLY, 80)

    def test_ipv6_only_pod_to_pod_is_meshed(self):
        self.assertEqual(self.server.ips, [self.server.ip6])
        self.assert_meshed(self.client, self.server.ip, PORT, "ZEROMESH-V6ONLY-MARKER", self.server.ip)
        self.assert_peer(self.client, self.server.ip, PORT, self.server)

    def test_ipv6_only_service_vip_is_meshed(self):
        self.assert_meshed(self.client, VIP6_ONLY, 80, "ZEROMESH-V6ONLY-MARKER-VIP", self.server.ip)
        self.assert_peer(self.client, VIP6_ONLY, 80, self.server)

    def test_ipv6_only_strict_fails_closed_after_agent_sigkill(self):
        self.assert_fails_closed_and_recovers(self.client, self.server.ip)


if __name__ == "__main__":
    unittest.main(verbosity=2)
