"""Issue 17, HTTP/2 slice, on the simulated cluster with the real controller and agents: gRPC calls to a Service port
with appProtocol grpc are routed per stream by the source node proxy, so the calls of ONE HTTP/2 connection are
balanced across endpoints (L4 would pin them all to one) and a GRPCRoute picks a backend per gRPC method.

Pods: client (node1), g1 (node1, v1), g2 (node2, v1), g3 (node2, v2); each serves grpc_tool.py on 50051 and answers
with its own name. Services (namespace rpc): echo 10.96.0.40 (v1: g1, g2), echo-v2 10.96.0.41 (v2: g3), echo-none
10.96.0.42 (no endpoints), all 80 -> 50051 appProtocol grpc. One GRPCRoute on echo: zm.Echo/Canary -> echo-v2,
method Nowhere -> echo-none; anything else goes to echo itself. One TrafficPermission DENY no-forbidden (namespace rpc,
http path /zm.Echo/Forbidden) on the echo pods: every connection to them is decided per stream by the destination
node's proxy (node1 for g1, node2 for g2 and g3), which also counts each stream with reporter=destination.
An HTTPRoute retries zm.Echo/Flaky once on 503, which g1 answers with UNAVAILABLE (trailers-only) and g2 serves.
The GRPCRoute mirrors 50 % of the zm.Echo/Mirrored calls (served by echo) to echo-v2 (g3), fire-and-forget.
Two more Services disagree on one pod port, g3's 7000: dual-grpc (10.96.0.43) says gRPC, dual-http (10.96.0.44) says
HTTP/1.1; in g3 a sniffing splitter sends connections that open with the HTTP/2 preface to its gRPC server and the
others to an http_tool.py server on 9080.
"""

import json
import subprocess
import sys
import time
import unittest
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "cluster"))
import needs  # noqa: E402
from mesh_case import MeshCase, service_yaml  # noqa: E402

GRPC_TOOL = str(Path(__file__).resolve().parent / "grpc_tool.py")
# Debian's python3-grpcio (tools/deps.sh) is for the system interpreter.
PY = "/usr/bin/python3"
NS = "rpc"
VIP = "10.96.0.40"

DUAL_PORT, DUAL_GRPC_VIP, DUAL_HTTP_VIP = 7000, "10.96.0.43", "10.96.0.44"
# A pod serving gRPC and HTTP/1.1 on one port: argv port, h2 port, HTTP/1.1 port (both on the pod's loopback).
SNIFF_SPLITTER = (
    "import socket, sys, threading\n"
    "PREFACE = b'PRI * HTTP/2.0\\r\\n\\r\\nSM\\r\\n\\r\\n'\n"
    "s = socket.create_server(('0.0.0.0', int(sys.argv[1])), backlog=64)\n"
    "def pipe(a, b):\n"
    "    try:\n"
    "        while d := a.recv(65536): b.sendall(d)\n"
    "        b.shutdown(socket.SHUT_WR)\n"
    "    except OSError: pass\n"
    "def serve(c):\n"
    "    first = b''\n"
    "    while len(first) < len(PREFACE) and PREFACE.startswith(first):\n"
    "        d = c.recv(len(PREFACE) - len(first))\n"
    "        if not d: break\n"
    "        first += d\n"
    "    with c, socket.create_connection(('127.0.0.1', int(sys.argv[2 if first == PREFACE else 3]))) as u:\n"
    "        u.sendall(first)\n"
    "        t = threading.Thread(target=pipe, args=(u, c), daemon=True)\n"
    "        t.start()\n"
    "        pipe(c, u)\n"
    "        t.join()\n"
    "while True:\n"
    "    threading.Thread(target=serve, args=(s.accept()[0],), daemon=True).start()\n")
DUAL_MANIFESTS = "---\n".join([
    service_yaml(NS, "dual-grpc", DUAL_GRPC_VIP, {"version": "v2"}, [("rpc", 80, DUAL_PORT, "grpc")]),
    service_yaml(NS, "dual-http", DUAL_HTTP_VIP, {"version": "v2"}, [("web", 80, DUAL_PORT, "http")])])

