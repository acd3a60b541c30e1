"""Issue 17: a local rate limit and fault injection per route rule (a ServicePolicy whose targetRef is an HTTPRoute
or GRPCRoute rule, spec.http), applied by the source node proxy, on the simulated cluster with the real controller
and agents.

Pods: client (node1); w1 (node2) behind Service web (HTTP/1.1, http_tool.py on 9080); g1 (node2) behind Service rpc
(gRPC, grpc_tool.py on 50051). HTTPRoute web rules: limited (/limited: 20 requests per second, burst 20), open (/open:
no policy), abort (/abort: 50 % answered 503), slowed (/slowed: every request delayed 200 ms). GRPCRoute rpc rules who
(zm.Echo/Who: 5 calls per minute), slow (Size: delayed 200 ms), broken (Blob: aborted 503); Canary has no policy.
Every assertion fails without its feature: without the limit all 200 requests get 200; without the abort the backend
serves all of them; without the delay the requests take a few milliseconds.
"""

import json
import sys
import time
import unittest
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "cluster"))
from mesh_case import GRPC_PY, GRPC_TOOL, MeshCase, web_rpc_services  # noqa: E402

NS = "shop"
VIP_WEB, VIP_RPC = "10.96.0.50", "10.96.0.51"
RATE, BURST = 20, 20


def policy(name: str, kind: str, route: str, section: str, http: str) -> str:
    return f"""apiVersion: zeromesh.io/v1alpha1
kind: ServicePolicy
metadata: {{name: {name}, namespace: {NS}}}
spec:
  targetRef: {{group: gateway.networking.k8s.io, kind: {kind}, name: {route}, sectionName: {section}}}
  http: {http}
"""


def rule(name: str, path: str) -> str:
    return f"""  - name: {name}
    matches: [{{path: {{type: PathPrefix, value: {path}}}}}]
    backendRefs: [{{name: web, port: 80}}]
"""


MANIFESTS = web_rpc_services(NS, VIP_WEB, VIP_RPC) + f"""---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: web, namespace: {NS}}}
spec:
  parentRefs: [{{kind: Service, name: web, port: 80}}]
  rules:
{rule("limited", "/limited")}{rule("open", "/open")}{rule("abort", "/abort")}{rule("slowed", "/slowed")}---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {{name: rpc, namespace: {NS}}}
spec:
  parentRefs: [{{kind: Service, name: rpc, port: 80}}]
  rules:
  - name: who
    matches: [{{method: {{service: zm.Echo, method: Who}}}}]
    backendRefs: [{{name: rpc, port: 80}}]
  - name: slow
    matches: [{{method: {{service: zm.Echo, method: Size}}}}]
    backendRefs: [{{name: rpc, port: 80}}]
  - name: broken
    matches: [{{method: {{service: zm.Echo, method: Blob}}}}]
    backendRefs: [{{name: rpc, port: 80}}]
---
{policy("limit", "HTTPRoute", "web", "limited", f"{{rateLimit: {{requests: {RATE}, interval: 1s, burst: {BURST}}}}}")}---
{policy("abort", "HTTPRoute", "web", "abort", "{faultInjection: {abort: {httpStatus: 503, percentage: 50}}}")}---
{policy("slow", "HTTPRoute", "web", "slowed", "{faultInjection: {delay: {fixedDelay: 200ms, percentage: 100}}}")}---
{policy("rpc-limit", "GRPCRoute", "rpc", "who", "{rateLimit: {requests: 5, interval: 1m}}")}---
{policy("rpc-slow", "GRPCRoute", "rpc", "slow", "{faultInjection: {delay: {fixedDelay: 200ms}}}")}---
{policy("rpc-broken", "GRPCRoute", "rpc", "broken", "{faultInjection: {abort: {httpStatus: 503}}}")}"""


