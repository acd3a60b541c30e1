"""A flood of idle connections at an agent's HBONE listener, on the simulated cluster (issue 15, "bounded everything").

node1's network namespace (a hostile node process) opens 10,050 TCP connections to the server pod's port 15008 on
node2 and never sends a byte. node2's agent runs with --hbone-handshake-timeout-ms 30000 and
--hbone-max-connections-per-peer 10000, so it holds 10,000 of them and refuses the 50 beyond the per-peer cap at once
(RST, zeromesh_proxy_hbone_peer_limit_refused_total). While the 10,000 are open, node2's agent still answers its
health probe (port 15021; two half-sent scrapes meanwhile stall its metrics port) and a meshed client->server request
still goes through both agents. Then every idle connection is closed by the handshake timeout: a FIN, no data, no
earlier than 30 s after it opened, counted in zeromesh_proxy_hbone_handshake_timeouts_total. The agent is still
serving afterwards.
"""

import json
import queue
import resource
import re
import subprocess
import sys
import threading
import time
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "cluster"))
import needs  # noqa: E402
from cluster_case import ClusterCase  # noqa: E402
from mesh import Mesh  # noqa: E402

PODTOOL = str(Path(__file__).resolve().parents[2] / "cluster" / "podtool.py")
PORT = 8080
HBONE_PORT, METRICS_PORT, HEALTH_PORT = 15008, 15020, 15021
HELD, EXTRA = 10_000, 50  # connections the agent holds (its per-peer cap), and the ones beyond it
HANDSHAKE_TIMEOUT_S = 30

# One connection: "echoed" when the server's echo came back (served end to end), else what happened.
TRY = ("import socket, sys\n"
       "s = socket.socket(); s.settimeout(float(sys.argv[3]))\n"
       "try:\n"
       "    s.connect((sys.argv[1], int(sys.argv[2])))\n"
       "    s.sendall(b'ECHO\\nzm-marker'); s.shutdown(socket.SHUT_WR)\n"
       "    print('echoed' if s.recv(100) == b'zm-marker' else 'connected, no echo')\n"
       "except OSError as e:\n"
       "    print('failed', type(e).__name__)\n")

# Opens N idle TCP connections to HOST:PORT one after the other, prints {"connected", "errors", "seconds"}, then watches
# them: each one's end is recorded as "eof" (FIN), "reset" (RST) or "data" (the peer sent bytes), with its lifetime.
# A "status" line on stdin prints the counts; stdin closing ends it.
FLOOD = r"""
import json, resource, select, socket, sys, time
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
open_, errors = {}, {}
ended = {"eof": [], "reset": [], "data": []}
t0 = time.monotonic()
for _ in range(n):
    s = socket.socket()
    s.settimeout(20)
    try:
        s.connect((host, port))
    except ConnectionResetError:  # connected, then reset before connect() returned: a refusal
        ended["reset"].append(0.0)
        s.close()
        continue
    except OSError as e:
        errors[type(e).__name__] = errors.get(type(e).__name__, 0) + 1
        s.close()
        continue
    s.setblocking(False)
    open_[s.fileno()] = (s, time.monotonic())
print(json.dumps({"connected": len(open_) + len(ended["reset"]), "errors": errors,
                  "seconds": round(time.monotonic() - t0, 2)}), flush=True)
ep = select.epoll()
for fd in open_:
    ep.register(fd, select.EPOLLIN | select.EPOLLRDHUP)
ep.register(sys.stdin.fileno(), select.EPOLLIN)
while True:
    for fd, _ in ep.poll(0.5):
        if fd == sys.stdin.fileno():
            line = sys.stdin.readline()
            if not line:
                sys.exit(0)
            eof = ended["eof"]
            print(json.dumps({"open": len(open_), **{k: len(v) for k, v in ended.items()},
                              "min_eof_life": min(eof) if eof else None, "max_eof_life": max(eof) if eof else None}),
                  flush=True)
            continue
        s, opened = open_.pop(fd)
        ep.unregister(fd)
        try:
            how = "data" if s.recv(1) else "eof"
        except ConnectionResetError:
            how = "reset"
        except OSError:
            how = "reset"
        ended[how].append(round(time.monotonic() - opened, 3))
        s.close()
"""

# Two half-sent scrapes of the metrics port, held until stdin closes.
STALL = r"""
import socket, sys
socks = []
for _ in range(2):
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
    s.sendall(b"GET /metrics HTTP/1.1\r\n")
    socks.append(s)
print("stalled", flush=True)
sys.stdin.read()
"""


