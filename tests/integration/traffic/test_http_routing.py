"""Issue 17, first data-plane slice, on the simulated cluster with the real controller and agents: HTTP/1.1 requests
to a Service port with appProtocol http are routed per request by the source node proxy.

Pods: client (node1), a1 (node1, v1), a2 (node2, v1), c1 (node2, v2); each serves tests/.../http_tool.py on 9080 and
answers with its own name. Services (namespace shop): web 10.96.0.30 (v1: a1, a2), web-v2 10.96.0.31 (v2: c1), both
80 -> 9080 appProtocol http. One HTTPRoute on web: x-canary: 1 -> web-v2 (with request and response header
modifiers), PathPrefix
/v2 -> web-v2, PathPrefix /split -> web 50 / web-v2 50; anything else goes to web itself. c1 also serves two
protocols that are not HTTP on ports its Service raw declares appProtocol http (the destination proxy's sniffing
fallback): podtool's line protocol on 7000 and a server-speaks-first banner echo on 7001.
"""

import json
import re
import sys
import time
import unittest
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "cluster"))
from mesh_case import MeshCase, service_yaml  # noqa: E402

PODTOOL = str(Path(__file__).resolve().parents[2] / "cluster" / "podtool.py")
NS = "shop"
VIP, VIP_V2, VIP_RAW = "10.96.0.30", "10.96.0.31", "10.96.0.32"
LINE_PORT, BANNER_PORT = 7000, 7001
# A server-speaks-first protocol (as SMTP or MySQL): a banner line on connect, then an echo until EOF.
BANNER_SERVER = (
    "import socket, sys, threading\n"
    "s = socket.create_server(('0.0.0.0', int(sys.argv[1])), backlog=64)\n"
    "def serve(c):\n"
    "    with c:\n"
    "        c.sendall(b'220 zm-banner\\n')\n"
    "        while True:\n"
    "            d = c.recv(65536)\n"
    "            if not d: break\n"
    "            c.sendall(d)\n"
    "while True:\n"
    "    threading.Thread(target=serve, args=(s.accept()[0],), daemon=True).start()\n")

MANIFESTS = "---\n".join([
    service_yaml(NS, "web", VIP, {"version": "v1"}, [("web", 80, 9080, "http")]),
    service_yaml(NS, "web-v2", VIP_V2, {"version": "v2"}, [("web", 80, 9080, "http")]),
    service_yaml(NS, "raw", VIP_RAW, {"version": "v2"},
                 [("line", LINE_PORT, LINE_PORT, "http"), ("banner", BANNER_PORT, BANNER_PORT, "http")])]) + f"""---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: web, namespace: {NS}}}
spec:
  parentRefs: [{{kind: Service, name: web, port: 80}}]
  rules:
  - matches: [{{headers: [{{name: x-canary, value: "1"}}]}}]
    filters: [{{type: RequestHeaderModifier, requestHeaderModifier: {{set: [{{name: x-routed, value: canary}}]}}}},
              {{type: ResponseHeaderModifier,
                responseHeaderModifier: {{set: [{{name: x-mesh-route, value: canary}}], remove: [Server]}}}}]
    backendRefs: [{{name: web-v2, port: 80}}]
  - matches: [{{path: {{type: PathPrefix, value: /v2}}}}]
    backendRefs: [{{name: web-v2, port: 80}}]
  - matches: [{{path: {{type: PathPrefix, value: /split}}}}]
    backendRefs: [{{name: web, port: 80, weight: 50}}, {{name: web-v2, port: 80, weight: 50}}]
"""