MANIFESTS = "---\n".join([
    service_yaml(NS, "echo", VIP, {"version": "v1"}, [("rpc", 80, 50051, "grpc")]),
    # No appProtocol: the port name says gRPC.
    service_yaml(NS, "echo-v2", "10.96.0.41", {"version": "v2"}, [("grpc-echo", 80, 50051)]),
    service_yaml(NS, "echo-none", "10.96.0.42", {"version": "v9"}, [("rpc", 80, 50051, "grpc")])]) + f"""---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {{name: echo, namespace: {NS}}}
spec:
  parentRefs: [{{kind: Service, name: echo, port: 80}}]
  rules:
  - matches: [{{method: {{service: zm.Echo, method: Canary}}}}]
    backendRefs: [{{name: echo-v2, port: 80}}]
  - matches: [{{method: {{type: RegularExpression, method: "Nowh.*"}}}}]
    backendRefs: [{{name: echo-none, port: 80}}]
  - matches: [{{method: {{service: zm.Echo, method: Mirrored}}}}]
    filters: [{{type: RequestMirror, requestMirror: {{backendRef: {{name: echo-v2, port: 80}}, percent: 50}}}}]
    backendRefs: [{{name: echo, port: 80}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: slow, namespace: {NS}}}
spec:
  parentRefs: [{{kind: Service, name: echo, port: 80}}]
  rules:
  - matches: [{{path: {{type: PathPrefix, value: /zm.Echo/Slow}}}}]
    timeouts: {{request: 300ms}}
    backendRefs: [{{name: echo, port: 80}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: flaky, namespace: {NS}}}
spec:
  parentRefs: [{{kind: Service, name: echo, port: 80}}]
  rules:
  - matches: [{{path: {{type: PathPrefix, value: /zm.Echo/Flaky}}}}]
    retry: {{attempts: 1, codes: [503]}}
    backendRefs: [{{name: echo, port: 80}}]
---
apiVersion: zeromesh.io/v1alpha1
kind: TrafficPermission
metadata: {{name: no-forbidden, namespace: {NS}}}
spec:
  action: DENY
  sources: {{namespaces: [{NS}]}}
  destination: {{selector: {{matchLabels: {{app: echo}}}}}}
  http:
  - paths: ["/zm.Echo/Forbidden"]
"""


