"""HBONE as Istio ambient speaks it (issue 20), end to end with real agents.

The destination agent enforces ztunnel's rule: a CONNECT's :authority IP must be the address its TLS connection was
dialled to (400 otherwise). Topology: node1 runs "client" (sa client); node2 runs "srv1" and "srv2", two pods of ONE
identity (sa server). A pool keyed by destination node or identity would carry srv2's CONNECTs on a connection dialled
to srv1 and every one of them would be refused. "srv3" (sa server too) is dialled only by the wire test, so its pool
connections are opened while the capture runs: they must leave from the client pod's address, as ztunnel's do.
"""

import json
import subprocess
import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "cluster"))
from cluster_case import ClusterCase  # noqa: E402
from mesh import Mesh  # noqa: E402

PODTOOL = str(Path(__file__).resolve().parents[2] / "cluster" / "podtool.py")
PORT = 8080
CONNS = 150  # per destination pod and round, all open at once (two pool connections' worth of streams)
ROUNDS = 3


class HboneCompatTest(ClusterCase):
    TMP_PREFIX = "zm-hbone-compat-"

    @classmethod
    def set_up_cluster(cls, c, tmp):
        cls.client = c.add_pod("node1", "client")
        cls.srv1 = c.add_pod("node2", "srv1")
        cls.srv2 = c.add_pod("node2", "srv2")
        cls.srv3 = c.add_pod("node2", "srv3")
        cls.mesh = Mesh(c, tmp)
        cls.mesh.add_workload(cls.client, sa="client")
        cls.mesh.add_workload(cls.srv1, sa="server")
        cls.mesh.add_workload(cls.srv2, sa="server")
        cls.mesh.add_workload(cls.srv3, sa="server")
        for pod in (cls.srv1, cls.srv2, cls.srv3):
            c.popen(pod, [sys.executable, PODTOOL, "serve", str(PORT)], stdout=subprocess.DEVNULL)
        cls.mesh.start_agents()
        for pod in (cls.srv1, cls.srv2, cls.srv3):
            c.wait_tcp(pod, pod.ip, PORT)  # from the pod itself (loopback): not captured

    def logs(self) -> str:
        return (f"agent node1: {self.mesh.agent_log(self.cluster.node('node1'))[-2000:]}\n"
                f"agent node2: {self.mesh.agent_log(self.cluster.node('node2'))[-2000:]}")

    def tool(self, pod, *args, timeout=120):
        res = self.cluster.run(pod, [sys.executable, PODTOOL, *map(str, args)], timeout=timeout, text=True)
        self.assertEqual(res.returncode, 0, f"podtool {args} in {pod.name}: {res.stderr}\n{self.logs()}")
        return json.loads(res.stdout)

    def rejected_connects(self) -> list[str]:
        log = self.tmp.name + "/agent-node2.log"
        return [l for l in Path(log).read_text(errors="replace").splitlines() if "CONNECT rejected" in l]

    def test_two_pods_of_one_identity_on_one_node_are_both_reachable(self):
        before = len(self.rejected_connects())
        for rnd in range(ROUNDS):
            # Both destinations at the same time, so both pool keys are live together on every worker.
            procs = [self.cluster.popen(self.client, [sys.executable, PODTOOL, "concurrent", pod.ip, str(PORT),
                                                      str(CONNS)], stdout=subprocess.PIPE, text=True)
                     for pod in (self.srv1, self.srv2)]
            for pod, p in zip((self.srv1, self.srv2), procs):
                out, _ = p.communicate(timeout=120)
                self.assertEqual(p.returncode, 0, f"{pod.name} round {rnd}\n{self.logs()}")
                res = json.loads(out)
                with self.subTest(pod=pod.name, round=rnd):
                    self.assertEqual(res["ok"], CONNS, f"{res}\n{self.logs()}")
                    self.assertEqual(res["error_count"], 0, res)
        self.assertEqual(self.rejected_connects()[before:], [], "the destination refused CONNECTs")

    def test_destination_app_sees_the_source_pod(self):
        for pod in (self.srv1, self.srv2):
            with self.subTest(pod=pod.name):
                out = self.tool(self.client, "peer", pod.ip, PORT)
                self.assertEqual(out["server_sees_peer"].split(":")[0], self.client.ip)
                self.assertEqual(out["server_local"], f"{pod.ip}:{PORT}")

    def test_hbone_connections_leave_from_the_source_pod_address(self):
        cap = self.cluster.capture("node2", "eth0", "tcp dst port 15008 and tcp[tcpflags] & tcp-syn != 0")
        try:
            res = self.tool(self.client, "concurrent", self.srv3.ip, PORT, 50)
            self.assertEqual(res["ok"], 50, res)
            out = self.tool(self.client, "peer", self.srv3.ip, PORT)
            self.assertEqual(out["server_sees_peer"].split(":")[0], self.client.ip)
            syns = cap.summary()
        finally:
            cap.cleanup()
        # "12:00:00.000000 IP 10.244.1.11.40312 > 10.244.2.13.15008: Flags [S], ..."
        sources = {line.split(" IP ")[1].split(" > ")[0].rsplit(".", 1)[0] for line in syns if " IP " in line}
        dests = {line.split(" > ")[1].split(":")[0].rsplit(".", 1)[0] for line in syns if " > " in line}
        self.assertTrue(syns, "no HBONE connection opened to srv3 during the capture")
        self.assertEqual(sources, {self.client.ip}, syns[:5])
        self.assertEqual(dests, {self.srv3.ip}, syns[:5])


if __name__ == "__main__":
    unittest.main(verbosity=2)