class HttpRoutingTest(MeshCase):
    TMP_PREFIX = "zm-http-"

    @classmethod
    def setUpMesh(cls, c):
        cls.client = cls.add_workload("node1", "client", NS, "client")
        backends = [cls.add_workload(node, name, NS, "web", version=version)
                    for node, name, version in (("node1", "a1", "v1"), ("node2", "a2", "v1"), ("node2", "c1", "v2"))]
        for pod in backends:
            cls.serve_http(pod, 9080, pod.name)
        cls.c1 = backends[2]
        cls.serve(cls.c1, LINE_PORT, [PODTOOL, "serve", str(LINE_PORT)])
        cls.serve(cls.c1, BANNER_PORT, ["-c", BANNER_SERVER, str(BANNER_PORT)])
        cls.cp.write("web.yaml", MANIFESTS)
        cls.cp.start()
        cls.wait_routed()

    @classmethod
    def run_plan(cls, plan, host=VIP) -> dict:
        return cls.run_http(plan, host, timeout=120)

    @classmethod
    def wait_routed(cls, timeout=20.0):
        """Until the agent on node1 has the route (a canary request reaches c1): setup, not an assertion."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                last = cls.run_plan([{"path": "/", "headers": {"x-canary": "1"}}])
                if last["bodies"][0].startswith("200 c1 "):
                    return
            except AssertionError as e:
                last = str(e)
            time.sleep(0.1)
        raise AssertionError(f"the route never took effect: {last}\ncontroller: {cls.cp.log('controller', 3000)}")

    @staticmethod
    def servers(out) -> Counter:
        return Counter(b.split()[1] for b in out["bodies"])

    def test_keep_alive_requests_on_one_connection_spread_over_both_endpoints(self):
        out = self.run_plan([{"path": "/", "count": 1000}])
        self.assertEqual(out["sockets"], 1, "the client had to reconnect")
        self.assertEqual(len(out["bodies"]), 1000)
        self.assertTrue(all(b.startswith("200 ") for b in out["bodies"]), Counter(out["bodies"]))
        by = self.servers(out)
        print(f"1000 requests on one connection: {dict(by)}", file=sys.stderr)
        # L4 balancing would give one endpoint all 1,000; per-request round robin gives each about half.
        self.assertEqual(set(by), {"a1", "a2"}, by)
        self.assertGreaterEqual(min(by.values()), 400, by)

    def test_header_and_path_prefix_matches_pick_their_backend(self):
        out = self.run_plan([
            {"path": "/", "headers": {"x-canary": "1"}, "count": 20},
            {"path": "/v2/items", "count": 20},
            {"path": "/v2", "count": 5},
            {"path": "/v2x", "count": 20},  # PathPrefix is element-wise: not /v2
            {"path": "/other", "headers": {"x-canary": "0"}, "count": 20},
        ])
        self.assertEqual(out["sockets"], 1)
        b = out["bodies"]
        self.assertEqual({x.split()[1] for x in b[:20]}, {"c1"}, b[:20])
        self.assertTrue(all(x.endswith(" canary") for x in b[:20]), b[:20])  # the server saw the header set
        # The response header modifier: the client sees the header set and the server's own "Server" removed.
        self.assertEqual(set(out["marks"][:20]), {"canary False"}, out["marks"][:20])
        self.assertEqual(set(out["marks"][20:]), {"- True"}, out["marks"][20:])
        self.assertEqual({x.split()[1] for x in b[20:45]}, {"c1"}, b[20:45])
        self.assertTrue(all(x.endswith(" -") for x in b[20:45]), b[20:45])
        self.assertEqual({x.split()[1] for x in b[45:85]}, {"a1", "a2"}, b[45:85])

    def test_weighted_split_per_request(self):
        out = self.run_plan([{"path": "/split/x", "count": 400}])
        self.assertEqual(out["sockets"], 1)
        by = Counter("v2" if s == "c1" else "v1" for s in self.servers(out).elements())
        print(f"50/50 split over 400 requests: {dict(by)}", file=sys.stderr)
        self.assertEqual(sum(by.values()), 400)
        self.assertGreaterEqual(by["v2"], 140, by)  # 50 % within a generous band (35-65 %)
        self.assertLessEqual(by["v2"], 260, by)

    def test_bodies_chunked_responses_and_posts(self):
        out = self.run_plan([
            {"path": "/v2/chunked", "count": 3},
            {"path": "/upload", "method": "POST", "body": "x" * 100000, "count": 3},
            {"path": "/after", "count": 2},
        ])
        self.assertEqual(out["sockets"], 1)
        b = out["bodies"]
        self.assertEqual(b[:3], ["200 c1 /v2/chunked -"] * 3)
        self.assertEqual([x.split()[2:] for x in b[3:6]], [["/upload", "len=100000"]] * 3, b[3:6])
        self.assertEqual([x.split()[2] for x in b[6:]], ["/after"] * 2)

    def test_upgrade_pins_the_connection_and_passes_bytes_through(self):
        script = (
            "import socket, sys, hashlib\n"
            "c = socket.create_connection((sys.argv[1], 80), timeout=10)\n"
            "c.sendall(b'GET /v2/ws HTTP/1.1\\r\\nHost: web\\r\\nConnection: Upgrade\\r\\nUpgrade: zm-echo\\r\\n\\r\\n')\n"
            "buf = b''\n"
            "while b'\\r\\n\\r\\n' not in buf or not buf.split(b'\\r\\n\\r\\n', 1)[1].endswith(b'\\n'):\n"
            "    d = c.recv(4096)\n"
            "    if not d: break\n"
            "    buf += d\n"
            "head, rest = buf.split(b'\\r\\n\\r\\n', 1)\n"
            "payload = bytes(range(256)) * 400\n"
            "c.sendall(payload)\n"
            "got = b''\n"
            "while len(got) < len(payload):\n"
            "    d = c.recv(65536)\n"
            "    if not d: break\n"
            "    got += d\n"
            "print(head.split(b'\\r\\n')[0].decode(), rest.decode().strip(), got == payload, len(got))\n")
        res = self.cluster.run(self.client, [sys.executable, "-c", script, VIP], text=True, timeout=30)
        self.assertEqual(res.returncode, 0, res.stderr)
        # Routed by its path to web-v2 (c1, another node: through HBONE), then 100 kB echoed through the tunnel.
        self.assertEqual(res.stdout.strip(), "HTTP/1.1 101 Switching Protocols c1 True 102400")

    def requests_total(self, node_name: str, **labels) -> float:
        """Sum of zeromesh_requests_total on that node's agent over the series carrying all |labels|."""
        node = self.cluster.node(node_name)
        res = self.cluster.run(node, ["curl", "-sS", "--max-time", "3", f"http://{node.ip}:15020/metrics"], text=True,
                               timeout=15)
        self.assertEqual(res.returncode, 0, res.stderr)
        total = 0.0
        for line in res.stdout.splitlines():
            m = re.match(r"zeromesh_requests_total\{(.*)\} (\S+)$", line)
            if m and all(f'{k}="{v}"' in m.group(1) for k, v in labels.items()):
                total += float(m.group(2))
        return total

    # Golden metrics and the per-request access log, from the source proxy (reporter=source).
    def test_request_metrics_and_access_log(self):
        failed = dict(reporter="source", source_workload="client", destination_workload="c1",
                      destination_service="shop/web-v2", response_code="503", request_method="GET")
        ok = dict(failed, destination_workload="a1", destination_service="shop/web", route="none",
                  response_code="200")
        ok_a2 = dict(ok, destination_workload="a2")
        before = (self.requests_total("node1", **failed),
                  self.requests_total("node1", **ok) + self.requests_total("node1", **ok_a2))
        trace = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        out = self.run_plan([{"path": "/v2/status/503", "headers": {"traceparent": trace}, "count": 30},
                             {"path": "/plain", "count": 20}])
        self.assertEqual(out["sockets"], 1)  # a 503 from the server keeps the connection
        deadline = time.monotonic() + 5  # counted when each response ends: already there, but scrape may race
        while True:
            after = (self.requests_total("node1", **failed),
                     self.requests_total("node1", **ok) + self.requests_total("node1", **ok_a2))
            if after[0] - before[0] >= 30 and after[1] - before[1] >= 20 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        self.assertEqual(after[0] - before[0], 30, "503s counted by code, workload, Service")
        self.assertEqual(after[1] - before[1], 20, "200s of unrouted requests counted under route=none")
        self.assertGreaterEqual(self.requests_total("node1", **dict(failed, route="shop/web#1")), 30,
                                "the matching rule is the route label")
        # Every failed request (5xx) is in the access log, with its trace id; nothing claims a path label.
        deadline = time.monotonic() + 5  # the access log is flushed every 200 ms
        while True:
            lines = [json.loads(l) for l in self.cp.log("agent-node1").splitlines()
                     if l.startswith("{") and '"msg":"request"' in l]
            failed_lines = [l for l in lines if l.get("status") == 503 and l.get("path") == "/v2/status/503"]
            if len(failed_lines) >= 30 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        self.assertGreaterEqual(len(failed_lines), 30, lines[-3:])
        last = failed_lines[-1]
        self.assertEqual(last["trace_id"], "0af7651916cd43dd8448eb211c80319c")
        self.assertEqual(last["dst.workload"], "c1")
        self.assertEqual(last["src.workload"], "client")
        self.assertEqual(last["route"], "shop/web#1")
        self.assertTrue(last["upstream"].endswith(":9080"), last)

    # Golden metrics from the destination proxy too (reporter=destination), with no TrafficPermission http rules and
    # no tracing: every HTTP/1.1 Service port is parsed at the destination; bytes that are not HTTP still pass there.
    def test_destination_reports_every_request_and_relays_what_is_not_http(self):
        c1 = dict(reporter="destination", destination_workload="c1", destination_service="shop/web-v2",
                  source_workload="client", response_code="200")
        a1 = dict(c1, destination_workload="a1", destination_service="shop/web")  # same node as the client
        fallbacks = "zeromesh_destination_protocol_fallbacks_total"
        before = (self.agent_metric("zeromesh_requests_total", node="node2", **c1),
                  self.agent_metric("zeromesh_requests_total", node="node1", **a1),
                  self.agent_metric(fallbacks, node="node2", required=True))
        out = self.run_plan([{"path": "/v2/dst", "count": 25}, {"path": "/dst", "count": 20}])
        self.assertEqual(out["sockets"], 1)
        want = (25, self.servers(out)["a1"])
        self.assertGreater(want[1], 0, out["bodies"])
        deadline = time.monotonic() + 5  # counted when each response ends: already there, but scrape may race
        while True:
            got = (self.agent_metric("zeromesh_requests_total", node="node2", **c1) - before[0],
                   self.agent_metric("zeromesh_requests_total", node="node1", **a1) - before[1])
            if got == want or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        self.assertEqual(got, want, "destination-side requests: c1 across nodes (HBONE), a1 on the client's node")
        # A line protocol (podtool's ECHO) and a server-speaks-first one, to c1's address on ports declared HTTP.
        line = self.cluster.run(self.client, [sys.executable, PODTOOL, "echo", self.c1.ip, str(LINE_PORT),
                                              "not http\r\n" * 1000], text=True, timeout=30)
        self.assertEqual(line.returncode, 0, line.stderr)
        self.assertTrue(json.loads(line.stdout)["ok"], line.stdout[:300])
        banner = (
            "import socket, sys\n"
            "c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)\n"
            "first = c.recv(4096)\n"  # before the client sent anything
            "c.sendall(b'QUIT\\n')\n"
            "c.shutdown(socket.SHUT_WR)\n"
            "rest = b''\n"
            "while True:\n"
            "    d = c.recv(4096)\n"
            "    if not d: break\n"
            "    rest += d\n"
            "print(repr(first + rest))\n")
        res = self.cluster.run(self.client, [sys.executable, "-c", banner, self.c1.ip, str(BANNER_PORT)], text=True,
                               timeout=30)
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertEqual(res.stdout.strip(), repr(b"220 zm-banner\nQUIT\n"))
        self.assertEqual(self.agent_metric(fallbacks, node="node2") - before[2], 2)

    def test_malformed_request_gets_400_and_the_connection_closes(self):
        script = (
            "import socket, sys\n"
            "c = socket.create_connection((sys.argv[1], 80), timeout=10)\n"
            "c.sendall(b'NOT HTTP AT ALL\\r\\n\\r\\n')\n"
            "buf = b''\n"
            "while True:\n"
            "    d = c.recv(4096)\n"
            "    if not d: break\n"
            "    buf += d\n"
            "print(buf.decode(errors='replace').splitlines()[0] if buf else 'EMPTY')\n")
        res = self.cluster.run(self.client, [sys.executable, "-c", script, VIP], text=True, timeout=30)
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertEqual(res.stdout.strip(), "HTTP/1.1 400 Bad Request")
        # The same after a whole exchange on the connection: the next head is a new request, not a cut response.
        after = (
            "import socket, sys\n"
            "c = socket.create_connection((sys.argv[1], 80), timeout=10)\n"
            "c.sendall(b'GET / HTTP/1.1\\r\\nHost: web\\r\\n\\r\\n')\n"
            "buf = b''\n"
            "while b'HTTP/1.1 200' not in buf: buf += c.recv(4096)\n"
            "c.sendall(b'NOT HTTP AT ALL\\r\\n\\r\\n')\n"
            "while True:\n"
            "    d = c.recv(4096)\n"
            "    if not d: break\n"
            "    buf += d\n"
            "import re\n"
            "print(re.findall(r'HTTP/1.1 ([0-9]{3}) ', buf.decode(errors='replace')))\n")
        res = self.cluster.run(self.client, [sys.executable, "-c", after, VIP], text=True, timeout=30)
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertEqual(res.stdout.strip(), "['200', '400']")


if __name__ == "__main__":
    unittest.main(verbosity=2)
