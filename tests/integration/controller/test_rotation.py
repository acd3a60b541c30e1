"""Certificate rotation (acceptance 6): with a 2-minute certificate TTL, a 5-minute stream of requests sees no
failure across rotations, and the certificates really rotate (at half-life, keys generated on the node)."""

import json
import os
import re
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
TTL = os.environ.get("ZM_ROTATION_TTL", "2m")
DURATION_S = float(os.environ.get("ZM_ROTATION_DURATION_S", "300"))

# New connections, one request each, every 200 ms for the whole duration; counts failures.
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


class RotationTest(unittest.TestCase):
    def test_requests_survive_rotations(self):
        with tempfile.TemporaryDirectory(prefix="zm-rotation-") as tmp, \
                zmcluster.Cluster(nodes=2, pods_per_node=0) as c:
            client = c.add_pod("node1", "client")
            server = c.add_pod("node2", "server")
            cp = ControlPlane(c, Path(tmp), cert_ttl=TTL)
            cp.workload(client, sa="client")
            cp.workload(server, sa="server")
            c.popen(server, [sys.executable, PODTOOL, "serve", str(PORT)], stdout=subprocess.DEVNULL)
            cp.start()
            c.wait_tcp(server, server.ip, PORT)
            stream = c.popen(client, [sys.executable, "-c", STREAM, server.ip, str(PORT), str(DURATION_S)],
                             stdout=subprocess.PIPE, text=True)
            out, _ = stream.communicate(timeout=DURATION_S + 60)
            m = re.search(r"result (\d+) (\d+) (.*)", out)
            self.assertIsNotNone(m, out)
            ok, bad = int(m.group(1)), int(m.group(2))
            self.assertEqual(bad, 0, f"{bad} failed requests across rotations: {m.group(3)}\n{cp.log('agent-node1', 3000)}")
            self.assertGreater(ok, DURATION_S * 3)
            # Each agent got its workload's certificate several times: the initial one plus rotations.
            for node, sa in (("node1", "client"), ("node2", "server")):
                issued = [l for l in cp.log(f"agent-{node}").splitlines()
                          if '"msg":"cert: issued"' in l and f"/sa/{sa}" in l]
                print(f"{node}: {len(issued)} certificates issued for sa/{sa} in {DURATION_S:.0f}s", file=sys.stderr)
                self.assertGreaterEqual(len(issued), 3, f"{node} did not rotate: {issued}")
                not_after = [json.loads(l)["not_after"] for l in issued]
                self.assertEqual(len(set(not_after)), len(not_after), "a rotation re-used a certificate")


if __name__ == "__main__":
    unittest.main(verbosity=2)
