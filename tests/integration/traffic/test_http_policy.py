"""Issue 17, per-request policy at the destination node proxy, on the simulated cluster with the real controller and
agents: TrafficPermissions with http rules are decided per HTTP/1.1 request by the proxy of the destination's node
(403 Forbidden with the reason), both across nodes (HBONE) and on the same node, and counted with reporter=destination.

Pods: client (node1, sa client), w0 (node1), w1 (node2), both app=web serving http_tool.py on 9080 (HTTP) and 9081.
Services (namespace shop): web-remote 10.96.0.40 (w1) and web-local 10.96.0.41 (w0), 80 -> 9080 appProtocol http;
raw 10.96.0.42 (w1) 81 -> 9081, plain TCP. Permissions: ALLOW public-get (the client's identity; GET /public/*), DENY
no-debug (namespace shop, port 9080; header x-debug: 1).
"""

import json
import sys
import time
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "cluster"))
from mesh_case import MeshCase, service_yaml  # noqa: E402

NS = "shop"
VIP_REMOTE, VIP_LOCAL, VIP_RAW = "10.96.0.40", "10.96.0.41", "10.96.0.42"

WEB_PORT = ("web", 80, 9080, "http")
MANIFESTS = "---\n".join([service_yaml(NS, "web-remote", VIP_REMOTE, {"instance": "w1"}, [WEB_PORT]),
                          service_yaml(NS, "web-local", VIP_LOCAL, {"instance": "w0"}, [WEB_PORT]),
                          service_yaml(NS, "raw", VIP_RAW, {"instance": "w1"}, [("raw", 81, 9081)])]) + f"""---
apiVersion: zeromesh.io/v1alpha1
kind: TrafficPermission
metadata: {{name: public-get, namespace: {NS}}}
spec:
  action: ALLOW
  sources: {{identities: ["spiffe://cluster.local/ns/{NS}/sa/client"]}}
  destination: {{selector: {{matchLabels: {{app: web}}}}}}
  http:
  - methods: [GET]
    paths: ["/public/*"]
---
apiVersion: zeromesh.io/v1alpha1
kind: TrafficPermission
metadata: {{name: no-debug, namespace: {NS}}}
spec:
  action: DENY
  sources: {{namespaces: [{NS}]}}
  destination: {{selector: {{matchLabels: {{app: web}}}}, ports: [9080]}}
  http:
  - headers: [{{name: x-debug, value: "1"}}]
"""

# Sends the JSON plan [[method, path, {headers}], ...] on ONE keep-alive connection to HOST:80 and prints one JSON
# line: [[status, body, x-zeromesh-denied header], ...] and how many sockets were used.
CLIENT = r"""
import http.client, json, sys
conn = http.client.HTTPConnection(sys.argv[1], 80, timeout=10)
conn.auto_open = 0
conn.connect()
socks = {id(conn.sock)}
out = []
for method, path, headers in json.loads(sys.argv[2]):
    conn.request(method, path, body=b"x" * 10 if method == "POST" else None, headers=headers)
    r = conn.getresponse()
    out.append([r.status, r.read().decode().strip(), r.getheader("x-zeromesh-denied", "-")])
    socks.add(id(conn.sock))
print(json.dumps({"responses": out, "sockets": len(socks)}))
"""

PLAN = [
    ["GET", "/public/x", {}],
    ["POST", "/public/x", {}],
    ["GET", "/private", {}],
    ["GET", "/public/y", {"x-debug": "1"}],
    ["GET", "/public/z", {"x-debug": "0"}],
    ["GET", "/public/../private", {}],
    ["GET", "/public/again", {}],
]


