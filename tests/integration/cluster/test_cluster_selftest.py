"""Harness self-test: the simulated cluster connects every pod to every other pod, and leaves nothing behind."""

import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "cluster"))
import sanitizers  # noqa: E402
import zmcluster  # noqa: E402

# argv: PORT [BIND]; BIND "::" serves both families on one socket (an IPv4 peer shown without its ::ffff: prefix).
ECHO_SERVER = textwrap.dedent("""
    import socket, sys
    bind = sys.argv[2] if len(sys.argv) > 2 else "0.0.0.0"
    s = socket.socket(socket.AF_INET6 if ":" in bind else socket.AF_INET)
    if ":" in bind:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((bind, int(sys.argv[1]))); s.listen(64)
    while True:
        c, peer = s.accept()
        c.sendall(("peer=%s " % peer[0].removeprefix("::ffff:")).encode() + c.recv(1024)); c.close()
""")

ECHO_CLIENT = textwrap.dedent("""
    import socket, sys
    c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
    c.sendall(b"hello"); print(c.recv(1024).decode()); c.close()
""")


def leftovers(prefix: str) -> list[str]:
    """Everything of a run that could still exist: namespaces, cgroups, BPF pins, state file."""
    found = [n for n in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()
             if n.startswith(prefix + "-")]
    cg = zmcluster._cgroup2_root() / "zeromesh" / prefix
    if cg.exists():
        found.append(str(cg))
    found += [str(p) for p in zmcluster.BPF_ROOT.glob(prefix + "-*")] if zmcluster.BPF_ROOT.exists() else []
    if (zmcluster.STATE_DIR / f"{prefix}.json").exists():
        found.append("state file")
    return found


