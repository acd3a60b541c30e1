"""Data-plane benchmark: the same traffic direct (no mesh) and through zeromesh, interleaved in one run.

    sudo python3 bench/dataplane.py [--rounds N] [--seconds S] [--json FILE]

Two nodes; node1 has an enrolled client and a plain client, node2 an enrolled server and a plain server. "direct" =
plain -> plain, "zeromesh" = enrolled -> enrolled (STRICT, HBONE through both agents). Per round and path: one-stream
throughput (iperf3), request/response latency p50/p99 for 1-byte messages on a persistent connection (sockperf
ping-pong), and new connections per second (connect, one small request, close). Prints medians and ratios.
"""

import argparse
import json
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
from mesh import Mesh  # noqa: E402

PODTOOL = str(ROOT / "tests" / "cluster" / "podtool.py")


def iperf(c, client, server, seconds):
    res = c.run(client, ["iperf3", "-c", server.ip, "-p", "5201", "-t", str(seconds), "-J"], text=True,
                timeout=seconds + 30, check=True)
    return json.loads(res.stdout)["end"]["sum_received"]["bits_per_second"] / 1e9


def sockperf(c, client, server, seconds):
    res = c.run(client, ["sockperf", "pp", "--tcp", "-i", server.ip, "-p", "11111", "-t", str(seconds), "-m", "14"],
                text=True, timeout=seconds + 30, check=True)
    pct = {}
    for m in re.finditer(r"percentile\s+([\d.]+)\s*=\s*([\d.]+)", res.stdout):
        pct[float(m.group(1))] = float(m.group(2))
    # sockperf reports one-way latency (RTT/2) in usec; report the round trip.
    return {"p50_us": 2 * pct[50.0], "p99_us": 2 * pct[99.0]}


def connrate(c, client, server, seconds):
    res = c.run(client, [sys.executable, PODTOOL, "connrate", server.ip, "8080", str(seconds)], text=True,
                timeout=seconds + 30, check=True)
    return json.loads(res.stdout)["per_second"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=3)
    ap.add_argument("--json", default="")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="zm-bench-") as tmp, zmcluster.Cluster(nodes=2, pods_per_node=0) as c:
        pods = {name: c.add_pod(node, name) for name, node in
                (("mclient", "node1"), ("pclient", "node1"), ("mserver", "node2"), ("pserver", "node2"))}
        mesh = Mesh(c, Path(tmp))
        mesh.add_workload(pods["mclient"], sa="client")
        mesh.add_workload(pods["mserver"], sa="server")
        mesh.add_workload(pods["pclient"], enrolled=False)
        mesh.add_workload(pods["pserver"], enrolled=False)
        for s in (pods["mserver"], pods["pserver"]):
            c.popen(s, ["iperf3", "-s", "-p", "5201"], stdout=subprocess.DEVNULL)
            c.popen(s, ["sockperf", "sr", "--tcp", "-i", "0.0.0.0", "-p", "11111"], stdout=subprocess.DEVNULL)
            c.popen(s, [sys.executable, PODTOOL, "serve", "8080"], stdout=subprocess.DEVNULL)
        mesh.start_agents()
        for s in (pods["mserver"], pods["pserver"]):
            for port in (5201, 11111, 8080):
                c.wait_tcp("node2", s.ip, port)

        paths = {"direct": (pods["pclient"], pods["pserver"]), "zeromesh": (pods["mclient"], pods["mserver"])}
        results = {p: {"throughput_gbps": [], "rr_p50_us": [], "rr_p99_us": [], "conn_per_s": []} for p in paths}
        for r in range(args.rounds):
            for path, (cl, sv) in paths.items():  # interleaved: A B A B ...
                results[path]["throughput_gbps"].append(iperf(c, cl, sv, args.seconds))
                lat = sockperf(c, cl, sv, args.seconds)
                results[path]["rr_p50_us"].append(lat["p50_us"])
                results[path]["rr_p99_us"].append(lat["p99_us"])
                results[path]["conn_per_s"].append(connrate(c, cl, sv, args.seconds))
                print(f"round {r + 1} {path}: " + ", ".join(f"{k}={v[-1]:.2f}" for k, v in results[path].items()),
                      file=sys.stderr)

    med = {p: {k: statistics.median(v) for k, v in m.items()} for p, m in results.items()}
    d, z = med["direct"], med["zeromesh"]
    report = {
        "rounds": args.rounds, "seconds": args.seconds,
        "raw": results,
        "median": med,
        "min": {p: {k: min(v) for k, v in m.items()} for p, m in results.items()},
        "max": {p: {k: max(v) for k, v in m.items()} for p, m in results.items()},
        "ratios": {
            "throughput_vs_direct": round(z["throughput_gbps"] / d["throughput_gbps"], 3),
            "rr_p50_added_us": round(z["rr_p50_us"] - d["rr_p50_us"], 1),
            "rr_p99_added_us": round(z["rr_p99_us"] - d["rr_p99_us"], 1),
            "connrate_vs_direct": round(z["conn_per_s"] / d["conn_per_s"], 3),
        },
    }
    print(f"{'metric':<18}{'direct':>12}{'zeromesh':>12}")
    for k in ("throughput_gbps", "rr_p50_us", "rr_p99_us", "conn_per_s"):
        print(f"{k:<18}{d[k]:>12.2f}{z[k]:>12.2f}")
    print("ratios: " + json.dumps(report["ratios"]))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
