"""Issue 17: a request rate limit enforced by the destination node proxy (a ServicePolicy whose targetRef is a
Service, spec.http.rateLimit), on the simulated cluster with the real controller and agents.

Pods: client (node1, over HBONE) and c2 (node2, same-node delivery) call Service web (HTTP/1.1, w1 on node2, 20
requests per second, burst 20) together at twice the limit; client calls Service rpc (gRPC, g1 on node2, 5 calls per
minute). One bucket per (Service, pod) on node2 counts both sources: a source-side limit would let each client have
its own 20/s and pass everything, so every assertion on the total fails without the destination's bucket.
"""

import json
import sys
import threading
import time
import unittest
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "cluster"))
from mesh_case import GRPC_PY, GRPC_TOOL, HTTP_TOOL, MeshCase, web_rpc_services  # noqa: E402

NS = "shop"
VIP_WEB, VIP_RPC = "10.96.0.60", "10.96.0.61"
RATE, BURST = 20, 20

MANIFESTS = web_rpc_services(NS, VIP_WEB, VIP_RPC) + f"""---
apiVersion: zeromesh.io/v1alpha1
kind: ServicePolicy
metadata: {{name: web-limit, namespace: {NS}}}
spec:
  targetRef: {{kind: Service, name: web}}
  http: {{rateLimit: {{requests: {RATE}, interval: 1s, burst: {BURST}}}}}
---
apiVersion: zeromesh.io/v1alpha1
kind: ServicePolicy
metadata: {{name: rpc-limit, namespace: {NS}}}
spec:
  targetRef: {{kind: Service, name: rpc}}
  http: {{rateLimit: {{requests: 5, interval: 1m}}}}
"""


class DestinationRateLimitTest(MeshCase):
    TMP_PREFIX = "zm-dest-rl-"

    @classmethod
    def setUpMesh(cls, c):
        cls.client = cls.add_workload("node1", "client", NS, "client")
        cls.near = cls.add_workload("node2", "c2", NS, "near")
        cls.add_web_and_rpc(NS)
        cls.cp.write("mesh.yaml", MANIFESTS)
        cls.cp.start()
        # Until node2's agent limits web: a quick run of 2 x burst requests gets a 429; then the bucket refills.
        deadline, last = time.monotonic() + 20, None
        while time.monotonic() < deadline:
            try:
                last = cls.run_http([{"path": "/probe", "count": 2 * BURST}], VIP_WEB)
                if any(b.startswith("429 ") for b in last["bodies"]):
                    break
            except AssertionError as e:
                last = str(e)
            time.sleep(0.2)
        else:
            raise AssertionError(f"the destination limit never took effect: {last}")
        time.sleep(1.5)  # BURST / RATE = 1 s to a full bucket

    def run_from(self, pod, plan, out, key):
        res = self.cluster.run(pod, [sys.executable, HTTP_TOOL, "run", VIP_WEB, "80"], input=json.dumps(plan),
                               text=True, timeout=30)
        out[key] = json.loads(res.stdout) if res.returncode == 0 else res.stderr[-2000:]

    def test_two_sources_share_the_pods_bucket(self):
        before = self.agent_metric("zeromesh_request_rate_limited_total", node="node2", reporter="destination",
                                   policy="shop/web-limit")
        # Each client 20/s (the whole limit) for 2.5 s: together twice the limit, one keep-alive connection each.
        plan = [{"path": "/x", "count": 50, "pace": 1.0 / RATE}]
        out = {}
        threads = [threading.Thread(target=self.run_from, args=(pod, plan, out, pod.name))
                   for pod in (self.client, self.near)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for name in ("client", "c2"):
            self.assertIsInstance(out.get(name), dict, out.get(name))
            self.assertEqual(out[name]["sockets"], 1, f"{name}: a 429 must keep the connection")
        bodies = out["client"]["bodies"] + out["c2"]["bodies"]
        by = Counter(b.split()[0] for b in bodies)
        elapsed = max(out["client"]["starts"][-1], out["c2"]["starts"][-1])
        ok, refused = by["200"], by["429"]
        allowance = BURST + RATE * elapsed
        passed = {name: sum(b.startswith("200 ") for b in out[name]["bodies"]) for name in ("client", "c2")}
        print(f"2 sources, 100 requests in {elapsed:.2f} s: {ok} passed ({passed['client']} from node1, "
              f"{passed['c2']} same-node), {refused} got 429; allowance {allowance:.1f}", file=sys.stderr)
        self.assertEqual(ok + refused, 100, by)
        self.assertLessEqual(abs(ok - allowance), 0.1 * allowance, "2xx within 10 % of burst + rate x elapsed")
        for name in ("client", "c2"):
            o = out[name]
            for i, b in enumerate(o["bodies"]):
                if b.startswith("429 "):
                    self.assertTrue(b.startswith("429 local rate limit exceeded (ServicePolicy shop/web-limit)"), b)
                    self.assertEqual(o["retry_after"][i], "1")
        # node2's agent counts each refusal as the destination's, and logs it with the fault.
        deadline = time.monotonic() + 5
        while True:
            counted = self.agent_metric("zeromesh_request_rate_limited_total", node="node2", reporter="destination",
                                        policy="shop/web-limit") - before
            if counted >= refused or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        self.assertEqual(counted, refused)
        lines = [json.loads(l) for l in self.cp.log("agent-node2").splitlines()
                 if l.startswith("{") and '"msg":"request"' in l and '"fault":"ratelimited"' in l
                 and '"fault_policy":"shop/web-limit"' in l]
        self.assertGreaterEqual(len(lines), refused)
        self.assertEqual({(l["reporter"], l["status"], l["fault_policy"]) for l in lines},
                         {("destination", 429, "shop/web-limit")})

    def test_grpc_calls_over_the_limit_get_resource_exhausted(self):
        res = self.cluster.run(self.client, [GRPC_PY, GRPC_TOOL, "run", f"{VIP_RPC}:80"],
                               input=json.dumps([{"method": "Who", "count": 8}]), text=True, timeout=60)
        self.assertEqual(res.returncode, 0, res.stderr[-2000:])
        self.assertEqual(json.loads(res.stdout)["codes"], ["OK"] * 5 + ["RESOURCE_EXHAUSTED"] * 3)
        self.assertEqual(self.agent_metric("zeromesh_request_rate_limited_total", node="node2", reporter="destination",
                                           policy="shop/rpc-limit"), 3)


if __name__ == "__main__":
    unittest.main(verbosity=2)
