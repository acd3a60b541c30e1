"""Issue 17: per-request endpoint picking on an HTTP/1.1 port, on the simulated cluster with the real controller and
agents. Two endpoints, fast (answers at once) and slow (every answer waits 50 ms), behind three Services that differ
only in their ServicePolicy algorithm: lb-rr (none: round robin), lb-ewma (EWMA), lb-lr (LeastRequest). Measured
from the responses, in the same run:
  - one keep-alive client, one request at a time: EWMA sends most requests to the fast endpoint, round robin half;
  - eight clients at once: LeastRequest sends most to the fast endpoint (the slow one holds its requests longer),
    round robin half.
Without the per-request algorithms (round robin for all) both shares stay at 50 %.
The same on an HTTP/2 (gRPC) port, per stream: 200 calls on one channel, EWMA sends most to the fast endpoint.
And upstream pooling: 20 short client connections of 4 requests each reach the two endpoints over a few upstream
connections (counted by the backends as they accept them), not one per client connection and endpoint (40).
"""

import json
import subprocess
import sys
import time
import unittest
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "cluster"))
from mesh_case import GRPC_PY, GRPC_TOOL, HTTP_TOOL, MeshCase, service_yaml  # noqa: E402

NS = "shop"
VIPS = {"lb-rr": "10.96.0.50", "lb-ewma": "10.96.0.51", "lb-lr": "10.96.0.52", "rpc-rr": "10.96.0.53",
        "rpc-ewma": "10.96.0.54"}
ALGORITHMS = {"lb-ewma": "EWMA", "lb-lr": "LeastRequest", "rpc-ewma": "EWMA"}


def service(name: str, vip: str) -> str:
    port = ("rpc", 80, 50051, "grpc") if name.startswith("rpc-") else ("http", 80, 9080, "http")
    return service_yaml(NS, name, vip, {"app": "pick"}, [port])


def policy(name: str, algorithm: str) -> str:
    return f"""apiVersion: zeromesh.io/v1alpha1
kind: ServicePolicy
metadata: {{name: {name}, namespace: {NS}}}
spec:
  targetRef: {{kind: Service, name: {name}}}
  loadBalancer: {{algorithm: {algorithm}}}
"""


# |n| client connections one after the other, |k| requests each, closed after their last response.
SHORT_CONNS = """
import http.client, sys
host, n, k = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for _ in range(n):
    conn = http.client.HTTPConnection(host, 80, timeout=10)
    for _ in range(k):
        conn.request("GET", "/short")
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 200, resp.status
    conn.close()
"""

MANIFESTS = "---\n".join([service(n, v) for n, v in VIPS.items()] + [policy(n, a) for n, a in ALGORITHMS.items()])


