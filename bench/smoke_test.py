"""ctest bench_smoke: runs the data-plane benchmark in its tiny mode (1 round, 1 s per measurement) and checks that the
JSON has every key bench/run.sh promises, with positive figures, so the script keeps working; the same for
bench/floor.py (the relay floor)."""

import json
import math
import os
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

HERE = Path(__file__).resolve().parent
PATHS = ("direct", "zeromesh", "haproxy")
METRICS = ("throughput_1_gbps", "throughput_8_gbps", "rr1_p50_us", "rr1_p99_us", "rr1_p999_us",
           "rr1k_p50_us", "rr1k_p99_us", "rr1k_p999_us", "conn_per_s", "steady_rate", "steady_p50_us",
           "steady_p99_us")
POSITIVE_RATIOS = ("throughput_vs_direct", "throughput_vs_haproxy", "connrate_vs_direct", "connrate_vs_haproxy",
                   "agent_rss_mb", "agent_cpu_core_s_per_gb", "agent_vcpu_1000rps", "haproxy_vcpu_1000rps")
# Differences of two latencies: may be negative on a noisy machine, but must be numbers.
ADDED = ("rr_p50_added_us", "rr_p99_added_us", "haproxy_rr_p50_added_us", "haproxy_rr_p99_added_us")
# L7 (bench/l7.py, wrk over keep-alive): tiny mode runs the rate run only. wrk with zero requests or any error (socket
# error, non-2xx/3xx) already fails the run; these check the JSON carries the figures.
L7_METRICS = ("http_rps", "http_rate_p50_us", "http_rate_p99_us", "http_requests")
L7_RATIOS = ("http_rps_vs_direct", "http_rps_vs_haproxy", "agent_http_req_per_core_s", "haproxy_http_req_per_core_s")
# gRPC (h2load, unary calls over HTTP/2): h2load with an error, a non-2xx or a call without its response message
# already fails the run.
GRPC_METRICS = ("grpc_rps", "grpc_rate_p50_us", "grpc_rate_p99_us", "grpc_requests")
GRPC_RATIOS = ("grpc_rps_vs_direct", "grpc_rps_vs_haproxy", "agent_grpc_req_per_core_s", "haproxy_grpc_req_per_core_s")