class HttpRateLimitTest(MeshCase):
    TMP_PREFIX = "zm-http-rl-"

    @classmethod
    def setUpMesh(cls, c):
        cls.client = cls.add_workload("node1", "client", NS, "client")
        cls.add_web_and_rpc(NS)
        cls.cp.write("routes.yaml", MANIFESTS)
        cls.cp.start()
        cls.wait_policies()

    @classmethod
    def run_plan(cls, plan) -> dict:
        return cls.run_http(plan, VIP_WEB)

    @classmethod
    def wait_policies(cls, timeout=20.0):
        """Until node1's agent applies the policies (they come in one config version): /slowed takes 200 ms."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                last = cls.run_plan([{"path": "/slowed/probe"}])
                if last["bodies"][0].startswith("200 ") and last["seconds"][0] >= 0.19:
                    return
            except AssertionError as e:
                last = str(e)
            time.sleep(0.1)
        raise AssertionError(f"the policies never took effect: {last}\ncontroller: {cls.cp.log('controller', 3000)}")

    def backend_requests(self) -> int:
        """Requests w1 served so far (asked on its own loopback, outside the mesh)."""
        return self.backend_stats(self.web)["requests"]

    def log_lines(self, route: str, want: int, key: str) -> list:
        """node1's access-log lines of |route| that have |key|, once there are |want| of them (or 5 s passed)."""
        deadline = time.monotonic() + 5
        while True:
            lines = [json.loads(l) for l in self.cp.log("agent-node1").splitlines()
                     if l.startswith("{") and '"msg":"request"' in l and f'"route":"{route}"' in l and key in l]
            if len(lines) >= want or time.monotonic() > deadline:
                return lines
            time.sleep(0.1)

    def test_rate_limit_allows_the_bucket_and_refuses_the_rest_with_429(self):
        before = self.agent_metric("zeromesh_request_rate_limited_total", route="shop/web#0")
        # 200 requests at 80 per second (4x the limit) on one keep-alive connection, with requests to another rule of
        # the same route in between, which no limit applies to.
        plan = []
        for _ in range(20):
            plan.append({"path": "/limited/x", "count": 10, "pace": 0.0125})
            plan.append({"path": "/open/x", "count": 2, "pace": 0.0})
        out = self.run_plan(plan)
        self.assertEqual(out["sockets"], 1, "a 429 must keep the connection")
        limited = [i for i, b in enumerate(out["bodies"]) if "/limited/" in b or b.startswith("429 ")]
        opened = [b for b in out["bodies"] if "/open/" in b]
        self.assertEqual(opened, ["200 w1 /open/x -"] * 40, "the other rule of the route is not limited")
        starts = [out["starts"][i] for i in range(len(out["bodies"])) if i in set(limited)]
        self.assertEqual(len(starts), 200)
        elapsed = starts[-1] - starts[0]
        ok = sum(out["bodies"][i].startswith("200 ") for i in limited)
        refused = [i for i in limited if out["bodies"][i].startswith("429 ")]
        allowance = BURST + RATE * elapsed
        print(f"200 requests in {elapsed:.2f} s: {ok} passed, {len(refused)} got 429; allowance {allowance:.1f}",
              file=sys.stderr)
        self.assertEqual(ok + len(refused), 200, Counter(b.split()[0] for b in out["bodies"]))
        self.assertGreaterEqual(elapsed, 2.0)
        self.assertLessEqual(abs(ok - allowance), 0.1 * allowance, "2xx within 10 % of burst + rate x elapsed")
        for i in refused:
            self.assertGreaterEqual(int(out["retry_after"][i]), 1)
            self.assertLessEqual(int(out["retry_after"][i]), 1, "20/s: the next token is under a second away")
        self.assertTrue(out["bodies"][refused[0]].startswith("429 local rate limit exceeded (ServicePolicy shop/limit)"))
        # The source agent counts every refusal, and logs each with its reason.
        deadline = time.monotonic() + 5
        while True:
            counted = self.agent_metric("zeromesh_request_rate_limited_total", route="shop/web#0") - before
            if counted >= len(refused) or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        self.assertEqual(counted, len(refused))
        lines = self.log_lines("shop/web#0", len(refused), '"fault":"ratelimited"')
        self.assertEqual(len(lines), len(refused))
        self.assertEqual({(l["status"], l["fault_policy"]) for l in lines}, {(429, "shop/limit")})

    def test_rate_limited_requests_with_bodies_keep_the_connection(self):
        # A refused request's body is read and dropped, so the next request on the connection parses: POSTs with
        # Content-Length and chunked bodies, as fast as possible, then a request to another rule.
        out = self.run_plan([{"path": "/limited/post", "method": "POST", "body": "p" * 5000, "count": 30},
                             {"path": "/limited/chunked", "method": "POST", "body": "c" * 3000, "chunked": True,
                              "count": 30},
                             # A refused HEAD gets no body after its head (the next response would be corrupt).
                             {"path": "/limited/head", "method": "HEAD", "count": 3},
                             {"path": "/open/last"}])
        self.assertEqual(out["sockets"], 1)
        by = Counter(b.split()[0] for b in out["bodies"][:60])
        self.assertEqual(by["200"] + by["429"], 60, by)
        self.assertGreaterEqual(by["429"], 30, by)  # 60 requests in well under a second against 20/s, burst 20
        self.assertTrue(all(b in ("200 w1 /limited/post len=5000", "200 w1 /limited/chunked len=3000")
                            for b in out["bodies"][:60] if b.startswith("200")), out["bodies"][:60])
        # (http_tool's server has no HEAD handler: one that got through is answered 501.)
        self.assertTrue(all(b in ("429 ", "501 ") for b in out["bodies"][60:63]), out["bodies"][60:63])
        self.assertIn("429 ", out["bodies"][60:63])
        self.assertEqual(out["bodies"][63], "200 w1 /open/last -")

    def test_abort_answers_half_without_the_backend(self):
        before = self.backend_requests()
        out = self.run_plan([{"path": "/abort/x", "count": 200}])
        self.assertEqual(out["sockets"], 1)
        by = Counter(b.split()[0] for b in out["bodies"])
        aborted = by["503"]
        served = self.backend_requests() - before
        print(f"abort 50 % of 200: {aborted} aborted, backend served {served}", file=sys.stderr)
        self.assertEqual(by["200"] + aborted, 200, by)
        self.assertGreaterEqual(aborted, 80)
        self.assertLessEqual(aborted, 120)
        self.assertEqual(served, 200 - aborted, "an aborted request never reaches the backend")
        self.assertTrue(all(b == "503 fault filter abort\n" for b in out["bodies"] if b.startswith("503")))
        lines = self.log_lines("shop/web#2", aborted, '"fault":"abort"')
        self.assertEqual(len(lines), aborted)
        self.assertEqual(self.agent_metric("zeromesh_request_faults_injected_total", route="shop/web#2", fault="abort"),
                         aborted)

    def test_delay_holds_every_request(self):
        out = self.run_plan([{"path": "/slowed/x", "count": 10}, {"path": "/open/after"}])
        self.assertEqual(out["bodies"], ["200 w1 /slowed/x -"] * 10 + ["200 w1 /open/after -"])
        print(f"delay 200 ms: latencies {out['seconds']}", file=sys.stderr)
        self.assertGreaterEqual(min(out["seconds"][:10]), 0.2)
        self.assertLess(max(out["seconds"][:10]), 1.0)
        self.assertLess(out["seconds"][10], 0.2, "another rule is not delayed")
        self.assertGreaterEqual(len(self.log_lines("shop/web#3", 10, '"fault":"delay"')), 10)

    def grpc(self, plan) -> dict:
        res = self.cluster.run(self.client, [GRPC_PY, GRPC_TOOL, "run", f"{VIP_RPC}:80"], input=json.dumps(plan),
                               text=True, timeout=60)
        self.assertEqual(res.returncode, 0, res.stderr[-2000:])
        return json.loads(res.stdout)

    def test_grpc_delay_holds_calls_with_their_messages_and_abort_answers_unavailable(self):
        # Size sends 3000 bytes: the held stream's DATA must reach the server after the delay.
        out = self.grpc([{"method": "Size", "bytes": 3000, "count": 5}, {"method": "Blob", "bytes": 10, "count": 3}])
        self.assertEqual(out["replies"][:5], ["g1 3000"] * 5)
        # 503 without a grpcStatus: gRPC's mapping of 503, UNAVAILABLE, without reaching the server.
        self.assertEqual(out["codes"], ["OK"] * 5 + ["UNAVAILABLE"] * 3)
        self.assertGreaterEqual(len(self.log_lines("shop/rpc#1", 5, '"fault":"delay"')), 5)
        aborted = self.log_lines("shop/rpc#2", 3, '"fault":"abort"')
        self.assertEqual(len(aborted), 3)
        self.assertEqual({(l["status"], l.get("grpc_status")) for l in aborted}, {(200, "14")})
        delayed = [l for l in self.log_lines("shop/rpc#1", 5, '"fault":"delay"')]
        self.assertGreaterEqual(min(l["duration_ms"] for l in delayed), 200.0, delayed)

    def test_grpc_calls_over_the_limit_get_resource_exhausted(self):
        plan = [{"method": "Who", "count": 8}, {"method": "Canary", "count": 3}]
        codes = self.grpc(plan)["codes"]
        # 5 per minute: the first 5 Who calls pass, the next get RESOURCE_EXHAUSTED; Canary matches no limited rule.
        self.assertEqual(codes, ["OK"] * 5 + ["RESOURCE_EXHAUSTED"] * 3 + ["OK"] * 3)
        self.assertEqual(self.agent_metric("zeromesh_request_rate_limited_total", route="shop/rpc#0"), 3)


if __name__ == "__main__":
    unittest.main(verbosity=2)
