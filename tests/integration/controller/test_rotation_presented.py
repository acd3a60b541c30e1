"""Certificate rotation as the peer sees it (issue 15): the certificate an agent actually presents on its HBONE port
changes at every rotation, and connections keep working across it.

test_rotation.py counts "cert: issued" lines in the agents' logs; this test looks at the wire instead. Every few
seconds a hand-made HBONE client on node1 (a leaf of the controller's own CA for sa/client) does a full TLS 1.3
handshake with the server pod's HBONE port, records the certificate the server agent presented (serial, validity,
public key), then CONNECTs through it and gets the pod's answer. Meanwhile a long-lived connection and a stream of new
connections run from the client pod through the mesh. With a 1-minute certificate TTL (renewed at half-life) the
presented certificate must change at least twice, each time to a new serial, a new key and a later notBefore, each
one a certificate the server agent logged as issued, and nothing may fail.
"""

import json
import os
import re
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path

CLUSTER_DIR = Path(__file__).resolve().parents[2] / "cluster"
sys.path.insert(0, str(CLUSTER_DIR))
import zmcluster  # noqa: E402
from controlplane import ControlPlane  # noqa: E402
from mesh import openssl  # noqa: E402

PODTOOL = str(CLUSTER_DIR / "podtool.py")
PORT = 8080
TTL = os.environ.get("ZM_ROTATION_PRESENTED_TTL", "1m")
DURATION_S = float(os.environ.get("ZM_ROTATION_PRESENTED_DURATION_S", "110"))
PROBE_EVERY_S = 2.0

# One HBONE exchange from node1: TLS 1.3 handshake (the server's certificate is recorded, not checked: the test
# checks it), CONNECT to the pod, "PEER\n" through the tunnel, the pod's reply. Prints one JSON object.
PROBE = r"""
import json, socket, ssl, sys
sys.path.insert(0, sys.argv[1])
from hbone_probe import PREFACE, frame, literal
host, port, cert, key, authority = sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
ctx.minimum_version = ssl.TLSVersion.TLSv1_3
ctx.load_cert_chain(cert, key)
ctx.set_alpn_protocols(["h2"])
out = {"handshake": False, "cert": None, "status": None, "reply": ""}
try:
    s = ctx.wrap_socket(socket.create_connection((host, port), timeout=5))
    out["handshake"] = True
    out["version"] = s.version()
    out["cert"] = s.getpeercert(binary_form=True).hex()
    s.sendall(PREFACE + frame(0x4, 0, 0, b"") +
              frame(0x1, 0x4, 1, literal(":method", "CONNECT") + literal(":authority", authority)))
    buf, sent = b"", False
    while True:
        while len(buf) < 9 or len(buf) < 9 + int.from_bytes(buf[:3], "big"):
            d = s.recv(65536)
            if not d:
                raise OSError("closed by the server")
            buf += d
        n = int.from_bytes(buf[:3], "big")
        ftype, flags, stream, payload = buf[3], buf[4], int.from_bytes(buf[5:9], "big") & 0x7FFFFFFF, buf[9:9 + n]
        buf = buf[9 + n:]
        if ftype == 0x4 and not flags & 0x1:
            s.sendall(frame(0x4, 0x1, 0, b""))  # SETTINGS ACK
        elif ftype == 0x7:
            raise OSError("GOAWAY")
        elif ftype == 0x3 and stream == 1:
            raise OSError("RST_STREAM")
        elif ftype == 0x1 and stream == 1:
            out["status"] = "200" if payload[:1] == b"\x88" else "other"  # nghttp2: ":status 200" is index 8
            if out["status"] != "200":
                break
            s.sendall(frame(0x0, 0x1, 1, b"PEER\n"))  # DATA with END_STREAM
            sent = True
        elif ftype == 0x0 and stream == 1:
            out["reply"] += payload.decode(errors="replace")
            if flags & 0x1 or out["reply"].endswith("\n"):
                break
    s.close()
except (OSError, ssl.SSLError) as e:
    out["error"] = f"{type(e).__name__}: {e}"
print(json.dumps(out))
"""

