"""Agent observability on the simulated cluster: /metrics, /readyz, the debug port, the access log, and (when Debian's
prometheus is installed) a real Prometheus scraping both agents.

Topology (2 nodes, STRICT):
  node1: bulkc (enrolled, sa "bulkc"), plain1 (known, not enrolled)
  node2: bulks (enrolled, sa "bulks")
setUpClass sends exactly BULK bytes bulkc -> bulks through the mesh once; those two pods carry no other traffic, so
the metrics of that workload pair must account for exactly that connection.
"""

import json
import re
import shutil
import subprocess
import sys
import time
import unittest
import urllib.parse
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "cluster"))
from cluster_case import ClusterCase  # noqa: E402
from mesh import Mesh  # noqa: E402
import needs  # noqa: E402

PODTOOL = str(Path(__file__).resolve().parents[2] / "cluster" / "podtool.py")
PORT = 8080
BULK = 3_000_000 + 12345
SENT = BULK + len(b"SINK\n")  # podtool's bulk starts with a command line
RECEIVED = 64 + 1 + len(str(BULK)) + 1  # "<sha256 hex> <count>\n"
METRICS_PORT = 15020
ADMIN_PORT = 15000
LABEL_RE = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text: str) -> list[tuple[str, dict, float]]:
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s+(\S+)$", line)
        if not m:
            raise AssertionError(f"unparsable metrics line: {line!r}")
        labels = dict(LABEL_RE.findall(m.group(2) or ""))
        out.append((m.group(1), labels, float(m.group(3))))
    return out


def select(samples, name: str, **labels) -> list[float]:
    return [v for n, l, v in samples if n == name and all(l.get(k) == want for k, want in labels.items())]


