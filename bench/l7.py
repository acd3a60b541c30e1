"""L7 part of the data-plane benchmark (issue 17): HTTP/1.1 over keep-alive connections and unary gRPC calls over
HTTP/2 connections, direct vs zeromesh vs HAProxy in HTTP mode, interleaved rounds, called by bench/dataplane.py after
its L4 rounds (same run, same JSON).

Its own simulated cluster, because a Service port is only marked HTTP (appProtocol: http) through the controller's
universal-mode manifests (the agents' local JSON config has no appProtocol): a real mesh-controller plus one agent per
node started from a bootstrap file (tests/cluster/controlplane.py), the agents with --workers = HAProxy's nbthread.

  direct    lclient -> lpserver:8080                       no mesh (workloads not enrolled)
  zeromesh  lmclient -> Service web 10.96.0.80:80          enrolled, STRICT; the port has appProtocol: http, so the
            (appProtocol http, endpoint lmserver:8080)     source agent takes its L7 path when the agent has one
  haproxy   lhclient -> HAProxy node1 (mode http)          HTTP mode with keep-alive on both sides; mutual TLS 1.3
            -> HAProxy node2 (mode http) -> lhserver:8080  between the two instances, as the L4 comparison

Server: Debian's nginx (nginx-light), one worker, answering `return 200` with a 2-byte body, access log off.
Load: wrk (Debian) on persistent connections: a rate run (WRK_CONNS connections, 1 thread) with the proxies' CPU
(utime+stime over the run), and a latency run on one connection (p50/p99 of one request at a time).

gRPC, the same three paths to the same server pods:
  direct    lpclient -> lpserver:50051
  zeromesh  lmclient -> Service grpc 10.96.0.81:50051      appProtocol grpc: the source agent routes each HTTP/2 stream
            (endpoint lmserver:50051)                      (agent/proxy/h2_conn.*) through a GRPCRoute
  haproxy   lhclient -> HAProxy node1 (bind proto h2)      h2 over TLS 1.3 (mutual, ALPN h2) between the instances,
            -> HAProxy node2 -> lhserver:50051 (proto h2)  cleartext h2 to the server
Server: zm-grpc-echo (bench/tools/grpc_echo.cc, gRPC 1.51's callback API, a generic unary echo: no codegen).
Load: h2load (Debian nghttp2-client) POSTing a length-prefixed protobuf message (content-type application/grpc,
te: trailers) to /zm.bench.Echo/Call: a rate run (GRPC_CONNS connections x GRPC_STREAMS concurrent calls each) and a
latency run (one connection, one call at a time); p50/p99 from h2load's per-request log. h2load counts HTTP status
only, so every call must also have brought back its whole response message (response data bytes = calls x 9): a
call failed in gRPC terms (trailers-only, no message) fails the run.

Which path the mesh took is recorded, not assumed: an HTTPRoute on the Service (one rule, PathPrefix /, back to the
Service itself) sets the request header x-zm-bench-route: l7; nginx echoes that request header in its response. Only a
proxy that parsed the request and applied the route can have added it, so `l7.mesh_path` is "l7" when the probe's
response carries it and "l4" when it does not. For gRPC, a GRPCRoute on the grpc Service sets the same header to
"grpc" (RequestHeaderModifier); zm-grpc-echo returns it as response metadata, read by a grpcio probe call
(`l7.grpc.mesh_path`: "l7" or "l4").
"""

from __future__ import annotations

import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "cluster"))
import zmcluster  # noqa: E402
from controlplane import ControlPlane  # noqa: E402
from mesh import BUILD_DIR, TestCA, sockmap_mode  # noqa: E402
sys.path.insert(0, str(ROOT / "tests" / "integration" / "traffic"))
from mesh_case import service_yaml  # noqa: E402
sys.path.insert(0, str(Path(__file__).resolve().parent))
import haproxy_pair  # noqa: E402

