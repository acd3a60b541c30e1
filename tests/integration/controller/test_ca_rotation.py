"""The CA while the mesh carries traffic (universal mode, the CA in --ca-dir):
- trust-bundle rotation in three steps (a new root joins the bundle, the new root signs, the old root leaves), each
  picked up without a restart, under a stream of new connections across nodes and within a node: 0 failures, and
  every agent ends with certificates of the new root;
- the controller's serving certificate (1 minute maximum TTL) is renewed in place: the certificate the controller
  presents changes while every agent keeps the config stream it opened at start.
"""

import hashlib
import json
import re
import ssl
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "cluster"))
import zmcluster  # noqa: E402
from controlplane import ControlPlane  # noqa: E402

PODTOOL = str(Path(__file__).resolve().parents[2] / "cluster" / "podtool.py")
PORT = 8080

# New connections, one request each, every 100 ms until the stop file appears; counts failures.
STREAM = """
import os, socket, sys, time
ok = bad = 0
errors = []
while not os.path.exists(sys.argv[3]):
    try:
        c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
        c.sendall(b"PEER\\n")
        reply = c.recv(200)
        c.close()
        if reply.startswith(b"peer="):
            ok += 1
        else:
            bad += 1; errors.append("bad reply %r" % reply)
    except OSError as e:
        bad += 1; errors.append("%.1f %s" % (time.time(), e))
    time.sleep(0.1)
print("result", ok, bad, errors[:5], flush=True)
"""


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_root(workdir: Path, name: str) -> tuple[str, str]:
    """A new ECDSA P-256 root, as an operator would make one offline: (cert PEM, key PEM)."""
    key, cert = workdir / f"{name}.key", workdir / f"{name}.crt"
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(key),
            "-out", str(cert), "-days", "3650", "-subj", f"/O=zeromesh/CN={name}",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    return cert.read_text(), key.read_text()


def der_sha256(cert_pem: str) -> str:
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(cert_pem)).hexdigest()


def write_atomic(path: Path, text: str, mode: int = 0o644) -> None:
    tmp = path.with_name("." + path.name + ".tmp")
    tmp.write_text(text)
    tmp.chmod(mode)
    tmp.replace(path)


