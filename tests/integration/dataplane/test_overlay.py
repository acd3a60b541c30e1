"""Nodes joined by a VXLAN overlay, with uplinks named unlike eth0 and found by the agents themselves.

Topology (2 nodes): each node's wire to the fabric is "ens5" (10.99.0.<i>/24); other nodes' pod CIDRs are routed
through "flannel.1", a VXLAN device (UDP 4789 over ens5), as flannel's vxlan backend does. The agents get no --uplink:
they must find flannel.1 from the routing table (that is where traffic from other nodes' pods arrives, decapsulated).
  node1: client (enrolled)        node2: server (enrolled)
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
BPFQUERY = str(Path(__file__).resolve().parents[2] / "cluster" / "bpfquery.py")
PORT = 8080


class OverlayTest(ClusterCase):
    TMP_PREFIX = "zm-overlay-"
    CLUSTER_ARGS = {"underlay": "ens5", "overlay": "vxlan"}

    @classmethod
    def set_up_cluster(cls, c, tmp):
        cls.client = c.add_pod("node1", "client")
        cls.server = c.add_pod("node2", "server")
        cls.mesh = Mesh(c, tmp)
        cls.mesh.auto_uplink = True
        cls.mesh.add_workload(cls.client, sa="client")
        cls.mesh.add_workload(cls.server, sa="server")
        for pod in c.pods:
            c.popen(pod, [sys.executable, PODTOOL, "serve", str(PORT)], stdout=subprocess.DEVNULL)
        cls.mesh.start_agents()
        for pod in c.pods:
            c.wait_tcp(pod, pod.ip, PORT)

    def tool(self, pod, *args, timeout=60):
        res = self.cluster.run(pod, [sys.executable, PODTOOL, *map(str, args)], timeout=timeout, text=True)
        self.assertEqual(res.returncode, 0, f"podtool {args} in {pod.name}: {res.stderr}\n"
                         f"agent node1: {self.mesh.agent_log(self.cluster.node('node1'))[-1500:]}\n"
                         f"agent node2: {self.mesh.agent_log(self.cluster.node('node2'))[-1500:]}")
        return json.loads(res.stdout)

    def programs(self, node, ifname):
        res = self.cluster.run(node, [sys.executable, BPFQUERY, ifname], text=True, check=True)
        out = json.loads(res.stdout)
        return out["ingress"] + out["tc_ingress"]

    def test_the_agents_find_the_tunnel_device(self):
        for node in self.cluster.nodes:
            log = self.mesh.agent_log(node, tail=None)
            self.assertIn('"uplink attached"', log.replace("'", '"'))
            self.assertIn("flannel.1", log)
            self.assertEqual(len(self.programs(node, "flannel.1")), 1, f"{node.name}: flannel.1 not hooked")
            # The underlay carries no pod route: it is not an uplink (its traffic is encapsulated or node-to-node).
            self.assertEqual(self.programs(node, "ens5"), [], f"{node.name}: ens5 hooked")

    def test_underlay_carries_only_encapsulated_tls_to_15008(self):
        marker = "OVERLAY-PLAINTEXT-MARKER"
        cap = self.cluster.capture("node1", "ens5", "udp port 4789")
        try:
            for _ in range(3):
                out = self.tool(self.client, "echo", self.server.ip, PORT, marker)
                self.assertTrue(out["ok"], out)
            self.assertNotIn(marker.encode(), cap.data(), "plaintext marker on the underlay")
            packets = cap.summary()
            inner = [p for p in packets if " 10.244." in p]  # tcpdump decodes VXLAN's inner packets
            self.assertTrue(inner, f"no encapsulated pod traffic on the underlay: {packets[:5]}")
            self.assertEqual([p for p in inner if ".15008" not in p], [], "inner TCP other than HBONE")
            self.assertTrue(any(f"{self.server.ip}.15008" in p for p in inner), inner[:5])
        finally:
            cap.cleanup()

    def test_peer_addresses_are_preserved_over_the_overlay(self):
        out = self.tool(self.client, "peer", self.server.ip, PORT)
        self.assertEqual(out["client_sees_peer"], f"{self.server.ip}:{PORT}")
        self.assertEqual(out["server_sees_peer"].split(":")[0], self.client.ip)


if __name__ == "__main__":
    unittest.main(verbosity=2)