class AgentMetricsTest(ClusterCase):
    TMP_PREFIX = "zm-obs-"

    @classmethod
    def set_up_cluster(cls, c, tmp):
        cls.node1, cls.node2 = c.node("node1"), c.node("node2")
        cls.bulkc = c.add_pod("node1", "bulkc")
        cls.plain1 = c.add_pod("node1", "plain1")
        cls.bulks = c.add_pod("node2", "bulks")
        cls.mesh = Mesh(c, tmp)
        cls.mesh.add_workload(cls.bulkc, sa="bulkc")
        cls.mesh.add_workload(cls.plain1, enrolled=False)
        cls.mesh.add_workload(cls.bulks, sa="bulks")
        c.popen(cls.bulks, [sys.executable, PODTOOL, "serve", str(PORT)], stdout=subprocess.DEVNULL)
        cls.mesh.start_agents()
        c.wait_tcp(cls.bulks, cls.bulks.ip, PORT)  # from the pod itself (loopback): not captured
        res = c.run(cls.bulkc, [sys.executable, PODTOOL, "bulk", cls.bulks.ip, str(PORT), str(BULK)], text=True,
                    timeout=120)
        cls.bulk_result = json.loads(res.stdout) if res.returncode == 0 else {"error": res.stderr}

    # ---- helpers ---------------------------------------------------------------------------------------------------
    def http(self, where, url: str, timeout: float = 5) -> tuple[int, str]:
        """GET from inside a node or pod netns; (status, body), status 0 when the connection failed."""
        res = self.cluster.run(where, ["curl", "-sS", "--max-time", str(timeout), "-w", "\n%{http_code}", url],
                               text=True, timeout=timeout + 10)
        body, _, code = res.stdout.rpartition("\n")
        return (int(code) if code.isdigit() else 0), body

    def scrape(self, node) -> str:
        status, body = self.http(node, f"http://{node.ip}:{METRICS_PORT}/metrics")
        self.assertEqual(status, 200, body[-500:])
        return body

    def pair_samples(self, node, name: str, reporter: str) -> list[float]:
        return select(parse_metrics(self.scrape(node)), name, reporter=reporter, source_workload="bulkc",
                      destination_workload="bulks", source_namespace="default", destination_namespace="default")

    def wait_closed(self, node, reporter: str, timeout: float = 10) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.pair_samples(node, "zeromesh_tcp_connections_closed_total", reporter) == [1.0]:
                return
            time.sleep(0.2)
        self.fail(f"{node.name}: no closed connection for bulkc->bulks ({reporter}):\n{self.scrape(node)[-3000:]}")

    def access_lines(self, node) -> list[dict]:
        out = []
        for line in self.full_log(node).splitlines():
            if '"msg":"access"' in line:
                out.append(json.loads(line))
        return out

    def full_log(self, node) -> str:
        return (Path(self.tmp.name) / f"agent-{node.name}.log").read_text(errors="replace")

    # ---- tests -----------------------------------------------------------------------------------------------------
    def test_bulk_transfer_went_through(self):
        self.assertTrue(self.bulk_result.get("ok"), self.bulk_result)

    def test_healthz_and_readyz_after_agent_ready(self):
        for node in (self.node1, self.node2):
            self.assertIn('"msg":"agent ready"', self.full_log(node))
            status, body = self.http(node, f"http://{node.ip}:{METRICS_PORT}/readyz")
            self.assertEqual((status, body.strip()), (200, "ready"), body)
            status, body = self.http(node, f"http://{node.ip}:{METRICS_PORT}/healthz")
            self.assertEqual(status, 200, body)
            samples = parse_metrics(self.scrape(node))
            self.assertEqual(select(samples, "zeromesh_agent_ready"), [1.0])
            self.assertEqual(select(samples, "zeromesh_bpf_programs_attached", role="uplink"), [1.0])
            # 3 per family the node captures (IPv4, and IPv6 where the node has it): all of them present.
            expected = select(samples, "zeromesh_bpf_listeners_expected")
            self.assertIn(expected, ([3.0], [6.0]))
            self.assertEqual(select(samples, "zeromesh_bpf_listeners_in_sockmap"), expected)
            # Every local pod's veth carries the program.
            local = {"node1": 2, "node2": 1}[node.name]
            self.assertEqual(select(samples, "zeromesh_local_pods"), [float(local)])
            self.assertEqual(select(samples, "zeromesh_pod_veths_attached"), [float(local)])
            self.assertGreaterEqual(select(samples, "zeromesh_config_version")[0], 1)
            expiry = select(samples, "zeromesh_certificate_expiry_seconds")
            self.assertEqual(len(expiry), 1)
            self.assertTrue(0 < expiry[0] <= 86400, expiry)  # the test CA signs for one day
            self.assertEqual(select(samples, "zeromesh_controller_connected"), [], "local-config mode: no stream")

    def test_bytes_match_what_was_sent(self):
        self.assertTrue(self.bulk_result.get("ok"), self.bulk_result)
        self.assertEqual(self.bulk_result["bytes"], BULK)
        for node, reporter in ((self.node1, "source"), (self.node2, "destination")):
            self.wait_closed(node, reporter)
            sent = self.pair_samples(node, "zeromesh_tcp_sent_bytes_total", reporter)
            received = self.pair_samples(node, "zeromesh_tcp_received_bytes_total", reporter)
            opened = self.pair_samples(node, "zeromesh_tcp_connections_opened_total", reporter)
            self.assertEqual(opened, [1.0], node.name)
            self.assertEqual(len(sent), 1, node.name)
            self.assertLessEqual(abs(sent[0] - SENT), SENT * 0.01, f"{node.name}: sent {sent[0]} vs {SENT}")
            self.assertEqual(received, [float(RECEIVED)], node.name)
            samples = parse_metrics(self.scrape(node))
            count = select(samples, "zeromesh_tcp_connection_duration_seconds_count", reporter=reporter,
                           source_workload="bulkc", destination_workload="bulks")
            self.assertEqual(count, [1.0], node.name)
            principal = select(samples, "zeromesh_tcp_sent_bytes_total", reporter=reporter,
                               source_principal="spiffe://cluster.local/ns/default/sa/bulkc",
                               destination_principal="spiffe://cluster.local/ns/default/sa/bulks")
            self.assertEqual(len(principal), 1, f"{node.name}: principals missing")

    def test_promtool_accepts_the_exposition(self):
        promtool = shutil.which("promtool")
        if not promtool:
            needs.missing("promtool not installed (Debian package prometheus)")
        for node in (self.node1, self.node2):
            text = self.scrape(node)
            res = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True,
                                 timeout=30)
            self.assertEqual(res.returncode, 0, f"{node.name}: {res.stdout}{res.stderr}")
            for name in ("zeromesh_tcp_connections_opened_total", "zeromesh_tcp_connections_closed_total",
                         "zeromesh_tcp_sent_bytes_total", "zeromesh_tcp_received_bytes_total",
                         "zeromesh_tls_handshake_failures_total",
                         "zeromesh_bpf_captured_total", "zeromesh_proxy_accepted_total"):
                self.assertIn(f"# TYPE {name} counter", text)
            self.assertIn("# TYPE zeromesh_tcp_connection_duration_seconds histogram", text)

    def test_access_log_line_for_the_connection(self):
        for node, reporter in ((self.node1, "source"), (self.node2, "destination")):
            deadline = time.time() + 10
            lines = []
            while time.time() < deadline:
                lines = [l for l in self.access_lines(node)
                         if l.get("src.workload") == "bulkc" and l.get("dst.workload") == "bulks"]
                if lines:
                    break
                time.sleep(0.2)
            self.assertEqual(len(lines), 1, f"{node.name}: {lines}\n{self.full_log(node)[-2000:]}")
            line = lines[0]
            self.assertEqual(line["reporter"], reporter)
            self.assertEqual(line["src.identity"], "spiffe://cluster.local/ns/default/sa/bulkc")
            self.assertEqual(line["dst.identity"], "spiffe://cluster.local/ns/default/sa/bulks")
            self.assertEqual(line["dst.addr"], f"{self.bulks.ip}:{PORT}")
            self.assertTrue(line["src.addr"].startswith(self.bulkc.ip), line)
            self.assertEqual(line["bytes_sent"], SENT)
            self.assertEqual(line["bytes_received"], RECEIVED)
            self.assertEqual(line["decision"], "allow")
            self.assertNotIn("error", line)
            self.assertGreater(line["duration_ms"], 0)
            self.assertTrue(line["time"].endswith("Z"))

    def test_debug_endpoints_are_node_local(self):
        # From the node: the debug port answers on loopback.
        status, body = self.http(self.node1, f"http://127.0.0.1:{ADMIN_PORT}/debug/config_dump")
        self.assertEqual(status, 200, body)
        dump = json.loads(body)
        self.assertEqual(dump["snapshot"]["node"], "node1")
        self.assertIn("bulkc", [w["name"] for w in dump["snapshot"]["workloads"]])
        self.assertIn("spiffe://cluster.local/ns/default/sa/bulkc", [i["identity"] for i in dump["local_identities"]])
        self.assertIn("uplink", [a["role"] for a in dump["bpf"]["attachments"]])
        self.assertEqual(dump["bpf"]["listeners"], {"outbound": True, "hbone": True, "plaintext": True})
        # The IPv6 slots hold the proxy's IPv6 listeners exactly when the agent expects 6 (a node with IPv6).
        six = select(parse_metrics(self.scrape(self.node1)), "zeromesh_bpf_listeners_expected") == [6.0]
        self.assertEqual(dump["bpf"]["listeners6"], {"outbound": six, "hbone": six, "plaintext": six})
        self.assertGreaterEqual(dump["bpf"]["stats"]["captured_outbound"], 1)
        status, body = self.http(self.node1, f"http://127.0.0.1:{ADMIN_PORT}/debug/certs")
        self.assertEqual(status, 200, body)
        certs = json.loads(body)["certificates"]
        self.assertEqual([c["identity"] for c in certs], ["spiffe://cluster.local/ns/default/sa/bulkc"])
        self.assertTrue(certs[0]["present"] and certs[0]["serial"] and 0 < certs[0]["seconds_left"] <= 86400, certs)
        # Not on the node's addresses, so not from pods. The metrics port on the same address is the control: the
        # pod reaches the node fine, only the debug port is closed to it.
        gateway = self.node1.gateway  # the node side of every pod veth
        status, _ = self.http(self.plain1, f"http://{gateway}:{METRICS_PORT}/healthz")
        self.assertEqual(status, 200, "control: a pod reaches the node's metrics port")
        for pod in (self.plain1, self.bulkc):
            for addr in (gateway, self.node1.ip):
                status, body = self.http(pod, f"http://{addr}:{ADMIN_PORT}/debug/config_dump", timeout=3)
                self.assertEqual(status, 0, f"{pod.name} reached the debug port on {addr}: {body[:200]}")
        status, _ = self.http(self.node1, f"http://{self.node1.ip}:{ADMIN_PORT}/debug/config_dump", timeout=3)
        self.assertEqual(status, 0, "debug port bound beyond loopback")

    def test_strict_denial_is_counted_and_logged(self):
        res = self.cluster.run(self.plain1, [sys.executable, PODTOOL, "try", self.bulks.ip, str(PORT), "3"],
                               text=True, timeout=30)
        self.assertFalse(json.loads(res.stdout)["ok"], res.stdout)
        deadline = time.time() + 10
        denied, lines = [], []
        while time.time() < deadline:
            denied = select(parse_metrics(self.scrape(self.node2)), "zeromesh_policy_denials_total",
                            policy="builtin:strict-mode")
            lines = [l for l in self.access_lines(self.node2)
                     if l.get("decision") == "deny" and l["src.addr"].startswith(self.plain1.ip + ":")]
            if denied and lines:
                break
            time.sleep(0.2)
        self.assertTrue(denied and denied[0] >= 1, denied)
        self.assertTrue(lines, self.full_log(self.node2)[-2000:])
        self.assertEqual(lines[0]["policy"], "builtin:strict-mode")
        self.assertEqual(lines[0]["reporter"], "destination")

    def test_real_prometheus_scrapes_both_agents(self):
        prom = shutil.which("prometheus")
        if not prom:
            needs.missing("prometheus server not installed (Debian package prometheus)")
        self.wait_closed(self.node1, "source")
        self.wait_closed(self.node2, "destination")
        work = Path(self.tmp.name) / "prometheus"
        work.mkdir(exist_ok=True)
        cfg = work / "prometheus.yml"
        cfg.write_text("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                       "scrape_configs:\n  - job_name: zeromesh-agents\n    static_configs:\n"
                       f"      - targets: ['{self.node1.ip}:{METRICS_PORT}', '{self.node2.ip}:{METRICS_PORT}']\n")
        port = 19090
        log = open(work / "prometheus.log", "wb")
        p = self.cluster.popen(self.node1, [prom, f"--config.file={cfg}", f"--storage.tsdb.path={work / 'data'}",
                                            f"--web.listen-address=127.0.0.1:{port}"], stdout=log,
                               stderr=subprocess.STDOUT)
        try:
            query = ('sum by (reporter) (zeromesh_tcp_sent_bytes_total{source_workload="bulkc",'
                     'destination_workload="bulks"})')
            url = f"http://127.0.0.1:{port}/api/v1/query?query={urllib.parse.quote(query)}"
            deadline = time.time() + 60
            got = {}
            while time.time() < deadline and len(got) < 2:
                time.sleep(1)
                status, body = self.http(self.node1, url)
                if status != 200:
                    continue
                result = json.loads(body)["data"]["result"]
                got = {r["metric"]["reporter"]: float(r["value"][1]) for r in result}
            self.assertEqual(set(got), {"source", "destination"}, (work / "prometheus.log").read_text()[-2000:])
            for reporter, value in got.items():
                self.assertLessEqual(abs(value - SENT), SENT * 0.01, f"{reporter}: {value} vs {SENT}")
            status, body = self.http(self.node1, f"http://127.0.0.1:{port}/api/v1/query?query=up")
            ups = {r["metric"]["instance"]: r["value"][1] for r in json.loads(body)["data"]["result"]}
            self.assertEqual(ups, {f"{self.node1.ip}:{METRICS_PORT}": "1", f"{self.node2.ip}:{METRICS_PORT}": "1"})
        finally:
            p.terminate()
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
            log.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