class LbAlgorithmsTest(MeshCase):
    stat_queries = 0  # accepted() calls so far: each is a connection to every backend

    TMP_PREFIX = "zm-lb-algo-"

    @classmethod
    def setUpMesh(cls, c):
        cls.client = cls.add_workload("node1", "client", NS, "client")
        cls.backends = backends = {name: (cls.add_workload("node2", name, NS, "pick", sa=name), delay)
                                   for name, delay in (("fast", 0), ("slow", 50))}
        for name, (pod, delay) in backends.items():
            cls.serve_http(pod, 9080, name, delay)
            cls.serve_grpc(pod, 50051, name, delay)
        cls.cp.write("services.yaml", MANIFESTS)
        cls.cp.start()
        cls.wait_applied()

    @classmethod
    def wait_applied(cls, timeout=20.0):
        """Until node1's agent has both endpoints and the policies of the three Services (setup, not an assertion)."""
        node = cls.cluster.node("node1")
        deadline = time.monotonic() + timeout
        want = {"lb-rr": "RoundRobin", "rpc-rr": "RoundRobin", **ALGORITHMS}
        last = None
        while time.monotonic() < deadline:
            res = cls.cluster.run(node, ["curl", "-sS", "--max-time", "3", "http://127.0.0.1:15000/debug/config_dump"],
                                  text=True, timeout=15)
            if res.returncode == 0 and res.stdout:
                services = (json.loads(res.stdout).get("snapshot") or {}).get("services", [])
                last = {s["name"]: (s["policy"]["loadBalancer"]["algorithm"], len(s["endpoints"])) for s in services
                        if s["namespace"] == NS}
                if last == {n: (a, 2) for n, a in want.items()}:
                    return
            time.sleep(0.1)
        raise AssertionError(f"the services never settled: {last}\ncontroller: {cls.cp.log('controller', 3000)}")

    def clients(self, vip: str, n: int, count: int) -> Counter:
        """|n| keep-alive clients at once, |count| requests each, to |vip|: which endpoint answered, over all."""
        procs = [self.cluster.popen(self.client, [sys.executable, HTTP_TOOL, "run", vip, "80"], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(n)]
        plan = json.dumps([{"path": "/pick", "count": count}])
        for p in procs:  # every client gets its plan before any is waited for: they run at once
            p.stdin.write(plan)
            p.stdin.close()
        by = Counter()
        for p in procs:
            out, err = p.stdout.read(), p.stderr.read()  # a client's output is small: no pipe fills up
            p.wait(timeout=60)
            self.assertEqual(p.returncode, 0, f"client failed: {err[-2000:]}\nagent: {self.cp.log('agent-node1', 2000)}")
            res = json.loads(out)
            self.assertEqual(res["sockets"], 1)
            for body in res["bodies"]:
                status, server = body.split()[:2]
                self.assertEqual(status, "200", body)
                by[server] += 1
        return by

    def accepted(self) -> int:
        """Connections the two backends accepted so far, less those of these queries (on their own loopback, outside
        the mesh)."""
        LbAlgorithmsTest.stat_queries += 1
        total = 0
        for pod, _ in self.backends.values():
            total += self.backend_stats(pod)["connections"] - self.stat_queries
        return total

    def test_short_client_connections_share_pooled_upstreams(self):
        before = self.accepted()
        opened0 = self.agent_metric("zeromesh_http_upstream_connections_opened_total", required=True)
        reused0 = self.agent_metric("zeromesh_http_upstream_connections_reused_total", required=True)
        res = self.cluster.run(self.client, [sys.executable, "-c", SHORT_CONNS, VIPS["lb-rr"], "20", "4"], text=True,
                               timeout=60)
        self.assertEqual(res.returncode, 0, res.stderr[-2000:])
        opened = self.accepted() - before
        print(f"20 client connections x 4 requests: {opened} upstream connections accepted by the backends",
              file=sys.stderr)
        # Each client connection uses both endpoints (round robin): unshared, that is 40 upstream connections.
        self.assertLessEqual(opened, 6)
        # The source proxy's own count agrees; every other use of an endpoint by a client connection took an idle
        # stream that an earlier client connection (of this test or an earlier one: same source) left in the pool.
        opened_now = self.agent_metric("zeromesh_http_upstream_connections_opened_total", required=True)
        self.assertEqual(opened_now - opened0, opened)
        reused = self.agent_metric("zeromesh_http_upstream_connections_reused_total", required=True) - reused0
        print(f"source proxy: {reused:.0f} pooled upstreams taken by client connections", file=sys.stderr)
        self.assertEqual(opened + reused, 40)

    def test_ewma_sends_one_client_mostly_to_the_fast_endpoint(self):
        rr = self.clients(VIPS["lb-rr"], 1, 60)
        ewma = self.clients(VIPS["lb-ewma"], 1, 300)
        print(f"one keep-alive client: round robin {dict(rr)}, EWMA {dict(ewma)}", file=sys.stderr)
        self.assertEqual(rr, Counter({"fast": 30, "slow": 30}), "round robin alternates")
        self.assertGreater(ewma["fast"], 300 * 3 // 4, ewma)

    def grpc_calls(self, vip: str, count: int) -> Counter:
        res = self.cluster.run(self.client, [GRPC_PY, GRPC_TOOL, "run", f"{vip}:80"],
                               input=json.dumps([{"method": "Who", "count": count}]), text=True, timeout=60)
        self.assertEqual(res.returncode, 0, res.stderr[-2000:])
        out = json.loads(res.stdout)
        self.assertEqual(Counter(out["codes"]), {"OK": count})
        return Counter(r.split()[0] for r in out["replies"])

    def test_ewma_balances_grpc_calls_of_one_channel_by_latency(self):
        rr = self.grpc_calls(VIPS["rpc-rr"], 20)
        ewma = self.grpc_calls(VIPS["rpc-ewma"], 200)
        print(f"gRPC calls on one channel: round robin {dict(rr)}, EWMA {dict(ewma)}", file=sys.stderr)
        self.assertEqual(rr, Counter({"fast": 10, "slow": 10}))
        self.assertGreater(ewma["fast"], 200 * 3 // 4, ewma)

    def test_least_request_sends_concurrent_clients_mostly_to_the_fast_endpoint(self):
        rr = self.clients(VIPS["lb-rr"], 8, 10)
        lr = self.clients(VIPS["lb-lr"], 8, 40)
        print(f"8 clients at once: round robin {dict(rr)}, least request {dict(lr)}", file=sys.stderr)
        self.assertGreaterEqual(min(rr["fast"], rr["slow"]), 80 * 2 // 5, rr)
        self.assertGreater(lr["fast"], 320 * 3 // 4, lr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
