"""Issue 6 acceptance 3-6 (ServicePolicy) on the simulated cluster with the real controller and agents:
(3) an endpoint killed mid-test: no client connection fails (connects are retried elsewhere), it is ejected, and it
    returns after recovery;
(4) rate limit 50/s burst 10 at the destination node: of 5 s of 200/s attempts the accepted stay within 10% of the
    limit, the rest are refused at once, and the counters match;
(5) maxConnections 100: the 101st concurrent connection is refused at once and counted; after one closes a new one
    fits;
(6) connect timeout: a blackholed endpoint costs at most the configured timeout before the retry elsewhere;
(7) idle timeout: a quiet connection is reset, a busy one is not.
"""

import json
import subprocess
import sys
import time
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from traffic_env import NS, POLLER, VIP, VIP_V2, TrafficEnv  # noqa: E402

VIP_FLAKY = "10.96.0.30"

# Connection attempts at RATE per second for SECONDS (a thread pool keeps the schedule); prints counts and the slowest
# refusal.
RATE = r"""
import json, socket, sys, threading, time
host, port, rate, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
n = int(rate * secs)
lock = threading.Lock()
st = {"next": 0, "ok": 0, "refused": 0, "max_refused_s": 0.0, "max_ok_s": 0.0}
t0 = time.monotonic()
def one():
    c = socket.create_connection((host, port), timeout=3)
    c.sendall(b"PEER\n")
    buf = b""
    while True:
        d = c.recv(4096)
        if not d:
            break
        buf += d
    c.close()
    return bool(buf)
def worker():
    while True:
        with lock:
            i = st["next"]
            if i >= n:
                return
            st["next"] += 1
        delay = t0 + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        a = time.monotonic()
        try:
            ok = one()
        except OSError:
            ok = False
        d = time.monotonic() - a
        with lock:
            if ok:
                st["ok"] += 1
                st["max_ok_s"] = max(st["max_ok_s"], d)
            else:
                st["refused"] += 1
                st["max_refused_s"] = max(st["max_refused_s"], d)
ts = [threading.Thread(target=worker) for _ in range(32)]
[t.start() for t in ts]
[t.join() for t in ts]
st["seconds"] = round(time.monotonic() - t0, 3)
print(json.dumps(st))
"""

# Holds N echo connections open, then tries one more (expected refused), closes one and tries again.
HOLD = r"""
import json, socket, sys, time
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def open_echo():
    c = socket.create_connection((host, port), timeout=5)
    c.sendall(b"ECHO\nhello")
    got = b""
    while len(got) < 5:
        d = c.recv(5 - len(got))
        if not d:
            raise OSError("closed")
        got += d
    return c
def attempt():
    a = time.monotonic()
    try:
        c = open_echo()
        c.close()
        return {"ok": True, "seconds": round(time.monotonic() - a, 3)}
    except OSError as e:
        return {"ok": False, "error": repr(e), "seconds": round(time.monotonic() - a, 3)}
held, errors = [], []
for i in range(n):
    try:
        held.append(open_echo())
    except OSError as e:
        errors.append(repr(e))
over = attempt()
held.pop().close()
time.sleep(0.3)
after = attempt()
for c in held:
    c.close()
print(json.dumps({"held": len(held) + 1, "errors": errors[:5], "over": over, "after_close": after}))
"""


# Two echo connections: one pings every 100 ms, the other pings once, stays quiet for QUIET seconds, then pings again.
IDLE = r"""
import json, socket, sys, time
host, port, quiet = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
def conn():
    c = socket.create_connection((host, port), timeout=5)
    c.sendall(b"ECHO\n")
    return c
def ping(c, msg=b"ping\n"):
    try:
        c.sendall(msg)
        got = b""
        while len(got) < len(msg):
            d = c.recv(len(msg) - len(got))
            if not d:
                return "closed"
            got += d
        return "ok"
    except OSError as e:
        return type(e).__name__
busy, idle = conn(), conn()
first = ping(idle)
end = time.time() + quiet
busy_results = set()
while time.time() < end:
    busy_results.add(ping(busy))
    time.sleep(0.1)
print(json.dumps({"idle_first": first, "idle_after": ping(idle), "busy": sorted(busy_results)}))
"""


class ResilienceTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.env = TrafficEnv(holes=True)
        env = cls.env
        env.service("flaky", VIP_FLAKY, None, endpoints=[env.holes[0].ip, env.holes[1].ip, env.b3.ip])

    @classmethod
    def tearDownClass(cls):
        cls.env.down()

    def tearDown(self):
        env = self.env
        env.remove_glob("policy-*.yaml")
        for name in ("backend", "backend-v2", "flaky"):
            env.wait_dump(env.node1, name, lambda s: not s["policy"]["name"])

    def test_3_killed_endpoint_is_retried_ejected_and_returns(self):
        env = self.env
        env.policy("backend", "backend", {
            "connectTimeout": "1s", "retries": {"attempts": 2},
            "outlierDetection": {"consecutiveFailures": 2, "baseEjectionTime": "1s", "maxEjectionPercent": 50}})
        env.wait_dump(env.node1, "backend", lambda s: s["policy"]["retries"]["attempts"] == 2)
        poller = env.cluster.popen(env.client, [sys.executable, "-c", POLLER, VIP, "80", "9"],
                                   stdout=subprocess.PIPE, text=True)
        try:
            time.sleep(1.5)
            killed_at = time.time()
            env.refuse_new(env.b2, 8080, True)  # no new connections from now on...
            time.sleep(0.3)
            env.kill_server(env.b2, 8080)  # ...and then the process dies (no connection is cut mid-request)
            ep = env.wait_dump(env.node1, "backend", lambda s: any(
                e["live"]["8080"]["ejected"] for e in s["endpoints"] if e["ip"] == env.b2.ip), timeout=5)
            print(f"ejected: {json.dumps([e for e in ep['endpoints'] if e['ip'] == env.b2.ip])}", file=sys.stderr)
            time.sleep(2.0)
        finally:
            # Recovery (also when the test failed above: later tests need b2).
            env.refuse_new(env.b2, 8080, False)
            if ("b2", 8080) not in env.servers:
                env.start_server(env.b2, 8080)
            recovered_at = time.time()
            samples = [line.split() for line in poller.communicate(timeout=60)[0].splitlines()]
        names = env.ip_names()
        seen = [(float(t), names.get(addr.rsplit(":", 1)[0], addr)) for t, addr in samples]
        errors = [s for s in seen if s[1] == "ERR"]
        self.assertFalse(errors, f"{len(errors)} failed connections: {errors[:5]}\n{env.cp.log('agent-node1', 3000)}")
        self.assertTrue(any(n == "b2" for t, n in seen if t < killed_at), seen[:20])
        self.assertTrue(any(n == "b2" for t, n in seen if t > recovered_at), "b2 never came back: " +
                        str([s for s in seen if s[0] > recovered_at][:30]))
        retries = env.metric(env.node1, "zeromesh_connect_retries_total")
        self.assertGreater(retries, 0)

    def test_4_rate_limit_at_the_destination_node(self):
        env = self.env
        env.policy("v2-rate", "backend-v2", {"rateLimit": {"connectionsPerSecond": 50, "burst": 10}})
        env.wait_dump(env.node2, "backend-v2", lambda s: s["policy"]["rateLimit"]["connectionsPerSecond"] == 50)
        before = env.metric(env.node2, "zeromesh_ratelimit_rejections_total")
        res = env.cluster.run(env.client, [sys.executable, "-c", RATE, VIP_V2, "80", "200", "5"], text=True,
                              timeout=120)
        out = json.loads(res.stdout)
        print(f"rate limit: {out}", file=sys.stderr)
        limit = 50 * out["seconds"] + 10  # sustained rate over the run plus the burst
        self.assertEqual(out["ok"] + out["refused"], 1000, out)
        self.assertLess(abs(out["ok"] - limit), 0.1 * limit, out)
        self.assertLess(out["max_refused_s"], 0.5, out)  # refused promptly, never after a timeout
        rejected = env.metric(env.node2, "zeromesh_ratelimit_rejections_total") - before
        self.assertEqual(rejected, out["refused"], out)
        dump = env.dump_service(env.node2, "backend-v2")
        self.assertGreaterEqual(dump["rateLimitRejections"], out["refused"])

    def test_5_circuit_breaker_max_connections(self):
        env = self.env
        env.policy("backend", "backend", {"circuitBreaker": {"maxConnections": 100}})
        env.wait_dump(env.node1, "backend", lambda s: s["policy"]["circuitBreaker"]["maxConnections"] == 100)
        before = env.dump_service(env.node1, "backend")["circuitBreakerRejections"]
        metric_before = env.metric(env.node1, "zeromesh_circuit_breaker_rejections_total")
        res = env.cluster.run(env.client, [sys.executable, "-c", HOLD, VIP, "80", "100"], text=True, timeout=120)
        out = json.loads(res.stdout)
        print(f"circuit breaker: {out}", file=sys.stderr)
        self.assertEqual(out["errors"], [], out)
        self.assertFalse(out["over"]["ok"], out)
        self.assertLess(out["over"]["seconds"], 0.5, out)
        self.assertTrue(out["after_close"]["ok"], out)
        self.assertEqual(env.dump_service(env.node1, "backend")["circuitBreakerRejections"] - before, 1)
        self.assertEqual(env.metric(env.node1, "zeromesh_circuit_breaker_rejections_total") - metric_before, 1)

    def test_6_connect_timeout_bounds_the_cost_of_a_blackholed_endpoint(self):
        env = self.env
        env.policy("flaky", "flaky", {"connectTimeout": "300ms", "retries": {"attempts": 2}})
        env.wait_dump(env.node1, "flaky", lambda s: s["policy"]["connectTimeoutMs"] == 300)
        out = env.conns(VIP_FLAKY, 80, 30, conc=3)
        print(f"blackholed endpoints: {out}", file=sys.stderr)
        self.assertEqual(out["failed"], 0, out)
        self.assertEqual(env.named(out["by_server"]), {"b3": 30})
        # Round robin over [hole1 (same node), hole2 (HBONE), b3]: some connections met both holes first.
        self.assertGreaterEqual(out["max_connect_s"], 0.6, out)
        self.assertLess(out["max_connect_s"], 2 * 0.3 + 0.4, out)


    def test_7_idle_timeout_closes_quiet_connections_only(self):
        env = self.env
        env.policy("backend", "backend", {"idleTimeout": "1s"})
        env.wait_dump(env.node1, "backend", lambda s: s["policy"]["idleTimeoutMs"] == 1000)
        res = env.cluster.run(env.client, [sys.executable, "-c", IDLE, VIP, "80", "2.5"], text=True, timeout=60)
        out = json.loads(res.stdout)
        print(f"idle timeout: {out}", file=sys.stderr)
        self.assertEqual(out["idle_first"], "ok", out)
        self.assertNotEqual(out["idle_after"], "ok", out)  # reset after >= 1 s without a byte
        self.assertEqual(out["busy"], ["ok"], out)


if __name__ == "__main__":
    unittest.main(verbosity=2)
