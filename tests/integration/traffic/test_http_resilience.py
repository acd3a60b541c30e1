"""Issue 17: HTTPRoute retries, timeouts and RequestMirror, applied per request by the source node proxy's HTTP/1.1
path, on the simulated cluster with the real controller and agents.

Pods: client (node1); f1 (node1) and f2 (node2) behind Service flaky; s1 (node2) behind Service slow; m1 (node2) behind
Service shadow; p1 (node2, nothing listening) and p2 (node1) behind Service partial. Each serves tests/.../http_tool.py on 9080 (its /flaky/ paths answer 503 to every other request, its
/delay/MS paths wait, /__stats counts what it served). Routes (namespace shop):
    flaky  retry {attempts: 2, codes: [503]}
    partial  retry {attempts: 1} (no codes: connect failures and resets only)
    slow   /delay: timeouts.request 500ms; /flakydelay: backendRequest 300ms + 1 retry; /mirrored: RequestMirror to
           shadow, 50 %
Every assertion fails without its feature: without retries the client sees the 503s and the counter stays 0; without
timeouts /delay/2000 answers 200 after 2 s; without the per-try timeout /flakydelay takes 2 s; without mirrors m1 sees
nothing; without connect-failure retries half the requests to partial get a 502.
"""

import json
import sys
import time
import unittest
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "cluster"))
from mesh_case import MeshCase, service_yaml  # noqa: E402

NS = "shop"
VIP_FLAKY, VIP_SLOW, VIP_SHADOW, VIP_PARTIAL = "10.96.0.40", "10.96.0.41", "10.96.0.42", "10.96.0.43"


def service(name: str, vip: str, app: str) -> str:
    return service_yaml(NS, name, vip, {"app": app}, [("http", 80, 9080, "http")])


MANIFESTS = "---\n".join([service("flaky", VIP_FLAKY, "flaky"), service("slow", VIP_SLOW, "slow"),
                          service("shadow", VIP_SHADOW, "shadow"), service("partial", VIP_PARTIAL, "partial")]) + f"""---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: partial, namespace: {NS}}}
spec:
  parentRefs: [{{kind: Service, name: partial, port: 80}}]
  rules:
  - retry: {{attempts: 1}}
    backendRefs: [{{name: partial, port: 80}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: flaky, namespace: {NS}}}
spec:
  parentRefs: [{{kind: Service, name: flaky, port: 80}}]
  rules:
  - retry: {{attempts: 2, codes: [503]}}
    backendRefs: [{{name: flaky, port: 80}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: slow, namespace: {NS}}}
spec:
  parentRefs: [{{kind: Service, name: slow, port: 80}}]
  rules:
  - matches: [{{path: {{type: PathPrefix, value: /delay}}}}]
    timeouts: {{request: 500ms}}
    backendRefs: [{{name: slow, port: 80}}]
  - matches: [{{path: {{type: PathPrefix, value: /flakydelay}}}}]
    timeouts: {{request: 3s, backendRequest: 300ms}}
    retry: {{attempts: 1, codes: [503]}}
    backendRefs: [{{name: slow, port: 80}}]
  - matches: [{{path: {{type: PathPrefix, value: /mirrored}}}}]
    filters: [{{type: RequestMirror, requestMirror: {{backendRef: {{name: shadow, port: 80}}, percent: 50}}}}]
    backendRefs: [{{name: slow, port: 80}}]
"""


