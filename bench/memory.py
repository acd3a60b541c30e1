"""Node agent memory only: the memory part of bench/dataplane.py on the zeromesh path, with a breakdown.

    sudo /usr/bin/python3 bench/memory.py [--hold N] [--seconds S] [--json FILE]
    (ZM_BUILD_DIR selects the build, as for the cluster tests; run it under /tmp/zm/cluster.lock on a shared box)

RSS does not depend on timing, so this needs no quiet machine. Same cluster, tools and agent flags as dataplane.py's
zeromesh path (mclient on node1 -> agent node1 -> HBONE -> agent node2 -> mserver; --workers 2). Phases, in the order
dataplane.py runs them: idle; iperf3 1 and 8 streams (fills the per-worker buffer pools as the throughput rounds do);
zm-connrate rate (the burst of new connections / HBONE streams); zm-connrate hold N (N echoed connections held open);
after the hold is closed. After each phase, per agent: VmRSS, VmHWM (peak so far), RssAnon, the threads, and the
largest mappings by Rss from /proc/PID/smaps ([heap], anonymous mappings such as glibc's per-thread arenas and thread
stacks, the binary). Prints a table; --json writes it all.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dataplane import ECHO_PORT, IPERF_PORT, PROXY_THREADS, TOOLS, Bench, hold_open, log, status_kb, zmcluster  # noqa: E402
from mesh import Mesh  # noqa: E402


def mappings(pid: int, top: int = 40) -> list[dict]:
    """The |top| mappings by Rss (kB), named: [heap], [stack], a file, or anon (arenas, thread stacks, big blocks)."""
    out, cur = [], None
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        parts = line.split()
        if "-" in parts[0] and not parts[0].endswith(":"):
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            cur = {"name": parts[5] if len(parts) > 5 else "anon", "size_kb": (hi - lo) // 1024, "rss_kb": 0}
            out.append(cur)
        elif parts[0] == "Rss:" and cur is not None:
            cur["rss_kb"] = int(parts[1])
    anon = [m for m in out if m["name"] == "anon"]
    named: dict[str, int] = {}
    for m in out:
        if m["name"] != "anon":
            named[m["name"]] = named.get(m["name"], 0) + m["rss_kb"]
    rows = [{"name": n, "rss_kb": r} for n, r in named.items()]
    rows.append({"name": f"anon ({len(anon)} mappings)", "rss_kb": sum(m["rss_kb"] for m in anon)})
    rows += [{"name": f"anon {m['size_kb']} kB", "rss_kb": m["rss_kb"]} for m in sorted(anon, key=lambda m: -m["rss_kb"])[:3]]
    return sorted(rows, key=lambda r: -r["rss_kb"])[:top]


def sample(pids: list[int]) -> list[dict]:
    res = []
    for pid in pids:
        res.append({
            "rss_mb": round(status_kb(pid, "VmRSS") / 1024, 1),
            "hwm_mb": round(status_kb(pid, "VmHWM") / 1024, 1),
            "anon_mb": round(status_kb(pid, "RssAnon") / 1024, 1),
            "file_mb": round(status_kb(pid, "RssFile") / 1024, 1),
            "threads": status_kb(pid, "Threads"),
            "top": mappings(pid),
        })
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hold", type=int, default=1000, help="connections held open")
    ap.add_argument("--seconds", type=float, default=2, help="per iperf3 / connection-rate run")
    ap.add_argument("--parallel", type=int, default=4, help="parallel connections of the connection-rate test")
    ap.add_argument("--agent-args", default="", help="extra mesh-agent flags, space-separated (to compare settings)")
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    for tool in ("zm-connrate", "zm-echod"):
        if not (TOOLS / tool).exists():
            raise SystemExit(f"{TOOLS / tool} missing: build the bench-tools target")
    phases: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory(prefix="zm-mem-") as tmp, zmcluster.Cluster(nodes=2, pods_per_node=0) as c:
        n1, n2 = c.node("node1"), c.node("node2")
        client, server = c.add_pod(n1, "mclient"), c.add_pod(n2, "mserver")
        for t in (client, server, n1, n2):
            for key, val in (("net.ipv4.ip_local_port_range", "1024 65000"), ("net.ipv4.tcp_tw_reuse", "1")):
                c.run(t, ["sysctl", "-qw", f"{key}={val}"], check=True)
        mesh = Mesh(c, Path(tmp) / "mesh")
        mesh.add_workload(client, sa="client")
        mesh.add_workload(server, sa="server")
        c.popen(server, ["iperf3", "-s", "-p", str(IPERF_PORT)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        c.popen(server, [str(TOOLS / "zm-echod"), str(ECHO_PORT), "2"], stdout=subprocess.DEVNULL)
        for node in (n1, n2):
            mesh.agent_args[node.name] = ["--workers", str(PROXY_THREADS)] + args.agent_args.split()
        mesh.start_agents()
        pids = [p.pid for p in mesh.agents.values()]
        for port in (IPERF_PORT, ECHO_PORT):
            c.wait_tcp(client, server.ip, port, timeout=15)
        bench = Bench(c, {"zeromesh": (client, server.ip, IPERF_PORT, ECHO_PORT)}, {"zeromesh": pids}, args.seconds,
                      args.parallel)
        time.sleep(1)
        phases["idle"] = sample(pids)
        bench.iperf("zeromesh", 1)
        bench.iperf("zeromesh", 8)
        phases["after_iperf"] = sample(pids)
        rate = bench.connrate("zeromesh")
        phases["after_connrate"] = sample(pids)
        h = hold_open(c, client, server.ip, ECHO_PORT, args.hold, lambda: phases.setdefault("hold", sample(pids)))
        if h["open"] < args.hold:
            log(f"only {h['open']} of {args.hold} connections opened")
        time.sleep(1)
        phases["after_hold"] = sample(pids)
        for node, p in mesh.agents.items():
            if p.poll() is not None:
                raise zmcluster.ClusterError(f"agent on {node} died: {mesh.agent_log(c.node(node))}")
    report = {"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "agent_args": args.agent_args, "hold": h,
              "conn_per_s": rate.get("per_second"), "phases": phases}
    print(f"{'phase':<15} {'node':<6} {'RSS':>6} {'peak':>6} {'anon':>6} {'file':>6} {'thr':>4}  largest mappings (Rss MB)")
    for name, per_agent in phases.items():
        for i, s in enumerate(per_agent):
            top = ", ".join(f"{m['name'].rsplit('/', 1)[-1]} {m['rss_kb'] / 1024:.1f}" for m in s["top"][:4])
            print(f"{name:<15} node{i + 1:<2} {s['rss_mb']:>6} {s['hwm_mb']:>6} {s['anon_mb']:>6} {s['file_mb']:>6} {s['threads']:>4}  {top}")
    print(f"held {h['open']} connections ({h['failed']} failed); connection rate {rate.get('per_second')}/s")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