class Helper:
    """A line-oriented helper process in a namespace: commands on stdin, one JSON (or text) line back per answer."""

    def __init__(self, cluster, where, script, *args):
        self.proc = cluster.popen(where, [sys.executable, "-c", script, *map(str, args)], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line.strip())
        self.lines.put(None)

    def line(self, timeout: float) -> str:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"helper gave no answer in {timeout}s") from None
        if line is None:
            raise AssertionError(f"helper exited {self.proc.wait()}: {self.proc.stderr.read()[-2000:]}")
        return line

    def ask(self, command: str = "status", timeout: float = 30) -> dict:
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return json.loads(self.line(timeout))

    def stop(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()


class ExhaustionTest(ClusterCase):
    TMP_PREFIX = "zm-exhaustion-"

    @classmethod
    def setUpClass(cls):
        # The flood's sockets and the agent's: raise the limit for this process and everything it starts (the agent also
        # raises its soft limit to the hard one). Raising the hard limit needs CAP_SYS_RESOURCE, which a container's
        # root may lack: then the hard limit must already be enough.
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (max(hard, 65536), max(hard, 65536)))
        except (ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        if resource.getrlimit(resource.RLIMIT_NOFILE)[1] < HELD + EXTRA + 1000:
            needs.missing(f"RLIMIT_NOFILE hard limit {hard} is below {HELD + EXTRA + 1000} and cannot be raised")
        super().setUpClass()

    @classmethod
    def set_up_cluster(cls, c, tmp):
        cls.client = c.add_pod("node1", "client")
        cls.server = c.add_pod("node2", "server")
        cls.mesh = Mesh(c, tmp)
        cls.mesh.add_workload(cls.client, sa="client")
        cls.mesh.add_workload(cls.server, sa="server")
        cls.mesh.agent_args["node2"] = ["--hbone-handshake-timeout-ms", str(HANDSHAKE_TIMEOUT_S * 1000),
                                        "--hbone-max-connections-per-peer", str(HELD)]
        c.popen(cls.server, [sys.executable, PODTOOL, "serve", str(PORT)], stdout=subprocess.DEVNULL)
        cls.mesh.start_agents()
        c.wait_tcp(cls.server, cls.server.ip, PORT)

    @classmethod
    def tear_down_cluster(cls):
        for node in list(cls.mesh.agents) if hasattr(cls, "mesh") else []:
            cls.mesh.kill_agent(cls.cluster.node(node))

    def meshed_request(self) -> str:
        res = self.cluster.run(self.client, [sys.executable, "-c", TRY, self.server.ip, str(PORT), "10"], text=True,
                               timeout=60)
        return res.stdout.strip()

    def http(self, node, port: int, path: str) -> tuple[int, str]:
        res = self.cluster.run(node, ["curl", "-sS", "--max-time", "5", "-w", "\n%{http_code}",
                                      f"http://{node.ip}:{port}{path}"], text=True, timeout=30)
        body, _, code = res.stdout.rpartition("\n")
        return (int(code) if code.isdigit() else 0), body

    def metric(self, node, name: str) -> float:
        status, body = self.http(node, METRICS_PORT, "/metrics")
        self.assertEqual(status, 200, body[-500:])
        m = re.search("^" + re.escape(name) + r" (\S+)$", body, re.M)
        self.assertIsNotNone(m, f"{name} not exported")
        return float(m.group(1))

    def test_ten_thousand_idle_connections(self):
        c = self.cluster
        node1, node2 = c.node("node1"), c.node("node2")
        self.assertEqual(self.meshed_request(), "echoed")  # the control, before the flood
        accepted = 'zeromesh_proxy_accepted_total{listener="hbone"}'
        timeouts = "zeromesh_proxy_hbone_handshake_timeouts_total"
        refused = "zeromesh_proxy_hbone_peer_limit_refused_total"
        before = {m: self.metric(node2, m) for m in (accepted, timeouts, refused)}

        flood = Helper(c, node1, FLOOD, self.server.ip, HBONE_PORT, HELD + EXTRA)
        self.addCleanup(flood.stop)
        opened = json.loads(flood.line(timeout=240))
        self.assertEqual((opened["connected"], opened["errors"]), (HELD + EXTRA, {}), opened)
        print(f"opened {opened['connected']} connections in {opened['seconds']} s", file=sys.stderr)

        # While they are held: the probe answers with the metrics port stalled, and the mesh serves.
        stall = Helper(c, node1, STALL, node2.ip, METRICS_PORT)
        self.addCleanup(stall.stop)
        self.assertEqual(stall.line(timeout=30), "stalled")
        self.assertEqual(self.http(node2, HEALTH_PORT, "/healthz")[0], 200)
        self.assertEqual(self.http(node2, HEALTH_PORT, "/readyz"), (200, "ready\n"))
        self.assertEqual(self.meshed_request(), "echoed")
        held = flood.ask()
        # Still held after those checks: none ended by a timeout yet, and exactly the extra ones were refused.
        self.assertEqual((held["open"], held["eof"], held["data"], held["reset"]), (HELD, 0, 0, EXTRA), held)
        stall.stop()
        self.assertGreaterEqual(self.metric(node2, accepted) - before[accepted], HELD + EXTRA)
        self.assertEqual(self.metric(node2, refused) - before[refused], EXTRA)
        self.assertEqual(self.metric(node2, timeouts) - before[timeouts], 0)

        # Then the handshake timeout closes every idle one (FIN), none before it was due.
        deadline = time.time() + HANDSHAKE_TIMEOUT_S + 120
        while time.time() < deadline:
            done = flood.ask()
            if done["open"] == 0:
                break
            time.sleep(2)
        self.assertEqual(done["open"], 0, done)
        self.assertEqual((done["eof"], done["reset"], done["data"]), (HELD, EXTRA, 0), done)
        self.assertGreaterEqual(done["min_eof_life"], HANDSHAKE_TIMEOUT_S - 0.5, done)
        self.assertEqual(self.metric(node2, timeouts) - before[timeouts], HELD)
        self.assertIsNone(self.mesh.agents["node2"].poll(), self.mesh.agent_log(node2))
        self.assertEqual(self.http(node2, HEALTH_PORT, "/readyz"), (200, "ready\n"))
        self.assertEqual(self.meshed_request(), "echoed")


if __name__ == "__main__":
    unittest.main(verbosity=2)
