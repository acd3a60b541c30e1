"""Issue 6 acceptance 1 and 2 on the simulated cluster with the real controller and agents:
(1) 2,000 connections to a VIP with 3 endpoints on 2 nodes all succeed, round robin within +-1 per endpoint;
    locality preference keeps traffic on the node; targetPort mapping on several ports; endpoints outside the mesh.
(2) a 90/10 TCPRoute split lands within 10% +- 2% over 2,000 connections; 0/100 takes effect within 1 s for new
    connections while an established one keeps flowing.
"""

import subprocess
import sys
import time
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from traffic_env import PODTOOL, POLLER, VIP, VIP_EXT, TrafficEnv  # noqa: E402


class LoadBalancingAndSplitTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.env = TrafficEnv()

    @classmethod
    def tearDownClass(cls):
        cls.env.down()

    def tearDown(self):
        env = self.env
        env.remove_glob("policy-*.yaml")
        env.remove_glob("route-*.yaml")
        env.wait_dump(env.node1, "backend", lambda s: not s["splits"] and not s["policy"]["name"])

    def settled(self):
        return self.env.wait_dump(self.env.node1, "backend", lambda s: len(s["endpoints"]) == 3)

    def test_round_robin_over_three_endpoints_on_two_nodes(self):
        env = self.env
        self.settled()
        out = env.conns(VIP, 80, 2000)
        named = env.named(out["by_server"], with_port=True)
        print(f"round robin: {named} in {out['seconds']}s", file=sys.stderr)
        self.assertEqual(out["failed"], 0, out)
        self.assertEqual(set(named), {"b1:8080", "b2:8080", "b3:8080"}, named)
        self.assertLessEqual(max(named.values()) - min(named.values()), 1, named)
        self.assertEqual(sum(named.values()), 2000)

    def test_second_port_maps_to_its_target_port(self):
        env = self.env
        self.settled()
        out = env.conns(VIP, 81, 30)
        named = env.named(out["by_server"], with_port=True)
        self.assertEqual(out["failed"], 0, out)
        self.assertEqual(set(named), {"b1:8081", "b2:8081", "b3:8081"}, named)

    def test_unknown_port_is_refused_promptly(self):
        env = self.env
        self.settled()
        out = env.conns(VIP, 82, 3, conc=1, timeout=3)
        self.assertEqual(out["failed"], 3, out)
        self.assertLess(out["seconds"], 2.0, out)

    def test_locality_preference_keeps_traffic_on_the_node(self):
        env = self.env
        env.policy("local", "backend", {"loadBalancer": {"algorithm": "RoundRobin", "localityPreference": True}})
        env.wait_dump(env.node1, "backend", lambda s: s["policy"]["loadBalancer"]["localityPreference"])
        out = env.conns(VIP, 80, 300)
        named = env.named(out["by_server"])
        self.assertEqual(out["failed"], 0, out)
        self.assertEqual(named, {"b1": 300}, named)  # b1 is the only endpoint on node1

    def test_least_connections_and_power_of_two_choices_serve_every_connection(self):
        env = self.env
        for algo in ("LeastConnections", "PowerOfTwoChoices"):
            env.policy("algo", "backend", {"loadBalancer": {"algorithm": algo}})
            env.wait_dump(env.node1, "backend", lambda s: s["policy"]["loadBalancer"]["algorithm"] == algo)
            out = env.conns(VIP, 80, 300)
            named = env.named(out["by_server"])
            self.assertEqual(out["failed"], 0, (algo, out))
            self.assertEqual(set(named), {"b1", "b2", "b3"}, (algo, named))

    def test_endpoint_outside_the_mesh_is_reached_directly(self):
        env = self.env
        env.wait_dump(env.node1, "external", lambda s: len(s["endpoints"]) == 1)
        out = env.conns(VIP_EXT, 80, 20)
        self.assertEqual(out["failed"], 0, out)
        self.assertEqual(env.named(out["by_server"]), {"ext": 20})

    def test_weighted_split_90_10_then_0_100(self):
        env = self.env
        env.route("canary", "backend", 80, [("backend-v1", 80, 90), ("backend-v2", 80, 10)])
        env.wait_dump(env.node1, "backend", lambda s: [b["weight"] for b in (s["splits"] or [{}])[0].get("backends", [])]
                      == [90, 10])
        out = env.conns(VIP, 80, 2000)
        named = env.named(out["by_server"])
        print(f"90/10 split: {named}", file=sys.stderr)
        self.assertEqual(out["failed"], 0, out)
        v2 = named.get("b3", 0) / 2000
        self.assertTrue(0.08 <= v2 <= 0.12, named)
        self.assertEqual(named.get("b1", 0) + named.get("b2", 0) + named.get("b3", 0), 2000, named)

        # An established connection (on whichever backend) keeps flowing across the change.
        long_conn = env.cluster.popen(env.client, [sys.executable, PODTOOL, "hold", VIP, "80", "4"],
                                      stdout=subprocess.PIPE, text=True)
        poller = env.cluster.popen(env.client, [sys.executable, "-c", POLLER, VIP, "80", "4"],
                                   stdout=subprocess.PIPE, text=True)
        time.sleep(1.0)
        changed_at = time.time()
        env.route("canary", "backend", 80, [("backend-v1", 80, 0), ("backend-v2", 80, 100)])
        samples = [line.split() for line in poller.communicate(timeout=30)[0].splitlines()]
        long_out = long_conn.communicate(timeout=30)[0]
        names = env.ip_names()
        after = [(float(t), names.get(addr.rsplit(":", 1)[0], addr)) for t, addr in samples if float(t) > changed_at]
        self.assertTrue(after, samples)
        self.assertFalse([s for s in after if s[1] == "ERR"], after)
        # The last connection that still went to v1 must have started within 1 s of the change.
        last_v1 = max((t for t, n in after if n != "b3"), default=changed_at)
        print(f"0/100 effective {last_v1 - changed_at:.3f}s after the route was written", file=sys.stderr)
        self.assertLess(last_v1 - changed_at, 1.0, after)
        self.assertTrue(all(n == "b3" for t, n in after if t > changed_at + 1.0), after)
        self.assertIn("result", long_out)
        ok, bad = map(int, long_out.split("result", 1)[1].split())
        self.assertEqual(bad, 0, long_out)
        self.assertGreater(ok, 30, long_out)


if __name__ == "__main__":
    unittest.main(verbosity=2)
