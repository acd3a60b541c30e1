"""Issue 17, tracing: a request from the client pod through both node proxies appears in a real OpenTelemetry
Collector (tools/lib/otelcol.sh: the OTLP receiver and the debug exporter, built from the Go module proxy) as one
CLIENT span from the source node's agent and one SERVER span from the destination node's agent, in one trace, with the
right parent-child links and workload attributes; the backend sees a traceparent whose parent is the SERVER span.

Pods: client (node1, sa client), w1 (node2, sa web) serving a stdlib HTTP server on 9080 that answers with the
traceparent it received, and a gRPC server on 9090 that does the same with its metadata. Services (namespace shop):
web 10.96.0.50: 80 -> 9080, appProtocol http; rpc 10.96.0.51: 90 -> 9090, appProtocol grpc (per stream on both
sides too: CLIENT span at the source, SERVER span at the destination); TrafficPermission no-private denies
/private/* on 9080 at the destination, whose proxy still makes the SERVER span (status error, 403); void
10.96.0.52 has no endpoints (the source proxy's own 503 gets a CLIENT span). The collector runs on the control
plane's host, reached by the agents over the node network, with two OTLP receivers: node1's agent sends over TLS
to 10.99.0.x:4319 (a certificate for otel-collector.test from a CA this test makes; the agent gets --otlp-ca-file
and --otlp-server-name), node2's in plaintext to :4317 (--otlp-insecure true); so every check below that sees a
node1 span sees it come over TLS. MeshConfig spec.tracing.samplingPercentage 100, then 0.
"""

import json
import re
import subprocess
import sys
import time
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "cluster"))
import needs  # noqa: E402
import zmcluster  # noqa: E402
from mesh import TestCA, openssl  # noqa: E402
from mesh_case import GRPC_PY, MeshCase, service_yaml  # noqa: E402

REPO = Path(__file__).resolve().parents[3]
NS = "shop"
VIP, VIP_RPC, VIP_VOID = "10.96.0.50", "10.96.0.51", "10.96.0.52"
GIVEN_TRACE, GIVEN_PARENT = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"

SERVICE = "---\n".join([service_yaml(NS, "web", VIP, {"app": "web"}, [("web", 80, 9080, "http")]),
                        service_yaml(NS, "rpc", VIP_RPC, {"app": "web"}, [("rpc", 90, 9090, "grpc")]),
                        service_yaml(NS, "void", VIP_VOID, {"app": "nobody"}, [("web", 80, 9080, "http")])]) + f"""---
apiVersion: zeromesh.io/v1alpha1
kind: TrafficPermission
metadata: {{name: no-private, namespace: {NS}}}
spec:
  action: DENY
  sources: {{namespaces: [{NS}]}}
  destination: {{selector: {{matchLabels: {{app: web}}}}, ports: [9080]}}
  http:
  - paths: ["/private/*"]
"""

MESH_CONFIG = """apiVersion: zeromesh.io/v1alpha1
kind: MeshConfig
metadata:
  name: default
spec:
  trustDomain: cluster.local
  defaultMode: STRICT
  defaultPolicy: ALLOW
  certTTL: 24h
  tracing: {{samplingPercentage: {pct}}}
"""

COLLECTOR_CONFIG = """receivers:
  otlp:
    protocols:
      grpc:
        endpoint: {addr}
  otlp/tls:
    protocols:
      grpc:
        endpoint: {tls_addr}
        tls:
          cert_file: {cert}
          key_file: {key}
exporters:
  debug:
    verbosity: detailed
service:
  telemetry:
    metrics:
      level: none
  pipelines:
    traces:
      receivers: [otlp, otlp/tls]
      exporters: [debug]
"""

# The backend: every response body is the traceparent header the request arrived with ("-" when none).
SERVER = r"""
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a):
        pass
    def do_GET(self):
        body = self.headers.get("traceparent", "-").encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
http.server.ThreadingHTTPServer(("0.0.0.0", int(sys.argv[1])), H).serve_forever()
"""

