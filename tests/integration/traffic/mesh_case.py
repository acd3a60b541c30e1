"""The L7 traffic tests' common frame: one two-node simulated cluster with the real controller per test class.

A subclass fills the cluster in setUpMesh(c) (pods, workloads, servers, manifests, starting the control plane
`cls.cp` and waiting for what its tests need); when that fails, the controller's log is printed and the cluster is
taken down, as it is after the last test. A check that the test cannot run here (tests/cluster/needs.py) goes in
the subclass's own setUpClass before super().setUpClass(), so nothing is built for a skipped test.
"""

from __future__ import annotations

import json
import sys
import tempfile
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "cluster"))
import zmcluster  # noqa: E402
from controlplane import ControlPlane  # noqa: E402

HTTP_TOOL = str(Path(__file__).resolve().parent / "http_tool.py")


class MeshCase(unittest.TestCase):
    TMP_PREFIX = "zm-traffic-"

    @classmethod
    def setUpMesh(cls, c: zmcluster.Cluster) -> None:
        raise NotImplementedError(f"{cls.__name__} must define setUpMesh")

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix=cls.TMP_PREFIX)
        cls.cluster = zmcluster.Cluster(nodes=2, pods_per_node=0).up()
        try:
            cls.cp = ControlPlane(cls.cluster, Path(cls.tmp.name))
            cls.setUpMesh(cls.cluster)
        except BaseException:
            if hasattr(cls, "cp"):
                print(f"controller: {cls.cp.log('controller', 3000)}", file=sys.stderr)
            cls.cluster.down()
            cls.tmp.cleanup()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.cluster.down()
        cls.tmp.cleanup()

    @classmethod
    def run_http(cls, plan: list, host: str, port: int = 80, timeout: float = 60) -> dict:
        """Runs an http_tool.py request plan from the client pod (cls.client) to host:port; returns its JSON result."""
        res = cls.cluster.run(cls.client, [sys.executable, HTTP_TOOL, "run", host, str(port)], input=json.dumps(plan),
                              text=True, timeout=timeout)
        if res.returncode != 0:
            raise AssertionError(f"client failed: {res.stderr[-2000:]}\nagent node1: {cls.cp.log('agent-node1', 3000)}")
        return json.loads(res.stdout)
