"""The L7 traffic tests' common frame: one two-node simulated cluster with the real controller per test class.

A subclass fills the cluster in setUpMesh(c) (pods and their workloads through add_workload, servers through
serve_http / serve_grpc / serve, which return once the server accepts, manifests (service_yaml for Services), starting
the control plane `cls.cp` and waiting for what its tests need);
when that fails, the controller's log is printed and the cluster is taken down, as it is after the last test. A check
that the test cannot run here (tests/cluster/needs.py) goes in the subclass's own setUpClass before
super().setUpClass(), so nothing is built for a skipped test.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "cluster"))
import zmcluster  # noqa: E402
from cluster_case import ClusterCase  # noqa: E402
from controlplane import ControlPlane  # noqa: E402

HTTP_TOOL = str(Path(__file__).resolve().parent / "http_tool.py")
GRPC_TOOL = str(Path(__file__).resolve().parent / "grpc_tool.py")
GRPC_PY = "/usr/bin/python3"  # Debian's python3-grpcio (tools/deps.sh) is for the system interpreter


def service_yaml(ns: str, name: str, vip: str, selector: dict, ports: list, vips: list | None = None) -> str:
    """A zeromesh Service manifest (one YAML document, no separator): pods labelled |selector| behind |vip|; |ports|:
    (name, port, targetPort, appProtocol) tuples, appProtocol None (or left out) for none; |vips|: every cluster IP
    of a dual-stack Service, vip first (left out when None)."""
    labels = ", ".join(f"{k}: {v}" for k, v in selector.items())
    maps = []
    for port_name, port, target, *protocol in ports:
        app = f", appProtocol: {protocol[0]}" if protocol and protocol[0] else ""
        maps.append(f"{{name: {port_name}, port: {port}, targetPort: {target}{app}}}")
    # JSON-quoted: YAML reads an unquoted "fd00::" list item as a mapping {"fd00:": null}.
    vips_line = f"\n  vips: {json.dumps(vips)}" if vips else ""
    return f"""apiVersion: zeromesh.io/v1alpha1
kind: Service
metadata: {{name: {name}, namespace: {ns}}}
spec:
  vip: {vip}{vips_line}
  selector: {{{labels}}}
  ports: [{", ".join(maps)}]
