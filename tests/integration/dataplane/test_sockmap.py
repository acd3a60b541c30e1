"""Node-local sk_msg redirection (agent --sockmap both, issue 19), end to end on the simulated cluster.

Topology: node1: client, local (enrolled); node2: server (enrolled). Every pod runs podtool.py's server on 9000;
the client runs its source, pingpong and slowsink clients.
client -> server crosses HBONE: both of its node-local legs (client <-> node1's proxy, node2's proxy <-> server) may be
redirected. client -> local is same-node: a splice relay, which must never see a redirect (its proxy sockets stay out).
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
PORT = 9000
METRICS_PORT = 15020


class SockmapTest(ClusterCase):
    TMP_PREFIX = "zm-sockmap-"

    @classmethod
    def set_up_cluster(cls, c, tmp):
        cls.client = c.add_pod("node1", "client")
        cls.local = c.add_pod("node1", "local")
        cls.server = c.add_pod("node2", "server")
        cls.mesh = Mesh(c, tmp)
        for pod in (cls.client, cls.local, cls.server):
            cls.mesh.add_workload(pod, sa=pod.name)
            c.popen(pod, [sys.executable, PODTOOL, "serve", str(PORT)], stdout=subprocess.DEVNULL)
        cls.mesh.sockmap = "both"
        cls.mesh.start_agents()
        for pod in c.pods:
            c.wait_tcp(pod, pod.ip, PORT)

    def tool(self, *args, timeout=60):
        res = self.cluster.run(self.client, [sys.executable, PODTOOL, *map(str, args)], timeout=timeout, text=True)
        self.assertEqual(res.returncode, 0, f"{args}: {res.stderr}\n{self.logs()}")
        out = json.loads(res.stdout)
        self.assertTrue(out["ok"], f"{args}: {out}\n{self.logs()}")
        return out

    def logs(self):
        return "\n".join(f"agent {n.name}: {self.mesh.agent_log(n)[-2000:]}" for n in self.cluster.nodes)

    def metric(self, node, name):
        res = self.cluster.run(node, ["curl", "-sS", "--max-time", "5", f"http://127.0.0.1:{METRICS_PORT}/metrics"],
                               text=True, timeout=15)
        self.assertEqual(res.returncode, 0, res.stderr)
        return sum(float(line.rsplit(" ", 1)[1]) for line in res.stdout.splitlines()
                   if line.startswith(name + " ") or line.startswith(name + "{"))

    def veth_bytes(self, pod):
        """Bytes the pod's host-side veth carried, both directions (TCP payload that was not redirected)."""
        res = self.cluster.run(pod.node, ["ip", "-j", "-s", "link", "show", "dev", pod.host_veth], text=True)
        st = json.loads(res.stdout)[0]["stats64"]
        return st["rx"]["bytes"] + st["tx"]["bytes"]

    def test_round_trips_skip_the_veth(self):
        node1, node2 = self.cluster.node("node1"), self.cluster.node("node2")
        self.assertEqual(self.metric(node1, "zeromesh_sockmap_enabled"), 1)
        before = {n.name: self.metric(n, "zeromesh_sockmap_redirected_bytes_total") for n in (node1, node2)}
        veth0 = self.veth_bytes(self.client)
        count, size = 2000, 1024
        self.tool("pingpong", self.server.ip, PORT, count, size)
        payload = 2 * count * size
        on_veth = self.veth_bytes(self.client) - veth0
        # Only the first request (sent before the proxy took its socket) and the handshakes cross as TCP.
        self.assertLess(on_veth, payload / 10, f"{on_veth} bytes on the client's veth for {payload} of payload")
        for n in (node1, node2):
            got = self.metric(n, "zeromesh_sockmap_redirected_bytes_total") - before[n.name]
            self.assertGreater(got, payload / 2 * 0.9, f"{n.name} redirected only {got} bytes")

    def test_large_transfers_both_ways_are_intact(self):
        self.tool("source", self.server.ip, PORT, 64 << 20)  # server -> client
        out = self.tool("slowsink", self.server.ip, PORT, 64 << 20, 0)  # client -> server
        self.assertEqual(out["bytes"], 64 << 20)

    def test_stopped_reader_bounds_the_writer(self):
        # The server reads nothing for 3 s while the client writes 200 MB: redirection must not let the client queue
        # it all in kernel memory (it has no flow control of its own); TCP's windows stop the client instead.
        total = 200 << 20
        out = self.tool("slowsink", self.server.ip, PORT, total, 3)
        print(f"stopped reader: {out}", file=sys.stderr)
        self.assertLess(out["sent_before_reader_read"], 64 << 20, out)
        for n in self.cluster.nodes:
            self.assertGreater(self.metric(n, "zeromesh_sockmap_passed_total"), 0)

    def test_same_node_splice_relay_is_unaffected(self):
        self.tool("pingpong", self.local.ip, PORT, 300, 1024)
        self.tool("source", self.local.ip, PORT, 16 << 20)
        self.tool("slowsink", self.local.ip, PORT, 16 << 20, 0)

    def test_z_auto_without_a_pod_cgroup_runs_without_redirection(self):
        """--sockops-cgroup auto where no kubelet pod cgroup exists (the simulated pods are not under kubepods): one
        warning, no redirection (requested 1, enabled 0), and the mesh carries traffic as before. Runs last: it
        restarts node1's agent, and puts the usual one back."""
        node1 = self.cluster.node("node1")
        self.mesh.kill_agent(node1)
        self.mesh.agent_args["node1"] = ["--sockops-cgroup", "auto"]  # after sockmap_args: the last one counts
        try:
            self.restart_agent(node1)
            self.assertEqual(self.metric(node1, "zeromesh_sockmap_requested"), 1)
            self.assertEqual(self.metric(node1, "zeromesh_sockmap_enabled"), 0)
            warnings = [line for line in self.mesh.agent_log(node1, None).splitlines() if "found no pod cgroup" in line]
            self.assertEqual(len(warnings), 1, self.logs())
            self.assertIn("--sockops-cgroup PATH", warnings[0])
            veth0 = self.veth_bytes(self.client)
            self.tool("pingpong", self.server.ip, PORT, 300, 1024)
            # Not redirected on node1: the client's bytes cross its veth as TCP.
            self.assertGreater(self.veth_bytes(self.client) - veth0, 2 * 300 * 1024)
        finally:
            if "node1" in self.mesh.agents:
                self.mesh.kill_agent(node1)
            del self.mesh.agent_args["node1"]
            self.restart_agent(node1)

    def restart_agent(self, node):
        """Starts node's agent and waits for its own "agent ready" (the log file still holds the previous agent's)."""
        def ready_lines():
            return self.mesh.agent_log(node, None).count('"msg":"agent ready"')
        before = ready_lines()
        p = self.mesh.start_agent(node, wait=False)
        deadline = time.time() + 15
        while ready_lines() == before:
            self.assertIsNone(p.poll(), self.mesh.agent_log(node))
            self.assertLess(time.time(), deadline, self.mesh.agent_log(node))
            time.sleep(0.05)


if __name__ == "__main__":
    unittest.main()
