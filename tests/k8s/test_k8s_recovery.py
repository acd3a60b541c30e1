"""mesh-controller survives losing its API server: watches cut, objects changed meanwhile, etcd compacted and
kube-apiserver restarted (a fresh watch cache), so resuming from the old resourceVersion gets 410 Gone. The controller
must relist and end up with exactly the API server's objects: nothing lost, nothing stale.

The controller reaches the API server through a forwarder (nsbridge.py) that the test can cut; the test itself talks
to the API server directly. No root needed.
"""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from apiserver import ApiServer, free_port, stop_process  # noqa: E402
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cluster"))
import needs  # noqa: E402

ROOT = HERE.parents[1]
CHART = ROOT / "charts" / "zeromesh"
BUILD = Path(os.environ.get("ZM_BUILD_DIR", ROOT / "build" / "default"))
CONTROLLER_BIN = BUILD / "controller" / "mesh-controller"
NSBRIDGE = str(HERE.parent / "cluster" / "nsbridge.py")
NS = "zeromesh-system"
TP = "/apis/zeromesh.io/v1alpha1/namespaces/shop/trafficpermissions"


def permission(name, port):
    return {"apiVersion": "zeromesh.io/v1alpha1", "kind": "TrafficPermission", "metadata": {"name": name},
            "spec": {"action": "ALLOW", "sources": {"namespaces": ["shop"]},
                     "destination": {"selector": {"matchLabels": {"app": name}}, "ports": [port]}}}