"""


def web_rpc_services(ns: str, vip_web: str, vip_rpc: str) -> str:
    """Services web (HTTP/1.1, port 80 -> 9080) and rpc (gRPC, port 80 -> 50051) in front of the pods that
    MeshCase.add_web_and_rpc starts (two YAML documents)."""
    return "---\n".join([service_yaml(ns, "web", vip_web, {"app": "web"}, [("http", 80, 9080, "http")]),
                          service_yaml(ns, "rpc", vip_rpc, {"app": "rpc"}, [("grpc", 80, 50051, "grpc")])])


class MeshCase(ClusterCase):
    TMP_PREFIX = "zm-traffic-"
    LOGS: tuple = ("controller",)  # the control plane logs printed when setUpMesh fails

    @classmethod
    def setUpMesh(cls, c: zmcluster.Cluster) -> None:
        raise NotImplementedError(f"{cls.__name__} must define setUpMesh")

    @classmethod
    def set_up_cluster(cls, c: zmcluster.Cluster, tmp: Path) -> None:
        cls.cp = ControlPlane(c, tmp)
        cls.setUpMesh(c)

    @classmethod
    def set_up_failed(cls) -> None:
        if hasattr(cls, "cp"):
            print("\n".join(f"{name}: {cls.cp.log(name, 3000)}" for name in cls.LOGS), file=sys.stderr)

    @classmethod
    def add_workload(cls, node: str, name: str, ns: str, app: str, sa: str | None = None, **labels):
        """Adds pod |name| on |node| as a mesh workload of namespace |ns|, labelled app=|app| plus |labels|, with
        service account |sa| (default |app|); returns the pod."""
        pod = cls.cluster.add_pod(node, name)
        cls.cp.workload(pod, ns=ns, sa=sa or app, labels={"app": app, **labels})
        return pod

    @classmethod
    def add_web_and_rpc(cls, ns: str) -> None:
        """The two backends of web_rpc_services, both on node2: cls.web (w1, app web, http_tool.py on 9080) and
        cls.rpc (g1, app rpc, grpc_tool.py's zm.Echo on 50051), serving once this returns."""
        cls.web = cls.add_workload("node2", "w1", ns, "web")
        cls.rpc = cls.add_workload("node2", "g1", ns, "rpc")
        cls.serve_http(cls.web, 9080, "w1")
        cls.serve_grpc(cls.rpc, 50051, "g1")

    @classmethod
    def serve(cls, pod, port: int, args: list, grpc: bool = False, env: dict | None = None) -> None:
        """Starts the Python server |args| (a script and its arguments) in |pod| and waits until it accepts on |port|.
        |grpc|: run by the interpreter that has grpcio, with gRPC's fork handlers off; |env|: more variables."""
        env = {**os.environ, **(env or {})}
        if grpc:
            env["GRPC_ENABLE_FORK_SUPPORT"] = "0"
        cls.cluster.popen(pod, [GRPC_PY if grpc else sys.executable, *args], stdout=subprocess.DEVNULL, env=env)
        cls.cluster.wait_tcp(pod, pod.ip, port)

    @classmethod
    def serve_http(cls, pod, port: int, name: str, delay_ms: int = 0) -> None:
        """http_tool.py's server in |pod| on |port|: answers as |name|, each answer |delay_ms| late (a slow
        endpoint)."""
        cls.serve(pod, port, [HTTP_TOOL, "serve", str(port), name, str(delay_ms)])

    @classmethod
    def serve_grpc(cls, pod, port: int, name: str, delay_ms: int = 0, flaky: bool = False) -> None:
        """grpc_tool.py's zm.Echo server in |pod| on |port|: answers as |name|, unary calls |delay_ms| late; |flaky|:
        its zm.Echo/Flaky fails every call with UNAVAILABLE (a failing endpoint)."""
        cls.serve(pod, port, [GRPC_TOOL, "serve", str(port), name, str(delay_ms)], grpc=True,
                  env={"GRPC_TOOL_FLAKY": "1" if flaky else "0"})

    @classmethod
    def run_http(cls, plan: list, host: str, port: int = 80, timeout: float = 60) -> dict:
        """Runs an http_tool.py request plan from the client pod (cls.client) to host:port; returns its JSON result."""
        res = cls.cluster.run(cls.client, [sys.executable, HTTP_TOOL, "run", host, str(port)], input=json.dumps(plan),
                              text=True, timeout=timeout)
        if res.returncode != 0:
            raise AssertionError(f"client failed: {res.stderr[-2000:]}\nagent node1: {cls.cp.log('agent-node1', 3000)}")
        return json.loads(res.stdout)

    def agent_metric(self, name: str, node: str = "node1", required: bool = False, **labels) -> float:
        """Sum of |name| on |node|'s agent (node1: the source proxy) over the series carrying all |labels|;
        |required|: the test fails when the agent has no such series at all."""
        n = self.cluster.node(node)
        res = self.cluster.run(n, ["curl", "-sS", "--max-time", "3", f"http://{n.ip}:15020/metrics"], text=True,
                               timeout=15)
        self.assertEqual(res.returncode, 0, res.stderr)
        total, seen = 0.0, False
        for line in res.stdout.splitlines():
            m = re.match(re.escape(name) + r"(?:\{(.*)\})? (\S+)$", line)
            if m and all(f'{k}="{v}"' in (m.group(1) or "") for k, v in labels.items()):
                total += float(m.group(2))
                seen = True
        if required and not seen:
            self.fail(f"no {name} in the metrics of {node}'s agent")
        return total

    def backend_stats(self, pod) -> dict:
        """What http_tool.py's server in |pod| on port 9080 counted so far (/__stats, asked on the pod's own loopback,
        outside the mesh)."""
        res = self.cluster.run(pod, [sys.executable, "-c", "import urllib.request; print(urllib.request.urlopen("
                                     "'http://127.0.0.1:9080/__stats', timeout=5).read().decode())"], text=True,
                               timeout=15)
        self.assertEqual(res.returncode, 0, res.stderr)
        return json.loads(res.stdout)