# New connections, one request each, every 200 ms (as test_rotation.py); counts failures.
STREAM = """
import socket, sys, time
end = time.time() + float(sys.argv[3])
ok = bad = 0
errors = []
while time.time() < end:
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
    time.sleep(0.2)
print("result", ok, bad, errors[:5], flush=True)
"""


def describe(der_hex: str, workdir: Path) -> dict:
    """Serial, validity (unix seconds), public key and SAN of a DER certificate, read by the openssl CLI."""
    der = workdir / "presented.der"
    der.write_bytes(bytes.fromhex(der_hex))
    text = subprocess.run(["openssl", "x509", "-inform", "DER", "-in", str(der), "-noout", "-serial", "-startdate",
                           "-enddate", "-ext", "subjectAltName"], check=True, capture_output=True, text=True).stdout
    pubkey = subprocess.run(["openssl", "x509", "-inform", "DER", "-in", str(der), "-noout", "-pubkey"], check=True,
                            capture_output=True, text=True).stdout
    field = lambda name: re.search(rf"^{name}=(.*)$", text, re.M).group(1).strip()  # noqa: E731
    uri = re.search(r"URI:(\S+)", text)
    return {"serial": field("serial"), "not_before": int(ssl.cert_time_to_seconds(field("notBefore"))),
            "not_after": int(ssl.cert_time_to_seconds(field("notAfter"))), "public_key": pubkey.strip(),
            "uri": uri.group(1).rstrip(",") if uri else None, "der_hex": der_hex}


def issue_client_cert(cp: ControlPlane, workdir: Path, uri: str) -> tuple[Path, Path]:
    """A leaf of the controller's own CA (copied out of its directory, which is left untouched) for |uri|."""
    d = workdir / "probe-ca"
    d.mkdir(parents=True, exist_ok=True)
    ca_crt, ca_key = d / "ca.crt", d / "ca.key"
    shutil.copy(cp.ca_dir / "root-cert.pem", ca_crt)
    shutil.copy(cp.ca_dir / "root-key.pem", ca_key)
    key, csr, crt, ext = d / "probe.key", d / "probe.csr", d / "probe.crt", d / "probe.ext"
    ext.write_text("basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                   f"extendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=critical,URI:{uri}\n")
    openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(key), cwd=d)
    openssl("req", "-new", "-key", str(key), "-out", str(csr), "-subj", "/O=zeromesh test", cwd=d)
    openssl("x509", "-req", "-in", str(csr), "-CA", str(ca_crt), "-CAkey", str(ca_key), "-CAcreateserial",
            "-out", str(crt), "-days", "1", "-extfile", str(ext), cwd=d)
    return crt, key


