"""Data-plane benchmark: direct vs zeromesh vs HAProxy mTLS, interleaved in one run on the simulated cluster.

    sudo /usr/bin/python3 bench/dataplane.py [--quick | --tiny] [--rounds N] [--seconds S] [--json FILE]
    (bench/run.sh builds first and then calls this)

Two nodes. Client pods on node1, server pods on node2, one pair per path so the paths never interfere:
  direct    pclient -> pserver                       no mesh (pods not enrolled)
  zeromesh  mclient -> mserver                       enrolled, STRICT: tc capture -> agent node1 -> HBONE (mTLS) ->
                                                     agent node2 -> pod
  haproxy   hclient -> HAProxy node1 (10.244.1.1)    not enrolled; HAProxy in node1's netns originates mTLS (TLS 1.3,
            -> HAProxy node2 (10.99.0.2) -> hserver  client cert, verified against the CA) to HAProxy in node2's
                                                     netns, which terminates and forwards to hserver
Certificates: ECDSA P-256 leaves from the same kind of test CA (tests/cluster/mesh.py TestCA); cipher
TLS_AES_128_GCM_SHA256 (what BoringSSL picks for the mesh on AES-NI hardware); both proxies get the same number of
threads (HAProxy nbthread = the agents' --workers, PROXY_THREADS).

Per round, for each path in turn (A B C A B C ...): iperf3 1 stream and 8 streams (-P 8) with the proxies' CPU time
(utime+stime from /proc/<pid>/stat) over the bytes moved; zm-rr ping-pong round trips with 1-byte and 1 KiB messages on
a persistent connection (p50/p99/p99.9); zm-connrate (connect, 16-byte request/echo, close; 4 in parallel); zm-steady
(1,000 requests/s of 1 KiB request/response spread over 100 persistent connections, paced) with the proxies' CPU
over it in vCPU (both agents together; Istio publishes 0.06 vCPU per 1,000 requests/s for ztunnel).
After the rounds: the proxies' RSS while 1,000 connections are open through them, and their peak RSS (VmHWM).
Prints a table; --json writes raw figures, median/min/max, ratios and goals.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "cluster"))
import zmcluster  # noqa: E402
from mesh import Mesh, BUILD_DIR, sockmap_mode  # noqa: E402
sys.path.insert(0, str(Path(__file__).resolve().parent))
import haproxy_pair  # noqa: E402
import l7  # noqa: E402

TOOLS = BUILD_DIR / "bench"
PATHS = ("direct", "zeromesh", "haproxy")
IPERF_PORT, ECHO_PORT = 5201, 7000
HAP_N1 = {IPERF_PORT: 25201, ECHO_PORT: 27000}  # HAProxy node1 (plaintext, from the client pod)
HAP_N2 = {IPERF_PORT: 35201, ECHO_PORT: 37000}  # HAProxy node2 (mTLS from HAProxy node1)
CIPHER = "TLS_AES_128_GCM_SHA256"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PROXY_THREADS = 2  # HAProxy nbthread and the agents' --workers: the same for both proxies
STEADY_CONNS, STEADY_RATE, STEADY_SIZE = 100, 1000, 1024

METRICS = ("throughput_1_gbps", "throughput_8_gbps", "rr1_p50_us", "rr1_p99_us", "rr1_p999_us",
           "rr1k_p50_us", "rr1k_p99_us", "rr1k_p999_us", "conn_per_s", "steady_rate", "steady_p50_us",
           "steady_p99_us")
PROXY_METRICS = ("proxy_cpu_core_s_per_gb", "proxy_cpu_user_share", "steady_proxy_vcpu")

GOALS = {  # name: (ratio key, comparison, target, description): issue 19's data-plane goals
    "throughput_vs_direct": ("throughput_vs_direct", ">=", 0.55, "throughput >= 0.55x direct"),
    "throughput_vs_haproxy": ("throughput_vs_haproxy", ">=", 1.5, "throughput >= 1.5x haproxy"),
    "throughput8_vs_direct": ("throughput8_vs_direct", ">=", 0.40, "8-stream throughput >= 0.40x direct"),
    "rr_p50_added_us": ("rr_p50_added_us", "<=", 20.0, "added p50 latency (1 B) <= 20 us"),
    "rr_p99_added_us": ("rr_p99_added_us", "<=", 50.0, "added p99 latency (1 B) <= 50 us"),
    "rr1k_p50_added_us": ("rr1k_p50_added_us", "<=", 20.0, "added p50 latency (1 KiB) <= 20 us"),
    "rr1k_p99_added_us": ("rr1k_p99_added_us", "<=", 50.0, "added p99 latency (1 KiB) <= 50 us"),
    "rr_p50_below_haproxy": ("rr_p50_added_us", "<", "haproxy_rr_p50_added_us", "added p50 latency below haproxy's"),
    "rr_p99_below_haproxy": ("rr_p99_added_us", "<", "haproxy_rr_p99_added_us", "added p99 latency below haproxy's"),
    "connrate_vs_direct": ("connrate_vs_direct", ">=", 0.6, "new connections/s >= 0.6x direct"),
    "agent_cpu_per_gb": ("agent_cpu_core_s_per_gb", "<=", 1.2, "proxy CPU <= 1.2 core-s per GB"),
    "agent_rss_mb": ("agent_rss_mb", "<=", 20.0, "agent RSS <= 20 MB at 1,000 connections"),
    "agent_peak_rss_mb": ("agent_peak_rss_mb", "<=", 40.0, "agent peak RSS <= 40 MB"),
    "steady_vcpu": ("agent_vcpu_1000rps", "<=", 0.03, "agents' CPU at 1,000 rps <= 0.03 vCPU"),
}


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---- /proc readings ----------------------------------------------------------------------------------------------
def cpu_ticks(pids: list[int]) -> tuple[int, int]:
    """(utime, stime) in clock ticks summed over the processes (all their threads)."""
    u = s = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        u += int(fields[11])  # field 14 of stat; fields[0] is field 3 (state)
        s += int(fields[12])
    return u, s


def status_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def ab_binaries(args) -> dict:
    """The two agents of an A/B script (throughput_ab.py, connrate_ab.py): --a and --b are build directories; exits
    when either has no agent/mesh-agent."""
    bins = {"A": Path(args.a) / "agent" / "mesh-agent", "B": Path(args.b) / "agent" / "mesh-agent"}
    for b in bins.values():
        if not b.exists():
            raise SystemExit(f"{b} missing")
    return bins


def write_ab_report(args, load_start, load_end, summary: dict, raw: dict, **fields) -> None:
    """An A/B script's end: prints the load average and the summary; with --json writes the report (date, both
    builds, |fields|, the load average, the machine, summary and raw figures)."""
    report = {"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "a": args.a, "b": args.b, **fields,
              "loadavg_start": load_start, "loadavg_end": load_end, "machine": machine(), "summary": summary, "raw": raw}
    print(json.dumps({"loadavg_start": load_start, "loadavg_end": load_end, "summary": summary}, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


def machine() -> dict:
    cpu = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return {"nproc": os.cpu_count(), "cpu": cpu, "kernel": platform.release(),
            "mem_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)}


# ---- HAProxy peer ------------------------------------------------------------------------------------------------
def haproxy_configs(work: Path, mesh: Mesh, node1, node2, server_ip: str) -> tuple[Path, Path]:
    ca = mesh.ca
    pems = haproxy_pair.pems(work, ca)
    glob = haproxy_pair.global_section(PROXY_THREADS, CIPHER) + """
