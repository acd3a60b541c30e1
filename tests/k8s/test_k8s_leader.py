"""Leader election of mesh-controller through a coordination.k8s.io/v1 Lease, on a real kube-apiserver: of two replicas
running with nothing but the chart's ServiceAccount token (the chart's namespaced Role), exactly one holds the Lease,
binds the agents' gRPC port; the standby refuses connections, is ready but says "standby" on /readyz, and writes no
CRD status. SIGKILL the leader: the standby takes over within the lease duration of the killed leader's last renewal.
SIGTERM the leader: it releases the Lease and the standby takes over at its next poll. A leader whose Lease is taken
from it exits non-zero.

Timings (short, for the test): lease duration 4 s, renew deadline 3 s, retry period 1 s.
"""

import base64
import hashlib
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from apiserver import ApiError, ApiServer, free_port, stop_process  # noqa: E402
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cluster"))
import needs  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "zeromesh"
BUILD = Path(os.environ.get("ZM_BUILD_DIR", ROOT / "build" / "default"))
CONTROLLER_BIN = BUILD / "controller" / "mesh-controller"
NS = "zeromesh-system"
LEASE_NAME = "zeromesh-controller"  # the chart's name for release "zeromesh" (its Role allows only this Lease)
LEASE = f"/apis/coordination.k8s.io/v1/namespaces/{NS}/leases/{LEASE_NAME}"
MC = "/apis/zeromesh.io/v1alpha1/meshconfigs"
TOKEN = "0123456789abcdef0123456789"
LEASE_DURATION, RENEW_DEADLINE, RETRY_PERIOD = 4.0, 3.0, 1.0


def parse_time(s: str) -> float:
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


class Replica:
    def __init__(self, test_cls, name: str):
        self.name = name
        self.identity = f"{name}_{os.getpid()}"
        self.grpc_port = free_port()
        self.admin_port = free_port()
        self.log_path = test_cls.work / f"{name}.log"
        self.log_file = open(self.log_path, "wb")
        w = test_cls.work
        self.proc = subprocess.Popen(
            [str(CONTROLLER_BIN), "--kubeconfig", str(test_cls.kubeconfig), "--listen", f"127.0.0.1:{self.grpc_port}",
             "--ca-secret", f"{NS}/zeromesh-ca",  # both replicas race to create it: one wins, the other loads it
             "--join-tokens", str(w / "tokens.yaml"),
             "--admin-addr", f"127.0.0.1:{self.admin_port}", "--metrics-addr", "off", "--log-level", "debug",
             f"--leader-elect-lease-duration={LEASE_DURATION:g}s", f"--leader-elect-renew-deadline={RENEW_DEADLINE:g}s",
             f"--leader-elect-retry-period={RETRY_PERIOD:g}s", f"--leader-elect-namespace={NS}",
             f"--leader-elect-identity={self.identity}"],
            stdout=self.log_file, stderr=subprocess.STDOUT)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_lines(self, msg: str) -> list:
        out = []
        for line in self.log().splitlines():
            try:
                j = json.loads(line)
            except json.JSONDecodeError:
                continue
            if j.get("msg") == msg:
                out.append(j)
        return out

    def accepts(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.grpc_port), timeout=0.5):
                return True
        except OSError:
            return False

    def http(self, path: str):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}{path}", timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()
        except OSError as e:
            return 0, str(e)

    def metric(self, name: str):
        _, text = self.http("/metrics")
        for line in text.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.split()[-1])
        return None

    def stop(self):
        stop_process(self.proc)
        self.log_file.close()


