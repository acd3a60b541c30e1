"""A/B of two agent builds on new connections: zm-connrate through zeromesh with each, and direct, interleaved.

    sudo /usr/bin/python3 bench/connrate_ab.py --a BUILD_A --b BUILD_B [--trials N] [--seconds S] [--perf DIR]
                                               [--json FILE]
    (run it under /tmp/zm/cluster.lock on a shared box; the bench tools come from ZM_BUILD_DIR as for dataplane.py)

zm-connrate as bench/dataplane.py runs it (connect, 16-byte request and echo, close; 4 in parallel) from a client pod
on node1 to an echo server on node2, the agents with --workers 2 (BUILD_x/agent/mesh-agent). Every trial is a fresh
2-node cluster with one build's agents: a trial opens ~15,000 connections, and their 4-tuples stay in TIME_WAIT for a
minute, which would slow the next trial's connects (the kernel searches longer for a free port). The namespaces get
dataplane.py's TCP settings (tcp_tw_reuse=1, ports 1024-65000); --kernel-defaults leaves the kernel's, as a node has.
Per trial: direct connections/s from one pod pair, then zeromesh connections/s from another pair of the same cluster
and the agents' CPU (utime+stime from /proc) per connection. Trials alternate A, B, B, A, ... With --perf DIR, one
more trial of B under perf record (cpu-clock, both agents, self time by symbol) and perf stat on syscall tracepoints:
DIR/connrate-perf.txt, with the syscalls per connection per agent.
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
from dataplane import (CLK_TCK, ECHO_PORT, PROXY_THREADS, TOOLS, Bench, cpu_ticks, log, tune_tcp,  # noqa: E402
                       zmcluster)
from mesh import Mesh  # noqa: E402
from steady import SYSCALLS, under_perf  # noqa: E402
from throughput_ab import restart_agents  # noqa: E402

# What a new connection costs the agents besides the data path: accept, the upstream socket, its options, teardown.
CONN_SYSCALLS = SYSCALLS + ("accept4", "socket", "bind", "connect", "setsockopt", "getsockopt", "getsockname",
                            "shutdown", "close")


def trial(binary: Path, seconds: float, parallel: int, kernel_defaults: bool, perf_dir: str = "") -> dict:
    """One fresh cluster: direct, then zeromesh with |binary|'s agents."""
    with tempfile.TemporaryDirectory(prefix="zm-connrate-") as tmp, zmcluster.Cluster(nodes=2, pods_per_node=0) as c:
        n1, n2 = c.node("node1"), c.node("node2")
        mclient, mserver = c.add_pod(n1, "mclient"), c.add_pod(n2, "mserver")
        pclient, pserver = c.add_pod(n1, "pclient"), c.add_pod(n2, "pserver")
        if not kernel_defaults:
            tune_tcp(c, [mclient, mserver, pclient, pserver, n1, n2])
        mesh = Mesh(c, Path(tmp) / "mesh")
        mesh.add_workload(mclient, sa="client")
        mesh.add_workload(mserver, sa="server")
        mesh.add_workload(pclient, enrolled=False)
        mesh.add_workload(pserver, enrolled=False)
        for server in (mserver, pserver):
            c.popen(server, [str(TOOLS / "zm-echod"), str(ECHO_PORT), "2"], stdout=subprocess.DEVNULL)
        for node in (n1, n2):
            mesh.agent_args[node.name] = ["--workers", str(PROXY_THREADS)]
        pids = restart_agents(mesh, c, binary)
        c.wait_tcp(mclient, mserver.ip, ECHO_PORT, timeout=15)
        c.wait_tcp(pclient, pserver.ip, ECHO_PORT, timeout=15)
        bench = Bench(c, {"zeromesh": (mclient, mserver.ip, 0, ECHO_PORT),
                          "direct": (pclient, pserver.ip, 0, ECHO_PORT)}, {"zeromesh": pids}, seconds, parallel)
        time.sleep(0.5)
        direct = bench.connrate("direct")["per_second"]  # first, as in dataplane.py's rounds

        def run() -> dict:
            t0 = cpu_ticks(pids)
            z = bench.connrate("zeromesh")
            t1 = cpu_ticks(pids)
            conns = max(1.0, z["per_second"] * seconds)
            return {"zeromesh": z["per_second"], "failed": z["failed"], "seconds": seconds,
                    "agents_cpu_us_per_conn": round((t1[0] - t0[0] + t1[1] - t0[1]) / CLK_TCK / conns * 1e6, 1)}

        syscalls = None
        if perf_dir:
            out, syscalls = under_perf(pids, Path(perf_dir), "connrate", CONN_SYSCALLS, run,
                                       lambda r: r["zeromesh"] * r["seconds"], "connection", percent_limit=0.5)
        else:
            out = run()
        out["direct"] = direct
        out["vs_direct"] = round(out["zeromesh"] / out["direct"], 3)
        if syscalls:
            out["syscalls_per_conn"] = syscalls
        for node, p in mesh.agents.items():
            if p.poll() is not None:
                raise zmcluster.ClusterError(f"agent on {node} died: {mesh.agent_log(c.node(node))}")
        return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--a", required=True, help="build directory of the 'before' agent")
    ap.add_argument("--b", required=True, help="build directory of the 'after' agent")
    ap.add_argument("--trials", type=int, default=3, help="per build")
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--parallel", type=int, default=4)
    ap.add_argument("--perf", default="", help="directory for one extra profiled trial of B")
    ap.add_argument("--kernel-defaults", action="store_true",
                    help="leave the kernel's TCP settings (no tcp_tw_reuse=1, the default port range), as on a node")
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    bins = dataplane.ab_binaries(args)
    load_start = os.getloadavg()
    raw: dict = {"A": [], "B": []}
    for t in range(args.trials):
        for build in (("A", "B") if t % 2 == 0 else ("B", "A")):
            fig = trial(bins[build], args.seconds, args.parallel, args.kernel_defaults)
            raw[build].append(fig)
            log(f"trial {t + 1}/{args.trials} {build}: {json.dumps(fig)}")
    profiled = trial(bins["B"], args.seconds, args.parallel, args.kernel_defaults, args.perf) if args.perf else None
    load_end = os.getloadavg()
    summary = {build: {key: statistics.median(f[key] for f in figs)
                       for key in ("zeromesh", "direct", "vs_direct", "agents_cpu_us_per_conn")}
               for build, figs in raw.items()}
    dataplane.write_ab_report(args, load_start, load_end, summary, raw, trials=args.trials, seconds=args.seconds,
                              parallel=args.parallel, kernel_defaults=args.kernel_defaults, profiled_b=profiled)
    return 0


if __name__ == "__main__":
    sys.exit(main())
