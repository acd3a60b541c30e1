"""TLS refusals on the wire, with real agents (issue 15).

Our agent as HBONE server: a hand-made client on node1 connects to the server pod's port 15008 with no client
certificate, offering TLS 1.2 at most (with a valid certificate), or with an expired certificate (the mesh CA's, valid
chain, notAfter in the past). Each is refused in the handshake (the agent logs why; the client gets the alert, or the
reset behind it) and no CONNECT reaches the pod: the CONNECTs name a counting listener in the server pod that must see
no connection. The same client with a valid certificate is served (200, and the listener counts it), so a refusal is
never a harness that cannot succeed.

Our agent as HBONE client: node1 believes pod "rogue" on node2 is an enrolled workload of sa/server; node2 does not
enroll it, so a rogue HBONE server listens on rogue:15008. It presents an expired sa/server certificate, another SPIFFE
ID, a certificate of another CA or of another trust domain. The rogue records every TCP connection, every ClientHello
and the alert it got, so each refusal is proven to come from node1's agent after dialling the rogue and starting a
handshake with it, not from a failed connect; no application byte reaches it. With the real sa/server certificate
(the control) the handshake completes and the HTTP/2 preface and CONNECT arrive.
"""

import datetime
import json
import subprocess
import sys
import time
import unittest
from pathlib import Path

CLUSTER_DIR = Path(__file__).resolve().parents[2] / "cluster"
sys.path.insert(0, str(CLUSTER_DIR))
from cluster_case import ClusterCase  # noqa: E402
from mesh import Mesh, TestCA, openssl  # noqa: E402

PODTOOL = str(CLUSTER_DIR / "podtool.py")
PORT = 8080  # podtool serve in the server pod (readiness)
COUNTED_PORT = 8081  # the listener every probe CONNECTs to: counts what reaches the pod

# Accepts connections on a port, appends one line per connection to a file, reads until EOF and closes.
COUNTER = r"""
import socket, sys, threading
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("0.0.0.0", int(sys.argv[1])))
ls.listen(64)
print("listening", flush=True)
def drain(c):
    try:
        while c.recv(65536):
            pass
    except OSError:
        pass
    c.close()
while True:
    c, peer = ls.accept()
    with open(sys.argv[2], "a") as f:
        f.write(peer[0] + "\n")
    threading.Thread(target=drain, args=(c,), daemon=True).start()
"""

# One HBONE attempt: TLS (client certificate optional, TLS 1.2 at most on request), then a CONNECT; prints JSON.
CLIENT = r"""
import json, socket, ssl, sys
sys.path.insert(0, sys.argv[1])
from hbone_probe import PREFACE, frame, literal, read_frames
host, port, authority, mode, cert, key = sys.argv[2], int(sys.argv[3]), *sys.argv[4:8]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE  # the server's checks are under test, not ours
if mode == "tls12":
    ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_2
if mode != "nocert":
    ctx.load_cert_chain(cert, key)
ctx.set_alpn_protocols(["h2"])
out = {"handshake": False, "status": None}
try:
    s = ctx.wrap_socket(socket.create_connection((host, port), timeout=5))
    out["handshake"] = True
    out["version"] = s.version()
    s.sendall(PREFACE + frame(0x4, 0, 0, b"") +
              frame(0x1, 0x4, 1, literal(":method", "CONNECT") + literal(":authority", authority)))
    block = read_frames(s)
    if block is None:
        out["error"] = "closed without a response"
    else:
        out["status"] = "200" if block[:1] == b"\x88" else "other"
    s.close()
except (OSError, ssl.SSLError) as e:
    out["error"] = f"{type(e).__name__}: {e}"
print(json.dumps(out))
"""

