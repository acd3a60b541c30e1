"""With --sockmap both, a pod app reads what the proxy delivers (sk_msg redirected into its socket) with the common read
APIs (issue 19). The kernel queues redirected bytes in the socket's psock, not in the TCP receive queue, and not every
read API looks there. Measured on 6.18.44: recv, MSG_PEEK, poll, epoll and SO_RCVLOWAT get every byte in order;
splice(2) never returns the redirected bytes (tcp_splice_read reads the TCP queue only: it waits for them, or reports
EOF early once the FIN arrives) and FIONREAD counts 0 while redirected bytes wait. That is why `both` is not the default (docs/design.md "sockmap"). This test fails loudly when a
kernel breaks one of the working APIs, and skips (visibly) when splice and FIONREAD start working: then the reason for
the default no longer holds and should be revisited.

Topology: node1: client; node2: server (both enrolled). client -> server crosses HBONE, so node2's proxy writes into
the server's socket: the to-pod leg that only `both` redirects.
"""

import json
import os
import subprocess
import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "cluster"))
from cluster_case import ClusterCase  # noqa: E402
from mesh import Mesh  # noqa: E402

PODTOOL = str(Path(__file__).resolve().parents[2] / "cluster" / "podtool.py")
PORT = 9000
METRICS_PORT = 15020
TOTAL = 4 << 20
SAFE_APIS = ("recv", "peek", "poll", "epoll", "rcvlowat")
BROKEN_APIS = ("splice", "fionread")  # under `both` on the kernels measured so far


class SockmapReadersTest(ClusterCase):
    TMP_PREFIX = "zm-smreaders-"

    @classmethod
    def set_up_cluster(cls, c, tmp):
        cls.client = c.add_pod("node1", "client")
        cls.server = c.add_pod("node2", "server")
        cls.mesh = Mesh(c, tmp)
        for pod in (cls.client, cls.server):
            cls.mesh.add_workload(pod, sa=pod.name)
        c.popen(cls.server, [sys.executable, PODTOOL, "serve", str(PORT)], stdout=subprocess.DEVNULL)
        cls.mesh.sockmap = "both"
        cls.mesh.start_agents()
        c.wait_tcp(cls.server, cls.server.ip, PORT)

    def redirected(self, node):
        res = self.cluster.run(node, ["curl", "-sS", "--max-time", "5", f"http://127.0.0.1:{METRICS_PORT}/metrics"],
                               text=True, timeout=15)
        self.assertEqual(res.returncode, 0, res.stderr)
        name = "zeromesh_sockmap_redirected_bytes_total"
        return sum(float(line.rsplit(" ", 1)[1]) for line in res.stdout.splitlines() if line.startswith(name + " "))

    def readcheck(self, api):
        """The server reads TOTAL bytes with |api|; returns (podtool's result, bytes node2 redirected meanwhile)."""
        node2 = self.cluster.node("node2")
        before = self.redirected(node2)
        res = self.cluster.run(self.client, [sys.executable, PODTOOL, "readcheck", self.server.ip, str(PORT), api,
                                             str(TOTAL)], timeout=60, text=True)
        self.assertEqual(res.returncode, 0, res.stderr)
        out = json.loads(res.stdout)
        got = self.redirected(node2) - before
        print(f"--sockmap both, pod reads with {api}: {out}, {int(got)} bytes redirected", file=sys.stderr)
        # The probe only means something if node2's proxy really redirected into the server's socket.
        self.assertGreater(got, TOTAL / 8, f"{api}: only {got} bytes redirected on node2")
        return out

    def test_safe_apis_get_every_byte_in_order(self):
        for api in SAFE_APIS:
            with self.subTest(api=api):
                out = self.readcheck(api)
                self.assertTrue(out["ok"], f"{api}: {out}\n{self.mesh.agent_log(self.cluster.node('node2'))[-2000:]}")

    def test_splice_and_fionread_miss_redirected_bytes(self):
        working = []
        for api in BROKEN_APIS:
            out = self.readcheck(api)
            if out["ok"]:
                working.append(api)
                continue
            # Broken the known way: the reader never gets all the bytes. splice waits for redirected bytes that never
            # come to it (a timeout here), or sees EOF early; FIONREAD says 0 while recv returns bytes. Seen from the
            # client, the exchange may also end in a reset (-1 bytes).
            self.assertLess(out["server_bytes"], TOTAL, out)
        if working:
            self.skipTest(f"{working} read redirected bytes on kernel {os.uname().release}: `both` may be safe as the "
                          "default here (docs/design.md sockmap)")


if __name__ == "__main__":
    unittest.main()
