"""zeromesh with its controller on the simulated cluster (universal mode): manifests in a directory, a real
mesh-controller on a control-plane host, agents that start with nothing but a bootstrap file.

    with zmcluster.Cluster(nodes=2, pods_per_node=0) as c:
        cp = ControlPlane(c, workdir)
        cp.workload(pod, sa="client")        # writes a Workload manifest
        cp.start()                          # controller + one agent per node
"""

from __future__ import annotations

import datetime
import hashlib
import json
import secrets
import subprocess
import time
from pathlib import Path

import zmcluster
from mesh import BUILD_DIR, AGENT_BIN, attach_mode_args, sockmap_args

CONTROLLER_BIN = BUILD_DIR / "controller" / "mesh-controller"
MESHCTL_BIN = BUILD_DIR / "tools" / "meshctl" / "meshctl"
CONTROLLER_PORT = 15012


class ControlPlane:
    def __init__(self, cluster: zmcluster.Cluster, workdir: Path, trust_domain: str = "cluster.local",
                 mode: str = "STRICT", default_policy: str = "ALLOW", cert_ttl: str = "24h",
                 max_cert_ttl: str = "24h"):
        self.cluster = cluster
        self.workdir = Path(workdir)
        self.manifests = self.workdir / "manifests"
        self.manifests.mkdir(parents=True, exist_ok=True)
        self.ca_dir = self.workdir / "ca"
        self.max_cert_ttl = max_cert_ttl
        self.host = cluster.add_host("cp")
        self.address = zmcluster.host_port(self.host.ip, CONTROLLER_PORT)  # the primary family's address
        self.tokens = {n.name: secrets.token_hex(16) for n in cluster.nodes}
        self.tokens["admin"] = secrets.token_hex(16)  # meshctl's credential
        self.controller: subprocess.Popen | None = None
        self.controller_args: list[str] = []  # more mesh-controller flags (e.g. --console-addr)
        self.agents: dict[str, subprocess.Popen] = {}
        self.mesh_config(trust_domain=trust_domain, mode=mode, default_policy=default_policy, cert_ttl=cert_ttl)

    def save(self) -> None:
        """Records what another process needs to use this control plane (see attach)."""
        (self.workdir / "controlplane.json").write_text(json.dumps(
            {"host": self.host.name, "address": self.address, "tokens": self.tokens,
             "trust_domain": self.trust_domain, "max_cert_ttl": self.max_cert_ttl}, indent=2))
        (self.workdir / "controlplane.json").chmod(0o600)

    @classmethod
    def attach(cls, cluster: zmcluster.Cluster, workdir: Path) -> "ControlPlane":
        """A handle on a control plane that another process started and saved (manifests, meshctl)."""
        state = json.loads((Path(workdir) / "controlplane.json").read_text())
        cp = cls.__new__(cls)
        cp.cluster = cluster
        cp.workdir = Path(workdir)
        cp.manifests = cp.workdir / "manifests"
        cp.ca_dir = cp.workdir / "ca"
        cp.max_cert_ttl = state["max_cert_ttl"]
        cp.host = cluster.target(state["host"])
        cp.address = state["address"]
        cp.tokens = state["tokens"]
        cp.trust_domain = state["trust_domain"]
        cp.controller = None
        cp.controller_args = []
        cp.agents = {}
        return cp

    # ---- manifests -------------------------------------------------------------------------------------------------
    def write(self, filename: str, text: str) -> Path:
        """Writes a manifest file atomically (the controller watches the directory)."""
        path = self.manifests / filename
        tmp = self.workdir / f".{filename}.tmp"
        tmp.write_text(text)
        tmp.replace(path)
        return path

    def remove(self, filename: str) -> None:
        (self.manifests / filename).unlink()

    def mesh_config(self, trust_domain="cluster.local", mode="STRICT", default_policy="ALLOW", cert_ttl="24h"):
        self.trust_domain = trust_domain
        self.write("meshconfig.yaml", f"""apiVersion: zeromesh.io/v1alpha1
kind: MeshConfig
metadata:
  name: default
spec:
  trustDomain: {trust_domain}
  defaultMode: {mode}
  defaultPolicy: {default_policy}
  certTTL: {cert_ttl}
""")

    def workload(self, pod: zmcluster.Pod, ns: str = "default", sa: str | None = None, enrolled: bool | None = True,
                 labels: dict | None = None, mode: str | None = None) -> Path:
        """enrolled=None (and mode=None) leave spec.enrolled (spec.mode) out: the Namespace's labels decide."""
        labels = labels or {"app": pod.name}
        label_yaml = "".join(f"\n    {k}: {v}" for k, v in labels.items())
        extra = "" if enrolled is None else f"\n  enrolled: {'true' if enrolled else 'false'}"
        extra += f"\n  mode: {mode}" if mode else ""
        # A dual-stack pod lists every address (status.podIPs), ip first; a single-family one only has ip.
        # JSON-quoted: YAML reads an unquoted "fd00::" list item as a mapping {"fd00:": null}.
        extra += f"\n  ips: {json.dumps(pod.ips)}" if len(pod.ips) > 1 else ""
        return self.write(f"workload-{ns}-{pod.name}.yaml", f"""apiVersion: zeromesh.io/v1alpha1
kind: Workload
metadata:
  name: {pod.name}
  namespace: {ns}
  labels:{label_yaml}
spec:
  serviceAccount: {sa or pod.name}
  node: {pod.node.name}
  ip: {pod.ip}{extra}
""")

    def namespace(self, name: str, labels: dict | None = None) -> Path:
        """A Namespace manifest (apiVersion v1, as Kubernetes has it): labels zeromesh.io/mesh (enabled|disabled) and
        zeromesh.io/mode (STRICT|PERMISSIVE) decide for its workloads where they leave spec.enrolled / spec.mode out."""
        label_yaml = "\n  labels:" + "".join(f"\n    {k}: {json.dumps(str(v))}" for k, v in labels.items()) \
            if labels else ""
        return self.write(f"namespace-{name}.yaml", f"""apiVersion: v1
kind: Namespace
metadata:
  name: {name}{label_yaml}
""")

    def permission(self, name: str, ns: str, action: str, dest_labels: dict, sources: dict | None = None,
                   ports: list[int] | None = None) -> Path:
        src = json.dumps(sources or {})
        dst = {"selector": {"matchLabels": dest_labels}}
        if ports:
            dst["ports"] = ports
        # JSON is YAML: keeps the nesting obvious.
        return self.write(f"permission-{ns}-{name}.yaml", f"""apiVersion: zeromesh.io/v1alpha1
kind: TrafficPermission
metadata:
  name: {name}
  namespace: {ns}
spec:
  action: {action}
  sources: {src}
  destination: {json.dumps(dst)}
""")

    @property
    def root_cert(self) -> Path:
        return self.ca_dir / "root-cert.pem"

    def spiffe_id(self, ns: str, sa: str) -> str:
        return f"spiffe://{self.trust_domain}/ns/{ns}/sa/{sa}"

    # ---- processes -------------------------------------------------------------------------------------------------
    def start(self) -> None:
        self.start_controller()
        for node in self.cluster.nodes:
            self.start_agent(node, wait=False)
        for node in self.cluster.nodes:
            self.wait_agent_ready(node)

    def start_controller(self) -> subprocess.Popen:
        if not CONTROLLER_BIN.exists():
            raise zmcluster.ClusterError(f"{CONTROLLER_BIN} not built")
        tokens = self.write_join_tokens()
        with open(self.workdir / "controller.log", "ab") as log:
            self.controller = self.cluster.popen(self.host, [
                str(CONTROLLER_BIN), "--manifests", str(self.manifests), "--join-tokens", str(tokens),
                "--ca-dir", str(self.ca_dir), "--listen", self.address, "--max-cert-ttl", self.max_cert_ttl,
                *self.controller_args],
                stdout=log, stderr=subprocess.STDOUT)
        deadline = time.time() + 15
        while not self.root_cert.exists() or not self._listening():
            if self.controller.poll() is not None:
                raise zmcluster.ClusterError(f"controller exited: {self.log('controller', 4000)}")
            if time.time() > deadline:
                raise zmcluster.ClusterError(f"controller not up: {self.log('controller', 4000)}")
            time.sleep(0.05)
        return self.controller

    @property
    def join_tokens_file(self) -> Path:
        return self.workdir / "join-tokens.yaml"

    def write_join_tokens(self, exclude: tuple[str, ...] = (), expires: dict[str, str] | None = None) -> Path:
        """Writes the controller's join-token file atomically (it is re-read while running): hashed entries with an
        expiry, as `meshctl join-token create` prints them. The default expiry, 90 days, stays outside meshctl status's
        30-day warning window (tests expect a healthy mesh). `exclude` leaves nodes out (revoked), `expires` sets a
        node's RFC 3339 expiry."""
        default = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=90)).strftime(
            "%Y-%m-%dT%H:%M:%SZ")
        lines = []
        for node, token in self.tokens.items():
            if node in exclude:
                continue
            when = (expires or {}).get(node, default)
            lines.append(f'{node}: {{sha256: {hashlib.sha256(token.encode()).hexdigest()}, expires: "{when}"}}\n')
        path = self.join_tokens_file
        tmp = self.workdir / ".join-tokens.yaml.tmp"
        tmp.write_text("".join(lines))
        tmp.chmod(0o600)
        tmp.replace(path)
        return path

    def _listening(self) -> bool:
        res = self.cluster.run(self.host, ["ss", "-Hltn", f"sport = :{CONTROLLER_PORT}"], text=True)
        return bool(res.stdout.strip())

    def stop_controller(self) -> None:
        if self.controller and self.controller.poll() is None:
            self.controller.terminate()
            try:
                self.controller.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.controller.kill()
                self.controller.wait()
        self.controller = None

    def bootstrap(self, node: zmcluster.Node) -> Path:
        path = self.workdir / f"bootstrap-{node.name}.json"
        path.write_text(json.dumps({"controller": self.address, "node": node.name, "token": self.tokens[node.name],
                                    "caCert": str(self.root_cert)}))
        path.chmod(0o600)
        return path

    def start_agent(self, node: zmcluster.Node, wait: bool = True, extra_args: list[str] | None = None):
        boot = self.bootstrap(node)
        with open(self.workdir / f"agent-{node.name}.log", "ab") as log:
            p = self.cluster.popen(node, [str(AGENT_BIN), "--node", node.name, "--agent-id",
                                          f"{self.cluster.prefix}-{node.name}", "--bootstrap", str(boot),
                                          "--uplink", node.uplink, *attach_mode_args(), *sockmap_args(self.cluster),
                                          *(extra_args or [])],
                                   stdout=log, stderr=subprocess.STDOUT)
        self.agents[node.name] = p
        if wait:
            self.wait_agent_ready(node)
        return p

    def wait_agent_ready(self, node: zmcluster.Node, timeout: float = 20) -> None:
        log = self.workdir / f"agent-{node.name}.log"
        deadline = time.time() + timeout
        p = self.agents[node.name]
        seen = 0
        while time.time() < deadline:
            if p.poll() is not None:
                raise zmcluster.ClusterError(f"agent {node.name} exited {p.returncode}: {self.log('agent-' + node.name, 4000)}")
            text = log.read_text(errors="replace") if log.exists() else ""
            # Only count readiness announced by this process (the log file is shared across restarts).
            starts = text.count('"msg":"agent ready"')
            if starts > self._ready_seen.get(node.name, 0):
                self._ready_seen[node.name] = starts
                return
            time.sleep(0.05)
            seen += 1
        raise zmcluster.ClusterError(f"agent {node.name} not ready in {timeout}s: {self.log('agent-' + node.name, 4000)}")

    @property
    def _ready_seen(self) -> dict:
        if not hasattr(self, "_ready_counts"):
            self._ready_counts = {}
        return self._ready_counts

    def kill_agent(self, node: zmcluster.Node) -> None:
        p = self.agents.pop(node.name)
        p.kill()
        p.wait(timeout=10)

    def log(self, name: str, tail: int | None = None) -> str:
        """The whole log of a process ("controller", "agent-node1"), or its last `tail` characters."""
        path = self.workdir / f"{name}.log"
        text = path.read_text(errors="replace") if path.exists() else "(no log)"
        return text[-tail:] if tail else text

    def meshctl(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
        """Runs meshctl on the control-plane host with the admin credential."""
        return self.cluster.run(self.host, [str(MESHCTL_BIN), "--controller", self.address, "--token",
                                            self.tokens["admin"], "--ca-cert", str(self.root_cert),
                                            *args], text=True, timeout=timeout)
