"""A/B of two agent builds on the bulk path only: iperf3 1 and 8 streams and the agents' CPU per GB, interleaved.

    sudo /usr/bin/python3 bench/throughput_ab.py --a BUILD_A --b BUILD_B [--rounds N] [--seconds S] [--json FILE]
    (run it under /tmp/zm/cluster.lock on a shared box; the bench tools come from ZM_BUILD_DIR as for dataplane.py)

The cluster, pods, certificates, HAProxy pair and agent flags (--workers 2) of bench/dataplane.py, but one agent binary
per side of the comparison (BUILD_x/agent/mesh-agent). Per round: direct, zeromesh with A, HAProxy, zeromesh with B
(B before A on odd rounds), each iperf3 -P 1 then -P 8, the agents restarted with the other binary between the two
zeromesh turns. For each: Gbit/s, the proxies' CPU (utime+stime from /proc) per GB, and for zeromesh the share of
the agents' CPU on their busiest thread (0.5 would be two workers evenly loaded on one node) and, with --syscalls,
each agent's syscalls per GB. Prints the medians and
ratios (to direct and to HAProxy, per round) and the load average at the start and end.
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
import dataplane  # noqa: E402
from dataplane import (CLK_TCK, HAP_N1, IPERF_PORT, Bench, add_pods, log, set_up_paths, thread_ticks,  # noqa: E402
                       zmcluster)
import mesh as mesh_mod  # noqa: E402
from mesh import Mesh  # noqa: E402


def restart_agents(mesh: Mesh, c, binary: Path) -> list[int]:
    for node in c.nodes:
        if node.name in mesh.agents:
            mesh.kill_agent(node)
        log_file = mesh.workdir / f"agent-{node.name}.log"
        if log_file.exists():
            log_file.unlink()  # wait_ready looks for "agent ready" in it
    mesh_mod.AGENT_BIN = binary
    mesh.start_agents()
    pids = [p.pid for p in mesh.agents.values()]
    for pid in pids:
        if Path(f"/proc/{pid}/comm").read_text().strip() != "mesh-agent":
            raise zmcluster.ClusterError(f"pid {pid} is not a mesh-agent")
    return pids


SYSCALLS = ("read", "readv", "write", "sendto", "recvfrom", "sendmsg", "writev", "epoll_wait")


def measure(bench: Bench, path: str, streams: int, syscalls: bool = False) -> dict:
    pids = bench.proxies.get(path, [])
    threads0 = thread_ticks(pids) if path == "zeromesh" else {}
    stats = []
    if syscalls and pids:  # perf stat on syscall tracepoints, one per agent (node1 first)
        events = ",".join(f"syscalls:sys_enter_{n}" for n in SYSCALLS)
        stats = [subprocess.Popen(["perf", "stat", "-x", ";", "-e", events, "-p", str(pid)], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, text=True) for pid in pids]
        time.sleep(0.3)
    gbps, nbytes, (du, ds) = bench.iperf(path, streams)
    out = {"gbps": round(gbps, 3)}
    for i, p in enumerate(stats):
        p.send_signal(2)
        _, err = p.communicate(timeout=30)
        counts = {}
        for line in err.splitlines():
            f = line.split(";")
            if len(f) > 2 and f[2].startswith("syscalls:sys_enter_") and f[0].strip().isdigit():
                counts[f[2].removeprefix("syscalls:sys_enter_")] = int(f[0])
        # Per GB moved (the count covers a little more than the transfer: perf starts first).
        out[f"syscalls_per_gb_node{i + 1}"] = {k: round(v / (nbytes / 1e9)) for k, v in counts.items() if v}
    if pids:
        out["cpu_core_s_per_gb"] = round((du + ds) / CLK_TCK / (nbytes / 1e9), 3)
        out["user_share"] = round(du / max(1, du + ds), 3)
    if threads0:
        threads1 = thread_ticks(pids)
        per = {k: threads1.get(k, 0) - v for k, v in threads0.items()}
        out["busiest_thread_share"] = round(max(per.values()) / max(1, sum(per.values())), 3)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--a", required=True, help="build directory of the 'before' agent")
    ap.add_argument("--b", required=True, help="build directory of the 'after' agent")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=4)
    ap.add_argument("--syscalls", action="store_true", help="also count the agents' syscalls per GB (perf stat)")
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    bins = dataplane.ab_binaries(args)
    load_start = os.getloadavg()
    raw: dict = {}
    with tempfile.TemporaryDirectory(prefix="zm-ab-") as tmp, zmcluster.Cluster(nodes=2, pods_per_node=0) as c:
        work = Path(tmp)
        n1, n2 = c.node("node1"), c.node("node2")
        pods = add_pods(c)
        mesh, cfg1, cfg2 = set_up_paths(c, work, pods, echod=False)
        hap = [c.popen(node, ["haproxy", "-db", "-f", str(cfg)], stdout=subprocess.DEVNULL,
                       stderr=open(work / f"haproxy-{node.name}.log", "wb")) for node, cfg in ((n1, cfg1), (n2, cfg2))]
        targets = {
            "direct": (pods["pclient"], pods["pserver"].ip, IPERF_PORT, 0),
            "zeromesh": (pods["mclient"], pods["mserver"].ip, IPERF_PORT, 0),
            "haproxy": (pods["hclient"], n1.gateway, HAP_N1[IPERF_PORT], 0),
        }
        c.wait_tcp(pods["pclient"], pods["pserver"].ip, IPERF_PORT, timeout=15)
        c.wait_tcp(pods["hclient"], n1.gateway, HAP_N1[IPERF_PORT], timeout=15)
        proxies = {"haproxy": [p.pid for p in hap], "zeromesh": []}
        bench = Bench(c, targets, proxies, args.seconds, 1)
        for r in range(args.rounds):
            order = ("A", "B") if r % 2 == 0 else ("B", "A")
            turns = ["direct", order[0], "haproxy", order[1]]
            for turn in turns:
                path = turn if turn in ("direct", "haproxy") else "zeromesh"
                if path == "zeromesh":
                    proxies["zeromesh"] = restart_agents(mesh, c, bins[turn])
                    c.wait_tcp(pods["mclient"], pods["mserver"].ip, IPERF_PORT, timeout=15)
                    time.sleep(0.5)
                for streams in (1, 8):
                    fig = measure(bench, path, streams, args.syscalls and path == "zeromesh")
                    raw.setdefault(turn, {}).setdefault(str(streams), []).append(fig)
                    log(f"round {r + 1}/{args.rounds} {turn} -P {streams}: {json.dumps(fig)}")
        for node, p in mesh.agents.items():
            if p.poll() is not None:
                raise zmcluster.ClusterError(f"agent on {node} died: {mesh.agent_log(c.node(node))}")
    load_end = os.getloadavg()

    def med(turn: str, streams: str, key: str) -> float:
        vals = [f[key] for f in raw[turn][streams] if key in f]
        return round(statistics.median(vals), 3) if vals else float("nan")

    def ratio(turn: str, streams: str, to: str) -> list[float]:  # per round: both figures come from one round
        return [round(a["gbps"] / b["gbps"], 3) for a, b in zip(raw[turn][streams], raw[to][streams])]

    summary = {}
    for turn in ("A", "B"):
        s = {}
        for streams in ("1", "8"):
            s[f"gbps_{streams}"] = med(turn, streams, "gbps")
            s[f"cpu_core_s_per_gb_{streams}"] = med(turn, streams, "cpu_core_s_per_gb")
            s[f"busiest_thread_share_{streams}"] = med(turn, streams, "busiest_thread_share")
            s[f"vs_direct_{streams}"] = ratio(turn, streams, "direct")
            s[f"vs_haproxy_{streams}"] = ratio(turn, streams, "haproxy")
        summary[turn] = s
    for turn in ("direct", "haproxy"):
        summary[turn] = {f"gbps_{s}": med(turn, s, "gbps") for s in ("1", "8")}
        if turn == "haproxy":
            summary[turn].update({f"cpu_core_s_per_gb_{s}": med(turn, s, "cpu_core_s_per_gb") for s in ("1", "8")})
    dataplane.write_ab_report(args, load_start, load_end, summary, raw, rounds=args.rounds, seconds=args.seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