# A gRPC server whose zm.Echo/Trace answers the traceparent metadata the call arrived with ("-" when none).
GRPC_SERVER = r"""
import sys
from concurrent import futures
import grpc
def trace(req, ctx):
    return dict(ctx.invocation_metadata()).get("traceparent", "-").encode()
h = grpc.method_handlers_generic_handler("zm.Echo", {"Trace": grpc.unary_unary_rpc_method_handler(
    trace, request_deserializer=lambda b: b, response_serializer=lambda b: b)})
server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
server.add_generic_rpc_handlers((h,))
server.add_insecure_port("0.0.0.0:" + sys.argv[1])
server.start()
server.wait_for_termination()
"""

GRPC_CLIENT = r"""
import sys
import grpc
with grpc.insecure_channel(sys.argv[1]) as ch:
    call = ch.unary_unary("/zm.Echo/Trace", request_serializer=lambda b: b, response_deserializer=lambda b: b)
    print(call(b"", timeout=10, metadata=[("traceparent", sys.argv[2])]).decode())
"""

# Sends the JSON plan [[path, {headers}], ...] on one keep-alive connection; prints the bodies as a JSON list.
CLIENT = r"""
import http.client, json, sys
conn = http.client.HTTPConnection(sys.argv[1], 80, timeout=10)
out = []
for path, headers in json.loads(sys.argv[2]):
    conn.request("GET", path, headers=headers)
    r = conn.getresponse()
    out.append([r.status, r.read().decode()])
print(json.dumps(out))
"""


def collector_cert(directory: Path, name: str) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for DNS name `name` signed by it: (CA cert, server cert, key)."""
    ca = TestCA(directory, name="otlp-ca")
    key, csr, crt, ext = (directory / f"collector.{x}" for x in ("key", "csr", "crt", "ext"))
    ext.write_text(f"basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                   f"extendedKeyUsage=serverAuth\nsubjectAltName=DNS:{name}\n")
    openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(key), cwd=directory)
    openssl("req", "-new", "-key", str(key), "-out", str(csr), "-subj", f"/CN={name}", cwd=directory)
    openssl("x509", "-req", "-in", str(csr), "-CA", str(ca.cert), "-CAkey", str(ca.key), "-CAcreateserial",
            "-out", str(crt), "-days", "1", "-extfile", str(ext), cwd=directory)
    return ca.cert, crt, key


def parse_spans(text: str) -> list[dict]:
    """The debug exporter's detailed output -> [{"trace", "parent", "id", "kind", "name", "attrs", "resource"}]."""
    spans, resource = [], {}
    # Each export is one log entry: resource attributes, then spans with their fields and attributes.
    for block in re.split(r"(?=Resource attributes:|Span #\d+)", text):
        if block.startswith("Resource attributes:"):
            resource = dict(re.findall(r"-> ([\w.]+): \w+\((.*?)\)\s*$", block, re.M))
            continue
        if not block.startswith("Span #"):
            continue
        field = lambda name: (re.search(rf"^[ \t]*{name}[ \t]*:[ \t]*(\S*)", block, re.M) or [None, ""])[1]  # noqa: E731
        spans.append({"trace": field("Trace ID"), "parent": field("Parent ID"), "id": field("ID"),
                      "kind": field("Kind"), "name": field("Name"), "status": field("Status code"),
                      "resource": dict(resource),
                      "attrs": dict(re.findall(r"-> ([\w.]+): \w+\((.*?)\)\s*$", block, re.M))})
    return spans


