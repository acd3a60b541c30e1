"""Data plane, end to end on the simulated cluster: real agents, real BPF, real TLS, unmodified applications.

Topology (2 nodes):
  node1: client (enrolled, sa "client"), local (enrolled, sa "local"), plain1 (known, not enrolled)
  node2: server (enrolled, sa "server"), plain2 (known, not enrolled), perm (enrolled, PERMISSIVE)
Every pod runs podtool's server on port 8080.
"""

import json
import subprocess
import sys
import time
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "cluster"))
from cluster_case import ClusterCase  # noqa: E402
from mesh import Mesh  # noqa: E402

PODTOOL = str(Path(__file__).resolve().parents[2] / "cluster" / "podtool.py")
PORT = 8080


class DataPlaneTest(ClusterCase):
    TMP_PREFIX = "zm-dataplane-"

    @classmethod
    def set_up_cluster(cls, c, tmp):
        cls.client = c.add_pod("node1", "client")
        cls.local = c.add_pod("node1", "local")
        cls.plain1 = c.add_pod("node1", "plain1")
        cls.server = c.add_pod("node2", "server")
        cls.plain2 = c.add_pod("node2", "plain2")
        cls.perm = c.add_pod("node2", "perm")
        cls.mesh = Mesh(c, tmp)
        cls.mesh.add_workload(cls.client, sa="client")
        cls.mesh.add_workload(cls.local, sa="local")
        cls.mesh.add_workload(cls.plain1, enrolled=False)
        cls.mesh.add_workload(cls.server, sa="server")
        cls.mesh.add_workload(cls.plain2, enrolled=False)
        cls.mesh.add_workload(cls.perm, sa="perm", mode="PERMISSIVE")
        for pod in c.pods:
            c.popen(pod, [sys.executable, PODTOOL, "serve", str(PORT)], stdout=subprocess.DEVNULL)
        cls.mesh.start_agents()
        for pod in c.pods:
            c.wait_tcp(pod, pod.ip, PORT)  # from the pod itself (loopback): not captured

    def tool(self, pod, *args, timeout=120):
        res = self.cluster.run(pod, [sys.executable, PODTOOL, *map(str, args)], timeout=timeout, text=True)
        self.assertEqual(res.returncode, 0, f"podtool {args} in {pod.name}: {res.stderr}\n"
                         f"agent node1: {self.mesh.agent_log(self.cluster.node('node1'))[-1500:]}\n"
                         f"agent node2: {self.mesh.agent_log(self.cluster.node('node2'))[-1500:]}")
        return json.loads(res.stdout)

    def assertNoMarker(self, capture, marker: bytes):
        self.assertNotIn(marker, capture.data(), "plaintext marker seen on the wire")

    # Acceptance 1: original addresses on both sides, with unmodified tools.
    def test_peer_addresses_are_preserved(self):
        out = self.tool(self.client, "peer", self.server.ip, PORT)
        self.assertEqual(out["client_sees_peer"], f"{self.server.ip}:{PORT}")
        # The port too: the destination agent connects from the client's own port (forwarded for="IP:port").
        self.assertEqual(out["server_sees_peer"], out["client_local"])
        self.assertEqual(out["server_local"], f"{self.server.ip}:{PORT}")

    def test_curl_and_iperf3_through_the_mesh(self):
        c = self.cluster
        http = c.popen(self.server, [sys.executable, "-m", "http.server", "8081", "--bind", "0.0.0.0"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        iperf = c.popen(self.server, ["iperf3", "-s", "-p", "5201"], stdout=subprocess.DEVNULL)
        try:
            c.wait_tcp(self.server, self.server.ip, 8081)
            c.wait_tcp(self.server, self.server.ip, 5201)
            res = c.run(self.client, ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{remote_ip}",
                                      f"http://{self.server.ip}:8081/"], text=True, timeout=30)
            self.assertEqual(res.stdout.strip(), f"200 {self.server.ip}", res.stderr)
            res = c.run(self.client, ["iperf3", "-c", self.server.ip, "-p", "5201", "-t", "2", "-J"], text=True,
                        timeout=60)
            self.assertEqual(res.returncode, 0, res.stdout[-2000:])
            report = json.loads(res.stdout)
            self.assertGreater(report["end"]["sum_received"]["bytes"], 0)
            self.assertEqual(report["start"]["connected"][0]["remote_host"], self.server.ip)
        finally:
            http.kill()
            iperf.kill()

    # Acceptance 2: only TLS to 15008 on the wire; the marker never appears.
    def test_wire_shows_only_tls_to_15008(self):
        marker = "ZEROMESH-SECRET-MARKER-1"
        cap = self.cluster.capture("node1", "eth0", "tcp")
        try:
            for _ in range(3):
                out = self.tool(self.client, "echo", self.server.ip, PORT, marker)
                self.assertTrue(out["ok"], out)
            self.assertNoMarker(cap, marker.encode())
            packets = cap.summary()
            self.assertTrue(packets, "no packets captured")
            others = [p for p in packets if ".15008" not in p]
            self.assertEqual(others, [], "non-HBONE TCP on the wire")
        finally:
            cap.cleanup()

    # Acceptance 4: pods that are not enrolled are not touched.
    def test_not_enrolled_pods_go_direct(self):
        marker = "PLAINTEXT-MARKER-NOT-ENROLLED"
        cap = self.cluster.capture("node1", "eth0", "tcp")
        try:
            out = self.tool(self.plain1, "echo", self.plain2.ip, PORT, marker)
            self.assertTrue(out["ok"], out)
            self.assertIn(marker.encode(), cap.data())
            self.assertTrue(any(f"{self.plain2.ip}.{PORT}" in p for p in cap.summary()))
        finally:
            cap.cleanup()
        out = self.tool(self.plain1, "peer", self.plain2.ip, PORT)
        self.assertEqual(out["server_sees_peer"].split(":")[0], self.plain1.ip)

    # Same node: no wire hop, but the connection still goes through the proxy and keeps addresses.
    def test_same_node_enrolled(self):
        out = self.tool(self.client, "peer", self.local.ip, PORT)
        self.assertEqual(out["server_sees_peer"].split(":")[0], self.client.ip)
        out = self.tool(self.client, "echo", self.local.ip, PORT, "same-node")
        self.assertTrue(out["ok"], out)

    # STRICT: plaintext from outside the mesh to an enrolled pod is refused.
    def test_strict_refuses_plaintext_from_outside(self):
        out = self.tool(self.plain2, "try", self.client.ip, PORT, 3)
        self.assertFalse(out["ok"], out)
        out = self.tool(self.plain1, "try", self.server.ip, PORT, 3)
        self.assertFalse(out["ok"], out)

    # PERMISSIVE: plaintext from outside the mesh is accepted (no identity), mTLS from the mesh too.
    def test_permissive_accepts_plaintext_and_mtls(self):
        out = self.tool(self.plain1, "peer", self.perm.ip, PORT)
        self.assertEqual(out["server_sees_peer"].split(":")[0], self.plain1.ip)
        out = self.tool(self.client, "peer", self.perm.ip, PORT)
        self.assertEqual(out["server_sees_peer"].split(":")[0], self.client.ip)

    # Passthrough: an enrolled pod reaching a destination outside the mesh goes out directly with its own IP.
    def test_passthrough_to_a_destination_outside_the_mesh(self):
        marker = "PASSTHROUGH-MARKER"
        cap = self.cluster.capture("node1", "eth0", "tcp")
        try:
            out = self.tool(self.client, "echo", self.plain2.ip, PORT, marker)
            self.assertTrue(out["ok"], out)
            # Not enrolled destination: no tunnel, the bytes are visible as the application sent them.
            self.assertIn(marker.encode(), cap.data())
        finally:
            cap.cleanup()
        out = self.tool(self.client, "peer", self.plain2.ip, PORT)
        self.assertEqual(out["server_sees_peer"].split(":")[0], self.client.ip)
        self.assertEqual(out["client_sees_peer"], f"{self.plain2.ip}:{PORT}")

    # Acceptance 5: byte-exact 1 GiB, half-close, 1,000 concurrent connections.
    def test_one_gib_byte_exact(self):
        out = self.tool(self.client, "bulk", self.server.ip, PORT, 1 << 30, timeout=300)
        self.assertTrue(out["ok"], out)

    def test_half_close(self):
        out = self.tool(self.client, "echo", self.server.ip, PORT, "x" * 100000)
        self.assertTrue(out["ok"], {k: (v[:50] if isinstance(v, str) else v) for k, v in out.items()})

    def test_thousand_concurrent_connections(self):
        out = self.tool(self.client, "concurrent", self.server.ip, PORT, 1000, timeout=180)
        self.assertEqual(out["ok"], 1000, out)


if __name__ == "__main__":
    unittest.main(verbosity=2)
