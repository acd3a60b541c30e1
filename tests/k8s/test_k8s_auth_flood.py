"""A flood of bogus bearer tokens against mesh-controller's TokenReview authentication (issue 14's acceptance line:
"1,000 bogus bearer tokens sent in 10 s leave real agents' config pushes unaffected").

mesh-controller runs in Kubernetes mode on a real kube-apiserver (tests/k8s/apiserver.py) with ServiceAccount-token
authentication. A stand-in agent (tests/k8s/auth_probe.cc: the agent's own config client, no eBPF, no root) holds a
Config stream with a token bound to an agent Pod. Then 1,000 distinct bogus tokens arrive in 10 s from 20 threads while
TrafficPermissions change: the agent must apply each change as promptly as without the flood, and the API server must
see only as many TokenReviews as the per-peer rate limit allows (counted by kube-apiserver itself, and by
zeromesh_token_reviews_total). No root.
"""

import json
import os
import re
import subprocess
import sys
import tempfile
import threading
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
PROBE_BIN = BUILD / "tests" / "k8s" / "zm_auth_probe"
NS = "zeromesh-system"
TP = "/apis/zeromesh.io/v1alpha1/namespaces/shop/trafficpermissions"
FLOOD_TOKENS, FLOOD_SECONDS, FLOOD_THREADS = 1000, 10, 20
# The controller's defaults (controller/auth/token_review.h): 5 new tokens per second per address, burst 10.
PEER_RATE, PEER_BURST = 5, 10
PUSH_BOUND = 5.0  # seconds from a TrafficPermission write to the agent applying it, flood or not


def permission(name):
    return {"apiVersion": "zeromesh.io/v1alpha1", "kind": "TrafficPermission", "metadata": {"name": name},
            "spec": {"action": "ALLOW", "sources": {"identities": ["spiffe://k8s.test/ns/shop/sa/frontend"]},
                     "destination": {"selector": {"matchLabels": {"app": "backend"}}, "ports": [8080]}}}


class Probe:
    """zm_auth_probe agent: collects its "applied <version> <unix ms> <keys>" lines."""

    def __init__(self, bootstrap: Path, node: str, log: Path):
        self.log = open(log, "wb")
        self.proc = subprocess.Popen([str(PROBE_BIN), "agent", "--bootstrap", str(bootstrap), "--node", node],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True)
        self.applied = []  # (version, unix seconds, keys)
        self.cv = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            parts = line.split()
            if len(parts) >= 3 and parts[0] == "applied":
                with self.cv:
                    self.applied.append((int(parts[1]), int(parts[2]) / 1000, parts[3] if len(parts) > 3 else ""))
                    self.cv.notify_all()

    def wait_for(self, pred, timeout):
        """The first applied version satisfying pred((version, t, keys)), or None after `timeout` seconds."""
        def first():
            return next((a for a in self.applied if pred(a)), None)
        with self.cv:
            self.cv.wait_for(lambda: first() is not None, timeout=timeout)
            return first()

    def stop(self):
        if self.proc.stdin:
            self.proc.stdin.close()  # the probe exits when stdin closes
        self.proc.stdin = None
        stop_process(self.proc)
        self.log.close()