class HttpPolicyTest(MeshCase):
    TMP_PREFIX = "zm-http-policy-"

    @classmethod
    def setUpMesh(cls, c):
        cls.client = cls.add_workload("node1", "client", NS, "client")
        cls.w0 = cls.add_workload("node1", "w0", NS, "web", instance="w0")
        cls.w1 = cls.add_workload("node2", "w1", NS, "web", instance="w1")
        for pod in (cls.w0, cls.w1):
            for port in (9080, 9081):
                cls.serve_http(pod, port, pod.name)
        cls.cp.write("web.yaml", MANIFESTS)
        cls.cp.start()
        for vip in (VIP_REMOTE, VIP_LOCAL):
            cls.wait_enforced(vip)

    @classmethod
    def send(cls, vip, plan) -> dict:
        res = cls.cluster.run(cls.client, [sys.executable, "-c", CLIENT, vip, json.dumps(plan)], text=True,
                              timeout=60)
        if res.returncode != 0:
            raise AssertionError(f"client failed: {res.stderr[-2000:]}\nagent node2: {cls.cp.log('agent-node2', 3000)}")
        return json.loads(res.stdout)

    @classmethod
    def wait_enforced(cls, vip, timeout=20.0):
        """Until the destination enforces the permissions (a GET /private gets 403): setup, not an assertion."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                last = cls.send(vip, [["GET", "/private", {}]])
                if last["responses"][0][0] == 403:
                    return
            except AssertionError as e:
                last = str(e)
            time.sleep(0.1)
        raise AssertionError(f"the permissions never took effect on {vip}: {last}\n"
                             f"controller: {cls.cp.log('controller', 3000)}")

    def check_plan(self, vip, server):
        out = self.send(vip, PLAN)
        self.assertEqual(out["sockets"], 1, "denials must keep the connection alive")
        r = out["responses"]
        self.assertEqual(r[0][:2], [200, f"{server} /public/x -"])
        # POST is not among the ALLOW's methods: nothing else allows it, so the ALLOW's allow-list denies it.
        self.assertEqual(r[1][0], 403, r[1])
        self.assertEqual(r[1][1], "no TrafficPermission allows POST /public/x from "
                                  f"spiffe://cluster.local/ns/{NS}/sa/client to {NS}/{server}:9080")
        self.assertEqual(r[1][2], "default-deny-by-allow-policies")
        self.assertEqual(r[2][0], 403, r[2])
        self.assertIn("GET /private", r[2][1])
        # The DENY with a header match: only requests carrying x-debug: 1.
        self.assertEqual(r[3], [403, f"denied by TrafficPermission {NS}/no-debug", f"{NS}/no-debug"])
        self.assertEqual(r[4][:2], [200, f"{server} /public/z -"])
        # Dot segments are resolved before matching: /public/../private is /private.
        self.assertEqual(r[5][0], 403, r[5])
        self.assertIn("GET /private from", r[5][1])
        self.assertEqual(r[6][:2], [200, f"{server} /public/again -"])

    def test_remote_destination_decides_each_request(self):
        """Across nodes: the HBONE stream to w1 is parsed by node2's proxy."""
        labels = dict(reporter="destination", destination_workload="w1", source_workload="client")
        before = (self.agent_metric("zeromesh_requests_total", "node2", response_code="403", **labels),
                  self.agent_metric("zeromesh_requests_total", "node2", response_code="200", **labels))
        self.check_plan(VIP_REMOTE, "w1")
        deadline = time.monotonic() + 5
        while True:
            after = (self.agent_metric("zeromesh_requests_total", "node2", response_code="403", **labels),
                     self.agent_metric("zeromesh_requests_total", "node2", response_code="200", **labels))
            if (after[0] - before[0] >= 4 and after[1] - before[1] >= 3) or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        self.assertEqual(after[0] - before[0], 4, "403s counted by the destination proxy")
        self.assertEqual(after[1] - before[1], 3, "200s counted by the destination proxy")
        # The source proxy counts the same requests as reporter=source.
        self.assertGreaterEqual(self.agent_metric("zeromesh_requests_total", "node1", reporter="source",
                                            destination_workload="w1", response_code="403"), 4)
        # Every denial is in the destination's access log with the deciding policy.
        deadline = time.monotonic() + 5
        while True:
            lines = [json.loads(l) for l in self.cp.log("agent-node2").splitlines()
                     if l.startswith("{") and '"msg":"request"' in l]
            denied = [l for l in lines if l.get("policy") == f"{NS}/no-debug"]
            if denied or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        self.assertTrue(denied, lines[-3:])
        self.assertEqual(denied[-1]["reporter"], "destination")
        self.assertEqual(denied[-1]["status"], 403)
        self.assertEqual(denied[-1]["path"], "/public/y")
        self.assertEqual(denied[-1]["decision"], "deny")

    def test_same_node_destination_decides_each_request(self):
        """On one node: the same-node relay to w0 is parsed by node1's proxy."""
        before = self.agent_metric("zeromesh_requests_total", "node1", reporter="destination",
                                   destination_workload="w0", response_code="403")
        self.check_plan(VIP_LOCAL, "w0")
        deadline = time.monotonic() + 5
        while True:
            after = self.agent_metric("zeromesh_requests_total", "node1", reporter="destination",
                                      destination_workload="w0", response_code="403")
            if after - before >= 4 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        self.assertEqual(after - before, 4)

    def test_a_port_that_is_not_http_gets_nothing_from_an_http_allow(self):
        """raw:81 -> w1:9081 is plain TCP: the ALLOW's http rules cannot be checked there, so it allows nothing."""
        script = ("import socket, sys\n"
                  "try:\n"
                  "    c = socket.create_connection((sys.argv[1], 81), timeout=5)\n"
                  "    c.sendall(b'GET /public/x HTTP/1.1\\r\\nHost: raw\\r\\n\\r\\n')\n"
                  "    print(repr(c.recv(4096)))\n"
                  "except OSError as e:\n"
                  "    print(type(e).__name__)\n")
        res = self.cluster.run(self.client, [sys.executable, "-c", script, VIP_RAW], text=True, timeout=30)
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertIn(res.stdout.strip(), ("b''", "ConnectionResetError"), "the connection must not be served")
        self.assertIn("allows HTTP requests only", self.cp.log("agent-node2"))


if __name__ == "__main__":
    unittest.main(verbosity=2)
