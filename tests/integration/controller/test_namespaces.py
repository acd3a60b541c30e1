"""Namespaces decide for their workloads (universal mode, the real controller and agents): a Namespace manifest's
label zeromesh.io/mesh enrolls the workloads of that namespace that leave spec.enrolled out, and zeromesh.io/mode
chooses their mode. What the console's onboarding wizard writes.

Pods: client (node1, ns front, enrolled), server (node2, ns shop, spec.enrolled and spec.mode left out), outsider
(node1, ns outside, enrolled: false). The mesh's default mode is PERMISSIVE, so STRICT can only come from the
Namespace. Every pod runs podtool's server on 8080. The steps build on each other (test_1 .. test_4).
"""

import json
import subprocess
import sys
import time
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "cluster"))
from cluster_case import ClusterCase  # noqa: E402
from controlplane import ControlPlane  # noqa: E402

PODTOOL = str(Path(__file__).resolve().parents[2] / "cluster" / "podtool.py")
PORT = 8080
ADMIN_PORT = 15000  # the agent's /debug/config_dump (loopback of its node's netns)


class NamespaceEnrollmentTest(ClusterCase):
    TMP_PREFIX = "zm-ctrl-ns-"

    @classmethod
    def set_up_cluster(cls, c, tmp):
        cls.client = c.add_pod("node1", "client")
        cls.server = c.add_pod("node2", "server")
        cls.outsider = c.add_pod("node1", "outsider")
        cls.cp = ControlPlane(c, tmp, mode="PERMISSIVE")
        cls.cp.workload(cls.client, ns="front", sa="client")
        cls.cp.workload(cls.server, ns="shop", sa="server", enrolled=None)
        cls.cp.workload(cls.outsider, ns="outside", sa="outsider", enrolled=False)
        cls.cp.namespace("shop", {"zeromesh.io/mesh": "disabled"})
        for pod in c.pods:
            c.popen(pod, [sys.executable, PODTOOL, "serve", str(PORT)], stdout=subprocess.DEVNULL)
        cls.cp.start()
        for pod in c.pods:
            c.wait_tcp(pod, pod.ip, PORT)  # from the pod itself (loopback): not captured

    def attempt(self, src, dst, timeout=2.0):
        res = self.cluster.run(src, [sys.executable, PODTOOL, "try", dst.ip, str(PORT), str(timeout)], text=True,
                               timeout=30)
        return json.loads(res.stdout)

    def server_as_its_agent_sees_it(self) -> dict:
        """The server's workload in node2's agent's /debug/config_dump."""
        res = self.cluster.run("node2", ["curl", "-sS", "--max-time", "3",
                                         f"http://127.0.0.1:{ADMIN_PORT}/debug/config_dump"], text=True, timeout=15)
        dump = json.loads(res.stdout)
        for w in (dump.get("snapshot") or {}).get("workloads", []):
            if w["name"] == "server" and w["namespace"] == "shop":
                return w
        self.fail(f"node2's agent does not know shop/server: {res.stdout[:2000]}")

    def wait_server(self, enrolled: bool, mode: str, limit: float = 10) -> dict:
        deadline = time.monotonic() + limit
        while True:
            w = self.server_as_its_agent_sees_it()
            if w["enrolled"] == enrolled and w["mode"] == mode:
                return w
            if time.monotonic() > deadline:
                self.fail(f"shop/server still {w} after {limit}s, want enrolled={enrolled} mode={mode}\n"
                          f"controller: {self.cp.log('controller')[-2000:]}")
            time.sleep(0.05)

    def wire_to_server(self) -> list[str]:
        """client -> server once, with node1's uplink captured: the packets towards the server's address."""
        cap = self.cluster.capture("node1", "eth0", f"tcp and dst host {self.server.ip}")
        try:
            out = self.attempt(self.client, self.server)
            self.assertTrue(out["ok"], out)
            return cap.summary()
        finally:
            cap.cleanup()

    def test_1_disabled_namespace_leaves_the_workload_out(self):
        self.wait_server(enrolled=False, mode="PERMISSIVE")
        packets = self.wire_to_server()
        self.assertTrue(any(f"{self.server.ip}.{PORT}:" in p for p in packets), packets)  # plaintext to the app port
        self.assertFalse(any(".15008:" in p for p in packets), packets)

    def test_2_enabled_namespace_enrolls_it_and_its_traffic_is_mtls(self):
        self.cp.namespace("shop", {"zeromesh.io/mesh": "enabled"})
        self.wait_server(enrolled=True, mode="PERMISSIVE")
        self.assertIn(self.cp.spiffe_id("shop", "server"), self.server_as_its_agent_sees_it()["identity"])
        packets = self.wire_to_server()
        self.assertTrue(packets)
        others = [p for p in packets if f"{self.server.ip}.15008:" not in p]
        self.assertEqual(others, [], "client -> server left node1 outside HBONE")
        # PERMISSIVE (the mesh default): plaintext from outside the mesh is still accepted.
        self.assertTrue(self.attempt(self.outsider, self.server)["ok"])

    def test_3_strict_namespace_refuses_plaintext(self):
        self.cp.namespace("shop", {"zeromesh.io/mesh": "enabled", "zeromesh.io/mode": "STRICT"})
        self.wait_server(enrolled=True, mode="STRICT")
        out = self.attempt(self.outsider, self.server)
        self.assertFalse(out["ok"], f"a STRICT workload accepted plaintext: {out}")
        self.assertTrue(self.attempt(self.client, self.server)["ok"])  # meshed traffic still flows

    def test_4_bad_label_value_keeps_the_last_good_config(self):
        self.cp.namespace("shop", {"zeromesh.io/mesh": "enabled", "zeromesh.io/mode": "strict"})
        deadline = time.time() + 5
        while "must be STRICT or PERMISSIVE, not 'strict'" not in self.cp.log("controller") and time.time() < deadline:
            time.sleep(0.05)
        log = self.cp.log("controller")
        self.assertIn("must be STRICT or PERMISSIVE, not 'strict'", log)
        self.assertIn("namespace-shop.yaml", log)
        status = self.cp.meshctl("status")
        self.assertIn("namespace-shop.yaml", status.stdout + status.stderr)
        time.sleep(0.5)
        self.assertEqual(self.server_as_its_agent_sees_it()["mode"], "STRICT")
        self.assertFalse(self.attempt(self.outsider, self.server)["ok"], "a rejected Namespace took effect")


if __name__ == "__main__":
    unittest.main()