class CaRotationTest(unittest.TestCase):
    def status(self, cp: ControlPlane) -> dict:
        # meshctl trusts ca/root-cert.pem: right after the signer switch that file names the new root a second or so
        # before the controller presents a certificate from it. meshctl is a client like any other: retry.
        for _ in range(20):
            r = cp.meshctl("status", "-o", "json")
            self.assertIn(r.returncode, (0, 1), r.stderr)
            s = json.loads(r.stdout)
            if s["controller"]["reachable"]:
                return s
            time.sleep(0.5)
        self.fail(f"meshctl cannot reach the controller: {s}")

    def wait(self, what: str, fn, cp: ControlPlane, timeout: float = 30):
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            last = fn()
            if last:
                return last
            time.sleep(0.5)
        self.fail(f"timed out waiting for {what}; last {last}\n{cp.log('controller', 3000)}")

    def all_synced(self, cp: ControlPlane, above: int) -> bool:
        s = self.status(cp)
        version = s["controller"]["config_version"]
        return version > above and all(a["synced"] for a in s["agents"]) and len(s["agents"]) == 2

    def connects(self, cp: ControlPlane) -> dict:
        text = cp.log("controller")
        return {n: text.count(f'"msg":"config: agent connected","node":"{n}"') for n in ("node1", "node2")}

    def presented_serial(self, c: zmcluster.Cluster, cp: ControlPlane) -> str:
        """The serial number of the certificate the controller presents to a new TLS client now."""
        r = c.run(cp.host, ["sh", "-c", f"openssl s_client -connect {cp.address} </dev/null 2>/dev/null | "
                                        "openssl x509 -noout -serial"], text=True, timeout=20)
        return r.stdout.strip()

    def test_trust_bundle_rotation_under_load(self):
        with tempfile.TemporaryDirectory(prefix="zm-ca-rotation-") as tmp, \
                zmcluster.Cluster(nodes=2, pods_per_node=0) as c:
            work = Path(tmp)
            client = c.add_pod("node1", "client")
            local = c.add_pod("node2", "local")
            server = c.add_pod("node2", "server")
            cp = ControlPlane(c, work / "cp")
            for p in (client, local, server):
                cp.workload(p, sa=p.name)
            c.popen(server, [sys.executable, PODTOOL, "serve", str(PORT)], stdout=subprocess.DEVNULL)
            cp.start()
            c.wait_tcp(server, server.ip, PORT)
            r1 = cp.root_cert.read_text()
            stop = work / "stop"
            streams = [c.popen(p, [sys.executable, "-c", STREAM, server.ip, str(PORT), str(stop)],
                               stdout=subprocess.PIPE, text=True) for p in (client, local)]
            time.sleep(2)
            version = self.status(cp)["controller"]["config_version"]
            r2_cert, r2_key = make_root(work, "zeromesh root CA 2")

            # 1. The new root joins the bundle; the old root still signs.
            write_atomic(cp.ca_dir / "trust-bundle.pem", r1 + r2_cert)
            self.wait("every agent to apply the two-root bundle", lambda: self.all_synced(cp, version), cp)
            s = self.status(cp)
            self.assertEqual(sorted(x["name"] for x in s["controller"]["credentials"] if x["kind"] == "trust-root"),
                             ["CN=zeromesh root CA 2,O=zeromesh", "CN=zeromesh root CA,O=zeromesh"])
            version = s["controller"]["config_version"]
            time.sleep(2)

            # 2. The new root signs: every workload certificate is re-issued from it, at once.
            write_atomic(cp.ca_dir / "root-key.pem", r2_key, 0o600)
            write_atomic(cp.ca_dir / "root-cert.pem", r2_cert)
            signer = der_sha256(r2_cert)

            def reissued():
                s = self.status(cp)
                if s["controller"]["ca_signer"] != signer or not self.all_synced(cp, version):
                    return False
                stale = [p for p in s["problems"] if "previous CA signer" in p["message"]]
                certs = [cert for a in s["agents"] for cert in a["certs"]]
                return not stale and len(certs) == 3 and s
            s = self.wait("every certificate re-issued by the new root", reissued, cp)
            version = s["controller"]["config_version"]
            time.sleep(2)

            # 3. The old root leaves the bundle.
            write_atomic(cp.ca_dir / "trust-bundle.pem", r2_cert)
            self.wait("every agent to apply the one-root bundle", lambda: self.all_synced(cp, version), cp)
            time.sleep(3)  # new connections under the new bundle only
            stop.write_text("")
            for p, stream in zip((client, local), streams):
                out, _ = stream.communicate(timeout=30)
                m = re.search(r"result (\d+) (\d+) (.*)", out)
                self.assertIsNotNone(m, out)
                ok, bad = int(m.group(1)), int(m.group(2))
                print(f"{p.name} -> server: {ok} connections, {bad} failed across the rotation", file=sys.stderr)
                self.assertEqual(bad, 0, f"{p.name}: {m.group(3)}\n{cp.log('agent-' + p.node.name, 3000)}")
                self.assertGreater(ok, 50)
            s = self.status(cp)
            self.assertEqual([x["name"] for x in s["controller"]["credentials"] if x["kind"] == "trust-root"],
                             ["CN=zeromesh root CA 2,O=zeromesh"])
            self.assertTrue(s["healthy"], s["problems"])
            # No restart anywhere: each agent's config stream is the one it opened at start.
            self.assertEqual(self.connects(cp), {"node1": 1, "node2": 1})
            self.assertEqual(cp.log("controller").count("mesh-controller listening"), 1)

    def test_serving_certificate_rotates_while_agents_stay_connected(self):
        with tempfile.TemporaryDirectory(prefix="zm-serving-") as tmp, \
                zmcluster.Cluster(nodes=2, pods_per_node=0) as c:
            cp = ControlPlane(c, Path(tmp) / "cp", cert_ttl="1m", max_cert_ttl="1m")
            cp.start()
            first = self.presented_serial(c, cp)
            self.assertTrue(first.startswith("serial="), first)
            self.assertEqual(self.connects(cp), {"node1": 1, "node2": 1})
            # Renewed at half-life (30 s): within 45 s a new handshake sees another certificate.
            deadline = time.time() + 45
            now = first
            while now == first and time.time() < deadline:
                time.sleep(2)
                now = self.presented_serial(c, cp)
            self.assertNotEqual(now, first, "the serving certificate was not renewed")
            # The presented certificate is DNS-only and lives at most the maximum TTL.
            text = c.run(cp.host, ["sh", "-c", f"openssl s_client -connect {cp.address} </dev/null 2>/dev/null | "
                                               "openssl x509 -noout -ext subjectAltName -dates"], text=True).stdout
            self.assertIn("DNS:mesh-controller.zeromesh", text)
            self.assertNotIn("URI:", text)
            # Every agent still on the stream it opened at start, still synced (a config change still flows).
            version = self.status(cp)["controller"]["config_version"]
            cp.mesh_config(cert_ttl="1m", default_policy="DENY")
            self.wait("agents to apply a change after the renewal", lambda: self.all_synced(cp, version), cp)
            self.assertEqual(self.connects(cp), {"node1": 1, "node2": 1}, cp.log("controller", 3000))


if __name__ == "__main__":
    unittest.main(verbosity=2)