class TracingTest(MeshCase):
    TMP_PREFIX = "zm-tracing-"

    @classmethod
    def setUpClass(cls):
        res = subprocess.run(["bash", str(REPO / "tools/lib/otelcol.sh"), "--path"], capture_output=True, text=True)
        if res.returncode != 0:
            needs.missing("the OpenTelemetry Collector is not built (tools/lib/otelcol.sh, run by tools/deps.sh)")
        cls.otelcol = res.stdout.strip()
        super().setUpClass()

    @classmethod
    def setUpMesh(cls, c):
        cls.client = cls.add_workload("node1", "client", NS, "client")
        cls.w1 = cls.add_workload("node2", "w1", NS, "web")
        cls.cp.write("web.yaml", SERVICE)
        cls.cp.write("meshconfig.yaml", MESH_CONFIG.format(pct=100))
        cls.serve(cls.w1, 9080, ["-c", SERVER, "9080"])
        cls.serve(cls.w1, 9090, ["-c", GRPC_SERVER, "9090"], grpc=True)
        endpoint, tls_endpoint = f"{cls.cp.host.ip}:4317", f"{cls.cp.host.ip}:4319"
        ca, cert, key = collector_cert(Path(cls.tmp.name), "otel-collector.test")
        cfg = Path(cls.tmp.name) / "otelcol.yaml"
        cfg.write_text(COLLECTOR_CONFIG.format(addr=endpoint, tls_addr=tls_endpoint, cert=cert, key=key))
        cls.collector_log = Path(cls.tmp.name) / "otelcol.log"
        with open(cls.collector_log, "wb") as log:
            c.popen(cls.cp.host, [cls.otelcol, "--config", str(cfg)], stdout=log, stderr=subprocess.STDOUT)
        try:
            c.wait_tcp(cls.cp.host, cls.cp.host.ip, 4317)
            c.wait_tcp(cls.cp.host, cls.cp.host.ip, 4319)
        except zmcluster.ClusterError as e:
            raise zmcluster.ClusterError(f"{e}; collector: {cls.collector_log.read_text(errors='replace')[-3000:]}")
        cls.cp.start_controller()
        otlp_args = {"node1": ["--otlp-endpoint", tls_endpoint, "--otlp-ca-file", str(ca),
                               "--otlp-server-name", "otel-collector.test"],
                     "node2": ["--otlp-endpoint", endpoint, "--otlp-insecure", "true"]}
        for node in c.nodes:
            cls.cp.start_agent(node, wait=False, extra_args=otlp_args[node.name])
        for node in c.nodes:
            cls.cp.wait_agent_ready(node)

    def send(self, plan, vip: str = VIP) -> list:
        res = self.cluster.run(self.client, [sys.executable, "-c", CLIENT, vip, json.dumps(plan)], text=True,
                               timeout=30)
        self.assertEqual(res.returncode, 0, res.stderr[-2000:])
        return json.loads(res.stdout)

    def spans(self) -> list[dict]:
        return parse_spans(self.collector_log.read_text(errors="replace"))

    def wait_spans(self, traces: set, n: int, timeout: float = 10.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        got = []
        while time.monotonic() < deadline:
            got = [s for s in self.spans() if s["trace"] in traces]
            if len(got) >= n:
                return got
            time.sleep(0.2)
        self.fail(f"{len(got)} of {n} spans of {traces} reached the collector: {got}\n"
                  f"collector: {self.collector_log.read_text(errors='replace')[-3000:]}\n"
                  f"agent node1: {self.cp.log('agent-node1', 2000)}")

    def test_trace_through_both_proxies(self):
        given = f"00-{GIVEN_TRACE}-{GIVEN_PARENT}-01"
        replies = self.send([["/one", {}], ["/two?x=1", {"traceparent": given, "tracestate": "vendor=7"}]])
        self.assertEqual([r[0] for r in replies], [200, 200], replies)
        seen = [r[1].split("-") for r in replies]  # what the backend received: 00-trace-parent-flags
        for tp in seen:
            self.assertEqual(len(tp), 4, replies)
            self.assertEqual(tp[3], "01", "sampled (100 %)")
        self.assertEqual(seen[1][1], GIVEN_TRACE, "the given trace goes on")
        self.assertNotEqual(seen[0][1], GIVEN_TRACE)
        spans = self.wait_spans({seen[0][1], seen[1][1]}, 4)
        self.assertEqual(len(spans), 4, spans)
        for i, (trace, backend_parent) in enumerate(((seen[0][1], seen[0][2]), (seen[1][1], seen[1][2]))):
            mine = [s for s in spans if s["trace"] == trace]
            kinds = sorted(s["kind"] for s in mine)
            self.assertEqual(kinds, ["Client", "Server"], mine)
            cl = next(s for s in mine if s["kind"] == "Client")
            sv = next(s for s in mine if s["kind"] == "Server")
            # Links: given parent (or root) <- CLIENT <- SERVER <- what the backend got.
            self.assertEqual(cl["parent"], GIVEN_PARENT if i == 1 else "", cl)
            self.assertEqual(sv["parent"], cl["id"], (cl, sv))
            self.assertEqual(backend_parent, sv["id"], "the pod's own spans nest under the SERVER span")
            # Workload attributes: each proxy names the pod it stands for, both sides and their identities.
            self.assertEqual(cl["resource"].get("k8s.node.name"), "node1", cl)
            self.assertEqual(sv["resource"].get("k8s.node.name"), "node2", sv)
            for s in (cl, sv):
                self.assertEqual(s["resource"].get("service.name"), "zeromesh-agent", s)
                a = s["attrs"]
                self.assertEqual(a.get("zeromesh.source.workload"), "client", s)
                self.assertEqual(a.get("zeromesh.source.namespace"), NS, s)
                self.assertEqual(a.get("zeromesh.source.identity"), f"spiffe://cluster.local/ns/{NS}/sa/client", s)
                self.assertEqual(a.get("zeromesh.destination.workload"), "w1", s)
                self.assertEqual(a.get("zeromesh.destination.identity"), f"spiffe://cluster.local/ns/{NS}/sa/web", s)
                self.assertEqual(a.get("zeromesh.destination.service"), f"{NS}/web", s)
                self.assertEqual(a.get("http.request.method"), "GET", s)
                self.assertEqual(a.get("http.response.status_code"), "200", s)
                self.assertEqual(a.get("url.path"), "/one" if i == 0 else "/two", s)
                self.assertEqual(a.get("k8s.namespace.name"), NS, s)
            self.assertEqual(cl["attrs"].get("k8s.pod.name"), "client", cl)
            self.assertEqual(sv["attrs"].get("k8s.pod.name"), "w1", sv)
            self.assertEqual(cl["attrs"].get("network.peer.address"), self.w1.ip, cl)
            self.assertEqual(sv["attrs"].get("network.peer.address"), self.client.ip, sv)

        # gRPC (HTTP/2): the source proxy's CLIENT span, child of the given context, the destination proxy's SERVER
        # span its child, and the server's parent that SERVER span.
        given_rpc = f"00-{GIVEN_TRACE[::-1]}-{GIVEN_PARENT}-01"
        res = self.cluster.run(self.client, [GRPC_PY, "-c", GRPC_CLIENT, f"{VIP_RPC}:90", given_rpc], text=True,
                               timeout=30)
        self.assertEqual(res.returncode, 0, res.stderr[-2000:])
        got = res.stdout.strip().split("-")
        self.assertEqual(got[1], GIVEN_TRACE[::-1], res.stdout)
        rpc = self.wait_spans({GIVEN_TRACE[::-1]}, 2)
        self.assertEqual(sorted(s["kind"] for s in rpc), ["Client", "Server"], rpc)
        cl = next(s for s in rpc if s["kind"] == "Client")
        sv = next(s for s in rpc if s["kind"] == "Server")
        self.assertEqual((cl["parent"], cl["name"]), (GIVEN_PARENT, "POST"), cl)
        self.assertEqual(sv["parent"], cl["id"], (cl, sv))
        self.assertEqual(got[2], sv["id"], "the gRPC server's parent is the SERVER span")
        self.assertEqual(cl["resource"].get("k8s.node.name"), "node1", cl)
        self.assertEqual(sv["resource"].get("k8s.node.name"), "node2", sv)
        for s in (cl, sv):
            self.assertEqual(s["attrs"].get("rpc.grpc.status_code"), "0", s)
            self.assertEqual(s["attrs"].get("url.path"), "/zm.Echo/Trace", s)
            self.assertEqual(s["attrs"].get("zeromesh.destination.service"), f"{NS}/rpc", s)
            self.assertEqual(s["attrs"].get("zeromesh.source.identity"), f"spiffe://cluster.local/ns/{NS}/sa/client", s)

        # Denied at the destination (TrafficPermission no-private): the request never reaches the backend, yet the
        # SERVER span is there, child of the CLIENT span, with status error and the 403. And a Service without
        # endpoints: the source proxy answers 503 itself (HTTP/1.1 path), and its CLIENT span says so.
        denied_trace, void_trace = GIVEN_TRACE[:16] + GIVEN_TRACE[:16], GIVEN_TRACE[16:] + GIVEN_TRACE[16:]
        replies = self.send([["/private/x", {"traceparent": f"00-{denied_trace}-{GIVEN_PARENT}-01"}]])
        self.assertEqual(replies[0][0], 403, replies)
        replies = self.send([["/none", {"traceparent": f"00-{void_trace}-{GIVEN_PARENT}-01"}]], vip=VIP_VOID)
        self.assertEqual(replies[0][0], 503, replies)
        void = self.wait_spans({void_trace}, 1)
        self.assertEqual([(s["kind"], s["parent"], s["status"]) for s in void], [("Client", GIVEN_PARENT, "Error")])
        self.assertEqual(void[0]["attrs"].get("http.response.status_code"), "503", void)
        self.assertEqual(void[0]["attrs"].get("zeromesh.destination.service"), None, "no backend was picked")
        spans = self.wait_spans({denied_trace}, 2)
        self.assertEqual(sorted(s["kind"] for s in spans), ["Client", "Server"], spans)
        cl = next(s for s in spans if s["kind"] == "Client")
        sv = next(s for s in spans if s["kind"] == "Server")
        self.assertEqual((cl["parent"], sv["parent"]), (GIVEN_PARENT, cl["id"]), spans)
        self.assertEqual(sv["resource"].get("k8s.node.name"), "node2", sv)
        for s in (cl, sv):
            self.assertEqual(s["status"], "Error", s)
            self.assertEqual(s["attrs"].get("http.response.status_code"), "403", s)
        self.assertEqual(sv["attrs"].get("zeromesh.policy"), f"{NS}/no-private", sv)
        self.assertEqual(sv["attrs"].get("zeromesh.reporter"), "destination", sv)

        # Sampling 0 %: new traces are marked not sampled (the backend sees flags 00) and nothing is exported.
        self.cp.write("meshconfig.yaml", MESH_CONFIG.format(pct=0))
        deadline, unsampled = time.monotonic() + 10, []
        while time.monotonic() < deadline and not unsampled:
            tp = self.send([["/zero", {}]])[0][1].split("-")
            if tp[3] == "00":
                unsampled.append(tp[1])
            else:
                time.sleep(0.1)
        self.assertTrue(unsampled, "the source proxy never applied samplingPercentage 0")
        time.sleep(1.5)  # spans of requests sampled before the change are flushed within the exporter's 1 s
        before = len(self.spans())
        unsampled += [r[1].split("-")[1] for r in self.send([["/zero", {}]] * 5)]
        self.assertTrue(all(r[1].endswith("-00") for r in self.send([["/zero", {}]])))
        time.sleep(2.5)
        leaked = [s for s in self.spans() if s["trace"] in set(unsampled)]
        self.assertEqual(leaked, [], "0 % exports nothing")
        self.assertEqual(len(self.spans()), before, "nor any other span")


if __name__ == "__main__":
    unittest.main()