# A rogue HBONE server: records each connection (source, whether a ClientHello came, the handshake's fate, what was
# received after it) into a JSON file, rewritten after every connection. Never answers a request.
ROGUE = r"""
import json, os, socket, ssl, sys
port, cert, key, outfile = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.minimum_version = ssl.TLSVersion.TLSv1_3
ctx.load_cert_chain(cert, key)
ctx.set_alpn_protocols(["h2"])
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("0.0.0.0", port))
ls.listen(16)
print("listening", flush=True)
seen = {"connections": 0, "client_hellos": 0, "handshakes": 0, "finished": 0, "bytes": 0, "data": "",
        "errors": [], "peers": []}
while True:
    c, peer = ls.accept()
    seen["connections"] += 1
    seen["peers"].append(peer[0])
    c.settimeout(3)
    handshake = False
    try:
        if c.recv(1, socket.MSG_PEEK) == b"\x16":  # a TLS handshake record: a ClientHello
            seen["client_hellos"] += 1
            s = ctx.wrap_socket(c, server_side=True)
            handshake = True
            seen["handshakes"] += 1
            while True:
                d = s.recv(65536)
                if not d:
                    break
                seen["bytes"] += len(d)
                seen["data"] += d.decode("latin-1")[:2000]
    except (OSError, ssl.SSLError) as e:
        if not handshake:
            seen["errors"].append(f"{type(e).__name__}: {e}")
    c.close()
    seen["finished"] += 1
    with open(outfile + ".tmp", "w") as f:
        json.dump(seen, f)
    os.replace(outfile + ".tmp", outfile)
"""


def issue_with_dates(ca: TestCA, uri: str, stem: str, not_before: datetime.datetime,
                     not_after: datetime.datetime) -> tuple[Path, Path]:
    """A leaf of |ca| for |uri| valid from |not_before| to |not_after| (`openssl ca`, which takes explicit dates)."""
    d = ca.dir / f"ca-{stem}"
    d.mkdir(parents=True, exist_ok=True)
    (d / "index.txt").write_text("")
    (d / "serial").write_text("1000\n")
    (d / "ca.cnf").write_text(f"""[ ca ]
default_ca = dated
[ dated ]
database = {d}/index.txt
new_certs_dir = {d}
serial = {d}/serial
default_md = sha256
policy = anything
unique_subject = no
[ anything ]
organizationName = optional
[ leaf ]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth,clientAuth
subjectAltName = critical,URI:{uri}
""")
    key, csr, crt = d / f"{stem}.key", d / f"{stem}.csr", d / f"{stem}.crt"
    fmt = "%Y%m%d%H%M%SZ"
    openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(key), cwd=d)
    openssl("req", "-new", "-key", str(key), "-out", str(csr), "-subj", "/O=zeromesh test", cwd=d)
    openssl("ca", "-batch", "-notext", "-config", str(d / "ca.cnf"), "-extensions", "leaf", "-cert", str(ca.cert),
            "-keyfile", str(ca.key), "-in", str(csr), "-out", str(crt), "-startdate", not_before.strftime(fmt),
            "-enddate", not_after.strftime(fmt), cwd=d)
    return crt, key


def verify_error(ca: TestCA, crt: Path) -> str:
    res = subprocess.run(["openssl", "verify", "-CAfile", str(ca.cert), str(crt)], capture_output=True, text=True)
    return res.stdout + res.stderr