class RotationPresentedTest(unittest.TestCase):
    def test_presented_certificate_changes_and_connections_keep_working(self):
        with tempfile.TemporaryDirectory(prefix="zm-rotation-presented-") as tmp, \
                zmcluster.Cluster(nodes=2, pods_per_node=0) as c:
            work = Path(tmp)
            client = c.add_pod("node1", "client")
            server = c.add_pod("node2", "server")
            cp = ControlPlane(c, work, cert_ttl=TTL)
            cp.workload(client, sa="client")
            cp.workload(server, sa="server")
            c.popen(server, [sys.executable, PODTOOL, "serve", str(PORT)], stdout=subprocess.DEVNULL)
            cp.start()
            c.wait_tcp(server, server.ip, PORT)  # from the pod itself (loopback): not captured
            crt, key = issue_client_cert(cp, work, cp.spiffe_id("default", "client"))
            server_id = cp.spiffe_id("default", "server")

            hold = c.popen(client, [sys.executable, PODTOOL, "hold", server.ip, str(PORT), str(DURATION_S)],
                           stdout=subprocess.PIPE, text=True)
            stream = c.popen(client, [sys.executable, "-c", STREAM, server.ip, str(PORT), str(DURATION_S)],
                             stdout=subprocess.PIPE, text=True)
            probes = []  # (probe time, what was presented)
            failures = []
            end = time.time() + DURATION_S - 5
            while time.time() < end:
                t = time.time()
                res = c.run("node1", [sys.executable, "-c", PROBE, str(CLUSTER_DIR), server.ip, "15008", str(crt),
                                      str(key), f"{server.ip}:{PORT}"], text=True, timeout=30)
                out = json.loads(res.stdout) if res.returncode == 0 and res.stdout.strip() else {"error": res.stderr}
                if not (out.get("handshake") and out.get("status") == "200" and out.get("reply", "").startswith("peer=")
                        and out.get("cert")):
                    failures.append(f"{t:.1f} {out}")
                else:
                    probes.append((t, describe(out["cert"], work)))
                time.sleep(max(0.0, PROBE_EVERY_S - (time.time() - t)))
            hold_out, _ = hold.communicate(timeout=DURATION_S + 60)
            stream_out, _ = stream.communicate(timeout=DURATION_S + 60)
            logs = f"agent node2: {cp.log('agent-node2', 3000)}"

            # Every probe got through: handshake, 200, the pod's reply through the tunnel.
            self.assertEqual(failures, [], f"probes failed across rotations\n{logs}")
            self.assertGreater(len(probes), DURATION_S / PROBE_EVERY_S / 2)
            # The certificate presented at each moment: the server's identity, valid then, chaining to the mesh CA.
            for t, cert in probes:
                self.assertEqual(cert["uri"], server_id, cert)
                self.assertLess(cert["not_before"], t + 1, cert)
                self.assertGreater(cert["not_after"], t, f"an expired certificate was presented at {t:.0f}: {cert}")
            # It changed (by serial) at least twice, each time to a new key and a later notBefore, and never back.
            changes = [probes[0][1]]
            for _, cert in probes[1:]:
                if cert["serial"] != changes[-1]["serial"]:
                    changes.append(cert)
            serials = [x["serial"] for x in changes]
            print(f"presented serials over {DURATION_S:.0f}s: {serials}", file=sys.stderr)
            self.assertEqual(len(set(serials)), len(serials), f"an old certificate was presented again: {serials}")
            self.assertGreaterEqual(len(changes), 3, f"the presented certificate did not rotate: {serials}\n{logs}")
            for before, after in zip(changes, changes[1:]):
                self.assertNotEqual(before["public_key"], after["public_key"], "a rotation kept the key")
                self.assertGreater(after["not_before"], before["not_before"])
                self.assertGreater(after["not_after"], before["not_after"])
            # Each presented certificate is one the server's agent logged as issued for sa/server (not_after ties them).
            issued = {json.loads(l)["not_after"] for l in cp.log("agent-node2").splitlines()
                      if '"msg":"cert: issued"' in l and "/sa/server" in l}
            for cert in changes:
                self.assertIn(cert["not_after"], issued, f"presented {cert['serial']} was never logged as issued")

            # Connections kept working across the rotations: a long-lived one and new ones every 200 ms.
            m = re.search(r"result (\d+) (\d+)", hold_out)
            self.assertIsNotNone(m, hold_out)
            self.assertEqual(int(m.group(2)), 0, f"the long-lived connection failed: {hold_out}\n{logs}")
            self.assertGreater(int(m.group(1)), DURATION_S * 5)
            m = re.search(r"result (\d+) (\d+) (.*)", stream_out)
            self.assertIsNotNone(m, stream_out)
            self.assertEqual(int(m.group(2)), 0, f"new connections failed across rotations: {m.group(3)}\n{logs}")
            self.assertGreater(int(m.group(1)), DURATION_S * 3)


if __name__ == "__main__":
    unittest.main(verbosity=2)