class K8sLeaderTest(unittest.TestCase):
    replicas: dict = {}

    @classmethod
    def setUpClass(cls):
        if not CONTROLLER_BIN.exists():
            needs.missing(f"{CONTROLLER_BIN} is not built")
        cls.tmp = tempfile.TemporaryDirectory(prefix="zm-k8s-leader-")
        cls.work = Path(cls.tmp.name)
        cls.api = ApiServer()
        try:
            cls.api.start()
            cls.helm_install()
            cls.prepare_files()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        for r in cls.replicas.values():
            r.stop()
        cls.api.stop()
        cls.tmp.cleanup()

    @classmethod
    def helm_install(cls):
        cls.api.helm("install", "zeromesh", str(CHART), "--namespace", NS, "--create-namespace",
                     "--set", f"joinTokens.nodes.node-a.sha256={hashlib.sha256(TOKEN.encode()).hexdigest()}",
                     "--timeout", "120s", home=cls.work)

    @classmethod
    def prepare_files(cls):
        a = cls.api
        cls.sa_token = a.token(NS, "zeromesh-controller")
        cls.kubeconfig = a.token_kubeconfig(NS, "zeromesh-controller", cls.work / "controller.kubeconfig")
        join = a.request("GET", f"/api/v1/namespaces/{NS}/secrets/zeromesh-join-tokens")["data"]
        files = {"tokens.yaml": join["tokens.yaml"]}
        for name, data in files.items():
            (cls.work / name).write_bytes(base64.b64decode(data))
            (cls.work / name).chmod(0o600)
        a.create(MC, {"apiVersion": "zeromesh.io/v1alpha1", "kind": "MeshConfig", "metadata": {"name": "mesh"},
                      "spec": {"trustDomain": "k8s.test"}})

    # ---- helpers ---------------------------------------------------------------------------------------------------
    def start(self, name: str) -> Replica:
        r = Replica(type(self), name)
        type(self).replicas[name] = r
        return r

    def lease(self):
        try:
            return self.api.request("GET", LEASE)
        except ApiError as e:
            if e.status == 404:
                return None
            raise

    def holder(self) -> str:
        lease = self.lease()
        return (lease or {}).get("spec", {}).get("holderIdentity", "")

    def logs(self) -> str:
        return "\n".join(f"---- {n} (exit {r.proc.poll()}):\n{r.log()[-5000:]}" for n, r in self.replicas.items())

    def wait(self, what, fn, timeout=30.0, interval=0.05):
        deadline = time.time() + timeout
        while time.time() < deadline:
            v = fn()
            if v:
                return v
            time.sleep(interval)
        self.fail(f"timed out waiting for {what}\n{self.logs()}")

    def assert_leader(self, leader: Replica, standbys):
        self.wait(f"{leader.name} leads", lambda: self.holder() == leader.identity)
        self.wait(f"{leader.name} serves", leader.accepts)
        self.wait(f"{leader.name} ready", lambda: leader.http("/readyz")[0] == 200)
        self.assertEqual(leader.metric("zeromesh_controller_leader"), 1.0)
        dump = json.loads(leader.http("/debug/config_dump")[1])
        self.assertTrue(dump["leader_election"]["leading"])
        self.assertEqual(dump["leader_election"]["lease"], f"{NS}/{LEASE_NAME}")
        for s in standbys:
            self.assertIsNone(s.proc.poll(), s.log())
            self.assertFalse(s.accepts(), f"standby {s.name} accepts connections on its gRPC port")
            # Ready (so the PodDisruptionBudget and rollouts work) but says it stands by.
            want = f"standby: the lease {NS}/{LEASE_NAME} is held by {leader.identity}"
            self.wait(f"{s.name} /readyz says standby", lambda: want in s.http("/readyz")[1])
            self.assertEqual(s.http("/readyz")[0], 200)
            self.assertEqual(s.metric("zeromesh_controller_leader"), 0.0)

    # ---- tests -----------------------------------------------------------------------------------------------------
    def test_01_one_leader(self):
        a, b = self.start("a"), self.start("b")
        self.wait("a lease holder", lambda: self.holder() in (a.identity, b.identity))
        leader, standby = (a, b) if self.holder() == a.identity else (b, a)
        self.assert_leader(leader, [standby])
        lease = self.lease()["spec"]
        self.assertEqual(lease["leaseDurationSeconds"], int(LEASE_DURATION))
        self.assertRegex(lease["renewTime"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
        # The leader renews every retry period.
        first = lease["renewTime"]
        self.wait("a renewal", lambda: self.lease()["spec"]["renewTime"] != first, timeout=3 * RETRY_PERIOD)
        # The standby keeps its watches and compiled configuration warm, but leaves CRD status to the leader.
        self.wait("standby config warm", lambda: standby.log_lines("kubernetes configuration applied"))
        self.wait("MeshConfig status by the leader", lambda: leader.log_lines("status written"))
        self.assertEqual(standby.log_lines("status written"), [])
        self.assertEqual(len(leader.log_lines("became leader")), 1)
        self.assertEqual(standby.log_lines("became leader"), [])
        # The chart's Role: this Lease only (get/update), no other.
        with self.assertRaises(ApiError) as ctx:
            self.api.request("GET", LEASE.rsplit("/", 1)[0] + "/other", token=self.sa_token)
        self.assertEqual(ctx.exception.status, 403)
        type(self).leader, type(self).standby = leader, standby

    def test_02_sigkill_takeover_within_lease_duration(self):
        leader, standby = self.leader, self.standby
        time.sleep(random.uniform(0, RETRY_PERIOD))  # anywhere in the renewal cycle
        leader.proc.kill()
        killed_at = time.time()
        leader.proc.wait()
        last = self.lease()["spec"]  # nothing renews it any more
        last_renew = parse_time(last["renewTime"])
        self.wait("the standby takes the lease", lambda: self.holder() == standby.identity,
                  timeout=LEASE_DURATION + 5, interval=0.01)
        seen = time.time()
        now_lease = self.lease()["spec"]
        decided = parse_time(now_lease["acquireTime"])  # the standby's clock when it went for the lease
        self.wait("the new leader serves", standby.accepts, interval=0.01)
        serving = time.time()
        self.wait("the new leader is ready", lambda: standby.http("/readyz")[0] == 200, interval=0.01)
        print(f"\nSIGKILL takeover: last renewal -> takeover decision {decided - last_renew:.3f}s, "
              f"-> lease holder changed (seen by the test) {seen - last_renew:.3f}s, "
              f"-> serving {serving - last_renew:.3f}s; killed {killed_at - last_renew:.3f}s after the last renewal; "
              f"lease duration {LEASE_DURATION:g}s", flush=True)
        # Never before the lease expired (same clock here), and right when it does (the poll is scheduled at expiry).
        self.assertGreaterEqual(decided - last_renew, LEASE_DURATION - 0.05)
        self.assertLessEqual(decided - last_renew, LEASE_DURATION + 0.15)
        self.assertLessEqual(seen - last_renew, LEASE_DURATION + 0.3)
        self.assertEqual(now_lease["leaseTransitions"], last["leaseTransitions"] + 1)
        self.assert_leader(standby, [])
        self.assertEqual(standby.metric("zeromesh_controller_leader_transitions_total"), 1.0)
        type(self).leader = standby

    def test_03_sigterm_releases(self):
        leader = self.leader
        c = self.start("c")
        self.wait("c stands by", lambda: c.log_lines("lease holder observed"))
        self.assert_leader(leader, [c])
        leader.proc.terminate()
        term_at = time.time()
        self.wait("c takes the lease", lambda: self.holder() == c.identity, timeout=10, interval=0.01)
        seen = time.time()
        self.assertEqual(leader.proc.wait(timeout=15), 0, leader.log())
        released = leader.log_lines("lease released")
        self.assertEqual(len(released), 1, leader.log())
        released_at = parse_time(released[0]["ts"])
        decided = parse_time(self.lease()["spec"]["acquireTime"])
        print(f"\nSIGTERM handover: SIGTERM -> release {released_at - term_at:.3f}s, release -> takeover decision "
              f"{decided - released_at:.3f}s, SIGTERM -> lease holder changed {seen - term_at:.3f}s", flush=True)
        self.assertLessEqual(decided - released_at, RETRY_PERIOD + 0.2)  # the standby's next poll
        self.assertLess(seen - term_at, LEASE_DURATION)  # well before the lease would have expired
        self.assert_leader(c, [])
        type(self).leader = c

    def test_04_stolen_lease_exits_nonzero(self):
        leader = self.leader
        self.assert_leader(leader, [])
        lease = self.lease()
        now = datetime.utcnow().strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        lease["spec"].update({"holderIdentity": "intruder", "acquireTime": now, "renewTime": now,
                              "leaseDurationSeconds": 60})
        self.api.request("PUT", LEASE, lease)
        stolen_at = time.time()
        try:
            code = leader.proc.wait(timeout=RENEW_DEADLINE + 5)
        except subprocess.TimeoutExpired:
            self.fail(f"the leader kept running after its lease was taken\n{leader.log()[-4000:]}")
        print(f"\nstolen lease: leader exited with {code} after {time.time() - stolen_at:.3f}s", flush=True)
        self.assertNotEqual(code, 0)
        lost = leader.log_lines("leader election lost")
        self.assertEqual(len(lost), 1, leader.log())
        self.assertIn("held by intruder", lost[0]["reason"])
        self.assertEqual(self.holder(), "intruder")  # it did not write the Lease on its way out


if __name__ == "__main__":
    unittest.main(verbosity=2)
