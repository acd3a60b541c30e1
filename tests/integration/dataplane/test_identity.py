"""Identity checks both ways (acceptance 3): a rogue peer with a certificate from another CA, another trust domain or
the wrong SPIFFE ID is refused, as HBONE client and as HBONE server. Each case has a positive control with a good
certificate, so the test can tell "refused" from "broken"."""

import json
import subprocess
import sys
import time
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "cluster"))
from cluster_case import ClusterCase  # noqa: E402
from mesh import Mesh, TestCA  # noqa: E402

CLUSTER_DIR = Path(__file__).resolve().parents[2] / "cluster"
PODTOOL = str(CLUSTER_DIR / "podtool.py")
PROBE = str(CLUSTER_DIR / "hbone_probe.py")
PORT = 8080


class IdentityTest(ClusterCase):
    TMP_PREFIX = "zm-identity-"

    @classmethod
    def set_up_cluster(cls, c, tmp):
        cls.mesh = Mesh(c, tmp)
        m = cls.mesh
        # node1 believes "rogue" is an enrolled workload with identity sa/server; node2 does not enroll it, so
        # whatever listens on rogue:15008 is not our proxy: a rogue HBONE server.
        cls.client, cls.server, cls.rogue = m.add_client_server_rogue(PORT)
        m.start_agents()
        c.wait_tcp(cls.server, cls.server.ip, PORT)
        ca, td = m.ca, m.trust_domain
        cls.other_ca = TestCA(tmp / "other-ca", td, name="other-root")
        cls.certs = {
            "good_server": m.identities[ca.spiffe_id("default", "server")],
            "good_client": m.identities[ca.spiffe_id("default", "client")],
            "other_ca": cls.other_ca.issue(ca.spiffe_id("default", "server"), "other-ca-server"),
            "other_td": ca.issue(ca.spiffe_id("default", "server", "evil.local"), "other-td-server"),
            "wrong_id": ca.issue(ca.spiffe_id("default", "not-the-server"), "wrong-id-server"),
            "malformed_id": ca.issue(f"spiffe://{td}/not/a/workload/path", "malformed-id"),
        }

    # --- our proxy as HBONE server, a rogue client on node1's network ---------------------------------------------
    def rogue_client(self, cert_name):
        crt, key = self.certs[cert_name]
        res = self.cluster.run("node1", [sys.executable, PROBE, "client", self.server.ip, "15008", str(crt), str(key),
                                         f"{self.server.ip}:{PORT}"], text=True, timeout=30)
        self.assertEqual(res.returncode, 0, res.stderr)
        return json.loads(res.stdout)

    def test_server_accepts_a_good_client(self):
        out = self.rogue_client("good_client")
        self.assertEqual(out["status"], "200", out)

    def test_server_refuses_clients_with_bad_identities(self):
        for name in ("other_ca", "other_td", "malformed_id"):
            with self.subTest(cert=name):
                out = self.rogue_client(name)
                self.assertNotEqual(out["status"], "200", out)

    # --- our proxy as HBONE client, a rogue server on rogue:15008 -----------------------------------------------
    def rogue_server_run(self, cert_name):
        crt, key = self.certs[cert_name]
        outfile = Path(self.tmp.name) / f"rogue-{cert_name}.json"
        p = self.cluster.popen(self.rogue, [sys.executable, PROBE, "server", "15008", str(crt), str(key),
                                            str(outfile)], stdout=subprocess.PIPE, text=True)
        try:
            self.assertEqual(p.stdout.readline().strip(), "listening")
            marker = f"ROGUE-MARKER-{cert_name}"
            res = self.cluster.run(self.client, [sys.executable, PODTOOL, "echo", self.rogue.ip, str(PORT), marker],
                                   text=True, timeout=30)
            time.sleep(0.3)
            seen = json.loads(outfile.read_text()) if outfile.exists() else {"connections": 0, "handshakes": 0,
                                                                              "bytes": 0, "data": ""}
            return res, seen, marker
        finally:
            p.kill()
            p.wait()

    def test_client_talks_to_a_server_with_the_expected_identity(self):
        # Positive control: the rogue holds the real sa/server certificate, so our client completes the handshake
        # and sends its CONNECT (the rogue just doesn't answer it).
        _, seen, _ = self.rogue_server_run("good_server")
        self.assertEqual(seen["handshakes"], 1, seen)
        # The HTTP/2 preface and a CONNECT request (its :authority is Huffman-coded, so only the method is legible).
        self.assertTrue(seen["data"].startswith("PRI * HTTP/2.0"), seen)
        self.assertIn("CONNECT", seen["data"])

    def test_client_refuses_servers_with_bad_identities(self):
        for name in ("other_ca", "other_td", "wrong_id"):
            with self.subTest(cert=name):
                res, seen, marker = self.rogue_server_run(name)
                out = json.loads(res.stdout) if res.returncode == 0 else {"ok": False}
                self.assertFalse(out.get("ok"), out)
                # The rogue was dialled (else this would pass with no check made) and got no byte after TLS.
                self.assertGreaterEqual(seen.get("connections", 0), 1, seen)
                self.assertEqual(seen["handshakes"], 0, seen)
                self.assertEqual(seen["bytes"], 0, seen)
                self.assertNotIn(marker, seen["data"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