PATHS = ("direct", "zeromesh", "haproxy")
HTTP_PORT = 8080
VIP, VIP_PORT = "10.96.0.80", 80
HAP_N1_PORT, HAP_N2_PORT = 28080, 38080
NS = "bench"
WRK_CONNS = 8
ROUTE_HEADER = "x-zm-bench-route"
METRICS = ("http_rps", "http_rate_p50_us", "http_rate_p99_us", "http_p50_us", "http_p99_us")
GRPC_PORT = 50051
GRPC_VIP = "10.96.0.81"
HAP_GRPC_N1_PORT, HAP_GRPC_N2_PORT = 28081, 38081
GRPC_CONNS, GRPC_STREAMS = 4, 8
GRPC_METHOD = "/zm.bench.Echo/Call"
GRPC_MESSAGE = b"\x0a\x02ok"  # protobuf: field 1 (string) = "ok"
GRPC_METRICS = ("grpc_rps", "grpc_rate_p50_us", "grpc_rate_p99_us", "grpc_p50_us", "grpc_p99_us")
SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's, with python3-grpcio (the probe)
TOOLS = BUILD_DIR / "bench"


def nginx_config(work: Path, name: str, ip: str) -> Path:
    d = work / f"nginx-{name}"
    (d / "tmp").mkdir(parents=True, exist_ok=True)
    cfg = d / "nginx.conf"
    cfg.write_text(f"""worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {d}/tmp;
    proxy_temp_path {d}/tmp;
    fastcgi_temp_path {d}/tmp;
    uwsgi_temp_path {d}/tmp;
    scgi_temp_path {d}/tmp;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    server {{
        listen {ip}:{HTTP_PORT} reuseport;
        location / {{
            add_header {ROUTE_HEADER} $http_{ROUTE_HEADER.replace('-', '_')} always;
            return 200 "ok";
        }}
    }}
}}
""")
    return cfg


def haproxy_http_configs(work: Path, ca: TestCA, node1, node2, server_ip: str, cipher: str,
                         threads: int) -> tuple[Path, Path]:
    pems = haproxy_pair.pems(work, ca, "l7-")
    glob = haproxy_pair.global_section(threads, cipher) + """
defaults
    mode http
    option http-keep-alive
    http-reuse safe
    maxconn 8000
    timeout connect 5s
    timeout client 300s
    timeout server 300s
    timeout http-keep-alive 300s
"""
    n1 = glob + f"""
listen web
    bind {node1.gateway}:{HAP_N1_PORT}
    server node2 {node2.ip}:{HAP_N2_PORT} ssl crt {pems['client']} ca-file {ca.cert} verify required

listen grpc
    bind {node1.gateway}:{HAP_GRPC_N1_PORT} proto h2
    server node2 {node2.ip}:{HAP_GRPC_N2_PORT} ssl crt {pems['client']} ca-file {ca.cert} verify required alpn h2
"""
    n2 = glob + f"""
listen web
    bind {node2.ip}:{HAP_N2_PORT} ssl crt {pems['server']} ca-file {ca.cert} verify required
    server pod {server_ip}:{HTTP_PORT}

listen grpc
    bind {node2.ip}:{HAP_GRPC_N2_PORT} ssl crt {pems['server']} ca-file {ca.cert} verify required alpn h2
    server pod {server_ip}:{GRPC_PORT} proto h2
"""
    return haproxy_pair.write_checked(work, "l7-", n1, n2)


def manifests() -> str:
    return service_yaml(NS, "web", VIP, {"app": "lmserver"}, [("web", VIP_PORT, HTTP_PORT, "http")]) + f"""---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: web, namespace: {NS}}}
spec:
  parentRefs: [{{kind: Service, name: web, port: {VIP_PORT}}}]
  rules:
  - matches: [{{path: {{type: PathPrefix, value: /}}}}]
    filters: [{{type: RequestHeaderModifier, requestHeaderModifier: {{set: [{{name: {ROUTE_HEADER}, value: l7}}]}}}}]
    backendRefs: [{{name: web, port: {VIP_PORT}}}]
---
""" + service_yaml(NS, "grpc", GRPC_VIP, {"app": "lmserver"}, [("grpc", GRPC_PORT, GRPC_PORT, "grpc")]) + f"""---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {{name: grpc, namespace: {NS}}}
spec:
  parentRefs: [{{kind: Service, name: grpc, port: {GRPC_PORT}}}]
  rules:
  - matches: [{{method: {{service: zm.bench.Echo}}}}]
    filters: [{{type: RequestHeaderModifier, requestHeaderModifier: {{set: [{{name: {ROUTE_HEADER}, value: grpc}}]}}}}]
    backendRefs: [{{name: grpc, port: {GRPC_PORT}}}]
"""