class K8sAuthFloodTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        for b in (CONTROLLER_BIN, PROBE_BIN):
            if not b.exists():
                needs.missing(f"{b} is not built")
        cls.tmp = tempfile.TemporaryDirectory(prefix="zm-k8s-flood-")
        cls.work = Path(cls.tmp.name)
        cls.api = ApiServer()
        cls.controller = cls.probe = None
        try:
            cls.api.start()
            cls.api.helm("install", "zeromesh", str(CHART), "--namespace", NS, "--create-namespace", "--timeout",
                         "120s", home=cls.work)
            cls.populate()
            cls.start_controller()
            cls.start_agent()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        if cls.probe:
            cls.probe.stop()
        if cls.controller:
            stop_process(cls.controller)
            cls.log_file.close()
        cls.api.stop()
        cls.tmp.cleanup()

    @classmethod
    def populate(cls):
        a = cls.api
        a.create("/api/v1/namespaces", {"metadata": {"name": "shop", "labels": {"zeromesh.io/mesh": "enabled"}}})
        a.create("/apis/zeromesh.io/v1alpha1/meshconfigs", {
            "apiVersion": "zeromesh.io/v1alpha1", "kind": "MeshConfig", "metadata": {"name": "mesh"},
            "spec": {"trustDomain": "k8s.test", "defaultMode": "STRICT", "defaultPolicy": "DENY", "certTTL": "12h"}})
        a.create(TP, permission("allow-initial"))

    @classmethod
    def start_controller(cls):
        a = cls.api
        kubeconfig = a.token_kubeconfig(NS, "zeromesh-controller", cls.work / "controller.kubeconfig")
        cls.grpc_port, cls.admin_port = free_port(), free_port()
        cls.log_path = cls.work / "controller.log"
        cls.log_file = open(cls.log_path, "wb")
        cls.controller = subprocess.Popen(
            [str(CONTROLLER_BIN), "--kubeconfig", str(kubeconfig), "--listen", f"127.0.0.1:{cls.grpc_port}",
             "--ca-secret", f"{NS}/zeromesh-ca", "--agent-service-account", f"{NS}/zeromesh-agent",
             "--trust-bundle-configmap", f"{NS}/zeromesh-ca-root-cert",
             "--admin-addr", f"127.0.0.1:{cls.admin_port}", "--metrics-addr", "off", "--log-level", "info"],
            stdout=cls.log_file, stderr=subprocess.STDOUT)
        # The agents' trust: the bundle the controller publishes, as the DaemonSet mounts it.
        (cls.work / "ca.crt").write_text(a.configmap_data(NS, "zeromesh-ca-root-cert", "root-cert.pem"))

    @classmethod
    def start_agent(cls):
        a = cls.api
        pod = a.make_pod(NS, "zeromesh-agent-node1", "zeromesh-agent", "node1",
                         {"app.kubernetes.io/component": "agent"}, "10.0.0.1", host_network=True)
        token = cls.work / "token-node1"
        token.write_text(a.token(NS, "zeromesh-agent", audiences=["zeromesh"], pod=pod))
        token.chmod(0o600)
        boot = cls.work / "bootstrap.json"
        boot.write_text(json.dumps({"controller": f"127.0.0.1:{cls.grpc_port}", "tokenFile": str(token),
                                    "caCert": str(cls.work / "ca.crt")}))
        cls.bootstrap = boot
        cls.probe = Probe(boot, "node1", cls.work / "probe.log")
        if not cls.probe.wait_for(lambda x: "allow-initial" in x[2], timeout=60):
            raise AssertionError("the agent never received its configuration:\n"
                                 f"probe: {(cls.work / 'probe.log').read_text()[-3000:]}\n"
                                 f"controller: {cls.log_path.read_text(errors='replace')[-4000:]}")

    # ---- helpers ---------------------------------------------------------------------------------------------------
    def controller_metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}/metrics", timeout=5) as r:
            return r.read().decode()

    def counter(self, text: str, name: str, **labels) -> float:
        """Sum of the series of `name` whose labels include `labels`; fails if there is none."""
        total, seen = 0.0, False
        for m in re.finditer(rf"^{name}(?:{{([^}}]*)}})? (\S+)$", text, re.M):
            have = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1) or ""))
            if all(have.get(k) == v for k, v in labels.items()):
                total += float(m.group(2))
                seen = True
        self.assertTrue(seen, f"no {name} {labels} series")
        return total

    def apiserver_token_reviews(self) -> float:
        """TokenReviews kube-apiserver has answered (its own request counter), whatever their result."""
        text = self.api.request("GET", "/metrics")
        total = 0.0
        for line in text.splitlines():
            if line.startswith("apiserver_request_total{") and 'resource="tokenreviews"' in line:
                total += float(line.split()[-1])
        return total

    def change_permission(self, name: str) -> float:
        """Creates a TrafficPermission; the seconds until the agent applied (and ACKed) a version carrying it."""
        t0 = time.time()
        self.api.create(TP, permission(name))
        got = self.probe.wait_for(lambda x: name in x[2], timeout=30)
        self.assertIsNotNone(got, f"the agent never applied {name}:\n{self.log_path.read_text()[-4000:]}")
        return got[1] - t0

    # ---- tests -----------------------------------------------------------------------------------------------------
    def test_bogus_token_flood_leaves_config_pushes_unaffected(self):
        baseline = self.change_permission("allow-baseline")
        print(f"\npush latency without a flood: {baseline * 1000:.0f} ms", flush=True)
        self.assertLess(baseline, PUSH_BOUND)

        api_before = self.apiserver_token_reviews()
        m0 = self.controller_metrics()
        reviews_before = self.counter(m0, "zeromesh_token_reviews_total")
        limited_before = self.counter(m0, "zeromesh_token_review_throttled_total", reason="rate_limited")
        flood_start = time.time()
        flood = subprocess.Popen([str(PROBE_BIN), "flood", "--bootstrap", str(self.bootstrap), "--count",
                                  str(FLOOD_TOKENS), "--seconds", str(FLOOD_SECONDS), "--threads", str(FLOOD_THREADS)],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            during = []
            for i, at in enumerate((2.0, 5.0, 8.0)):  # seconds into the flood
                time.sleep(max(0.0, flood_start + at - time.time()))
                during.append(self.change_permission(f"allow-during-{i}"))
                self.assertIsNone(flood.poll(), "the flood ended before the change was applied: not a test")
            out, err = flood.communicate(timeout=60)
        finally:
            stop_process(flood)
        print("push latency during the flood: " + ", ".join(f"{d * 1000:.0f} ms" for d in during), flush=True)
        self.assertEqual(flood.returncode, 0, err)
        summary = json.loads(out.strip().splitlines()[-1])
        print(f"flood: {summary}", flush=True)
        for d in during:
            self.assertLess(d, PUSH_BOUND, f"a config push took {d:.2f}s during the flood (baseline {baseline:.2f}s)")

        # Every bogus token was refused, and promptly (a rate-limited caller is not queued).
        codes = {int(k): v for k, v in summary["codes"].items()}
        self.assertEqual(sum(codes.values()), FLOOD_TOKENS)
        self.assertNotIn(0, codes, "a bogus token was accepted")
        self.assertGreater(codes.get(8, 0), FLOOD_TOKENS / 2, "RESOURCE_EXHAUSTED expected for most: rate limited")
        self.assertLess(summary["elapsed"], FLOOD_SECONDS + 5)

        # The API server saw no more reviews than the per-peer rate allows over the flood.
        bound = PEER_RATE * summary["elapsed"] + PEER_BURST + 2
        api_reviews = self.apiserver_token_reviews() - api_before
        m1 = self.controller_metrics()
        sent = self.counter(m1, "zeromesh_token_reviews_total") - reviews_before
        limited = self.counter(m1, "zeromesh_token_review_throttled_total", reason="rate_limited") - limited_before
        print(f"TokenReviews: {api_reviews:.0f} at kube-apiserver, {sent:.0f} sent by the controller "
              f"(bound {bound:.0f}); {limited:.0f} rate limited", flush=True)
        self.assertLessEqual(api_reviews, bound)
        self.assertLessEqual(sent, bound)
        self.assertGreaterEqual(limited, FLOOD_TOKENS - bound)
        self.assertEqual(self.counter(m1, "zeromesh_token_reviews_total", result="accepted"), 1)  # the agent, once

        # The agent's stream survived: a change after the flood still arrives promptly.
        self.assertLess(self.change_permission("allow-after"), PUSH_BOUND)


if __name__ == "__main__":
    unittest.main(verbosity=2)
