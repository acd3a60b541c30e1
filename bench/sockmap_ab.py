"""Sockmap on vs off (agent --sockmap), interleaved A/B on one simulated cluster, same pods, same tools:

    sudo /usr/bin/python3 bench/sockmap_ab.py [--runs N] [--seconds S] [--modes off,both] [--json FILE]
    (ZM_BUILD_DIR selects the build; run it under /tmp/zm/cluster.lock on a shared box)

Each run restarts both agents in each mode in turn (the order alternates from run to run, and the agents adopt the
pinned state of the previous mode, as an upgrade would) and measures on the zeromesh path (mclient on node1 -> agent
-> HBONE -> agent -> mserver, --workers 2): the agents' CPU at the steady load of dataplane.py (zm-steady, 1,000 rps of
1 KiB over 100 connections), zm-rr p50/p99 with 1 B and 1 KiB messages, the CPU per 1 KiB round trip of both pods
(cgroup cpu.stat) and both agents, and one iperf3 stream; plus the direct path's zm-rr each run, for the added latency. Prints the medians per mode with the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dataplane import CLK_TCK, ECHO_PORT, IPERF_PORT, PROXY_THREADS, TOOLS, Bench, cpu_ticks, log, zmcluster  # noqa: E402
from mesh import Mesh  # noqa: E402


def restart_agents(c, mesh: Mesh, mode: str) -> list[int]:
    for node in c.nodes:
        if node.name in mesh.agents:
            mesh.kill_agent(node)
        (mesh.workdir / f"agent-{node.name}.log").unlink(missing_ok=True)  # wait_ready looks for a fresh "ready"
        mesh.agent_args[node.name] = ["--workers", str(PROXY_THREADS), "--sockmap", mode,
                                      "--sockops-cgroup", str(c.cgroup_root)]
    for node in c.nodes:
        mesh.start_agent(node, wait=False)
    for node in c.nodes:
        mesh.wait_ready(node, timeout=60)  # a loaded shared machine can be slow to start
    return [p.pid for p in mesh.agents.values()]


def cgroup_usec(pod) -> int:
    """CPU the pod's cgroup used (cpu.stat usage_usec: every process of it, the exited ones too)."""
    for line in (Path(pod.cgroup) / "cpu.stat").read_text().splitlines():
        if line.startswith("usage_usec "):
            return int(line.split()[1])
    return 0


def cpu_usec(pods, pids) -> float:
    user, system = cpu_ticks(pids)
    return sum(cgroup_usec(p) for p in pods) + (user + system) * 1e6 / CLK_TCK


def measure(bench: Bench, pods, pids) -> dict:
    st = bench.steady("zeromesh")
    r1 = bench.rr("zeromesh", 1)
    # 1 KiB round trips with the CPU of everything they cost: both pods (their syscalls and the softirq work they
    # trigger) and both agents, per round trip. CPU time, not wall time: usable on a loaded machine.
    before = cpu_usec(pods, pids)
    r1k = bench.rr("zeromesh", 1024)
    cpu_per_rt = (cpu_usec(pods, pids) - before) / max(1, r1k["round_trips"])
    g1, _, _ = bench.iperf("zeromesh", 1)
    return {"steady_vcpu": st["proxy_vcpu"], "steady_rate": st["rate"], "rr1_p50_us": r1["p50_us"],
            "rr1_p99_us": r1["p99_us"], "rr1k_p50_us": r1k["p50_us"], "rr1k_p99_us": r1k["p99_us"],
            "rr1k_cpu_us_per_rt": cpu_per_rt, "rr1k_round_trips": r1k["round_trips"], "throughput_1_gbps": g1}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=3)
    ap.add_argument("--modes", default="off,both")
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    modes = args.modes.split(",")
    raw: dict[str, list[dict]] = {m: [] for m in modes}
    direct: list[dict] = []
    load = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory(prefix="zm-sockmap-ab-") as tmp, zmcluster.Cluster(nodes=2, pods_per_node=0) as c:
        n1, n2 = c.node("node1"), c.node("node2")
        pods = {name: c.add_pod(node, name) for name, node in
                (("mclient", n1), ("mserver", n2), ("pclient", n1), ("pserver", n2))}
        mesh = Mesh(c, Path(tmp) / "mesh")
        mesh.add_workload(pods["mclient"], sa="client")
        mesh.add_workload(pods["mserver"], sa="server")
        mesh.add_workload(pods["pclient"], enrolled=False)
        mesh.add_workload(pods["pserver"], enrolled=False)
        for name in ("mserver", "pserver"):
            c.popen(pods[name], [str(TOOLS / "zm-echod"), str(ECHO_PORT), "2"], stdout=subprocess.DEVNULL)
            c.popen(pods[name], ["iperf3", "-s", "-p", str(IPERF_PORT)], stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL)
        targets = {"zeromesh": (pods["mclient"], pods["mserver"].ip, IPERF_PORT, ECHO_PORT),
                   "direct": (pods["pclient"], pods["pserver"].ip, IPERF_PORT, ECHO_PORT)}
        for i in range(args.runs):
            order = modes if i % 2 == 0 else list(reversed(modes))
            for mode in order:
                pids = restart_agents(c, mesh, mode)
                c.wait_tcp(pods["mclient"], pods["mserver"].ip, ECHO_PORT, timeout=15)
                bench = Bench(c, targets, {"zeromesh": pids}, args.seconds, 4)
                time.sleep(0.5)
                fig = measure(bench, (pods["mclient"], pods["mserver"]), pids)
                fig["load1"] = os.getloadavg()[0]
                raw[mode].append(fig)
                log(f"run {i + 1} {mode}: " + json.dumps({k: round(v, 4) for k, v in fig.items()}))
            d1, d1k = bench.rr("direct", 1), bench.rr("direct", 1024)
            direct.append({"rr1_p50_us": d1["p50_us"], "rr1_p99_us": d1["p99_us"], "rr1k_p50_us": d1k["p50_us"],
                           "rr1k_p99_us": d1k["p99_us"]})
            load.append(os.getloadavg()[0])
    med = {m: {k: statistics.median(r[k] for r in runs) for k in runs[0]} for m, runs in raw.items()}
    dmed = {k: statistics.median(r[k] for r in direct) for k in direct[0]}
    for m in modes:
        for k in ("rr1_p50_us", "rr1_p99_us", "rr1k_p50_us", "rr1k_p99_us"):
            med[m][k.replace("_us", "_added_us")] = med[m][k] - dmed[k]
    report = {"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "runs": args.runs, "seconds": args.seconds,
              "load1": load, "raw": raw, "direct": direct, "median": med, "direct_median": dmed}
    for m in modes:
        print(f"{m:>8}: " + ", ".join(f"{k} {v:.4g}" for k, v in med[m].items()))
    print(f"  direct: " + ", ".join(f"{k} {v:.4g}" for k, v in dmed.items()))
    print("load average (1 min) during the runs: " + ", ".join(f"{v:.2f}" for v in load))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