class BenchSmoke(unittest.TestCase):
    def test_tiny_run(self):
        if os.geteuid() != 0:
            self.skipTest("needs root (simulated cluster)")
        with tempfile.TemporaryDirectory(prefix="zm-bench-smoke-") as tmp:
            out = Path(tmp) / "bench.json"
            res = subprocess.run([sys.executable, str(HERE / "dataplane.py"), "--tiny", "--json", str(out)],
                                 capture_output=True, text=True, timeout=280)
            self.assertEqual(res.returncode, 0, res.stderr[-3000:] + res.stdout[-2000:])
            report = json.loads(out.read_text())
        for key in ("date", "machine", "config", "raw", "median", "min", "max", "memory", "ratios", "goals"):
            self.assertIn(key, report)
        for path in PATHS:
            for m in METRICS:
                for section in ("median", "min", "max"):
                    v = report[section][path][m]
                    self.assertGreater(v, 0, f"{section}.{path}.{m}")
                self.assertEqual(len(report["raw"][path][m]), 1)
        for path in ("zeromesh", "haproxy"):
            self.assertGreater(report["median"][path]["proxy_cpu_core_s_per_gb"], 0)
            mem = report["memory"][path]
            self.assertTrue(all(v > 0 for v in mem["rss_1000_mb"] + mem["peak_hwm_mb"]), mem)
            self.assertEqual(mem["hold"]["open"], report["config"]["hold"], mem)
        r = report["ratios"]
        for k in POSITIVE_RATIOS:
            self.assertGreater(r[k], 0, k)
        for k in ADDED:
            self.assertTrue(math.isfinite(r[k]), k)
        self.assertEqual(len(report["goals"]), 14)  # issue 19's data-plane goals, each with its value
        for g in report["goals"].values():
            self.assertIsInstance(g["met"], bool)
        cfg = report["config"]
        self.assertEqual(cfg["agent_workers"], cfg["haproxy_nbthread"])
        # The agents' --sockmap (the chart's default unless ZM_SOCKMAP says otherwise), in both parts.
        self.assertIn(cfg["sockmap_mode"], ("off", "on", "from-pod", "both"))
        self.assertEqual(report["l7"]["config"]["sockmap_mode"], cfg["sockmap_mode"])
        self.assertEqual(len(cfg["loadavg_start"]), 3)
        # L7: HTTP/1.1 through the three paths in the same run, the mesh leg's path recorded from the probe.
        l7 = report["l7"]
        self.assertIn(l7["mesh_path"], ("l7", "l4"))
        self.assertEqual(l7["config"]["agent_workers"], l7["config"]["haproxy_nbthread"])
        for path in PATHS:
            for m in L7_METRICS:
                self.assertGreater(l7["median"][path][m], 0, f"l7.median.{path}.{m}")
        for path in ("zeromesh", "haproxy"):
            self.assertGreater(l7["median"][path]["proxy_cpu_s"], 0, f"l7 {path} proxy CPU")
        for k in L7_RATIOS:
            self.assertGreater(l7["ratios"][k], 0, f"l7.ratios.{k}")
        # gRPC through the same three paths; the mesh leg must be the per-stream L7 path (the GRPCRoute's header
        # came back as response metadata), since that is what the figures are meant to show.
        self.assertEqual(l7["grpc"]["mesh_path"], "l7", l7["grpc"])
        self.assertEqual(l7["grpc"]["mesh_path_end"], "l7", l7["grpc"])
        for path in PATHS:
            for m in GRPC_METRICS:
                self.assertGreater(l7["median"][path][m], 0, f"l7.median.{path}.{m}")
        for path in ("zeromesh", "haproxy"):
            self.assertGreater(l7["median"][path]["grpc_proxy_cpu_s"], 0, f"l7 {path} gRPC proxy CPU")
        for k in GRPC_RATIOS:
            self.assertGreater(l7["ratios"][k], 0, f"l7.ratios.{k}")
        # The steady load really ran at its rate through every path (zm-steady fails when an answer is missing).
        for path in PATHS:
            self.assertGreater(report["median"][path]["steady_rate"], 0.9 * cfg["steady"]["rate"], path)

    def test_relay_floor(self):
        """bench/floor.py (zm-relay, the plaintext read/write relay pair, beside the other paths): one round of 1 s.
        Every path moved bytes and answered at the steady rate, and the relay's goal figures are numbers."""
        if os.geteuid() != 0:
            self.skipTest("needs root (simulated cluster)")
        with tempfile.TemporaryDirectory(prefix="zm-bench-floor-") as tmp:
            out = Path(tmp) / "floor.json"
            res = subprocess.run([sys.executable, str(HERE / "floor.py"), "--rounds", "1", "--seconds", "1", "--json",
                                  str(out)], capture_output=True, text=True, timeout=200)
            self.assertEqual(res.returncode, 0, res.stderr[-3000:] + res.stdout[-2000:])
            report = json.loads(out.read_text())
        self.assertEqual(report["paths"], ["direct", "relay", "zeromesh", "haproxy"])
        for path in report["paths"]:
            for m in ("throughput_1_gbps", "throughput_8_gbps", "rr1_p50_us", "conn_per_s"):
                self.assertGreater(report["median"][path][m], 0, f"{path}.{m}")
            self.assertGreater(report["median"][path]["steady_rate"], 900, path)
        relay = report["figures"]["relay"]
        self.assertGreater(relay["agent_cpu_core_s_per_gb"], 0)
        self.assertGreater(relay["agent_vcpu_1000rps"], 0)
        self.assertTrue(all(math.isfinite(v) for v in relay.values()), relay)
        self.assertEqual(len(report["goals"]), 9)  # the goals with a numeric target that a relay can be held to


if __name__ == "__main__":
    unittest.main(verbosity=2)
