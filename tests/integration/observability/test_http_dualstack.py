"""The agent's health and metrics listeners as the chart starts them ("[::]:port") on the simulated cluster:
on a dual-stack node the kubelet's probe reaches /readyz over the node's IPv6 and IPv4 addresses, and on a node with
IPv6 disabled the same flags still start the agent, serving IPv4. One node, no workloads.
"""

import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "cluster"))
from cluster_case import ClusterCase  # noqa: E402
from mesh import Mesh  # noqa: E402

HEALTH_PORT = 15021
METRICS_PORT = 15020
CHART_ARGS = [f"--health-addr=[::]:{HEALTH_PORT}", f"--metrics-addr=[::]:{METRICS_PORT}"]


class HttpDualStackTest(ClusterCase):
    TMP_PREFIX = "zm-http6-"
    NODES = 1
    FAMILIES = ("ipv4", "ipv6")

    @classmethod
    def set_up_cluster(cls, c, tmp):
        cls.node = c.node("node1")
        cls.mesh = Mesh(c, tmp)
        cls.mesh.agent_args[cls.node.name] = CHART_ARGS

    @classmethod
    def tear_down_cluster(cls):
        for name in list(cls.mesh.agents) if hasattr(cls, "mesh") else []:
            cls.mesh.kill_agent(cls.cluster.node(name))

    def get(self, host: str, port: int, path: str) -> str:
        """The HTTP status of a GET from the node's own namespace (where the kubelet probes from), "000" if refused."""
        url = f"http://[{host}]:{port}{path}" if ":" in host else f"http://{host}:{port}{path}"
        res = self.cluster.run(self.node, ["curl", "-sS", "-g", "--max-time", "3", "-o", "/dev/null", "-w",
                                           "%{http_code}", url], text=True)
        return res.stdout.strip()

    def test_1_dual_stack_node_serves_both_families(self):
        self.mesh.start_agent(self.node)
        for ip in (self.node.ip6, self.node.ip4):
            self.assertEqual(self.get(ip, HEALTH_PORT, "/readyz"), "200", f"/readyz on {ip}")
            self.assertEqual(self.get(ip, METRICS_PORT, "/metrics"), "200", f"/metrics on {ip}")
        # The debug port keeps its loopback-only default.
        self.assertEqual(self.get("127.0.0.1", 15000, "/healthz"), "200")
        self.assertEqual(self.get(self.node.ip6, 15000, "/healthz"), "000")
        self.mesh.kill_agent(self.node)

    def test_2_node_without_ipv6_falls_back_to_ipv4(self):
        self.cluster.node_sysctl(self.node, "net.ipv6.conf.all.disable_ipv6", "1")
        # A fresh log: readiness is read from it, and the first agent's "agent ready" must not count.
        (self.mesh.workdir / f"agent-{self.node.name}.log").unlink()
        self.mesh.start_agent(self.node)  # raises if it exits or is not ready
        self.assertEqual(self.get(self.node.ip4, HEALTH_PORT, "/readyz"), "200")
        self.assertEqual(self.get(self.node.ip4, METRICS_PORT, "/metrics"), "200")
        self.assertIn("no IPv6 on this node, listening on IPv4 only", self.mesh.agent_log(self.node, tail=None))


if __name__ == "__main__":
    unittest.main()