class HttpResilienceTest(MeshCase):
    TMP_PREFIX = "zm-http-res-"

    @classmethod
    def setUpMesh(cls, c):
        cls.client = cls.add_workload("node1", "client", NS, "client")
        cls.backends = {name: (cls.add_workload(node, name, NS, app), app) for name, node, app in (
            ("f1", "node1", "flaky"), ("f2", "node2", "flaky"), ("s1", "node2", "slow"), ("m1", "node2", "shadow"),
            ("p2", "node1", "partial"))}
        cls.dead = cls.add_workload("node2", "p1", NS, "partial")  # an endpoint that refuses connections
        for name, (pod, _) in cls.backends.items():
            cls.serve_http(pod, 9080, name)
        cls.cp.write("routes.yaml", MANIFESTS)
        cls.cp.start()
        cls.wait_routed()

    @classmethod
    def run_plan(cls, plan, host) -> dict:
        return cls.run_http(plan, host)

    @classmethod
    def wait_routed(cls, timeout=20.0):
        """Until the agent on node1 applies the slow route's request timeout (setup, not an assertion)."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                last = cls.run_plan([{"path": "/delay/1000"}], VIP_SLOW)
                if last["bodies"][0].startswith("504 "):
                    return
            except AssertionError as e:
                last = str(e)
            time.sleep(0.1)
        raise AssertionError(f"the routes never took effect: {last}\ncontroller: {cls.cp.log('controller', 3000)}")

    def stats(self, name: str) -> dict:
        """What backend |name| served so far (asked on its own loopback, outside the mesh)."""
        return self.backend_stats(self.backends[name][0])

    def test_retries_hide_a_backend_failing_half_the_time(self):
        route = dict(source_workload="client", route="shop/flaky#0")
        before_503 = sum(self.stats(n)["status"].get("503", 0) for n in ("f1", "f2"))
        before_retries = self.agent_metric("zeromesh_request_retries_total", **route)
        out = self.run_plan([{"path": "/flaky/x", "count": 180},
                             # Bodies are replayed as they went upstream, Content-Length or chunked.
                             {"path": "/flaky/post", "method": "POST", "body": "b" * 5000, "count": 10},
                             {"path": "/flaky/chunked-post", "method": "POST", "body": "c" * 3000, "chunked": True,
                              "count": 10}], VIP_FLAKY)
        after_503 = sum(self.stats(n)["status"].get("503", 0) for n in ("f1", "f2"))
        served_503 = after_503 - before_503
        by_status = Counter(b.split()[0] for b in out["bodies"])
        print(f"200 requests, backends served {served_503} 503s; client saw {dict(by_status)}", file=sys.stderr)
        self.assertEqual(out["sockets"], 1, "the client had to reconnect")
        self.assertEqual(by_status, Counter({"200": 200}), "every 503 was retried away")
        self.assertEqual([b.split()[2:] for b in out["bodies"][180:]],
                         [["/flaky/post", "len=5000"]] * 10 + [["/flaky/chunked-post", "len=3000"]] * 10)
        self.assertGreaterEqual(served_503, 100, "the backends did fail half the time")
        # The source agent counts one retry per 503 the backends served (each was retried); metrics are recorded when
        # each response ends, so they are there already, but allow a scrape race.
        deadline = time.monotonic() + 5
        while True:
            retries = self.agent_metric("zeromesh_request_retries_total", **route) - before_retries
            if retries >= served_503 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        self.assertEqual(retries, served_503)
        # The access log line of a retried request says how many tries it took (and every line of the route is there:
        # the default sample rate is 1).
        deadline = time.monotonic() + 5
        while True:
            lines = [json.loads(l) for l in self.cp.log("agent-node1").splitlines()
                     if l.startswith("{") and '"msg":"request"' in l and '"route":"shop/flaky#0"' in l]
            if sum(l["attempts"] - 1 for l in lines) >= served_503 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        self.assertGreaterEqual(max(l["attempts"] for l in lines), 2, lines[-3:])
        self.assertEqual(sum(l["attempts"] - 1 for l in lines), served_503)

    def test_bodies_over_the_replay_bound_are_not_retried(self):
        # 100 kB > the 64 KiB kept for a replay: such a request goes through once, whatever it gets.
        before_503 = sum(self.stats(n)["status"].get("503", 0) for n in ("f1", "f2"))
        before_retries = self.agent_metric("zeromesh_request_retries_total", source_workload="client")
        out = self.run_plan([{"path": "/flaky/big", "method": "POST", "body": "x" * 100000, "count": 4}], VIP_FLAKY)
        served_503 = sum(self.stats(n)["status"].get("503", 0) for n in ("f1", "f2")) - before_503
        seen_503 = sum(b.startswith("503 ") for b in out["bodies"])
        self.assertGreaterEqual(served_503, 1)  # two endpoints alternating: one of any two requests to one fails
        self.assertEqual(seen_503, served_503)
        self.assertTrue(all(b.endswith("len=100000") for b in out["bodies"] if b.startswith("200 ")), out["bodies"])
        time.sleep(0.2)
        self.assertEqual(self.agent_metric("zeromesh_request_retries_total", source_workload="client"), before_retries)

    def test_connect_failures_are_retried_on_another_endpoint(self):
        # p1 refuses every connection (nothing listens): each request that the balancer sends there is retried on p2.
        route = dict(source_workload="client", route="shop/partial#0")
        before = self.stats("p2")["requests"]
        before_retries = self.agent_metric("zeromesh_request_retries_total", **route)
        out = self.run_plan([{"path": "/partial", "count": 40}], VIP_PARTIAL)
        self.assertEqual(out["bodies"], ["200 p2 /partial -"] * 40)
        self.assertEqual(self.stats("p2")["requests"] - before, 40)
        self.assertEqual(out["sockets"], 1)
        time.sleep(0.2)
        retries = self.agent_metric("zeromesh_request_retries_total", **route) - before_retries
        print(f"40 requests to partial: {retries:.0f} retried after a refused connect", file=sys.stderr)
        self.assertGreaterEqual(retries, 10, "round robin sent about half of the first tries to p1")

    def test_request_timeout_answers_504(self):
        out = self.run_plan([{"path": "/delay/2000"}, {"path": "/after"}], VIP_SLOW)
        self.assertEqual(out["bodies"][0], "504 upstream request timeout\n")
        self.assertGreater(out["seconds"][0], 0.4)
        self.assertLess(out["seconds"][0], 1.2, "504 after about 500 ms, not the backend's 2 s")
        # The request had been read whole: the connection carries the next request (to the same backend, whose late
        # answer to the first never reaches it).
        self.assertEqual(out["sockets"], 1)
        self.assertEqual(out["bodies"][1], "200 s1 /after -")

    def test_per_try_timeout_is_retried(self):
        # Every other request to s1 waits 2 s: the try that waits is cut at 300 ms and retried (fast) in time.
        out = self.run_plan([{"path": "/flakydelay/2000", "count": 4}], VIP_SLOW)
        self.assertEqual(out["bodies"], ["200 s1 /flakydelay/2000 -"] * 4)
        self.assertLess(max(out["seconds"]), 1.2, out["seconds"])
        self.assertGreater(max(out["seconds"]), 0.25, "a try was cut at the per-try timeout")

    def test_mirror_gets_a_share_of_copies_and_the_client_only_the_primary(self):
        before = self.stats("m1")
        out = self.run_plan([{"path": "/mirrored/x", "count": 200}], VIP_SLOW)
        self.assertEqual(out["bodies"], ["200 s1 /mirrored/x -"] * 200, "the client sees the primary only")
        # Fire-and-forget: the copies may still be on their way when the client is done.
        deadline = time.monotonic() + 5
        last = None
        while time.monotonic() < deadline:
            now = self.stats("m1")
            got = now["requests"] - before["requests"]
            if got == last and got > 0:
                break
            last = got
            time.sleep(0.3)
        shadow = now["shadow"] - before["shadow"]
        print(f"mirror 50 % of 200 requests: m1 got {got}, {shadow} with a -shadow Host: {now['hosts']}",
              file=sys.stderr)
        self.assertGreaterEqual(got, 70, "about half of 200 requests mirrored")
        self.assertLessEqual(got, 130)
        self.assertEqual(shadow, got, "every copy carries the -shadow Host")


if __name__ == "__main__":
    unittest.main(verbosity=2)
