"""The floor under every node-proxy figure: a relay pair that only reads and writes, measured beside the mesh.

    sudo /usr/bin/python3 bench/floor.py [--rounds N] [--seconds S] [--json FILE]
    (run it under /tmp/zm/cluster.lock on a shared box; tools and agent come from ZM_BUILD_DIR as for dataplane.py)

Issue 19's goals are ratios to direct TCP. A node proxy pair puts two user-space hops and two more TCP legs on the
path whatever it does with the bytes, so part of what it adds is the machine's, not the proxy's. This measures that
part: `zm-relay` (bench/tools/relay.cc) is the cheapest relay that still reads every byte into user space (what any
TLS proxy must do): epoll, one read and one write per chunk, no encryption, framing, policy or telemetry. It runs on
the same nodes, with the same threads (PROXY_THREADS), on the path of dataplane.py's HAProxy pair:

  relay     rclient -> zm-relay node1 (10.244.1.1) -> zm-relay node2 -> rserver       (plaintext between the nodes)

beside dataplane.py's direct, zeromesh and haproxy paths, interleaved per round (A B C D A B C D ...) with the same
measurements (Bench.round: iperf3 1 and 8 streams with the proxies' CPU per GB, zm-rr 1 B and 1 KiB, zm-connrate,
zm-steady with the proxies' vCPU). Prints, per metric, each path's median and for the relay and the mesh the same
figures as issue 19's goals (ratio to direct, added latency, CPU), so a goal the relay itself misses is one no
user-space node proxy reaches on this machine; --json writes them with the raw rounds.
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
from dataplane import (ECHO_PORT, GOALS, HAP_N1, IPERF_PORT, PROXY_THREADS, TOOLS, Bench, add_pods, log,  # noqa: E402
                       machine, meets, set_up_paths, start_servers, tune_tcp, vs_direct, zmcluster)

PATHS = ("direct", "relay", "zeromesh", "haproxy")
RELAY_N1 = {IPERF_PORT: 45201, ECHO_PORT: 47000}  # zm-relay on node1 (from the client pod)
RELAY_N2 = {IPERF_PORT: 55201, ECHO_PORT: 57000}  # zm-relay on node2 (from node1's relay)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=4)
    ap.add_argument("--parallel", type=int, default=4, help="parallel connections of the connection-rate test")
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    for tool in ("zm-relay", "zm-rr", "zm-connrate", "zm-echod", "zm-steady"):
        if not (TOOLS / tool).exists():
            raise SystemExit(f"{TOOLS / tool} missing: build the bench-tools target")
    load_start = os.getloadavg()
    raw: dict = {p: {} for p in PATHS}
    with tempfile.TemporaryDirectory(prefix="zm-floor-") as tmp, zmcluster.Cluster(nodes=2, pods_per_node=0) as c:
        work = Path(tmp)
        n1, n2 = c.node("node1"), c.node("node2")
        pods = add_pods(c)
        pods.update({"rclient": c.add_pod(n1, "rclient"), "rserver": c.add_pod(n2, "rserver")})
        tune_tcp(c, list(pods.values()) + [n1, n2])
        mesh, cfg1, cfg2 = set_up_paths(c, work, pods, echod=True)
        for name in ("rclient", "rserver"):
            mesh.add_workload(pods[name], enrolled=False)
        start_servers(c, pods["rserver"], echod=True)
        mesh.start_agents()
        hap = [c.popen(node, ["haproxy", "-db", "-f", str(cfg)], stdout=subprocess.DEVNULL,
                       stderr=open(work / f"haproxy-{node.name}.log", "wb")) for node, cfg in ((n1, cfg1), (n2, cfg2))]
        relay = [
            c.popen(n1, [str(TOOLS / "zm-relay"), str(PROXY_THREADS)] +
                    [f"{n1.gateway}:{RELAY_N1[p]}={n2.ip}:{RELAY_N2[p]}" for p in (IPERF_PORT, ECHO_PORT)]),
            c.popen(n2, [str(TOOLS / "zm-relay"), str(PROXY_THREADS)] +
                    [f"{n2.ip}:{RELAY_N2[p]}={pods['rserver'].ip}:{p}" for p in (IPERF_PORT, ECHO_PORT)]),
        ]
        targets = {
            "direct": (pods["pclient"], pods["pserver"].ip, IPERF_PORT, ECHO_PORT),
            "relay": (pods["rclient"], n1.gateway, RELAY_N1[IPERF_PORT], RELAY_N1[ECHO_PORT]),
            "zeromesh": (pods["mclient"], pods["mserver"].ip, IPERF_PORT, ECHO_PORT),
            "haproxy": (pods["hclient"], n1.gateway, HAP_N1[IPERF_PORT], HAP_N1[ECHO_PORT]),
        }
        for pod, ip, p_iperf, p_echo in targets.values():
            for port in (p_iperf, p_echo):
                c.wait_tcp(pod, ip, port, timeout=15)
        proxies = {"relay": [p.pid for p in relay], "zeromesh": [p.pid for p in mesh.agents.values()],
                   "haproxy": [p.pid for p in hap]}
        bench = Bench(c, targets, proxies, args.seconds, args.parallel)
        log(f"cluster {c.prefix} ready; {args.rounds} round(s) of {args.seconds:g} s per measurement")
        for r in range(args.rounds):
            for path in PATHS:
                fig = bench.round(path)
                for k, v in fig.items():
                    raw[path].setdefault(k, []).append(round(v, 3))
                log(f"round {r + 1}/{args.rounds} {path}: " + ", ".join(f"{k}={v:.2f}" for k, v in fig.items()))
        for name, procs in (("relay", relay), ("haproxy", hap), ("agent", list(mesh.agents.values()))):
            if any(p.poll() is not None for p in procs):
                raise zmcluster.ClusterError(f"a {name} process died during the run")
    med = {p: {k: statistics.median(v) for k, v in m.items()} for p, m in raw.items()}
    fig = {p: {k: round(v, 4) for k, v in vs_direct(med, p).items()} for p in ("relay", "zeromesh", "haproxy")}
    targets_by_key = {g[0]: (g[1], g[2]) for g in GOALS.values() if not isinstance(g[2], str)}
    rows = []
    for key, (op, target) in targets_by_key.items():
        if key not in fig["relay"]:
            continue
        row = {"figure": key, "goal": f"{op} {target}"}
        for p in ("relay", "zeromesh", "haproxy"):
            v = fig[p][key]
            row[p] = v
            row[f"{p}_meets"] = meets(v, op, target)
        rows.append(row)
    print(f"{'figure':28s} {'goal':>8s} {'relay':>10s} {'zeromesh':>10s} {'haproxy':>10s}")
    for row in rows:
        cells = "".join(f" {row[p]:>9}{'*' if row[p + '_meets'] else ' '}" for p in ("relay", "zeromesh", "haproxy"))
        print(f"{row['figure']:28s} {row['goal']:>8s}{cells}")
    print("(* = meets the goal)")
    report = {"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": machine(),
              "config": {"rounds": args.rounds, "seconds": args.seconds, "threads": PROXY_THREADS,
                         "connrate_parallel": args.parallel},
              "loadavg_start": load_start, "loadavg_end": os.getloadavg(), "paths": list(PATHS),
              "median": med, "figures": fig, "goals": rows, "raw": raw}
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
        log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
