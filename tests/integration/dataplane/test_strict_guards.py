"""STRICT's guards on the simulated cluster (issue 15): what the proxy cannot mesh never passes in plaintext.

- The node's own netns (kubelet, hostNetwork pods) reaches a STRICT pod only on the probe ports its spec declares.
- IPv6 TCP, IPv4 TCP fragments and UDP other than DNS from a STRICT pod never reach the wire.
Each case has a control that goes through the same harness and is seen (a pod outside the mesh, a probe port), so a
broken harness cannot pass for a working guard.
"""

import json
import re
import subprocess
import sys
import time
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "cluster"))
from cluster_case import ClusterCase  # noqa: E402
from mesh import Mesh  # noqa: E402

PODTOOL = str(Path(__file__).resolve().parents[2] / "cluster" / "podtool.py")
PORT, PROBE_PORT = 8080, 8081
METRICS_PORT = 15020

# One connection: "echoed" when the server's echo came back (served end to end), else what happened.
TRY = ("import socket, sys\n"
       "fam = socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET\n"
       "s = socket.socket(fam, socket.SOCK_STREAM); s.settimeout(float(sys.argv[3]))\n"
       "try:\n"
       "    s.connect((sys.argv[1], int(sys.argv[2])))\n"
       "except OSError as e:\n"
       "    print('failed', type(e).__name__); sys.exit()\n"
       "try:\n"
       "    s.sendall(b'ECHO\\nzm-marker'); s.shutdown(socket.SHUT_WR)\n"
       "    print('echoed' if s.recv(100) == b'zm-marker' else 'connected, no echo')\n"
       "except OSError as e:\n"
       "    print('connected, then', type(e).__name__)\n")

UDP_SEND = ("import socket, sys\n"
            "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            "for port in sys.argv[2:]:\n"
            "    s.sendto(b'zm-udp-' + port.encode(), (sys.argv[1], int(port)))\n")

# A TCP SYN to DST:PORT sent as two IPv4 fragments through a raw socket (IP_HDRINCL): 8 bytes of TCP header, then 12.
FRAG_SYN = r"""
import socket, struct, sys
src, dst, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
def csum(b):
    if len(b) % 2: b += b'\0'
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b)); s = (s >> 16) + (s & 0xffff); s += s >> 16
    return ~s & 0xffff
tcp = struct.pack('!HHIIBBHHH', 40000, port, 1, 0, 5 << 4, 0x02, 64240, 0, 0)
pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack('!BBH', 0, 6, len(tcp))
tcp = tcp[:16] + struct.pack('!H', csum(pseudo + tcp)) + tcp[18:]
r = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
for i in range(3):
    for off, part, more in ((0, tcp[:8], 1), (1, tcp[8:], 0)):
        hdr = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(part), 0x4242 + i, (more << 13) | off, 64, 6, 0,
                          socket.inet_aton(src), socket.inet_aton(dst))
        r.sendto(hdr + part, (dst, 0))
"""