_UNITS = {"us": 1.0, "ms": 1e3, "s": 1e6}


def _dur_us(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", text.strip())
    if not m:
        raise ValueError(f"unparsable wrk duration {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_wrk(out: str) -> dict:
    """wrk --latency's text output -> requests, rate, p50/p99 (us), errors (socket errors + non-2xx/3xx)."""
    m = re.search(r"^\s*(\d+) requests in ", out, re.M)
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", out, re.M)
    if not m or not rps:
        raise ValueError(f"unexpected wrk output: {out[-1500:]}")
    pct = {p: _dur_us(v) for p, v in re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M)}
    errors = 0
    se = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if se:
        errors += sum(int(x) for x in se.groups())
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        errors += int(non2xx.group(1))
    if "50" not in pct or "99" not in pct:
        raise ValueError(f"wrk printed no latency distribution: {out[-1500:]}")
    return {"requests": int(m.group(1)), "rps": float(rps.group(1)), "p50_us": pct["50"], "p99_us": pct["99"],
            "errors": errors}


def percentile(sorted_vals: list, q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    return float(sorted_vals[min(len(sorted_vals) - 1, max(0, int(round(q * len(sorted_vals) + 0.5)) - 1))])


def parse_h2load(out: str, log_text: str) -> dict:
    """h2load's summary plus its --log-file ("start_us status duration_us" per request) -> requests, rate, p50/p99 (us),
    errors (failed, errored, timed out, non-2xx), and the response data bytes."""
    fin = re.search(r"^finished in [\d.]+\w+, ([\d.]+) req/s", out, re.M)
    req = re.search(r"^requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, "
                    r"(\d+) timeout", out, re.M)
    codes = re.search(r"^status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out, re.M)
    data = re.search(r"^traffic: .*? (\d+) data$", out.replace(")", "").replace("(", ""), re.M)
    if not (fin and req and codes and data):
        raise ValueError(f"unexpected h2load output: {out[-1500:]}")
    durations = sorted(int(f[2]) for f in (line.split() for line in log_text.splitlines()) if len(f) == 3 and f[1] == "200")
    if not durations:
        raise ValueError(f"h2load logged no successful request: {out[-1500:]}")
    done, ok, failed, errored, timeout = (int(x) for x in req.groups())
    return {"requests": ok, "rps": float(fin.group(1)), "p50_us": percentile(durations, 0.5),
            "p99_us": percentile(durations, 0.99), "errors": failed + errored + timeout + sum(int(x) for x in codes.groups()[1:]),
            "data_bytes": int(data.group(1))}


class L7Bench:
    def __init__(self, c, targets: dict, grpc_targets: dict, proxies: dict, seconds: float, cpu_ticks, clk_tck: int,
                 latency: bool, work: Path):
        self.c, self.targets, self.proxies, self.seconds, self.latency = c, targets, proxies, seconds, latency
        self.grpc_targets, self.work = grpc_targets, work
        self.cpu_ticks, self.clk_tck = cpu_ticks, clk_tck
        self.message = work / "grpc-request.bin"  # gRPC framing: not compressed, 4-byte length, the message
        self.message.write_bytes(b"\x00" + len(GRPC_MESSAGE).to_bytes(4, "big") + GRPC_MESSAGE)

    def h2load(self, path: str, conns: int, streams: int) -> tuple[dict, float]:
        pod, url = self.grpc_targets[path]
        pids = self.proxies.get(path, [])
        secs = max(1, round(self.seconds))
        log_file = self.work / f"h2load-{path}.log"
        log_file.unlink(missing_ok=True)
        before = self.cpu_ticks(pids)
        try:
            res = self.c.run(pod, ["h2load", "-D", str(secs), "-c", str(conns), "-m", str(streams), "-t", "1",
                                   "-d", str(self.message), "-H", "content-type: application/grpc", "-H",
                                   "te: trailers", "--log-file", str(log_file), url], text=True, timeout=secs + 30)
        except subprocess.TimeoutExpired:
            raise zmcluster.ClusterError(f"h2load -c{conns} through {path} did not finish within {secs + 30} s") from None
        after = self.cpu_ticks(pids)
        if res.returncode != 0:
            raise zmcluster.ClusterError(f"h2load failed in {pod.name} ({res.returncode}): {res.stderr[-500:]}")
        out = parse_h2load(res.stdout, log_file.read_text() if log_file.exists() else "")
        # Every call brought its whole message back (a gRPC error is an HTTP 200 without one).
        if out["requests"] <= 0 or out["errors"] or out["data_bytes"] < out["requests"] * (5 + len(GRPC_MESSAGE)):
            raise zmcluster.ClusterError(f"h2load through {path}: {out}:\n{res.stdout[-1500:]}")
        return out, (after[0] - before[0] + after[1] - before[1]) / self.clk_tck

    def grpc_round(self, path: str) -> dict:
        rate, cpu = self.h2load(path, GRPC_CONNS, GRPC_STREAMS)
        fig = {"grpc_rps": rate["rps"], "grpc_rate_p50_us": rate["p50_us"], "grpc_rate_p99_us": rate["p99_us"],
               "grpc_requests": rate["requests"]}
        if self.latency:  # one call at a time on one connection
            lat, _ = self.h2load(path, 1, 1)
            fig.update({"grpc_p50_us": lat["p50_us"], "grpc_p99_us": lat["p99_us"]})
        if self.proxies.get(path):
            fig["grpc_proxy_cpu_s"] = cpu
            fig["grpc_req_per_proxy_core_s"] = rate["requests"] / cpu if cpu > 0 else 0.0
        return fig

    def wrk(self, path: str, conns: int) -> tuple[dict, float]:
        pod, url = self.targets[path]
        pids = self.proxies.get(path, [])
        before = self.cpu_ticks(pids)
        secs = max(1, round(self.seconds))
        try:
            res = self.c.run(pod, ["wrk", "-t1", f"-c{conns}", f"-d{secs}s", "--timeout", "2s", "--latency", url],
                             text=True, timeout=secs + 30)
        except subprocess.TimeoutExpired:
            raise zmcluster.ClusterError(f"wrk -c{conns} through {path} did not finish within {secs + 30} s "
                                         "(a request that never got its answer?)") from None
        after = self.cpu_ticks(pids)
        if res.returncode != 0:
            raise zmcluster.ClusterError(f"wrk failed in {pod.name} ({res.returncode}): {res.stderr[-500:]}")
        out = parse_wrk(res.stdout)
        if out["requests"] <= 0 or out["errors"]:
            raise zmcluster.ClusterError(f"wrk through {path}: {out['requests']} requests, {out['errors']} errors:\n"
                                         f"{res.stdout[-1500:]}")
        return out, (after[0] - before[0] + after[1] - before[1]) / self.clk_tck

    def round(self, path: str) -> dict:
        rate, cpu = self.wrk(path, WRK_CONNS)
        fig = {"http_rps": rate["rps"], "http_rate_p50_us": rate["p50_us"], "http_rate_p99_us": rate["p99_us"],
               "http_requests": rate["requests"]}
        if self.latency:  # one request at a time: the added latency without queueing
            lat, _ = self.wrk(path, 1)
            fig.update({"http_p50_us": lat["p50_us"], "http_p99_us": lat["p99_us"]})
        if self.proxies.get(path):
            fig["proxy_cpu_s"] = cpu
            fig["http_req_per_proxy_core_s"] = rate["requests"] / cpu if cpu > 0 else 0.0
        return fig


def probe_path(c, pod, url: str) -> tuple[str, str]:
    """One request through the mesh leg: ("l7" | "l4", the response head) from whether the route's header came back."""
    res = c.run(pod, ["curl", "-sS", "-D", "-", "-o", "/dev/null", "--max-time", "5", url], text=True, timeout=15)
    if res.returncode != 0:
        raise zmcluster.ClusterError(f"probe {url} failed: {res.stderr.strip()}")
    head = res.stdout
    seen = re.search(rf"^{ROUTE_HEADER}:\s*(\S+)", head, re.M | re.I)
    return ("l7" if seen and seen.group(1) == "l7" else "l4"), head.strip()


def wait_probe(c, pod, url: str, timeout: float) -> tuple[str, str]:
    """Until the Service answers (config streamed to the agents); then a few more tries for the route to show up."""
    deadline = time.monotonic() + timeout
    last: tuple[str, str] | str = "no answer"
    while time.monotonic() < deadline:
        try:
            last = probe_path(c, pod, url)
            if last[0] == "l7":
                return last
        except zmcluster.ClusterError as e:
            last = str(e)
        time.sleep(0.2)
    if isinstance(last, tuple):
        return last  # answered, but never through a route: the agent relayed the port at L4
    raise zmcluster.ClusterError(f"the mesh Service never answered: {last}")


GRPC_PROBE = r"""
import sys, grpc
target, method, header = sys.argv[1:4]
with grpc.insecure_channel(target) as ch:
    resp, call = ch.unary_unary(method).with_call(b"\x0a\x02ok", timeout=5)
    md = dict(call.initial_metadata())
    print(md.get(header, "-"), call.code().name, len(resp))
"""


def probe_grpc(c, pod, target: str) -> tuple[str, str]:
    """One gRPC call through the mesh leg: ("l7" | "l4", what came back) from whether the GRPCRoute's header did."""
    res = c.run(pod, [SYSTEM_PYTHON, "-c", GRPC_PROBE, target, GRPC_METHOD, ROUTE_HEADER], text=True, timeout=15)
    if res.returncode != 0:
        raise zmcluster.ClusterError(f"gRPC probe {target} failed: {res.stderr.strip()[-500:]}")
    seen, code, size = res.stdout.split()
    if code != "OK" or int(size) != len(GRPC_MESSAGE):
        raise zmcluster.ClusterError(f"gRPC probe {target}: {res.stdout.strip()}")
    return ("l7" if seen == "grpc" else "l4"), f"{ROUTE_HEADER}={seen} status={code}"


def wait_grpc_probe(c, pod, target: str, timeout: float) -> tuple[str, str]:
    deadline = time.monotonic() + timeout
    last: tuple[str, str] | str = "no answer"
    while time.monotonic() < deadline:
        try:
            last = probe_grpc(c, pod, target)
            if last[0] == "l7":
                return last
        except zmcluster.ClusterError as e:
            last = str(e)
        time.sleep(0.2)
    if isinstance(last, tuple):
        return last
    raise zmcluster.ClusterError(f"the mesh gRPC Service never answered: {last}")


def run(rounds: int, seconds: float, threads: int, cipher: str, cpu_ticks, clk_tck: int, log,
        latency: bool = True) -> dict:
    """latency=False (the smoke test's tiny mode) skips the one-connection latency run."""
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="zm-bench-l7-") as tmp, zmcluster.Cluster(nodes=2, pods_per_node=0) as c:
        work = Path(tmp)
        n1, n2 = c.node("node1"), c.node("node2")
        pods = {name: c.add_pod(node, name) for name, node in
                (("lpclient", n1), ("lmclient", n1), ("lhclient", n1),
                 ("lpserver", n2), ("lmserver", n2), ("lhserver", n2))}
        cp = ControlPlane(c, work / "cp")
        cp.workload(pods["lmclient"], ns=NS, sa="client", labels={"app": "lmclient"})
        cp.workload(pods["lmserver"], ns=NS, sa="web", labels={"app": "lmserver"})
        for name in ("lpclient", "lpserver", "lhclient", "lhserver"):
            cp.workload(pods[name], ns=NS, enrolled=False, labels={"app": name})
        cp.write("web.yaml", manifests())
        for name in ("lpserver", "lmserver", "lhserver"):
            cfg = nginx_config(work, name, pods[name].ip)
            c.popen(pods[name], ["nginx", "-c", str(cfg), "-g", "daemon off;"], stdout=subprocess.DEVNULL,
                    stderr=open(work / f"nginx-{name}.log", "wb"))
            c.popen(pods[name], [str(TOOLS / "zm-grpc-echo"), f"{pods[name].ip}:{GRPC_PORT}"],
                    stdout=subprocess.DEVNULL, stderr=open(work / f"grpc-echo-{name}.log", "wb"))
        ca = TestCA(work / "hap-ca")
        cfg1, cfg2 = haproxy_http_configs(work, ca, n1, n2, pods["lhserver"].ip, cipher, threads)
        cp.start_controller()
        for node in (n1, n2):
            cp.start_agent(node, wait=False, extra_args=["--workers", str(threads)])
        for node in (n1, n2):
            cp.wait_agent_ready(node)
        hap = [c.popen(node, ["haproxy", "-db", "-f", str(cfg)], stdout=subprocess.DEVNULL,
                       stderr=open(work / f"haproxy-l7-{node.name}.log", "wb")) for node, cfg in ((n1, cfg1), (n2, cfg2))]
        for name in ("lpserver", "lmserver", "lhserver"):
            c.wait_tcp(pods[name], pods[name].ip, HTTP_PORT, timeout=15)
            c.wait_tcp(pods[name], pods[name].ip, GRPC_PORT, timeout=15)
        c.wait_tcp(pods["lhclient"], n1.gateway, HAP_N1_PORT, timeout=15)
        c.wait_tcp(pods["lhclient"], n1.gateway, HAP_GRPC_N1_PORT, timeout=15)
        targets = {
            "direct": (pods["lpclient"], f"http://{pods['lpserver'].ip}:{HTTP_PORT}/"),
            "zeromesh": (pods["lmclient"], f"http://{VIP}:{VIP_PORT}/"),
            "haproxy": (pods["lhclient"], f"http://{n1.gateway}:{HAP_N1_PORT}/"),
        }
        grpc_targets = {
            "direct": (pods["lpclient"], f"http://{pods['lpserver'].ip}:{GRPC_PORT}{GRPC_METHOD}"),
            "zeromesh": (pods["lmclient"], f"http://{GRPC_VIP}:{GRPC_PORT}{GRPC_METHOD}"),
            "haproxy": (pods["lhclient"], f"http://{n1.gateway}:{HAP_GRPC_N1_PORT}{GRPC_METHOD}"),
        }
        mesh_path, probe_head = wait_probe(c, pods["lmclient"], targets["zeromesh"][1], timeout=20)
        log(f"L7: the mesh leg goes through the agent's {mesh_path.upper()} path "
            f"(route header {'seen' if mesh_path == 'l7' else 'absent'} in the response)")
        grpc_path, grpc_probe = wait_grpc_probe(c, pods["lmclient"], f"{GRPC_VIP}:{GRPC_PORT}", timeout=20)
        log(f"L7 gRPC: the mesh leg goes through the agent's {grpc_path.upper()} path ({grpc_probe})")
        for path in ("direct", "haproxy"):  # the comparison legs answer too (errors would surface as a ValueError)
            probe_grpc(c, grpc_targets[path][0], grpc_targets[path][1].split("/")[2])
        for pid, want in [(p.pid, "mesh-agent") for p in cp.agents.values()] + [(p.pid, "haproxy") for p in hap]:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
            if comm != want:
                raise zmcluster.ClusterError(f"pid {pid} is {comm}, expected {want}")
        proxies = {"zeromesh": [p.pid for p in cp.agents.values()], "haproxy": [p.pid for p in hap]}
        bench = L7Bench(c, targets, grpc_targets, proxies, seconds, cpu_ticks, clk_tck, latency, work)
        raw = {p: {} for p in PATHS}
        for r in range(rounds):
            for path in PATHS:
                fig = bench.round(path)
                for k, v in fig.items():
                    raw[path].setdefault(k, []).append(round(v, 3))
                log(f"L7 round {r + 1}/{rounds} {path}: " + ", ".join(f"{k}={v:.1f}" for k, v in fig.items()))
            for path in PATHS:
                fig = bench.grpc_round(path)
                for k, v in fig.items():
                    raw[path].setdefault(k, []).append(round(v, 3))
                log(f"L7 gRPC round {r + 1}/{rounds} {path}: " + ", ".join(f"{k}={v:.1f}" for k, v in fig.items()))
        for node, p in cp.agents.items():
            if p.poll() is not None:
                raise zmcluster.ClusterError(f"agent on {node} died: {cp.log('agent-' + node, 3000)}")
        # The path once more at the end: the figures are from it.
        mesh_path_end, _ = probe_path(c, pods["lmclient"], targets["zeromesh"][1])
        grpc_path_end, _ = probe_grpc(c, pods["lmclient"], f"{GRPC_VIP}:{GRPC_PORT}")
        cp.stop_controller()

    med = {p: {k: statistics.median(v) for k, v in m.items()} for p, m in raw.items()}
    lo = {p: {k: min(v) for k, v in m.items()} for p, m in raw.items()}
    hi = {p: {k: max(v) for k, v in m.items()} for p, m in raw.items()}
    d, z, h = med["direct"], med["zeromesh"], med["haproxy"]
    ratios = {
        "http_rps_vs_direct": z["http_rps"] / d["http_rps"],
        "http_rps_vs_haproxy": z["http_rps"] / h["http_rps"],
        "haproxy_http_rps_vs_direct": h["http_rps"] / d["http_rps"],
        "agent_http_req_per_core_s": z["http_req_per_proxy_core_s"],
        "haproxy_http_req_per_core_s": h["http_req_per_proxy_core_s"],
        "http_req_per_core_vs_haproxy": (z["http_req_per_proxy_core_s"] / h["http_req_per_proxy_core_s"]
                                         if h["http_req_per_proxy_core_s"] else 0.0),
    }
    ratios.update({
        "grpc_rps_vs_direct": z["grpc_rps"] / d["grpc_rps"],
        "grpc_rps_vs_haproxy": z["grpc_rps"] / h["grpc_rps"],
        "haproxy_grpc_rps_vs_direct": h["grpc_rps"] / d["grpc_rps"],
        "agent_grpc_req_per_core_s": z["grpc_req_per_proxy_core_s"],
        "haproxy_grpc_req_per_core_s": h["grpc_req_per_proxy_core_s"],
        "grpc_req_per_core_vs_haproxy": (z["grpc_req_per_proxy_core_s"] / h["grpc_req_per_proxy_core_s"]
                                         if h["grpc_req_per_proxy_core_s"] else 0.0),
    })
    if latency:
        ratios.update({"grpc_p50_added_us": z["grpc_p50_us"] - d["grpc_p50_us"],
                       "grpc_p99_added_us": z["grpc_p99_us"] - d["grpc_p99_us"],
                       "haproxy_grpc_p50_added_us": h["grpc_p50_us"] - d["grpc_p50_us"],
                       "haproxy_grpc_p99_added_us": h["grpc_p99_us"] - d["grpc_p99_us"]})
        ratios.update({"http_p50_added_us": z["http_p50_us"] - d["http_p50_us"],
                       "http_p99_added_us": z["http_p99_us"] - d["http_p99_us"],
                       "haproxy_http_p50_added_us": h["http_p50_us"] - d["http_p50_us"],
                       "haproxy_http_p99_added_us": h["http_p99_us"] - d["http_p99_us"]})
    return {
        "config": {"latency_run": latency, "server": "nginx (Debian nginx-light), 1 worker, 200 with a 2-byte body",
                   "load": f"wrk -t1 -c{WRK_CONNS} (rate) and -c1 (latency), keep-alive, --latency",
                   "wrk_conns": WRK_CONNS, "haproxy_mode": "http, option http-keep-alive, http-reuse safe",
                   "haproxy_nbthread": threads, "agent_workers": threads, "sockmap_mode": sockmap_mode(),
                   "service_app_protocol": "http",
                   "elapsed_s": round(time.time() - t0, 1)},
        "mesh_path": mesh_path, "mesh_path_end": mesh_path_end, "mesh_probe_response": probe_head,
        "grpc": {"mesh_path": grpc_path, "mesh_path_end": grpc_path_end, "mesh_probe": grpc_probe,
                 "server": "zm-grpc-echo (bench/tools/grpc_echo.cc): generic unary echo, gRPC 1.51 callback API",
                 "load": f"h2load -c{GRPC_CONNS} -m{GRPC_STREAMS} (rate) and -c1 -m1 (latency), POST {GRPC_METHOD}, "
                         f"{5 + len(GRPC_MESSAGE)}-byte gRPC message",
                 "conns": GRPC_CONNS, "streams_per_conn": GRPC_STREAMS, "service_app_protocol": "grpc",
                 "haproxy_mode": "http, proto h2 on binds and servers, h2 over mutual TLS 1.3 (ALPN h2) between "
                                 "the instances"},
        "paths": list(PATHS), "raw": raw, "median": med, "min": lo, "max": hi,
        "ratios": {k: round(v, 3) for k, v in ratios.items()},
    }


def print_summary(l7: dict) -> None:
    med, lo, hi = l7["median"], l7["min"], l7["max"]
    print(f"L7 HTTP/1.1 keep-alive (mesh leg through the agent's {l7['mesh_path'].upper()} path)")
    print(f"{'metric (median [min..max])':<30}" + "".join(f"{p:>30}" for p in PATHS))
    for k in METRICS + ("http_req_per_proxy_core_s",):
        if not any(k in med[p] for p in PATHS):
            continue
        cells = [f"{med[p][k]:.1f} [{lo[p][k]:.1f}..{hi[p][k]:.1f}]" if k in med[p] else "-" for p in PATHS]
        print(f"{k:<30}" + "".join(f"{c:>30}" for c in cells))
    print(f"L7 gRPC unary (mesh leg through the agent's {l7['grpc']['mesh_path'].upper()} path)")
    for k in GRPC_METRICS + ("grpc_req_per_proxy_core_s",):
        if not any(k in med[p] for p in PATHS):
            continue
        cells = [f"{med[p][k]:.1f} [{lo[p][k]:.1f}..{hi[p][k]:.1f}]" if k in med[p] else "-" for p in PATHS]
        print(f"{k:<30}" + "".join(f"{c:>30}" for c in cells))
    print("L7 ratios: " + __import__("json").dumps(l7["ratios"]))


if __name__ == "__main__":  # the L7 part alone (bench/dataplane.py runs it after the L4 rounds): for iterating on it
    import argparse
    import json
    import os

    import dataplane
    ap = argparse.ArgumentParser(description="L7 part of bench/dataplane.py alone")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=1)
    ap.add_argument("--json", default="")
    ap.add_argument("--tiny", action="store_true", help="as bench_smoke runs it: no one-connection latency run")
    a = ap.parse_args()
    rep = run(a.rounds, a.seconds, dataplane.PROXY_THREADS, dataplane.CIPHER, dataplane.cpu_ticks,
              os.sysconf("SC_CLK_TCK"), dataplane.log, latency=not a.tiny)
    print_summary(rep)
    if a.json:
        Path(a.json).write_text(json.dumps(rep, indent=2) + "\n")