class TlsRefusalsTest(ClusterCase):
    TMP_PREFIX = "zm-tls-refusals-"

    @classmethod
    def set_up_cluster(cls, c, tmp):
        cls.mesh = Mesh(c, tmp)
        m = cls.mesh
        # node1's view: rogue is sa/server; node2 does not enroll it
        cls.client, cls.server, cls.rogue = m.add_client_server_rogue(PORT)
        cls.counted = tmp / "counted.txt"
        cls.counted.write_text("")
        counter = c.popen(cls.server, [sys.executable, "-c", COUNTER, str(COUNTED_PORT), str(cls.counted)],
                          stdout=subprocess.PIPE, text=True)
        assert counter.stdout.readline().strip() == "listening"
        m.start_agents()
        c.wait_tcp(cls.server, cls.server.ip, PORT)
        ca, td = m.ca, m.trust_domain
        now = datetime.datetime.now(datetime.timezone.utc)
        past = (now - datetime.timedelta(hours=2), now - datetime.timedelta(minutes=1))
        cls.other_ca = TestCA(tmp / "other-ca", td, name="other-root")
        cls.certs = {
            "good_client": m.identities[ca.spiffe_id("default", "client")],
            "good_server": m.identities[ca.spiffe_id("default", "server")],
            "expired_client": issue_with_dates(ca, ca.spiffe_id("default", "client"), "expired-client", *past),
            "expired_server": issue_with_dates(ca, ca.spiffe_id("default", "server"), "expired-server", *past),
            "wrong_id": ca.issue(ca.spiffe_id("default", "not-the-server"), "wrong-id-server"),
            "other_ca": cls.other_ca.issue(ca.spiffe_id("default", "server"), "other-ca-server"),
            "other_td": ca.issue(ca.spiffe_id("default", "server", "evil.local"), "other-td-server"),
        }

    def logs(self) -> str:
        return (f"agent node1: {self.mesh.agent_log(self.cluster.node('node1'))[-2000:]}\n"
                f"agent node2: {self.mesh.agent_log(self.cluster.node('node2'))[-2000:]}")

    def reached_pod(self) -> int:
        return len(self.counted.read_text().splitlines())

    # --- our agent as HBONE server ----------------------------------------------------------------------------------
    def attempt(self, mode: str, cert_name: str = "good_client") -> dict:
        crt, key = self.certs[cert_name]
        res = self.cluster.run("node1", [sys.executable, "-c", CLIENT, str(CLUSTER_DIR), self.server.ip, "15008",
                                         f"{self.server.ip}:{COUNTED_PORT}", mode, str(crt), str(key)],
                               text=True, timeout=30)
        self.assertEqual(res.returncode, 0, res.stderr)
        return json.loads(res.stdout)

    def handshake_failures(self, node: str, role: str) -> list[str]:
        """The reasons of the agent's "hbone handshake failed" log lines for |role| (client/server), in order."""
        out = []
        for line in self.mesh.agent_log(self.cluster.node(node), tail=None).splitlines():
            if '"msg":"hbone handshake failed"' in line and f'"role":"{role}"' in line:
                try:
                    out.append(json.loads(line)["reason"])
                except (ValueError, KeyError):
                    pass
        return out

    def new_handshake_failure(self, node: str, role: str, before: int) -> list[str]:
        deadline = time.time() + 5
        while len(self.handshake_failures(node, role)) <= before and time.time() < deadline:
            time.sleep(0.05)
        return self.handshake_failures(node, role)[before:]

    def assert_refused(self, attempt, alert: str, reason: str):
        """|attempt| is refused in the handshake by node2's agent, which logs |reason|; no CONNECT reaches the pod."""
        reached, failed = self.reached_pod(), len(self.handshake_failures("node2", "server"))
        out = attempt()
        self.assertIsNone(out["status"], f"the server answered a CONNECT: {out}")
        # The client sees the alert, or only the reset that follows it: the agent closes with the rest of the client's
        # flight unread, and a reset arriving before the alert is read discards it.
        err = out.get("error", "")
        self.assertTrue(alert in err or "EOF" in err or "reset" in err.lower(), out)
        # Why, in the agent's own words: a TLS handshake failure on the server side, for this reason.
        reasons = self.new_handshake_failure("node2", "server", failed)
        self.assertEqual(len(reasons), 1, f"{reasons}\n{self.logs()}")
        self.assertIn(reason, reasons[0])
        time.sleep(0.3)
        self.assertEqual(self.reached_pod(), reached, "a refused client's CONNECT reached the pod")
        # The control, right after, against the same server: served, and counted at the pod.
        ok = self.attempt("tls13", "good_client")
        self.assertEqual(ok["status"], "200", f"{ok}\n{self.logs()}")
        self.assertEqual(ok.get("version"), "TLSv1.3")
        deadline = time.time() + 5
        while self.reached_pod() != reached + 1 and time.time() < deadline:
            time.sleep(0.05)
        self.assertEqual(self.reached_pod(), reached + 1, "the valid client's CONNECT did not reach the pod")
        return out

    def test_server_refuses_a_client_without_a_certificate(self):
        self.assert_refused(lambda: self.attempt("nocert"), "CERTIFICATE_REQUIRED",
                            "PEER_DID_NOT_RETURN_A_CERTIFICATE")

    def test_server_refuses_tls12(self):
        out = self.assert_refused(lambda: self.attempt("tls12", "good_client"), "PROTOCOL_VERSION",
                                  "UNSUPPORTED_PROTOCOL")
        self.assertFalse(out["handshake"], out)

    def test_server_refuses_an_expired_client_certificate(self):
        crt, _ = self.certs["expired_client"]
        self.assertIn("certificate has expired", verify_error(self.mesh.ca, crt))  # expired, and only that
        self.assert_refused(lambda: self.attempt("tls13", "expired_client"), "CERTIFICATE_EXPIRED",
                            "certificate has expired")

    # --- our agent as HBONE client, a rogue server on rogue:15008 ---------------------------------------------------
    def rogue_run(self, cert_name: str) -> tuple[dict, dict, str]:
        crt, key = self.certs[cert_name]
        outfile = Path(self.tmp.name) / f"rogue-{cert_name}.json"
        p = self.cluster.popen(self.rogue, [sys.executable, "-c", ROGUE, "15008", str(crt), str(key), str(outfile)],
                               stdout=subprocess.PIPE, text=True)
        try:
            self.assertEqual(p.stdout.readline().strip(), "listening")
            marker = f"ROGUE-MARKER-{cert_name}"
            res = self.cluster.run(self.client, [sys.executable, PODTOOL, "echo", self.rogue.ip, str(PORT), marker],
                                   text=True, timeout=30)
            deadline = time.time() + 10
            while time.time() < deadline and not (outfile.exists() and json.loads(outfile.read_text())["finished"]):
                time.sleep(0.05)
            self.assertTrue(outfile.exists(), f"the rogue server was never dialled\n{self.logs()}")
            out = json.loads(res.stdout) if res.returncode == 0 and res.stdout.strip() else {"ok": False}
            return out, json.loads(outfile.read_text()), marker
        finally:
            p.kill()
            p.wait()

    def test_client_talks_to_a_server_with_the_expected_identity(self):
        _, seen, _ = self.rogue_run("good_server")
        self.assertEqual(seen["client_hellos"], 1, seen)
        self.assertEqual(seen["handshakes"], 1, seen)
        self.assertTrue(seen["data"].startswith("PRI * HTTP/2.0"), seen)
        self.assertIn("CONNECT", seen["data"])

    def test_client_refuses_rogue_servers(self):
        # cert -> (the alert the rogue gets, node1's reason in its log)
        cases = {"expired_server": ("CERTIFICATE_EXPIRED", "certificate has expired"),
                 "wrong_id": ("HANDSHAKE_FAILURE", "is not the expected " + self.mesh.ca.spiffe_id("default",
                                                                                                   "server")),
                 "other_ca": ("UNKNOWN_CA", "unable to get local issuer certificate"),
                 "other_td": ("HANDSHAKE_FAILURE", "is not in trust domain cluster.local")}
        crt, _ = self.certs["expired_server"]
        self.assertIn("certificate has expired", verify_error(self.mesh.ca, crt))
        for name, (alert, reason) in cases.items():
            with self.subTest(cert=name):
                failed = len(self.handshake_failures("node1", "client"))
                out, seen, marker = self.rogue_run(name)
                self.assertFalse(out.get("ok"), out)
                # Dialled by node1's agent (from the client pod's address), which began a TLS handshake ...
                self.assertGreaterEqual(seen["connections"], 1, seen)
                self.assertEqual(seen["client_hellos"], seen["connections"], seen)
                self.assertEqual(set(seen["peers"]), {self.client.ip}, seen)
                # ... and broke it off because of the certificate, before a single application byte. The rogue gets
                # the alert, or only the reset behind it (see assert_refused).
                self.assertEqual(seen["handshakes"], 0, seen)
                self.assertTrue(seen["errors"], seen)
                for e in seen["errors"]:
                    self.assertTrue(alert in e or "EOF" in e or "reset" in e.lower(), seen)
                self.assertEqual(seen["bytes"], 0, seen)
                self.assertNotIn(marker, seen["data"])
                reasons = self.new_handshake_failure("node1", "client", failed)
                self.assertTrue(reasons, self.logs())
                for r in reasons:
                    self.assertIn(reason, r)

if __name__ == "__main__":
    unittest.main(verbosity=2)