defaults
    mode tcp
    maxconn 8000
    timeout connect 5s
    timeout client 300s
    timeout server 300s
"""
    n1, n2 = glob, glob
    for port in (IPERF_PORT, ECHO_PORT):
        n1 += f"""
listen p{port}
    bind {node1.gateway}:{HAP_N1[port]}
    server node2 {node2.ip}:{HAP_N2[port]} ssl crt {pems['client']} ca-file {ca.cert} verify required
"""
        n2 += f"""
listen p{port}
    bind {node2.ip}:{HAP_N2[port]} ssl crt {pems['server']} ca-file {ca.cert} verify required
    server pod {server_ip}:{port}
"""
    return haproxy_pair.write_checked(work, "", n1, n2)


def add_pods(c) -> dict:
    """The six pods of the comparison, by name: p* direct, m* through zeromesh, h* through HAProxy; the clients on
    node1, the servers on node2."""
    n1, n2 = c.node("node1"), c.node("node2")
    return {name: c.add_pod(node, name) for name, node in
            (("pclient", n1), ("mclient", n1), ("hclient", n1), ("pserver", n2), ("mserver", n2), ("hserver", n2))}


def set_up_paths(c, work: Path, pods: dict, echod: bool) -> tuple[Mesh, Path, Path]:
    """The three paths over add_pods' pods: their workloads (only m* enrolled), an iperf3 server (and with |echod| a
    zm-echod) in each server pod, the HAProxy configs of node1 and node2 and the agents' --workers. Starts no proxy."""
    n1, n2 = c.node("node1"), c.node("node2")
    mesh = Mesh(c, work / "mesh")
    mesh.add_workload(pods["mclient"], sa="client")
    mesh.add_workload(pods["mserver"], sa="server")
    for name in ("pclient", "pserver", "hclient", "hserver"):
        mesh.add_workload(pods[name], enrolled=False)
    for name in ("pserver", "mserver", "hserver"):
        start_servers(c, pods[name], echod)
    cfg1, cfg2 = haproxy_configs(work, mesh, n1, n2, pods["hserver"].ip)
    for node in (n1, n2):
        mesh.agent_args[node.name] = ["--workers", str(PROXY_THREADS)]
    return mesh, cfg1, cfg2


