"""Running zeromesh on the simulated cluster: a test CA, agent configs, agents as real processes.

    with zmcluster.Cluster(nodes=2, pods_per_node=2) as c:
        mesh = Mesh(c, workdir)
        mesh.enroll(c.pods[0], sa="client")          # enrolled workloads get an identity
        mesh.add_workload(c.pods[1], enrolled=False)
        mesh.start_agents()
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

import zmcluster

CHART_VALUES = Path(__file__).resolve().parents[2] / "charts" / "zeromesh" / "values.yaml"
BUILD_DIR = Path(os.environ.get("ZM_BUILD_DIR", Path(__file__).resolve().parents[2] / "build" / "default"))
AGENT_BIN = BUILD_DIR / "agent" / "mesh-agent"


def attach_mode_args() -> list[str]:
    """ZM_ATTACH_MODE=tc|tcx|auto runs every agent of a test in that mode (ctest's *_tc variants force tc)."""
    mode = os.environ.get("ZM_ATTACH_MODE")
    return ["--attach-mode", mode] if mode else []


def chart_sockmap_mode() -> str:
    """The chart's default agent.sockmap.mode: the simulated cluster's agents run what a plain chart install runs."""
    with open(CHART_VALUES) as f:
        return str(yaml.safe_load(f)["agent"]["sockmap"]["mode"])


def sockmap_mode(mode: str | None = None) -> str:
    """|mode|, else ZM_SOCKMAP=off|on|from-pod|both (for every agent of a test), else the chart's default."""
    return mode or os.environ.get("ZM_SOCKMAP") or chart_sockmap_mode()


def sockmap_args(cluster: zmcluster.Cluster, mode: str | None = None) -> list[str]:
    """--sockmap for sockmap_mode(|mode|), its sock_ops program on the cluster's own cgroup (never the root; the
    simulated pods are not under a kubelet's kubepods, so not `auto`)."""
    mode = sockmap_mode(mode)
    return [] if mode == "off" else ["--sockmap", mode, "--sockops-cgroup", str(cluster.cgroup_root)]


def openssl(*args: str, cwd: Path) -> None:
    zmcluster.sh(["openssl", *args], cwd=cwd)


class TestCA:
    """A mesh CA made with the openssl CLI: ECDSA P-256 root, workload leaves with one SPIFFE URI SAN."""

    def __init__(self, directory: Path, trust_domain: str = "cluster.local", name: str = "root"):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.trust_domain = trust_domain
        self.name = name
        self.cert = self.dir / f"{name}.crt"
        self.key = self.dir / f"{name}.key"
        openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(self.key), cwd=self.dir)
        openssl("req", "-x509", "-new", "-key", str(self.key), "-out", str(self.cert), "-days", "2",
                "-subj", f"/O=zeromesh test/CN={name}", "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=self.dir)

    def spiffe_id(self, ns: str, sa: str, trust_domain: str | None = None) -> str:
        return f"spiffe://{trust_domain or self.trust_domain}/ns/{ns}/sa/{sa}"

    def issue(self, uri: str, stem: str) -> tuple[Path, Path]:
        """Signs a leaf for `uri` (any string, so tests can make wrong ones). Returns (cert chain, key) paths."""
        key = self.dir / f"{stem}.key"
        csr = self.dir / f"{stem}.csr"
        crt = self.dir / f"{stem}.crt"
        ext = self.dir / f"{stem}.ext"
        ext.write_text("basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                       f"extendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=critical,URI:{uri}\n")
        openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(key), cwd=self.dir)
        openssl("req", "-new", "-key", str(key), "-out", str(csr), "-subj", "/O=zeromesh test", cwd=self.dir)
        openssl("x509", "-req", "-in", str(csr), "-CA", str(self.cert), "-CAkey", str(self.key), "-CAcreateserial",
                "-out", str(crt), "-days", "1", "-extfile", str(ext), cwd=self.dir)
        return crt, key


@dataclass
class Workload:
    pod: zmcluster.Pod
    namespace: str
    service_account: str
    enrolled: bool
    mode: str
    probe_ports: tuple = ()  # what the node's own netns may reach in STRICT (the kubelet's probes)

    def to_json(self) -> dict:
        out = {"name": self.pod.name, "namespace": self.namespace, "serviceAccount": self.service_account,
               "ip": self.pod.ip, "node": self.pod.node.name, "enrolled": self.enrolled, "mode": self.mode}
        if self.probe_ports:
            out["probePorts"] = list(self.probe_ports)
        if len(self.pod.ips) > 1:  # dual-stack: every address, ip first
            out["ips"] = list(self.pod.ips)
        return out


class Mesh:
    def __init__(self, cluster: zmcluster.Cluster, workdir: Path, trust_domain: str = "cluster.local",
                 mode: str = "STRICT"):
        self.cluster = cluster
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.trust_domain = trust_domain
        self.mode = mode
        self.ca = TestCA(self.workdir / "ca", trust_domain)
        self.workloads: list[Workload] = []
        self.identities: dict[str, tuple[Path, Path]] = {}
        self.agents: dict[str, subprocess.Popen] = {}
        # node name -> function(config dict) -> config dict: lets a test give one node a different view.
        self.config_hooks: dict = {}
        # True: agents find their uplinks from the routing table (no --uplink), as with the chart's default.
        self.auto_uplink = False
        # node name -> extra mesh-agent flags (e.g. ["--hbone-handshake-timeout-ms", "20000"]).
        self.agent_args: dict[str, list[str]] = {}
        # --sockmap mode of every agent (None: ZM_SOCKMAP's, else the chart's default).
        self.sockmap: str | None = None

    def agent_id(self, node: zmcluster.Node) -> str:
        return f"{self.cluster.prefix}-{node.name}"

    def add_workload(self, pod: zmcluster.Pod, ns: str = "default", sa: str | None = None, enrolled: bool = True,
                     mode: str | None = None, probe_ports: tuple = ()) -> Workload:
        w = Workload(pod, ns, sa or pod.name, enrolled, mode or self.mode, tuple(probe_ports))
        self.workloads.append(w)
        if enrolled:
            uri = self.ca.spiffe_id(ns, w.service_account)
            if uri not in self.identities:
                self.identities[uri] = self.ca.issue(uri, f"{ns}.{w.service_account}")
        return w

    def add_rogue_workload(self, pod: zmcluster.Pod, sa: str) -> Workload:
        """A workload the other nodes' agents believe enrolled with identity `sa`, while its own node's agent does not
        enroll it: whatever listens on the pod's :15008 is not our proxy but a rogue HBONE server claiming `sa`."""
        w = self.add_workload(pod, sa=sa)
        earlier = self.config_hooks.get(pod.node.name, lambda cfg: cfg)

        def own_node_view(cfg):
            for entry in cfg["workloads"]:
                if entry["name"] == pod.name:
                    entry["enrolled"] = False
            return earlier(cfg)
        self.config_hooks[pod.node.name] = own_node_view
        return w

    def add_client_server_rogue(self, serve_port: int) -> tuple[zmcluster.Pod, zmcluster.Pod, zmcluster.Pod]:
        """The workloads of the identity and TLS-refusal tests: client (node1, sa/client), server (node2, sa/server,
        `podtool serve serve_port`) and rogue (node2), which node1 believes is sa/server while node2 does not enroll
        it (add_rogue_workload). Returns (client, server, rogue); the agents are not started."""
        client = self.cluster.add_pod("node1", "client")
        server = self.cluster.add_pod("node2", "server")
        rogue = self.cluster.add_pod("node2", "rogue")
        self.add_workload(client, sa="client")
        self.add_workload(server, sa="server")
        self.add_rogue_workload(rogue, sa="server")
        podtool = Path(__file__).resolve().parent / "podtool.py"
        self.cluster.popen(server, [sys.executable, str(podtool), "serve", str(serve_port)], stdout=subprocess.DEVNULL)
        return client, server, rogue

    def config_for(self, node: zmcluster.Node) -> dict:
        local_ids = {self.ca.spiffe_id(w.namespace, w.service_account) for w in self.workloads
                     if w.enrolled and w.pod.node is node}
        return {
            "node": node.name,
            "trustDomain": self.trust_domain,
            "mode": self.mode,
            "rootCert": str(self.ca.cert),
            "workloads": [w.to_json() for w in self.workloads],
            "identities": [{"spiffeId": uri, "certChain": str(crt), "key": str(key)}
                           for uri, (crt, key) in self.identities.items() if uri in local_ids],
        }

    def config_path(self, node: zmcluster.Node) -> Path:
        return self.workdir / f"agent-{node.name}.json"

    def write_configs(self) -> None:
        for node in self.cluster.nodes:
            path = self.config_path(node)
            tmp = path.with_suffix(".tmp")
            cfg = self.config_for(node)
            if node.name in self.config_hooks:
                cfg = self.config_hooks[node.name](cfg)
            tmp.write_text(json.dumps(cfg, indent=2))
            tmp.replace(path)

    def start_agent(self, node: zmcluster.Node, wait: bool = True) -> subprocess.Popen:
        if not AGENT_BIN.exists():
            raise zmcluster.ClusterError(f"{AGENT_BIN} not built")
        self.write_configs()
        with open(self.workdir / f"agent-{node.name}.log", "ab") as log:
            p = self.cluster.popen(node, [str(AGENT_BIN), "--node", node.name, "--agent-id", self.agent_id(node),
                                          "--config", str(self.config_path(node)),
                                          *([] if self.auto_uplink else ["--uplink", node.uplink]),
                                          *attach_mode_args(), *sockmap_args(self.cluster, self.sockmap),
                                          *self.agent_args.get(node.name, [])],
                                   stdout=log, stderr=subprocess.STDOUT)
        self.agents[node.name] = p
        if wait:
            self.wait_ready(node)
        return p

    def start_agents(self) -> None:
        for node in self.cluster.nodes:
            self.start_agent(node, wait=False)
        for node in self.cluster.nodes:
            self.wait_ready(node)

    def wait_ready(self, node: zmcluster.Node, timeout: float = 15) -> None:
        """Ready = the agent logged that its listeners are in the SOCKMAP and config is applied."""
        log = self.workdir / f"agent-{node.name}.log"
        deadline = time.time() + timeout
        p = self.agents[node.name]
        while time.time() < deadline:
            if p.poll() is not None:
                raise zmcluster.ClusterError(f"agent on {node.name} exited {p.returncode}: {self.agent_log(node)}")
            if log.exists() and any('"msg":"agent ready"' in l for l in log.read_text(errors="replace").splitlines()):
                return
            time.sleep(0.05)
        raise zmcluster.ClusterError(f"agent on {node.name} not ready in {timeout}s: {self.agent_log(node)}")

    def agent_log(self, node: zmcluster.Node, tail: int | None = 4000) -> str:
        """The agent's log: its last |tail| characters (for failure messages), or all of it (tail=None) for tests that
        search or count lines in it, which a window sliding with new lines would make flaky."""
        log = self.workdir / f"agent-{node.name}.log"
        if not log.exists():
            return "(no log)"
        text = log.read_text(errors="replace")
        return text if tail is None else text[-tail:]

    def kill_agent(self, node: zmcluster.Node) -> None:
        p = self.agents.pop(node.name)
        p.kill()
        p.wait(timeout=10)

    def reload(self) -> None:
        """Rewrites every agent's config and signals them to reload it."""
        self.write_configs()
        for p in self.agents.values():
            p.send_signal(1)  # SIGHUP


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