class StrictGuardsTest(ClusterCase):
    TMP_PREFIX = "zm-guards-"

    @classmethod
    def set_up_cluster(cls, c, tmp):
        cls.client = c.add_pod("node1", "client")      # STRICT, enrolled
        cls.outsider = c.add_pod("node1", "outsider")  # not in the mesh: the control of every capture
        cls.server = c.add_pod("node2", "server")
        cls.mesh = Mesh(c, tmp)
        cls.mesh.add_workload(cls.client, sa="client")
        cls.mesh.add_workload(cls.outsider, enrolled=False)
        cls.mesh.add_workload(cls.server, sa="server", probe_ports=(PROBE_PORT,))
        for port in (PORT, PROBE_PORT):
            c.popen(cls.server, [sys.executable, PODTOOL, "serve", str(port)], stdout=subprocess.DEVNULL)
        cls.mesh.start_agents()
        for port in (PORT, PROBE_PORT):
            c.wait_tcp(cls.server, cls.server.ip, port)

    @classmethod
    def tear_down_cluster(cls):
        for node in list(cls.mesh.agents) if hasattr(cls, "mesh") else []:
            cls.mesh.kill_agent(cls.cluster.node(node))

    def connect(self, where, host, port, timeout=1.5) -> str:
        res = self.cluster.run(where, [sys.executable, "-c", TRY, host, str(port), str(timeout)], text=True,
                               timeout=30)
        return res.stdout.strip()

    def metrics(self, node, reason=None) -> float:
        # The metrics port is on the node's address: scrape from inside the node's netns.
        probe = ("import re, sys, urllib.request\n"
                 "t = urllib.request.urlopen(sys.argv[1], timeout=5).read().decode()\n"
                 "m = re.search('^' + re.escape(sys.argv[2]) + r' (\\S+)$', t, re.M)\n"
                 "print(m.group(1) if m else 'missing')\n")
        name = "zeromesh_bpf_probes_passed_total" if reason is None else f'zeromesh_bpf_dropped_total{{reason="{reason}"}}'
        res = self.cluster.run(node, [sys.executable, "-c", probe, f"http://{node.ip}:{METRICS_PORT}/metrics", name],
                               text=True, timeout=30)
        self.assertNotEqual(res.stdout.strip(), "missing", f"{name} not exported: {res.stderr}")
        return float(res.stdout.strip())

    def test_node_namespace_reaches_a_strict_pod_only_on_its_probe_ports(self):
        node2 = self.cluster.node("node2")
        dropped0, probes0 = self.metrics(node2, "node_plaintext"), self.metrics(node2)
        # The kubelet's view: the declared probe port answers from the node's own address...
        self.assertEqual(self.connect("node2", self.server.ip, PROBE_PORT), "echoed")
        # ...and nothing else does: plaintext with no identity and no policy.
        self.assertEqual(self.connect("node2", self.server.ip, PORT), "failed TimeoutError")
        self.assertGreater(self.metrics(node2, "node_plaintext"), dropped0)
        self.assertGreater(self.metrics(node2), probes0)
        # A probe port is no way in from elsewhere: from another node it meets the plaintext listener (refused in
        # STRICT), and mesh clients still reach the pod on both ports.
        self.assertNotEqual(self.connect("node1", self.server.ip, PROBE_PORT), "echoed")
        for port in (PORT, PROBE_PORT):
            self.assertEqual(self.connect(self.client, self.server.ip, port), "echoed")

    def test_ipv6_tcp_of_a_strict_pod_never_reaches_the_wire(self):
        c = self.cluster
        node1, node2 = c.node("node1"), c.node("node2")
        # IPv6 on the wire and on both node1 pods' veths; node2 listens on its IPv6 address.
        c.run(node1, ["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"], check=True)
        c.run(node1, ["ip", "addr", "add", "fd00:99::1/64", "dev", node1.uplink, "nodad"], check=True)
        c.run(node2, ["ip", "addr", "add", "fd00:99::2/64", "dev", node2.uplink, "nodad"], check=True)
        for i, pod in enumerate((self.client, self.outsider)):
            net = f"fd00:1{i}::"
            c.run(node1, ["ip", "addr", "add", f"{net}1/64", "dev", pod.host_veth, "nodad"], check=True)
            c.run(pod, ["ip", "addr", "add", f"{net}2/64", "dev", "eth0", "nodad"], check=True)
            c.run(pod, ["ip", "-6", "route", "add", "default", "via", f"{net}1"], check=True)
            c.run(node2, ["ip", "-6", "route", "add", f"{net}/64", "via", "fd00:99::1"], check=True)
        c.popen(node2, [sys.executable, "-c", "import socket, time\n"
                        "s = socket.socket(socket.AF_INET6); s.bind(('fd00:99::2', 9600)); s.listen(); time.sleep(120)"],
                stdout=subprocess.DEVNULL)
        time.sleep(0.3)
        dropped0 = self.metrics(node1, "ipv6")
        cap = c.capture(node1, node1.uplink, "ip6 and tcp port 9600")
        self.addCleanup(cap.cleanup)
        # The listener never answers: a TCP handshake is what counts here.
        self.assertTrue(self.connect(self.outsider, "fd00:99::2", 9600, 1).startswith("connected"))  # the control
        self.assertTrue(self.connect(self.client, "fd00:99::2", 9600, 1).startswith("failed"))
        seen = cap.summary()
        self.assertTrue(any("fd00:11::2" in p for p in seen), f"the control's SYN is not on the wire: {seen}")
        self.assertFalse(any("fd00:10::2" in p for p in seen), f"the STRICT pod's IPv6 reached the wire: {seen}")
        self.assertGreater(self.metrics(node1, "ipv6"), dropped0)

    def test_a_fragmented_syn_of_a_strict_pod_never_reaches_the_wire(self):
        c = self.cluster
        node1, node2 = c.node("node1"), c.node("node2")
        dropped0 = self.metrics(node1, "fragment")
        # Fragments, or their reassembly if the node defragments before forwarding: either shows the control passed.
        cap = c.capture(node1, node1.uplink, f"dst host {node2.ip} and (ip[6:2] & 0x3fff != 0 or tcp port 7777)")
        self.addCleanup(cap.cleanup)
        for pod in (self.outsider, self.client):
            c.run(pod, [sys.executable, "-c", FRAG_SYN, pod.ip, node2.ip, "7777"], check=True, timeout=30)
        time.sleep(0.5)
        seen = cap.summary()
        self.assertTrue(any(self.outsider.ip in p for p in seen), f"the control's fragments are not on the wire: {seen}")
        self.assertFalse(any(self.client.ip in p for p in seen), f"the STRICT pod's fragments reached the wire: {seen}")
        self.assertGreaterEqual(self.metrics(node1, "fragment") - dropped0, 3)

    def test_udp_of_a_strict_pod_is_dns_only(self):
        c = self.cluster
        node1, node2 = c.node("node1"), c.node("node2")
        dropped0 = self.metrics(node1, "udp")
        cap = c.capture(node1, node1.uplink, "udp")
        self.addCleanup(cap.cleanup)
        for pod in (self.outsider, self.client):
            c.run(pod, [sys.executable, "-c", UDP_SEND, node2.ip, "53", "9999"], check=True, timeout=30)
        time.sleep(0.5)
        seen = cap.summary()
        def sent(pod, port):
            return any(f"{pod.ip}." in p and f"{node2.ip}.{port}" in p for p in seen)
        self.assertTrue(sent(self.outsider, 9999) and sent(self.outsider, 53), f"control: {seen}")
        self.assertTrue(sent(self.client, 53), f"the STRICT pod's DNS did not pass: {seen}")
        self.assertFalse(sent(self.client, 9999), f"the STRICT pod's UDP reached the wire: {seen}")
        self.assertGreater(self.metrics(node1, "udp"), dropped0)

    def set_node1_config(self, **top_level):
        """Sets top-level keys of node1's agent config (as MeshConfig would) and waits until the agent applied them."""
        log = self.mesh.workdir / "agent-node1.log"
        before = log.read_text(errors="replace").count("config applied") if log.exists() else 0
        self.mesh.config_hooks["node1"] = lambda cfg: {**cfg, **top_level}
        self.mesh.reload()
        deadline = time.time() + 10
        while time.time() < deadline:
            if log.read_text(errors="replace").count("config applied") > before:
                return
            time.sleep(0.1)
        self.fail(f"node1's agent did not apply {top_level}: {self.mesh.agent_log(self.cluster.node('node1'))}")

    def test_strict_udp_allow_lets_other_udp_out(self):
        c = self.cluster
        node1, node2 = c.node("node1"), c.node("node2")
        self.addCleanup(self.set_node1_config)  # back to the default: DNS only
        self.set_node1_config(strictUdp="Allow")
        cap = c.capture(node1, node1.uplink, "udp")
        self.addCleanup(cap.cleanup)
        c.run(self.client, [sys.executable, "-c", UDP_SEND, node2.ip, "9999"], check=True, timeout=30)
        time.sleep(0.5)
        seen = cap.summary()
        self.assertTrue(any(f"{self.client.ip}." in p and f"{node2.ip}.9999" in p for p in seen), seen)

    def test_excluded_cidrs_go_direct(self):
        # MeshConfig excludeCidrs (here in the agent's local config): a STRICT pod reaches an excluded destination
        # directly, as Istio's excludeOutboundIPRanges; every other destination stays meshed.
        c = self.cluster
        node1 = c.node("node1")
        self.addCleanup(self.set_node1_config)
        cap = c.capture(node1, node1.uplink, f"tcp port {PORT}")
        self.addCleanup(cap.cleanup)
        self.assertEqual(self.connect(self.client, self.server.ip, PORT), "echoed")
        self.assertEqual(cap.summary(), [], "meshed traffic left in plaintext")
        self.set_node1_config(excludeCidrs=[f"{self.server.ip}/32"])
        cap2 = c.capture(node1, node1.uplink, f"tcp port {PORT}")
        self.addCleanup(cap2.cleanup)
        # The server is STRICT too: its node refuses the plaintext SYN, which is what "not captured" looks like here.
        self.assertNotEqual(self.connect(self.client, self.server.ip, PORT), "echoed")
        seen = cap2.summary()
        self.assertTrue(any(f"{self.client.ip}." in p and f"{self.server.ip}.{PORT}" in p for p in seen),
                        f"the excluded destination was not dialled directly: {seen}")


if __name__ == "__main__":
    unittest.main()
