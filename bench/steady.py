"""Node agents' CPU under a steady, modest load only: the `steady` part of bench/dataplane.py on the zeromesh path.

    sudo /usr/bin/python3 bench/steady.py [--runs N] [--seconds S] [--perf DIR] [--json FILE]
    (ZM_BUILD_DIR selects the build, as for the cluster tests; run it under /tmp/zm/cluster.lock on a shared box)

Same cluster, tools and agent flags as dataplane.py's zeromesh path (mclient on node1 -> agent node1 -> HBONE ->
agent node2 -> mserver; --workers 2), and the same measurement: zm-steady (100 persistent connections, 1,000
requests/s in total of 1 KiB request/response, paced) with the agents' CPU (utime+stime from /proc) over it, in vCPU.
CPU time rather than wall-clock figures, so it is usable on a busy machine. Runs it --runs times and prints each run
plus the median. With --perf DIR, one extra run under perf record (cpu-clock, call graphs) and perf stat on syscall
tracepoints per agent: DIR gets the report, with syscalls per request per agent.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dataplane import (CLK_TCK, ECHO_PORT, PROXY_THREADS, STEADY_CONNS, STEADY_RATE, STEADY_SIZE, TOOLS,  # noqa: E402
                       Bench, cpu_ticks, log, zmcluster)
from mesh import Mesh  # noqa: E402

SYSCALLS = ("read", "write", "readv", "writev", "sendto", "recvfrom", "sendmsg", "recvmsg", "splice", "epoll_wait",
            "epoll_ctl", "timerfd_settime", "clock_gettime", "futex", "eventfd2", "brk", "mmap", "munmap", "madvise")


def under_perf(pids: list[int], out: Path, name: str, syscalls: tuple, run, units, unit: str,
               percent_limit: float = 0.7):
    """run() under perf record (cpu-clock, call graphs, every pid) and perf stat on the syscalls' tracepoints per pid.
    units(result) is how many of |unit| (request, connection) the run made: the counts come back per unit, per agent
    (node1 first), and out/NAME-perf.txt gets both with the report (self time by symbol). Returns (result, per
    agent)."""
    out.mkdir(parents=True, exist_ok=True)
    data = out / f"{name}-perf.data"
    rec = subprocess.Popen(["perf", "record", "-q", "-e", "cpu-clock", "-F", "1999", "-g", "-o", str(data), "-p",
                            ",".join(map(str, pids))], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    events = ",".join(f"syscalls:sys_enter_{n}" for n in syscalls)
    stats = [subprocess.Popen(["perf", "stat", "-x", ";", "-e", events, "-p", str(pid)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True) for pid in pids]
    time.sleep(0.5)
    result = run()
    for p in (rec, *stats):
        p.send_signal(2)
    for p in (rec, *stats):
        p.wait(timeout=60)
    n = max(1, units(result))
    per_node = {}
    for i, p in enumerate(stats):
        counts = {}
        for line in p.stderr.read().splitlines():
            f = line.split(";")
            if len(f) > 2 and f[2].startswith("syscalls:sys_enter_") and f[0].strip().isdigit():
                counts[f[2].removeprefix("syscalls:sys_enter_")] = int(f[0])
        per_node[f"node{i + 1}"] = {k: round(v / n, 2) for k, v in counts.items() if v}
    rep = subprocess.run(["perf", "report", "-i", str(data), "--stdio", "--no-children", "--sort", "dso,sym", "-g",
                          "none", "--percent-limit", str(percent_limit)], capture_output=True, text=True,
                         timeout=300).stdout
    (out / f"{name}-perf.txt").write_text(
        f"{name} run under perf: {json.dumps(result)}\nsyscalls per {unit}, per agent: "
        f"{json.dumps(per_node, indent=1)}\n\n{rep}")
    log(f"perf report in {out / f'{name}-perf.txt'} (perf data {data})")
    return result, per_node


def profiled(bench: Bench, pids: list[int], out: Path) -> dict:
    """One steady run under perf record and per-agent perf stat; writes the report to out/, returns the counts."""
    st, per_node = under_perf(pids, out, "steady", SYSCALLS, lambda: bench.steady("zeromesh"),
                              lambda st: st.get("answered", 0), "answered request")
    return {"run": st, "syscalls_per_request": per_node}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=10, help="per steady run (dataplane.py uses max(seconds, 5))")
    ap.add_argument("--perf", default="", help="directory for one extra profiled run's report")
    ap.add_argument("--agent-args", default="", help="extra mesh-agent flags, space-separated (to compare settings)")
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    for tool in ("zm-steady", "zm-echod"):
        if not (TOOLS / tool).exists():
            raise SystemExit(f"{TOOLS / tool} missing: build the bench-tools target")
    runs, prof = [], None
    with tempfile.TemporaryDirectory(prefix="zm-steady-") as tmp, zmcluster.Cluster(nodes=2, pods_per_node=0) as c:
        n1, n2 = c.node("node1"), c.node("node2")
        client, server = c.add_pod(n1, "mclient"), c.add_pod(n2, "mserver")
        mesh = Mesh(c, Path(tmp) / "mesh")
        mesh.add_workload(client, sa="client")
        mesh.add_workload(server, sa="server")
        c.popen(server, [str(TOOLS / "zm-echod"), str(ECHO_PORT), "2"], stdout=subprocess.DEVNULL)
        for node in (n1, n2):
            mesh.agent_args[node.name] = ["--workers", str(PROXY_THREADS)] + args.agent_args.split()
        mesh.start_agents()
        pids = [p.pid for p in mesh.agents.values()]
        c.wait_tcp(client, server.ip, ECHO_PORT, timeout=15)
        bench = Bench(c, {"zeromesh": (client, server.ip, 0, ECHO_PORT)}, {"zeromesh": pids}, args.seconds, 4)
        time.sleep(1)
        idle0 = cpu_ticks(pids)
        time.sleep(2)
        idle1 = cpu_ticks(pids)
        idle = (idle1[0] - idle0[0] + idle1[1] - idle0[1]) / CLK_TCK / 2
        for i in range(args.runs):
            st = bench.steady("zeromesh")
            runs.append(st)
            log(f"run {i + 1}: {st['proxy_vcpu']:.4f} vCPU at {st['rate']:.0f} rps (p50 {st['p50_us']:.0f} us)")
        if args.perf:
            prof = profiled(bench, pids, Path(args.perf))
        for node, p in mesh.agents.items():
            if p.poll() is not None:
                raise zmcluster.ClusterError(f"agent on {node} died: {mesh.agent_log(c.node(node))}")
    vcpu = [r["proxy_vcpu"] for r in runs]
    report = {"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "agent_args": args.agent_args,
              "steady": {"conns": STEADY_CONNS, "rate": STEADY_RATE, "size": STEADY_SIZE, "seconds": args.seconds},
              "idle_vcpu": round(idle, 4), "runs": runs, "median_vcpu": statistics.median(vcpu), "profiled": prof}
    print(f"idle {idle:.4f} vCPU; steady runs: " + ", ".join(f"{v:.4f}" for v in vcpu) +
          f" vCPU; median {report['median_vcpu']:.4f} vCPU (both agents, {STEADY_RATE} rps of {STEADY_SIZE} B)")
    if prof:
        print("syscalls per request: " + json.dumps(prof["syscalls_per_request"]))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