class K8sRecoveryTest(unittest.TestCase):
    def setUp(self):
        if not CONTROLLER_BIN.exists():
            needs.missing(f"{CONTROLLER_BIN} is not built")
        self.tmp = tempfile.TemporaryDirectory(prefix="zm-k8s-recovery-")
        self.work = Path(self.tmp.name)
        self.api = ApiServer()
        self.procs = []
        self.addCleanup(self.cleanup)
        self.api.start()
        self.api.helm("install", "zeromesh", str(CHART), "--namespace", NS, "--create-namespace", "--timeout", "120s",
                      home=self.work)

    def cleanup(self):
        for p in reversed(self.procs):
            stop_process(p)
        if getattr(self, "log_file", None):
            self.log_file.close()
        self.api.stop()
        self.tmp.cleanup()

    # ---- helpers ---------------------------------------------------------------------------------------------------
    def pod(self, name, ip, labels=None):
        self.api.create("/api/v1/namespaces/shop/pods", {
            "metadata": {"name": name, "labels": labels or {"app": name}},
            "spec": {"nodeName": "node-a", "containers": [{"name": "app", "image": "registry.invalid/app:1"}]}})
        self.api.patch_status(f"/api/v1/namespaces/shop/pods/{name}",
                              {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]})

    def start_controller(self):
        bridge_port = free_port()
        self.bridge = subprocess.Popen([sys.executable, NSBRIDGE, "--listen", f"127.0.0.1:{bridge_port}",
                                        "--connect", f"127.0.0.1:{self.api.port}"], stdout=subprocess.PIPE, text=True)
        self.procs.append(self.bridge)
        self.assertEqual(self.bridge.stdout.readline().strip(), "ready")
        kubeconfig = self.api.token_kubeconfig(NS, "zeromesh-controller", self.work / "kubeconfig",
                                               server=f"https://127.0.0.1:{bridge_port}")
        self.admin_port = free_port()
        self.log_path = self.work / "controller.log"
        self.log_file = open(self.log_path, "wb")
        # One replica: leader election is left out so that a replica without its API server does not exit (see
        # test_k8s_leader.py for that part).
        self.controller = subprocess.Popen(
            [str(CONTROLLER_BIN), "--kubeconfig", str(kubeconfig), "--listen", f"127.0.0.1:{free_port()}",
             "--ca-secret", f"{NS}/zeromesh-ca", "--leader-elect=false",
             "--admin-addr", f"127.0.0.1:{self.admin_port}", "--metrics-addr", "off"],
            stdout=self.log_file, stderr=subprocess.STDOUT)
        self.procs.append(self.controller)

    def log(self):
        return self.log_path.read_text(errors="replace")

    def state(self):
        """What the controller has: workloads (name -> labels) and permissions (name -> ports)."""
        self.assertIsNone(self.controller.poll(), self.log()[-4000:])
        with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}/debug/config_dump", timeout=5) as r:
            dump = json.loads(r.read())
        workloads, perms = {}, {}
        for res in dump["resources"]:
            key, body = res["key"].split("/", 1)[1], res["resource"]
            if "workload" in body:
                workloads[key] = body["workload"].get("labels", {})
            if "trafficPermission" in body:
                perms[key] = body["trafficPermission"].get("destination", {}).get("ports", [])
        return workloads, perms

    def wait_state(self, what, want, timeout=60):
        deadline = time.time() + timeout
        got = None
        while time.time() < deadline:
            try:
                got = self.state()
            except OSError:
                got = None
            if got == want:
                return
            time.sleep(0.2)
        self.fail(f"{what}: controller has {got}, API server has {want}\n{self.log()[-5000:]}")

    # ---- test ------------------------------------------------------------------------------------------------------
    def test_relists_after_410_with_nothing_lost_or_stale(self):
        a = self.api
        a.create("/api/v1/namespaces", {"metadata": {"name": "shop", "labels": {"zeromesh.io/mesh": "enabled"}}})
        a.create("/api/v1/namespaces/shop/serviceaccounts", {"metadata": {"name": "default"}})
        self.pod("p1", "10.244.1.1")
        self.pod("p2", "10.244.1.2")
        a.create(TP, permission("allow-a", 80))
        a.create(TP, permission("allow-b", 81))
        self.start_controller()
        self.wait_state("first sync", ({"shop/p1": {"app": "p1"}, "shop/p2": {"app": "p2"}},
                                       {"shop/allow-a": [80], "shop/allow-b": [81]}))
        before = a.etcd_revision()

        # The controller loses the API server (its watches are cut, reconnects are refused) ...
        self.bridge.send_signal(signal.SIGUSR2)
        # ... while objects change: deletions it would otherwise never hear of, additions and updates.
        a.request("DELETE", "/api/v1/namespaces/shop/pods/p1?gracePeriodSeconds=0")
        self.pod("p3", "10.244.1.3")
        a.request("PATCH", "/api/v1/namespaces/shop/pods/p2", {"metadata": {"labels": {"tier": "gold"}}},
                  content_type="application/merge-patch+json")
        a.request("DELETE", f"{TP}/allow-a")
        a.create(TP, permission("allow-c", 82))
        a.request("PATCH", f"{TP}/allow-b", {"spec": {"destination": {"ports": [8081]}}},
                  content_type="application/merge-patch+json")
        # History before now is compacted away, and kube-apiserver restarts with a fresh watch cache: the old
        # resourceVersion cannot be resumed (410 Gone).
        compacted = []
        a.restart_apiserver(between=lambda: compacted.append(a.compact_etcd()))
        self.assertGreater(compacted[0], before)
        time.sleep(1)
        self.assertIn("kubernetes list/watch failed; retrying", self.log())  # it did notice the outage
        self.bridge.send_signal(signal.SIGUSR2)  # reachable again

        self.wait_state("after the 410 relist", ({"shop/p2": {"app": "p2", "tier": "gold"}, "shop/p3": {"app": "p3"}},
                                                 {"shop/allow-b": [8081], "shop/allow-c": [82]}))
        log = self.log()
        self.assertIn("410 Gone", log)
        self.assertIn('"msg":"kubernetes cache relisted"', log)
        # Status writes work again too.
        self.api.wait_for("allow-c Accepted", lambda: any(
            c["type"] == "Accepted" and c["status"] == "True"
            for c in self.api.request("GET", f"{TP}/allow-c").get("status", {}).get("conditions") or []), timeout=30)
        # And it keeps following changes after the relist.
        a.request("DELETE", "/api/v1/namespaces/shop/pods/p2?gracePeriodSeconds=0")
        self.wait_state("after a later delete", ({"shop/p3": {"app": "p3"}},
                                                 {"shop/allow-b": [8081], "shop/allow-c": [82]}))


if __name__ == "__main__":
    unittest.main(verbosity=2)