class ClusterSelfTest(unittest.TestCase):
    def test_every_pod_reaches_every_pod(self):
        with zmcluster.Cluster(nodes=2, pods_per_node=2) as c:
            prefix = c.prefix
            self.assertEqual(len(c.pods), 4)
            for pod in c.pods:
                c.popen(pod, ["python3", "-c", ECHO_SERVER, "7000"], stdout=subprocess.DEVNULL)
                self.assertTrue(Path(pod.cgroup).is_dir())
            for pod in c.pods:
                c.wait_tcp(c.pods[0], pod.ip, 7000)
            for src in c.pods:
                for dst in c.pods:
                    if src is dst:
                        continue
                    res = c.run(src, ["python3", "-c", ECHO_CLIENT, dst.ip, "7000"], text=True, timeout=20)
                    self.assertEqual(res.returncode, 0, f"{src.name} -> {dst.name}: {res.stderr}")
                    # No NAT anywhere: the server sees the client's own pod IP.
                    self.assertEqual(res.stdout.strip(), f"peer={src.ip} hello", f"{src.name} -> {dst.name}")
            # Processes started in a pod really run in its cgroup.
            res = c.run(c.pods[1], ["cat", "/proc/self/cgroup"], text=True)
            self.assertIn(f"/zeromesh/{prefix}/{c.pods[1].name}", res.stdout)
        self.assertEqual(leftovers(prefix), [])

    def test_dual_stack_and_ipv6_only_pods_reach_every_pod(self):
        """Every pod reaches every pod on each of its addresses, across nodes and at once (no DAD wait), with the
        client's own address of that family as the source; a host on the node network reaches them too."""
        for families in (("ipv4", "ipv6"), ("ipv6",)):
            with self.subTest(families=families), zmcluster.Cluster(nodes=2, pods_per_node=2,
                                                                     families=families) as c:
                prefix = c.prefix
                host = c.add_host("cp")
                n1, n2 = c.nodes
                self.assertEqual(n1.ips, ["10.99.0.1", "fd00:99::1"] if len(families) == 2 else ["fd00:99::1"])
                self.assertEqual(n2.pod_cidr6, "fd00:10:244:2::/64")
                self.assertEqual(c.pods[2].ip6, "fd00:10:244:2::11")
                self.assertEqual(c.pods[3].ip, c.pods[3].ips[0])
                self.assertEqual(c.pods[3].ip4, "10.244.2.12" if len(families) == 2 else "")
                res = c.run(n1, ["sysctl", "-n", "net.ipv6.conf.all.forwarding"], text=True, check=True)
                self.assertEqual(res.stdout.strip(), "1")
                res = c.run(n1, ["ip", "-6", "route", "show", n2.pod_cidr6], text=True, check=True)
                self.assertIn(f"via {n2.ip6} dev eth0", res.stdout)
                for pod in c.pods:
                    c.popen(pod, ["python3", "-c", ECHO_SERVER, "7000", "::"], stdout=subprocess.DEVNULL)
                for t in [*c.nodes, host, *c.pods]:  # no address left tentative: usable at once
                    res = c.run(t, ["ip", "-6", "addr", "show", "tentative"], text=True, check=True)
                    self.assertEqual(res.stdout.strip(), "", t.name)
                for pod in c.pods:
                    for ip in pod.ips:
                        c.wait_tcp(pod, ip, 7000)
                for src in [*c.pods, host]:
                    for dst in c.pods:
                        for ip in dst.ips if src is not dst else []:
                            res = c.run(src, ["python3", "-c", ECHO_CLIENT, ip, "7000"], text=True, timeout=20)
                            self.assertEqual(res.returncode, 0, f"{src.name} -> {ip}: {res.stderr}")
                            want = src.ip6 if zmcluster.is_v6(ip) else src.ip4
                            self.assertEqual(res.stdout.strip(), f"peer={want} hello", f"{src.name} -> {ip}")
            self.assertEqual(leftovers(prefix), [])

    def test_cleanup_after_a_failing_test(self):
        # A child process builds a cluster, starts a process in a pod, and then fails with an exception.
        script = textwrap.dedent(f"""
            import sys, subprocess
            sys.path.insert(0, {str(Path(zmcluster.__file__).parent)!r})
            import zmcluster
            with zmcluster.Cluster(nodes=2, pods_per_node=1) as c:
                print(c.prefix, flush=True)
                c.popen(c.pods[0], ["sleep", "300"])
                raise AssertionError("failing on purpose")
        """)
        res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
        self.assertNotEqual(res.returncode, 0)
        self.assertIn("failing on purpose", res.stderr)
        prefix = res.stdout.split()[0]
        self.assertEqual(leftovers(prefix), [])

    def test_cleanup_when_interrupted(self):
        # SIGTERM in the middle of a run (what ctest does on a timeout) still removes everything.
        script = textwrap.dedent(f"""
            import sys, time
            sys.path.insert(0, {str(Path(zmcluster.__file__).parent)!r})
            import zmcluster
            c = zmcluster.Cluster(nodes=2, pods_per_node=1).up()
            print(c.prefix, flush=True)
            time.sleep(300)
        """)
        p = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        prefix = p.stdout.readline().split()[0]
        self.assertTrue(leftovers(prefix))
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=30)
        self.assertEqual(leftovers(prefix), [])

    def test_gc_removes_runs_whose_owner_was_killed(self):
        # SIGKILL cannot be handled: `gc` is the safety net (tools/test.sh runs it before the suite).
        script = textwrap.dedent(f"""
            import sys, time
            sys.path.insert(0, {str(Path(zmcluster.__file__).parent)!r})
            import zmcluster
            c = zmcluster.Cluster(nodes=1, pods_per_node=1).up()
            print(c.prefix, flush=True)
            time.sleep(300)
        """)
        p = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        prefix = p.stdout.readline().split()[0]
        p.kill()
        p.wait(timeout=10)
        self.assertTrue(leftovers(prefix))
        self.assertIn(prefix, zmcluster.gc())
        self.assertEqual(leftovers(prefix), [])

    def test_a_sanitizer_report_of_a_daemon_fails_the_run(self):
        # What the asan preset relies on: an ASan error in a process the cluster started fails down().
        with tempfile.TemporaryDirectory() as tmp:
            src = Path(tmp) / "overflow.c"
            src.write_text("#include <stdlib.h>\nint main(void) { volatile char *p = malloc(4); p[4] = 1; "
                           "free((void *)p); return 0; }\n")
            subprocess.run(["clang", "-fsanitize=address", "-g", str(src), "-o", f"{tmp}/overflow"], check=True)
            saved = {k: os.environ.get(k) for k in ("ZM_SANITIZER_REPORTS", "ASAN_OPTIONS", "UBSAN_OPTIONS")}
            os.environ["ZM_SANITIZER_REPORTS"] = f"{tmp}/reports"
            try:
                c = zmcluster.Cluster(nodes=1, pods_per_node=1).up()
                prefix = c.prefix
                c.popen(c.nodes[0], [f"{tmp}/overflow"]).wait(timeout=30)
                with self.assertRaisesRegex(sanitizers.SanitizerError, "heap-buffer-overflow"):
                    c.down()
            finally:
                for k, v in saved.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v
            self.assertEqual(leftovers(prefix), [])


if __name__ == "__main__":
    unittest.main(verbosity=2)