def start_servers(c, pod, echod: bool) -> None:
    """The servers of a path in its server pod: iperf3 on IPERF_PORT, and with |echod| zm-echod on ECHO_PORT."""
    c.popen(pod, ["iperf3", "-s", "-p", str(IPERF_PORT)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if echod:
        c.popen(pod, [str(TOOLS / "zm-echod"), str(ECHO_PORT), "2"], stdout=subprocess.DEVNULL)


def tune_tcp(c, namespaces: list) -> None:
    """Same TCP settings everywhere: a wide port range and TIME_WAIT reuse, so the connection-rate test never runs out
    of ports (our namespaces only; a node keeps the kernel's defaults, bench/connrate_ab.py --kernel-defaults)."""
    for t in namespaces:
        for key, val in (("net.ipv4.ip_local_port_range", "1024 65000"), ("net.ipv4.tcp_tw_reuse", "1")):
            c.run(t, ["sysctl", "-qw", f"{key}={val}"], check=True)


# ---- measurements ------------------------------------------------------------------------------------------------
def hold_open(c, pod, ip: str, port: int, n: int, measure, settle: float = 1.0) -> dict:
    """Keeps n echoed connections open from pod to ip:port (zm-connrate hold) and calls measure() while they are, after
    settle seconds; returns the tool's {"open", "failed"} counts."""
    p = c.popen(pod, [str(TOOLS / "zm-connrate"), "hold", ip, str(port), str(n), "120"], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = p.stdout.readline()  # the tool prints once every connection has echoed
        opened = json.loads(line) if line.strip() else {"open": 0, "failed": n}
        time.sleep(settle)
        measure()
    finally:
        p.stdin.close()
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
    return opened


class Bench:
    def __init__(self, c: zmcluster.Cluster, targets: dict, proxies: dict, seconds: float, parallel: int):
        self.c = c
        self.targets = targets  # path -> (client pod, ip, iperf port, echo port)
        self.proxies = proxies  # path -> [pid]
        self.seconds = seconds
        self.parallel = parallel

    def run_json(self, pod, cmd: list[str], timeout: float) -> dict:
        res = self.c.run(pod, cmd, text=True, timeout=timeout)
        if res.returncode != 0:
            raise zmcluster.ClusterError(f"{cmd[0]} failed in {pod.name} ({res.returncode}): "
                                         f"{res.stderr.strip()[-500:]} {res.stdout.strip()[-500:]}")
        return json.loads(res.stdout)

    def iperf(self, path: str, streams: int) -> tuple[float, int, tuple[int, int]]:
        pod, ip, port, _ = self.targets[path]
        pids = self.proxies.get(path, [])
        before = cpu_ticks(pids)
        out = self.run_json(pod, ["iperf3", "-c", ip, "-p", str(port), "-t", str(self.seconds), "-P", str(streams),
                                  "-J"], timeout=self.seconds + 30)
        after = cpu_ticks(pids)
        recv = out["end"]["sum_received"]
        return recv["bits_per_second"] / 1e9, int(recv["bytes"]), (after[0] - before[0], after[1] - before[1])

    def rr(self, path: str, size: int) -> dict:
        pod, ip, _, port = self.targets[path]
        return self.run_json(pod, [str(TOOLS / "zm-rr"), ip, str(port), str(size), str(self.seconds)],
                             timeout=self.seconds + 30)

    def connrate(self, path: str) -> dict:
        pod, ip, _, port = self.targets[path]
        out = self.run_json(pod, [str(TOOLS / "zm-connrate"), "rate", ip, str(port), str(self.seconds),
                                  str(self.parallel)], timeout=self.seconds + 30)
        if out["failed"]:
            log(f"  {path}: {out['failed']} connection attempts failed")
        return out

    def steady(self, path: str) -> dict:
        """Paced 1 KiB request/response at STEADY_RATE over STEADY_CONNS connections, with the proxies' CPU."""
        pod, ip, _, port = self.targets[path]
        pids = self.proxies.get(path, [])
        secs = max(self.seconds, 5.0)
        before, t0 = cpu_ticks(pids), time.monotonic()
        out = self.run_json(pod, [str(TOOLS / "zm-steady"), ip, str(port), str(STEADY_CONNS), str(STEADY_RATE),
                                  str(STEADY_SIZE), str(secs)], timeout=secs + 30)
        after, wall = cpu_ticks(pids), time.monotonic() - t0
        out["proxy_vcpu"] = (after[0] - before[0] + after[1] - before[1]) / CLK_TCK / wall
        return out

    def round(self, path: str) -> dict:
        g1, b1, t1 = self.iperf(path, 1)
        g8, b8, t8 = self.iperf(path, 8)
        r1, r1k = self.rr(path, 1), self.rr(path, 1024)
        cr = self.connrate(path)
        st = self.steady(path)
        fig = {"throughput_1_gbps": g1, "throughput_8_gbps": g8,
               "rr1_p50_us": r1["p50_us"], "rr1_p99_us": r1["p99_us"], "rr1_p999_us": r1["p999_us"],
               "rr1k_p50_us": r1k["p50_us"], "rr1k_p99_us": r1k["p99_us"], "rr1k_p999_us": r1k["p999_us"],
               "conn_per_s": cr["per_second"], "steady_rate": st["rate"], "steady_p50_us": st["p50_us"],
               "steady_p99_us": st["p99_us"]}
        if self.proxies.get(path):
            fig["steady_proxy_vcpu"] = st["proxy_vcpu"]
            ticks = t1[0] + t1[1] + t8[0] + t8[1]
            gb = (b1 + b8) / 1e9
            fig["proxy_cpu_core_s_per_gb"] = ticks / CLK_TCK / gb
            fig["proxy_cpu_user_share"] = (t1[0] + t8[0]) / ticks if ticks else 0.0
        return fig

    def hold(self, path: str, n: int, settle: float = 1.0) -> dict:
        """Opens n connections through the path and reads the proxies' RSS while they are open."""
        pod, ip, _, port = self.targets[path]
        pids = self.proxies[path]
        rss: list[float] = []
        opened = hold_open(self.c, pod, ip, port, n, lambda: rss.extend(status_kb(pid, "VmRSS") / 1024 for pid in pids),
                           settle)
        return {"open": opened.get("open", 0), "failed": opened.get("failed", n), "rss_mb": [round(r, 1) for r in rss]}


def summarize(raw: dict) -> tuple[dict, dict, dict]:
    med = {p: {k: statistics.median(v) for k, v in m.items()} for p, m in raw.items()}
    lo = {p: {k: min(v) for k, v in m.items()} for p, m in raw.items()}
    hi = {p: {k: max(v) for k, v in m.items()} for p, m in raw.items()}
    return med, lo, hi


def vs_direct(med: dict, path: str) -> dict:
    """|path|'s figures that issue 19's goals hold against direct, from the medians (unrounded): throughput ratios,
    added latencies, new connections, and its proxies' CPU per GB and at the steady load (the agents' for zeromesh)."""
    d, p = med["direct"], med[path]
    return {
        "throughput_vs_direct": p["throughput_1_gbps"] / d["throughput_1_gbps"],
        "throughput8_vs_direct": p["throughput_8_gbps"] / d["throughput_8_gbps"],
        "rr_p50_added_us": p["rr1_p50_us"] - d["rr1_p50_us"],
        "rr_p99_added_us": p["rr1_p99_us"] - d["rr1_p99_us"],
        "rr1k_p50_added_us": p["rr1k_p50_us"] - d["rr1k_p50_us"],
        "rr1k_p99_added_us": p["rr1k_p99_us"] - d["rr1k_p99_us"],
        "connrate_vs_direct": p["conn_per_s"] / d["conn_per_s"],
        "agent_cpu_core_s_per_gb": p["proxy_cpu_core_s_per_gb"],
        "agent_vcpu_1000rps": p["steady_proxy_vcpu"],
    }


def ratios(med: dict, memory: dict) -> dict:
    d, z, h = med["direct"], med["zeromesh"], med["haproxy"]
    r = {
        **vs_direct(med, "zeromesh"),
        "throughput_vs_haproxy": z["throughput_1_gbps"] / h["throughput_1_gbps"],
        "throughput8_vs_haproxy": z["throughput_8_gbps"] / h["throughput_8_gbps"],
        "haproxy_rr_p50_added_us": h["rr1_p50_us"] - d["rr1_p50_us"],
        "haproxy_rr_p99_added_us": h["rr1_p99_us"] - d["rr1_p99_us"],
        "haproxy_rr1k_p50_added_us": h["rr1k_p50_us"] - d["rr1k_p50_us"],
        "haproxy_rr1k_p99_added_us": h["rr1k_p99_us"] - d["rr1k_p99_us"],
        "connrate_vs_haproxy": z["conn_per_s"] / h["conn_per_s"],
        # The larger of the two agents' RSS while 1,000 connections are open through the mesh.
        "agent_rss_mb": max(memory["zeromesh"]["rss_1000_mb"]),
        "agent_peak_rss_mb": max(memory["zeromesh"]["peak_hwm_mb"]),
        "haproxy_cpu_core_s_per_gb": h["proxy_cpu_core_s_per_gb"],
        "haproxy_vcpu_1000rps": h["steady_proxy_vcpu"],
        "steady_p50_added_us": z["steady_p50_us"] - d["steady_p50_us"],
        "haproxy_steady_p50_added_us": h["steady_p50_us"] - d["steady_p50_us"],
    }
    return {k: round(v, 3) for k, v in r.items()}


def paired_ratios(raw: dict) -> dict:
    """The same key ratios computed per round (paths measured back to back) and then the median: less sensitive to
    load from other processes drifting across the run than ratios of medians."""
    d, z, h = raw["direct"], raw["zeromesh"], raw["haproxy"]
    n = len(d["throughput_1_gbps"])
    per = lambda a, b, k: statistics.median(a[k][i] / b[k][i] for i in range(n))
    diff = lambda a, b, k: statistics.median(a[k][i] - b[k][i] for i in range(n))
    r = {"throughput_vs_direct": per(z, d, "throughput_1_gbps"), "throughput_vs_haproxy": per(z, h, "throughput_1_gbps"),
         "throughput8_vs_direct": per(z, d, "throughput_8_gbps"), "throughput8_vs_haproxy": per(z, h, "throughput_8_gbps"),
         "rr_p50_added_us": diff(z, d, "rr1_p50_us"), "haproxy_rr_p50_added_us": diff(h, d, "rr1_p50_us"),
         "connrate_vs_direct": per(z, d, "conn_per_s"), "connrate_vs_haproxy": per(z, h, "conn_per_s")}
    return {k: round(v, 3) for k, v in r.items()}


def meets(value: float, op: str, target: float) -> bool:
    """Whether |value| meets a goal's comparison (GOALS: ">=", "<=" or "<")."""
    return bool(value >= target if op == ">=" else value <= target if op == "<=" else value < target)


def goals(r: dict) -> dict:
    out = {}
    for name, (key, op, target, desc) in GOALS.items():
        tval = r[target] if isinstance(target, str) else target
        v = r[key]
        out[name] = {"value": v, "target": f"{op} {target}", "met": meets(v, op, tval), "goal": desc}
    return out


def print_table(report: dict) -> None:
    med, lo, hi = report["median"], report["min"], report["max"]
    print(f"{'metric (median [min..max])':<26}" + "".join(f"{p:>28}" for p in PATHS))
    for k in METRICS + PROXY_METRICS:
        cells = []
        for p in PATHS:
            if k in med[p]:
                cells.append(f"{med[p][k]:.2f} [{lo[p][k]:.1f}..{hi[p][k]:.1f}]")
            else:
                cells.append("-")
        print(f"{k:<26}" + "".join(f"{c:>28}" for c in cells))
    for p, m in report["memory"].items():
        print(f"{p} RSS MB: idle {m['idle_rss_mb']}, with {m['hold']['open']} connections {m['rss_1000_mb']}, "
              f"peak {m['peak_hwm_mb']} (before the 1,000 connections: {m['peak_before_hold_mb']})")
    print("ratios: " + json.dumps(report["ratios"]))
    print("per-round ratios (median): " + json.dumps(report["ratios_paired"]))
    for name, g in report["goals"].items():
        print(f"goal {g['goal']:<42} {g['value']:>9} {'MET' if g['met'] else 'NOT MET'}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="3 rounds of 2 s (under 5 minutes)")
    ap.add_argument("--tiny", action="store_true", help="1 round of 1 s (smoke test)")
    ap.add_argument("--rounds", type=int, default=0, help="default 5 (quick 3, tiny 1)")
    ap.add_argument("--seconds", type=float, default=0, help="per measurement; default 5 (quick 2, tiny 1)")
    ap.add_argument("--parallel", type=int, default=4, help="parallel connections of the connection-rate test")
    ap.add_argument("--hold", type=int, default=1000, help="connections held open for the RSS measurement")
    ap.add_argument("--json", default="")
    ap.add_argument("--no-l7", action="store_true", help="skip the L7 (HTTP/1.1 and gRPC) part: bench/l7.py")
    ap.add_argument("--perf", default="", help="also profile the proxies (perf record cpu-clock + syscall counts) during an extra "
                    "iperf3 run per proxied path; writes the text report to this file")
    args = ap.parse_args()
    rounds = args.rounds or (1 if args.tiny else 3 if args.quick else 5)
    seconds = args.seconds or (1 if args.tiny else 2 if args.quick else 5)
    for tool in ("zm-rr", "zm-connrate", "zm-echod") + (() if args.no_l7 else ("zm-grpc-echo",)):
        if not (TOOLS / tool).exists():
            raise SystemExit(f"{TOOLS / tool} missing: build the bench-tools target (bench/run.sh does)")
    if not shutil.which("haproxy"):
        raise SystemExit("haproxy not installed (tools/deps.sh installs it)")
    if not args.no_l7 and not shutil.which("h2load"):
        raise SystemExit("h2load not installed (tools/deps.sh installs nghttp2-client)")

    t_start = time.time()
    load_start = os.getloadavg()
    if load_start[0] > 0.5:
        log(f"machine not quiet: load average {load_start[0]:.2f} (figures are recorded with it)")
    with tempfile.TemporaryDirectory(prefix="zm-bench-") as tmp, zmcluster.Cluster(nodes=2, pods_per_node=0) as c:
        work = Path(tmp)
        n1, n2 = c.node("node1"), c.node("node2")
        pods = add_pods(c)
        tune_tcp(c, list(pods.values()) + [n1, n2])
        mesh, cfg1, cfg2 = set_up_paths(c, work, pods, echod=True)
        mesh.start_agents()
        hap = [c.popen(node, ["haproxy", "-db", "-f", str(cfg)], stdout=subprocess.DEVNULL,
                       stderr=open(work / f"haproxy-{node.name}.log", "wb")) for node, cfg in ((n1, cfg1), (n2, cfg2))]
        agent_pids = [p.pid for p in mesh.agents.values()]
        targets = {
            "direct": (pods["pclient"], pods["pserver"].ip, IPERF_PORT, ECHO_PORT),
            "zeromesh": (pods["mclient"], pods["mserver"].ip, IPERF_PORT, ECHO_PORT),
            "haproxy": (pods["hclient"], n1.gateway, HAP_N1[IPERF_PORT], HAP_N1[ECHO_PORT]),
        }
        for path, (pod, ip, p_iperf, p_echo) in targets.items():
            for port in (p_iperf, p_echo):
                c.wait_tcp(pod, ip, port, timeout=15)
        for pid, want in [(p, "mesh-agent") for p in agent_pids] + [(p.pid, "haproxy") for p in hap]:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
            if comm != want:
                raise zmcluster.ClusterError(f"pid {pid} is {comm}, expected {want}")
        proxies = {"zeromesh": agent_pids, "haproxy": [p.pid for p in hap]}
        memory = {p: {"idle_rss_mb": [round(status_kb(pid, "VmRSS") / 1024, 1) for pid in pids]}
                  for p, pids in proxies.items()}
        bench = Bench(c, targets, proxies, seconds, args.parallel)
        log(f"cluster {c.prefix} ready; {rounds} round(s) of {seconds:g} s per measurement")

        raw = {p: {} for p in PATHS}
        for r in range(rounds):
            for path in PATHS:  # interleaved: A B C A B C ...
                fig = bench.round(path)
                for k, v in fig.items():
                    raw[path].setdefault(k, []).append(round(v, 3))
                log(f"round {r + 1}/{rounds} {path}: " + ", ".join(f"{k}={v:.2f}" for k, v in fig.items()))

        for path, pids in proxies.items():  # peak RSS of the throughput/latency/connection-rate rounds
            memory[path]["peak_before_hold_mb"] = [round(status_kb(pid, "VmHWM") / 1024, 1) for pid in pids]
        for path in ("zeromesh", "haproxy"):
            h = bench.hold(path, args.hold)
            if h["open"] < args.hold:
                log(f"  {path}: only {h['open']} of {args.hold} connections opened")
            memory[path]["hold"] = h
            memory[path]["rss_1000_mb"] = h["rss_mb"]
        for path, pids in proxies.items():
            memory[path]["peak_hwm_mb"] = [round(status_kb(pid, "VmHWM") / 1024, 1) for pid in pids]

        profile = None
        if args.perf:
            profile = run_perf(c, targets, proxies, Path(args.perf), max(seconds, 3))
        # Agents must have survived the whole run.
        for node, p in mesh.agents.items():
            if p.poll() is not None:
                raise zmcluster.ClusterError(f"agent on {node} died: {mesh.agent_log(c.node(node))}")

    l7_report = None
    if not args.no_l7:  # the L7 part: its own cluster with the controller (appProtocol needs manifests), same run
        l7_report = l7.run(rounds, seconds, PROXY_THREADS, CIPHER, cpu_ticks, CLK_TCK, log,
                           latency=not args.tiny)

    med, lo, hi = summarize(raw)
    report = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": machine(),
        "config": {"rounds": rounds, "seconds": seconds, "connrate_parallel": args.parallel, "hold": args.hold,
                   "cipher": CIPHER, "cipher_agent": "BoringSSL's TLS 1.3 choice (AES-128-GCM first when the CPU has "
                   f"AES instructions: {'yes' if aes_ni() else 'no'})", "haproxy_nbthread": PROXY_THREADS,
                   "agent_workers": PROXY_THREADS, "sockmap_mode": sockmap_mode(), "haproxy": haproxy_version(),
                   "steady": {"conns": STEADY_CONNS, "rate": STEADY_RATE, "size": STEADY_SIZE},
                   "loadavg_start": load_start, "loadavg_end": os.getloadavg(),
                   "elapsed_s": round(time.time() - t_start, 1)},
        "paths": list(PATHS),
        "raw": raw, "median": med, "min": lo, "max": hi,
        "memory": memory,
    }
    report["ratios"] = ratios(med, memory)
    report["ratios_paired"] = paired_ratios(raw)
    report["goals"] = goals(report["ratios"])
    if profile:
        report["profile"] = profile
    if l7_report:
        report["l7"] = l7_report
    print_table(report)
    if l7_report:
        l7.print_summary(l7_report)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
        log(f"wrote {args.json}")
    return 0


def aes_ni() -> bool:
    return any(line.startswith("flags") and " aes " in f"{line} " for line in
               Path("/proc/cpuinfo").read_text().splitlines())


def haproxy_version() -> str:
    out = subprocess.run(["haproxy", "-v"], capture_output=True, text=True).stdout.split("\n")[0]
    return out.replace("HAProxy version ", "").split(" ")[0]


SYSCALLS = ("read", "write", "sendto", "recvfrom", "sendmsg", "recvmsg", "readv", "writev", "splice",
            "epoll_wait", "epoll_ctl")


def thread_ticks(pids: list[int]) -> dict:
    out = {}
    for pid in pids:
        for t in Path(f"/proc/{pid}/task").iterdir():
            try:
                st = (t / "stat").read_text()
            except OSError:
                continue
            comm = st[st.index("(") + 1:st.rindex(")")]
            f = st.rsplit(")", 1)[1].split()
            out[f"{pid}/{t.name}:{comm}"] = int(f[11]) + int(f[12])
    return out


def run_perf(c, targets, proxies, out: Path, seconds: float) -> dict:
    """Profiles the proxies of each proxied path during one extra iperf3 run (1 stream): perf record (cpu-clock, call
    graphs) and perf stat on syscall tracepoints at the same time, plus per-thread CPU from /proc. Writes a text
    report to `out`; returns a summary for the JSON."""
    summary = {}
    text = []
    for path in ("zeromesh", "haproxy"):
        pids = proxies[path]
        pod, ip, port, _ = targets[path]
        data = Path(tempfile.gettempdir()) / f"zm-bench-perf-{path}.data"
        plist = ",".join(map(str, pids))
        rec = subprocess.Popen(["perf", "record", "-q", "-e", "cpu-clock", "-F", "1999", "-g", "-o", str(data),
                                "-p", plist], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        events = ",".join(f"syscalls:sys_enter_{n}" for n in SYSCALLS)
        stats = {pid: subprocess.Popen(["perf", "stat", "-x", ";", "-e", events, "-p", str(pid)],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for pid in pids}
        time.sleep(0.5)
        before, tb = cpu_ticks(pids), thread_ticks(pids)
        res = c.run(pod, ["iperf3", "-c", ip, "-p", str(port), "-t", str(seconds), "-J"], text=True,
                    timeout=seconds + 30)
        after, ta = cpu_ticks(pids), thread_ticks(pids)
        for p in (rec, *stats.values()):
            p.send_signal(2)
        for p in (rec, *stats.values()):
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
        moved = int(json.loads(res.stdout)["end"]["sum_received"]["bytes"]) if res.returncode == 0 else 0
        calls, per_proc = {}, {}
        for i, (pid, stat) in enumerate(stats.items()):
            mine = per_proc.setdefault(f"node{i + 1}", {})
            for line in stat.stderr.read().splitlines():
                f = line.split(";")
                if len(f) > 2 and f[2].startswith("syscalls:sys_enter_") and f[0].strip().isdigit():
                    name = f[2].removeprefix("syscalls:sys_enter_")
                    mine[name] = int(f[0])
                    calls[name] = calls.get(name, 0) + int(f[0])
        rep = lambda *a: subprocess.run(["perf", "report", "-i", str(data), "--stdio", *a], capture_output=True,
                                        text=True, timeout=300).stdout
        body = lambda t: "\n".join(l for l in t.splitlines() if l.strip() and not l.startswith("#"))
        by_dso = body(rep("--no-children", "--sort", "dso", "-g", "none"))
        self_top = body(rep("--no-children", "--sort", "dso,sym", "-g", "none", "--percent-limit", "0.7"))
        incl_top = body(rep("--children", "--sort", "sym", "-g", "none", "--percent-limit", "4"))
        data.unlink(missing_ok=True)
        gb = moved / 1e9
        user, sys_ = (after[0] - before[0]) / CLK_TCK, (after[1] - before[1]) / CLK_TCK
        threads = {k: round((ta.get(k, 0) - tb.get(k, 0)) / CLK_TCK, 2) for k in ta if ta.get(k, 0) - tb.get(k, 0) > 0}
        summary[path] = {"gb": round(gb, 3), "user_s": user, "sys_s": sys_,
                         "core_s_per_gb": round((user + sys_) / gb, 3) if gb else None,
                         "threads_cpu_s": threads,
                         "syscalls_per_gb": {k: round(v / gb) for k, v in calls.items() if v} if gb else {},
                         "syscalls_per_gb_by_node": {n: {k: round(v / gb) for k, v in m.items() if v}
                                                     for n, m in per_proc.items()} if gb else {},
                         "bytes_per_rw_syscall": round(moved * 2 / max(1, sum(calls.get(k, 0) for k in
                                                       ("read", "write", "sendto", "recvfrom", "sendmsg", "recvmsg",
                                                        "readv", "writev"))))}
        text += [f"==== {path}: iperf3 1 stream, {seconds:g} s, {gb:.2f} GB moved; proxies user {user:.2f} s, "
                 f"sys {sys_:.2f} s", "threads (CPU s): " + json.dumps(threads),
                 "syscalls per GB: " + json.dumps(summary[path]["syscalls_per_gb"]),
                 "syscalls per GB by node: " + json.dumps(summary[path]["syscalls_per_gb_by_node"]),
                 "", "-- by DSO (self)", by_dso, "", "-- top symbols (self)", self_top,
                 "", "-- top symbols (inclusive, callers)", incl_top, ""]
    out.write_text("\n".join(text) + "\n")
    log(f"perf report written to {out}")
    return summary


if __name__ == "__main__":
    sys.exit(main())