class GrpcRoutingTest(MeshCase):
    TMP_PREFIX = "zm-grpc-"

    @classmethod
    def setUpClass(cls):
        if subprocess.run([PY, "-c", "import grpc"], capture_output=True).returncode != 0:
            needs.missing("python3-grpcio (Debian) is not installed")
        super().setUpClass()

    @classmethod
    def setUpMesh(cls, c):
        cls.client = cls.add_workload("node1", "client", NS, "client")
        backends = [cls.add_workload(node, name, NS, "echo", version=version)
                    for node, name, version in (("node1", "g1", "v1"), ("node2", "g2", "v1"), ("node2", "g3", "v2"))]
        for pod in backends:
            # g1 fails every Flaky call: half of them, by the balancing of echo's two endpoints.
            cls.serve_grpc(pod, 50051, pod.name, flaky=pod.name == "g1")
        g3 = backends[2]
        cls.serve_http(g3, 9080, g3.name)
        cls.serve(g3, DUAL_PORT, ["-c", SNIFF_SPLITTER, str(DUAL_PORT), "50051", "9080"])
        cls.cp.write("echo.yaml", MANIFESTS)
        cls.cp.write("dual.yaml", DUAL_MANIFESTS)
        cls.cp.start()
        cls.wait_routed()

    @classmethod
    def run_plan(cls, plan, target=f"{VIP}:80") -> dict:
        res = cls.cluster.run(cls.client, [PY, GRPC_TOOL, "run", target], input=json.dumps(plan), text=True,
                              timeout=60)
        if res.returncode != 0:
            raise AssertionError(f"client failed ({res.returncode}): {res.stdout[-500:]} {res.stderr[-2000:]}\nagent node1: {cls.cp.log('agent-node1', 3000)}")
        return json.loads(res.stdout)

    @classmethod
    def wait_routed(cls, timeout=20.0):
        """Until the agent on node1 has the route (a Canary call reaches g3): setup, not an assertion."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                last = cls.run_plan([{"method": "Canary"}])
                if last["replies"][0] == "g3 Canary":
                    return
            except AssertionError as e:
                last = str(e)
            time.sleep(0.1)
        raise AssertionError(f"the route never took effect: {last}\ncontroller: {cls.cp.log('controller', 3000)}")

    def test_unary_calls_on_one_connection_spread_over_both_endpoints(self):
        out = self.run_plan([{"method": "Who", "count": 1000}])
        self.assertEqual(Counter(out["codes"]), {"OK": 1000})
        by = Counter(r.split()[0] for r in out["replies"])
        print(f"1000 gRPC calls on one channel: {dict(by)}", file=sys.stderr)
        # L4 balancing would give one endpoint all 1,000 (one HTTP/2 connection); per stream each gets about half.
        self.assertEqual(set(by), {"g1", "g2"}, by)
        self.assertGreaterEqual(min(by.values()), 400, by)

    def test_grpcroute_method_match_picks_its_backend(self):
        out = self.run_plan([{"method": "Canary", "count": 30}, {"method": "Who", "count": 30}])
        self.assertEqual(Counter(out["codes"]), {"OK": 60})
        self.assertEqual(set(out["replies"][:30]), {"g3 Canary"})
        self.assertEqual({r.split()[0] for r in out["replies"][30:]}, {"g1", "g2"})

    def test_server_streaming_and_trailers_relay(self):
        out = self.run_plan([{"method": "Stream", "n": 5}, {"method": "Stream", "n": 0}, {"method": "Who"}])
        self.assertEqual(out["codes"], ["OK", "OK", "OK"])
        first = out["replies"][0]
        self.assertEqual(len(first), 5, first)
        self.assertEqual([r.split()[1] for r in first], ["0", "1", "2", "3", "4"])
        self.assertEqual(out["replies"][1], [])

    def test_large_messages_both_ways_past_the_flow_control_windows(self):
        # 3 MB each way, three times: past the proxy's 1 MiB stream and 4 MiB connection windows, so the calls only
        # finish when credit is given back as the other side takes the bytes.
        mb3 = 3 * 1024 * 1024
        out = self.run_plan([{"method": "Size", "bytes": mb3, "count": 3}, {"method": "Blob", "bytes": mb3, "count": 3}])
        self.assertEqual(out["codes"], ["OK"] * 6)
        self.assertEqual([r.split()[1] for r in out["replies"][:3]], [str(mb3)] * 3)
        self.assertEqual(out["replies"][3:], [f"len={mb3}"] * 3)

    def test_cancelled_calls_reset_their_stream_only(self):
        # The client gives up (RST_STREAM CANCEL); the proxy cancels the upstream stream and the channel carries on.
        out = self.run_plan([{"method": "Slow", "timeout": 0.2, "count": 4}, {"method": "Who", "count": 4}])
        self.assertEqual(out["codes"], ["DEADLINE_EXCEEDED"] * 4 + ["OK"] * 4)

    def test_plain_h2c_client_gets_503_and_a_non_http2_client_is_refused(self):
        # Not gRPC: curl with HTTP/2 prior knowledge to the Service without endpoints gets a plain 503 on its stream.
        res = self.cluster.run(self.client, ["curl", "-sS", "--http2-prior-knowledge", "--max-time", "5", "-o",
                                             "/dev/null", "-w", "%{http_version} %{http_code}",
                                             "http://10.96.0.42/x"], text=True, timeout=15)
        self.assertEqual(res.stdout.strip(), "2 503", res.stderr)
        # HTTP/1.1 on an HTTP/2 port is not HTTP/2: the connection is reset, the agent carries on.
        res = self.cluster.run(self.client, ["curl", "-sS", "--http1.1", "--max-time", "5", f"http://{VIP}/"],
                               text=True, timeout=15)
        self.assertNotEqual(res.returncode, 0)
        self.assertEqual(Counter(self.run_plan([{"method": "Who", "count": 4}])["codes"]), {"OK": 4})

    def test_request_timeout_ends_the_call_with_deadline_exceeded(self):
        # An HTTPRoute's timeouts.request on the gRPC port: Slow (2 s) is cut at 300 ms with grpc-status 4, on that
        # call only; the client's own deadline (5 s) is far away.
        start = time.monotonic()
        out = self.run_plan([{"method": "Slow", "timeout": 5}, {"method": "Who"}])
        took = time.monotonic() - start
        self.assertEqual(out["codes"], ["DEADLINE_EXCEEDED", "OK"])
        self.assertLess(took, 1.8, "cut at 300 ms, not after the backend's 2 s")

    def test_traffic_permission_http_rules_decide_each_call_at_the_destination(self):
        # Forbidden is denied by the pod's node proxy, on its stream alone (the server would answer UNIMPLEMENTED);
        # the other calls on the same channel reach g1 (same node) and g2 (HBONE) and pass.
        labels = dict(reporter="destination", source_workload="client", destination_service=f"{NS}/echo")
        before = {n: self.agent_metric("zeromesh_requests_total", n, **labels) for n in ("node1", "node2")}
        out = self.run_plan([{"method": "Forbidden", "count": 10}, {"method": "Who", "count": 20},
                             {"method": "Forbidden", "count": 2}])
        self.assertEqual(out["codes"], ["PERMISSION_DENIED"] * 10 + ["OK"] * 20 + ["PERMISSION_DENIED"] * 2)
        self.assertEqual(set(out["details"][:10]), {f"denied by TrafficPermission {NS}/no-forbidden"})
        self.assertEqual({r.split()[0] for r in out["replies"][10:30]}, {"g1", "g2"})
        # Every stream is counted once by the proxy of its pod's node: 32 in all, on both nodes.
        deadline = time.monotonic() + 5
        while True:
            grew = {n: self.agent_metric("zeromesh_requests_total", n, **labels) - before[n] for n in before}
            if sum(grew.values()) >= 32 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        self.assertEqual(sum(grew.values()), 32, grew)
        self.assertGreater(grew["node1"], 0, grew)
        self.assertGreater(grew["node2"], 0, grew)
        # Denied on both paths: node1 (g1, same node) and node2 (g2, HBONE) log denials with the deciding policy
        # (a failed call is always logged; the log is flushed every 200 ms).
        for node in ("node1", "node2"):
            deadline = time.monotonic() + 5
            while True:
                denied = [json.loads(line) for line in self.cp.log(f"agent-{node}").splitlines()
                          if line.startswith("{") and '"msg":"request"' in line and "/zm.Echo/Forbidden" in line]
                denied = [x for x in denied if x.get("policy") == f"{NS}/no-forbidden"]
                if denied or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            self.assertTrue(denied, f"no denial logged by the destination proxy on {node}")
            self.assertEqual((denied[0].get("grpc_status"), denied[0].get("reporter")), ("7", "destination"), denied[0])
        # Plain h2c (not gRPC): 403 with the deciding policy and the reason as the body.
        res = self.cluster.run(self.client, ["curl", "-sS", "-i", "--http2-prior-knowledge", "--max-time", "5",
                                             f"http://{VIP}/zm.Echo/Forbidden"], text=True, timeout=15)
        self.assertTrue(res.stdout.startswith("HTTP/2 403"), res.stdout + res.stderr)
        self.assertIn(f"x-zeromesh-denied: {NS}/no-forbidden", res.stdout)
        self.assertTrue(res.stdout.endswith(f"denied by TrafficPermission {NS}/no-forbidden\n"), res.stdout)

    def test_a_pod_port_services_declare_grpc_and_http_serves_both(self):
        # g3's node proxy (node2) sniffs each connection to port 7000: gRPC calls to dual-grpc and HTTP/1.1 requests
        # to dual-http both reach g3, each decided by no-forbidden (an http DENY) and counted with
        # reporter=destination under dual-grpc, the first of the two by namespace/name.
        labels = dict(reporter="destination", source_workload="client", destination_workload="g3",
                      destination_service=f"{NS}/dual-grpc")
        count = {m: lambda m=m: self.agent_metric("zeromesh_requests_total", "node2", request_method=m, **labels)
                 for m in ("GET", "POST")}
        before = {m: f() for m, f in count.items()}
        calls = self.run_plan([{"method": "Who", "count": 20}, {"method": "Forbidden"}], target=f"{DUAL_GRPC_VIP}:80")
        self.assertEqual(calls["codes"], ["OK"] * 20 + ["PERMISSION_DENIED"])
        self.assertEqual(set(calls["replies"][:20]), {"g3 Who"})
        gets = self.run_http([{"path": "/dual", "count": 20}, {"path": "/zm.Echo/Forbidden"}], DUAL_HTTP_VIP)
        self.assertEqual(gets["sockets"], 1)
        self.assertEqual({" ".join(b.split()[:3]) for b in gets["bodies"][:20]}, {"200 g3 /dual"})
        self.assertEqual(gets["bodies"][20], f"403 denied by TrafficPermission {NS}/no-forbidden\n")
        deadline = time.monotonic() + 5
        while True:
            grew = {m: f() - before[m] for m, f in count.items()}
            if grew == {"GET": 21, "POST": 21} or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        self.assertEqual(grew, {"GET": 21, "POST": 21})
        # And meshctl status names the disagreement, as a warning.
        res = self.cp.meshctl("status", "-o", "json")
        warnings = [w["message"] for w in json.loads(res.stdout)["warnings"]]
        self.assertIn(f"Services {NS}/dual-grpc (port 80, GRPC) and {NS}/dual-http (port 80, HTTP) declare pod port "
                      f"{DUAL_PORT} of {NS}/g3 with different protocols", warnings, res.stderr)

    def test_retries_hide_an_endpoint_failing_half_the_calls(self):
        # HTTPRoute retry {attempts: 1, codes: [503]} on a gRPC port: g1's trailers-only UNAVAILABLE counts as 503, the
        # source proxy sends the call again to the other endpoint (g2), and the client sees none of the failures.
        route = dict(source_workload="client", route=f"{NS}/flaky#0")
        before = self.agent_metric("zeromesh_request_retries_total", **route)
        n = 60
        out = self.run_plan([{"method": "Flaky", "count": n}])
        self.assertEqual(Counter(out["codes"]), {"OK": n}, out["details"])
        self.assertEqual(set(out["replies"]), {"g2 Flaky"})

        def log_lines(node, reporter):
            return [x for x in (json.loads(line) for line in self.cp.log(f"agent-{node}").splitlines()
                                if line.startswith("{") and '"msg":"request"' in line and "/zm.Echo/Flaky" in line)
                    if x.get("reporter") == reporter]
        # Each call's source line says how many tries it took; g1's node proxy logged each try g1 failed.
        deadline = time.monotonic() + 5  # the access log is flushed every 200 ms
        while True:
            source = log_lines("node1", "source")
            failed = [x for x in log_lines("node1", "destination") if x.get("grpc_status") == "14"]
            retries = self.agent_metric("zeromesh_request_retries_total", **route) - before
            if (len(source) >= n and retries >= len(failed)) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        attempts = Counter(x["attempts"] for x in source)
        print(f"{n} Flaky calls: attempts {dict(attempts)}, g1 failed {len(failed)}, retries {retries}",
              file=sys.stderr)
        self.assertEqual(set(attempts), {1, 2}, attempts)
        self.assertGreaterEqual(attempts[2], n // 4, "g1 took its share of first tries")
        self.assertEqual({x["status"] for x in source}, {200})
        self.assertEqual({x.get("grpc_status") for x in source}, {"0"})
        self.assertEqual(attempts[2], len(failed))
        self.assertEqual(retries, attempts[2])

    def test_request_mirror_copies_half_the_calls_to_another_service(self):
        # The copies reach g3 (echo-v2) through g3's node proxy (node2), which counts each as a destination stream;
        # the client gets echo's answers only.
        n = 100
        at_g3 = dict(reporter="destination", destination_workload="g3", response_code="200")
        before_g3 = self.agent_metric("zeromesh_requests_total", "node2", **at_g3)
        before = {m: self.agent_metric(m) for m in ("zeromesh_http_mirrored_total", "zeromesh_http_mirror_dropped_total")}
        out = self.run_plan([{"method": "Mirrored", "count": n}])
        self.assertEqual(Counter(out["codes"]), {"OK": n})
        self.assertEqual({r.split()[0] for r in out["replies"]}, {"g1", "g2"}, "the client sees the primary only")
        deadline = time.monotonic() + 5  # fire-and-forget: copies may still be on their way
        while True:
            mirrored = self.agent_metric("zeromesh_http_mirrored_total") - before["zeromesh_http_mirrored_total"]
            got = self.agent_metric("zeromesh_requests_total", "node2", **at_g3) - before_g3
            if (got == mirrored and mirrored > 0) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        dropped = self.agent_metric("zeromesh_http_mirror_dropped_total") - before["zeromesh_http_mirror_dropped_total"]
        print(f"mirror 50 % of {n} gRPC calls: {mirrored} copies sent, g3 answered {got}, dropped {dropped}",
              file=sys.stderr)
        self.assertGreaterEqual(mirrored, 25, "about half of the calls mirrored (binomial, 5 sd)")
        self.assertLessEqual(mirrored, 75)
        self.assertEqual(got, mirrored, "every copy reached the mirror backend")
        self.assertEqual(dropped, 0)

    def test_no_endpoint_is_unavailable_on_that_call_only(self):
        # The route sends Nowhere to a Service without endpoints: UNAVAILABLE for those calls, the channel stays up.
        out = self.run_plan([{"method": "Nowhere", "count": 3}, {"method": "Who", "count": 3}])
        self.assertEqual(out["codes"], ["UNAVAILABLE"] * 3 + ["OK"] * 3)
        # Each failed call is in the source agent's access log with its grpc-status (always logged, not sampled).
        deadline = time.monotonic() + 5  # the access log is flushed every 200 ms
        while True:
            lines = [json.loads(line) for line in self.cp.log("agent-node1").splitlines()
                     if line.startswith("{") and '"msg":"request"' in line and "/zm.Echo/Nowhere" in line]
            if len(lines) >= 3 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        self.assertGreaterEqual(len(lines), 3, lines)
        self.assertEqual({(x["status"], x.get("grpc_status"), x["route"]) for x in lines}, {(200, "14", "rpc/echo#1")})


if __name__ == "__main__":
    unittest.main(verbosity=2)
