"""A test class on one simulated cluster of its own: built once in setUpClass, taken down after the last test and
also when the set-up itself fails (so a failed set-up leaves no namespaces, cgroups or pins behind).

A subclass sets NODES / FAMILIES / CLUSTER_ARGS / TMP_PREFIX and fills the cluster in set_up_cluster(c, tmp);
set_up_failed() may print what explains a failed set-up (logs) before the cluster goes; tear_down_cluster() runs
before the cluster is taken down, after the last test or a failed set-up (e.g. to stop the agents first).
"""

from __future__ import annotations

import tempfile
import unittest
from pathlib import Path

import zmcluster


class ClusterCase(unittest.TestCase):
    NODES = 2
    FAMILIES: tuple = ("ipv4",)  # the cluster's IP families (zmcluster.Cluster)
    CLUSTER_ARGS: dict = {}  # more zmcluster.Cluster arguments (e.g. underlay, overlay)
    TMP_PREFIX = "zm-test-"

    @classmethod
    def set_up_cluster(cls, c: zmcluster.Cluster, tmp: Path) -> None:
        raise NotImplementedError(f"{cls.__name__} must define set_up_cluster")

    @classmethod
    def set_up_failed(cls) -> None:
        """Called when set_up_cluster raised, before the cluster is taken down."""

    @classmethod
    def tear_down_cluster(cls) -> None:
        """Called before the cluster is taken down (also after a failed set-up)."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix=cls.TMP_PREFIX)
        try:
            cls.cluster = zmcluster.Cluster(nodes=cls.NODES, pods_per_node=0, families=cls.FAMILIES,
                                            **cls.CLUSTER_ARGS).up()
        except BaseException:
            cls.tmp.cleanup()
            raise
        try:
            cls.set_up_cluster(cls.cluster, Path(cls.tmp.name))
        except BaseException:
            cls.set_up_failed()
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            cls.tear_down_cluster()
        finally:
            cls.cluster.down()
            cls.tmp.cleanup()
