"""The simulated cluster: nodes and pods as network namespaces, joined by veth wires.

Layout (all inside namespaces this module creates; the root namespace is never touched):
  <prefix>-fabric        a bridge "br0" joining every node's uplink (the "network between the nodes")
  <prefix>-node<i>       node i: uplink eth0 = 10.99.0.<i>/24, pod CIDR 10.244.<i>.0/24, ip_forward on
  <prefix>-<pod name>    a pod: eth0 = 10.244.<i>.<10+j>/32, default route via 10.244.<i>.1 (the node side of its veth)
Each pod also gets a cgroup-v2 directory; commands run in a pod join its netns and its cgroup.

IP families (families=("ipv4",) by default; ("ipv4", "ipv6") is dual-stack, ("ipv6",) IPv6-only, the first one is
each object's primary `ip`): IPv6 mirrors the IPv4 plan, with the same digits:
  node i: uplink fd00:99::<i>/64, pod CIDR fd00:10:244:<i>::/64, gateway fd00:10:244:<i>::1, IPv6 forwarding on
  pod j:  fd00:10:244:<i>::<10+j>/128, default route via the gateway; hosts fd00:99::<200+k>
Every IPv6 address is added with `nodad` and DAD is off in the run's namespaces: a fresh address would otherwise stay
"tentative" (unusable as a source) for about a second.

Every run has its own prefix ("zm" + 4 hex digits), recorded in a state file under /run/zeromesh/clusters, so two runs
never collide and `gc` can remove what a killed run left behind.

Use as a library:
    with Cluster(nodes=2, pods_per_node=2) as c:
        a, b = c.pods[0], c.pods[3]
        c.run(b, ["python3", "-m", "http.server"]) ...
or as a CLI: python3 zmcluster.py up|down|gc|exec|list (see --help).
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import sanitizers

STATE_DIR = Path(os.environ.get("ZM_CLUSTER_STATE_DIR", "/run/zeromesh/clusters"))
FABRIC_PREFIX = "10.99.0"
FABRIC6_PREFIX = "fd00:99"  # node i: fd00:99::<i>
POD6_PREFIX = "fd00:10:244"  # node i's pods: fd00:10:244:<i>::/64
FAMILIES = ("ipv4", "ipv6")
OVERLAY_PREFIX = "10.245.0"  # overlay="vxlan": the VXLAN devices' subnet
VXLAN_DEV = "flannel.1"
BPF_ROOT = Path("/sys/fs/bpf/zeromesh")


def _cgroup2_root() -> Path:
    """Where cgroup v2 is mounted: /sys/fs/cgroup on a pure v2 host, /sys/fs/cgroup/unified on a hybrid one."""
    with open("/proc/self/mounts") as f:
        for line in f:
            parts = line.split()
            if len(parts) > 2 and parts[2] == "cgroup2":
                return Path(parts[1])
    raise ClusterError("no cgroup2 mount found (zeromesh needs cgroup v2)")


class ClusterError(RuntimeError):
    pass


def sh(cmd: list[str], check: bool = True, **kw) -> subprocess.CompletedProcess:
    """Runs a command, raising ClusterError with its stderr when it fails."""
    res = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if check and res.returncode != 0:
        raise ClusterError(f"{' '.join(cmd)} failed ({res.returncode}): {res.stderr.strip()}")
    return res


def is_v6(addr: str) -> bool:
    return ":" in addr


def host_port(ip: str, port: int) -> str:
    """"10.0.0.1:80" or "[fd00::1]:80"."""
    return f"[{ip}]:{port}" if is_v6(ip) else f"{ip}:{port}"


def _of_family(addrs: list[str], v6: bool) -> str:
    """The address of one family in |addrs| ("" when there is none)."""
    return next((a for a in addrs if is_v6(a) == v6), "")


class _Addressed:
    """What a Node and a Pod share: a netns and addresses (ip, the primary family's; ips, every family's, ip first)."""

    netns: str
    ip: str
    ips: list[str]

    @property
    def netns_path(self) -> str:
        return f"/var/run/netns/{self.netns}"

    @property
    def ip4(self) -> str:
        return _of_family(self.ips or [self.ip], False)

    @property
    def ip6(self) -> str:
        return _of_family(self.ips or [self.ip], True)


@dataclass
class Node(_Addressed):
    index: int
    name: str
    netns: str
    ip: str  # the primary family's address (pod_cidr, gateway likewise); ips, pod_cidrs, gateways: every family's
    pod_cidr: str
    gateway: str
    uplink: str = "eth0"
    ips: list[str] = field(default_factory=list)
    pod_cidrs: list[str] = field(default_factory=list)
    gateways: list[str] = field(default_factory=list)

    @property
    def gateway4(self) -> str:
        return _of_family(self.gateways or [self.gateway], False)

    @property
    def pod_cidr6(self) -> str:
        return _of_family(self.pod_cidrs, True)

    @property
    def gateway6(self) -> str:
        return _of_family(self.gateways, True)


@dataclass
class Pod(_Addressed):
    name: str
    node: Node
    index: int
    netns: str
    ip: str  # the primary family's address; ips: every family's, ip first
    host_veth: str
    cgroup: str
    ips: list[str] = field(default_factory=list)


@dataclass
class Cluster:
    nodes_count: int = 2
    pods_per_node: int = 2
    prefix: str = ""
    keep: bool = False
    nodes: list[Node] = field(default_factory=list)
    pods: list[Pod] = field(default_factory=list)
    _procs: list[subprocess.Popen] = field(default_factory=list)
    _up: bool = False

    def __init__(self, nodes: int = 2, pods_per_node: int = 2, prefix: str = "", keep: bool = False,
                 underlay: str = "eth0", overlay: str | None = None, families: tuple[str, ...] = ("ipv4",)):
        """underlay: the name of each node's wire to the fabric. overlay="vxlan": other nodes' pod CIDRs are routed
        through a VXLAN device "flannel.1" (10.245.0.<i>/24, UDP 4789 over the underlay), as flannel's vxlan backend
        does, instead of directly over the underlay (IPv4 only). families: the IP families of nodes, hosts and pods,
        the primary one first (see the module's doc)."""
        families = tuple(families)
        if not families or len(set(families)) != len(families) or any(f not in FAMILIES for f in families):
            raise ClusterError(f"families must be one or both of {FAMILIES} without repeats, got {families}")
        if overlay and families != ("ipv4",):
            raise ClusterError(f"overlay={overlay!r} is built for IPv4-only clusters, not {families}")
        self.families = families
        self.underlay = underlay
        self.overlay = overlay
        self.nodes_count = nodes
        self.pods_per_node = pods_per_node
        self.prefix = prefix or "zm" + secrets.token_hex(2)
        self.keep = keep
        self.nodes = []
        self.hosts = []
        self.pods = []
        self._procs = []
        self._up = False
        self.cgroup_root = _cgroup2_root() / "zeromesh" / self.prefix
        self.sanitizer_reports = sanitizers.arm()  # None unless the asan preset runs this test

    # ---- lifecycle -------------------------------------------------------------------------------------------------
    def __enter__(self) -> "Cluster":
        self.up()
        return self

    def __exit__(self, *exc) -> None:
        if not self.keep:
            self.down()

    def up(self) -> "Cluster":
        if os.geteuid() != 0:
            raise ClusterError("the simulated cluster needs root (network namespaces, cgroups)")
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        self._up = True
        self._save_state()
        atexit.register(self.down)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            if signal.getsignal(sig) in (signal.SIG_DFL, signal.default_int_handler):
                signal.signal(sig, self._on_signal)
        try:
            fabric = f"{self.prefix}-fabric"
            self._netns_add(fabric)
            sh(["ip", "-n", fabric, "link", "add", "br0", "type", "bridge"])
            sh(["ip", "-n", fabric, "link", "set", "br0", "up"])
            sh(["ip", "-n", fabric, "link", "set", "lo", "up"])
            for i in range(1, self.nodes_count + 1):
                self._add_node(i)
            for node in self.nodes:
                if self.overlay == "vxlan":
                    self._add_vxlan(node)
                for other in self.nodes:
                    if other is node:
                        continue
                    if self.overlay == "vxlan":
                        sh(["bridge", "-n", node.netns, "fdb", "append", "00:00:00:00:00:00", "dev", VXLAN_DEV,
                            "dst", other.ip])
                        sh(["ip", "-n", node.netns, "route", "add", other.pod_cidr, "via",
                            f"{OVERLAY_PREFIX}.{other.index}", "dev", VXLAN_DEV, "onlink"])
                    else:
                        for cidr in other.pod_cidrs:
                            via = other.ip6 if is_v6(cidr) else other.ip4
                            sh(["ip", "-n", node.netns, "route", "add", cidr, "via", via])
                for j in range(1, self.pods_per_node + 1):
                    self.add_pod(node, f"n{node.index}p{j}")
        except BaseException:
            self.down()
            raise
        return self

    def down(self) -> None:
        """Removes everything this run created. Safe to call twice and after a partial up()."""
        if not self._up:
            return
        self._up = False
        for p in self._procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    p.kill()
        for p in self._procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        destroy_prefix(self.prefix)
        sanitizers.check(self.sanitizer_reports)  # a memory error or UB in a daemon fails the test

    def _on_signal(self, signum, _frame) -> None:
        self.down()
        sys.exit(128 + signum)

    def _save_state(self) -> None:
        state = {
            "prefix": self.prefix,
            "owner_pid": os.getpid(),
            "families": list(self.families),
            "nodes": [n.__dict__ for n in self.nodes],
            "hosts": [h.__dict__ for h in self.hosts],
            "pods": [{**{k: v for k, v in p.__dict__.items() if k != "node"}, "node": p.node.name} for p in self.pods],
        }
        tmp = STATE_DIR / f".{self.prefix}.json.tmp"
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(STATE_DIR / f"{self.prefix}.json")

    # ---- topology --------------------------------------------------------------------------------------------------
    def _netns_add(self, name: str) -> None:
        sh(["ip", "netns", "add", name])
        sh(["ip", "-n", name, "link", "set", "lo", "up"])
        if self.v6:  # before any veth exists: new links take "default", link-local addresses included
            sh(["nsenter", f"--net=/var/run/netns/{name}", "sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0",
                "net.ipv6.conf.default.accept_dad=0"])

    @property
    def v4(self) -> bool:
        return "ipv4" in self.families

    @property
    def v6(self) -> bool:
        return "ipv6" in self.families

    def _by_family(self, v4: str, v6: str) -> list[str]:
        """[v4, v6] in the cluster's family order, only the families it has."""
        return [v4 if f == "ipv4" else v6 for f in self.families]

    def _addr_add(self, netns: str, cidr: str, dev: str) -> None:
        # nodad: usable at once (a tentative address cannot be a source for about a second).
        sh(["ip", "-n", netns, "addr", "add", cidr, "dev", dev] + (["nodad"] if is_v6(cidr) else []))

    def _add_node(self, i: int) -> Node:
        ips = self._by_family(f"{FABRIC_PREFIX}.{i}", f"{FABRIC6_PREFIX}::{i}")
        cidrs = self._by_family(f"10.244.{i}.0/24", f"{POD6_PREFIX}:{i}::/64")
        gateways = self._by_family(f"10.244.{i}.1", f"{POD6_PREFIX}:{i}::1")
        node = Node(index=i, name=f"node{i}", netns=f"{self.prefix}-node{i}", ip=ips[0], pod_cidr=cidrs[0],
                    gateway=gateways[0], uplink=self.underlay, ips=ips, pod_cidrs=cidrs, gateways=gateways)
        fabric = f"{self.prefix}-fabric"
        self._netns_add(node.netns)
        # The wire: one end in the fabric (on the bridge), the other is the node's uplink (eth0 unless named).
        sh(["ip", "-n", fabric, "link", "add", f"up{i}", "type", "veth", "peer", "name", node.uplink, "netns",
            node.netns])
        sh(["ip", "-n", fabric, "link", "set", f"up{i}", "master", "br0", "up"])
        for ip in node.ips:
            self._addr_add(node.netns, f"{ip}/64" if is_v6(ip) else f"{ip}/24", node.uplink)
        sh(["ip", "-n", node.netns, "link", "set", node.uplink, "up"])
        for key, val in (("net.ipv4.ip_forward", "1"), ("net.ipv4.conf.all.rp_filter", "0"),
                         ("net.ipv4.conf.default.rp_filter", "0")):
            self.node_sysctl(node, key, val)
        if self.v6:
            self.node_sysctl(node, "net.ipv6.conf.all.forwarding", "1")
        self.nodes.append(node)
        self._save_state()
        return node

    def _add_vxlan(self, node: Node) -> None:
        """The node's VXLAN device: its BUM traffic goes to every other node (fdb entries added by up())."""
        sh(["ip", "-n", node.netns, "link", "add", VXLAN_DEV, "type", "vxlan", "id", "1", "dstport", "4789",
            "local", node.ip, "dev", node.uplink, "nolearning"])
        sh(["ip", "-n", node.netns, "addr", "add", f"{OVERLAY_PREFIX}.{node.index}/24", "dev", VXLAN_DEV])
        sh(["ip", "-n", node.netns, "link", "set", VXLAN_DEV, "up"])

    def add_host(self, name: str) -> Node:
        """A plain host on the node network with no agent and no pods (e.g. the control plane): 10.99.0.<200+k>
        (fd00:99::<200+k> with IPv6)."""
        k = len(self.hosts) + 1
        ips = self._by_family(f"{FABRIC_PREFIX}.{200 + k}", f"{FABRIC6_PREFIX}::{200 + k}")
        host = Node(index=200 + k, name=name, netns=f"{self.prefix}-{name}", ip=ips[0], pod_cidr="", gateway="",
                    ips=ips)
        fabric = f"{self.prefix}-fabric"
        self.hosts.append(host)
        self._save_state()
        self._netns_add(host.netns)
        sh(["ip", "-n", fabric, "link", "add", f"h{k}", "type", "veth", "peer", "name", "eth0", "netns", host.netns])
        sh(["ip", "-n", fabric, "link", "set", f"h{k}", "master", "br0", "up"])
        for ip in host.ips:
            self._addr_add(host.netns, f"{ip}/64" if is_v6(ip) else f"{ip}/24", "eth0")
        sh(["ip", "-n", host.netns, "link", "set", "eth0", "up"])
        for node in self.nodes:  # pods are reachable from hosts, as from any machine on the node network
            for cidr in node.pod_cidrs:
                sh(["ip", "-n", host.netns, "route", "add", cidr, "via", node.ip6 if is_v6(cidr) else node.ip4])
        return host

    def node_sysctl(self, node: Node, key: str, val: str) -> None:
        sh(["nsenter", f"--net={node.netns_path}", "sysctl", "-qw", f"{key}={val}"])

    def add_pod(self, node: Node | str, name: str, before_link=None) -> Pod:
        """Adds a pod to a node: netns, cgroup, veth. Usable while the mesh runs (a pod appearing later).

        before_link(pod), if given, runs once the pod's netns exists but before its veth does (to start an
        application that sends the instant the network appears)."""
        node = self.node(node) if isinstance(node, str) else node
        j = sum(1 for p in self.pods if p.node is node) + 1
        if any(p.name == name for p in self.pods):
            raise ClusterError(f"pod {name} already exists")
        ips = self._by_family(f"10.244.{node.index}.{10 + j}", f"{POD6_PREFIX}:{node.index}::{10 + j}")
        pod = Pod(name=name, node=node, index=j, netns=f"{self.prefix}-{name}", ip=ips[0],
                  host_veth=f"zmv{node.index}p{j}", cgroup=str(self.cgroup_root / name), ips=ips)
        # Registered before it exists so that down() cleans it even if creation fails half-way.
        self.pods.append(pod)
        self._save_state()
        self._netns_add(pod.netns)
        Path(pod.cgroup).mkdir(parents=True, exist_ok=True)
        if before_link:
            before_link(pod)
        sh(["ip", "-n", pod.netns, "link", "add", "eth0", "type", "veth", "peer", "name", pod.host_veth,
            "netns", node.netns])
        # /32 plus an on-link gateway (as Calico and Cilium do): even same-node traffic goes through the node, where
        # the mesh's hooks sit.
        for ip in pod.ips:
            self._addr_add(pod.netns, f"{ip}/128" if is_v6(ip) else f"{ip}/32", "eth0")
        sh(["ip", "-n", pod.netns, "link", "set", "eth0", "up"])
        for ip in pod.ips:
            gw = node.gateway6 if is_v6(ip) else node.gateway4
            sh(["ip", "-n", pod.netns, "route", "add", gw, "dev", "eth0"] + ([] if is_v6(ip) else ["scope", "link"]))
            sh(["ip", "-n", pod.netns, "route", "add", "default", "via", gw, "src", ip])
        for gw in node.gateways or [node.gateway]:
            self._addr_add(node.netns, f"{gw}/128" if is_v6(gw) else f"{gw}/32", pod.host_veth)
        sh(["ip", "-n", node.netns, "link", "set", pod.host_veth, "up"])
        for ip in pod.ips:
            sh(["ip", "-n", node.netns, "route", "add", f"{ip}/128" if is_v6(ip) else f"{ip}/32", "dev",
                pod.host_veth])
        self.node_sysctl(node, f"net.ipv4.conf.{pod.host_veth}.rp_filter", "0")
        return pod

    def remove_pod(self, pod: Pod | str) -> None:
        pod = self.pod(pod) if isinstance(pod, str) else pod
        sh(["ip", "netns", "del", pod.netns], check=False)
        _rmdir_cgroup(Path(pod.cgroup))
        self.pods.remove(pod)
        self._save_state()

    # ---- lookup ----------------------------------------------------------------------------------------------------
    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise ClusterError(f"no node {name}")

    def pod(self, name: str) -> Pod:
        for p in self.pods:
            if p.name == name:
                return p
        raise ClusterError(f"no pod {name}")

    def target(self, t: Node | Pod | str) -> Node | Pod:
        if isinstance(t, (Node, Pod)):
            return t
        for n in self.nodes + self.hosts:
            if n.name == t:
                return n
        return self.pod(t)

    # ---- running things --------------------------------------------------------------------------------------------
    def wrap(self, target: Node | Pod | str, cmd: list[str]) -> list[str]:
        """The argv that runs cmd inside the target's netns (and a pod's cgroup). nsenter keeps /sys/fs/bpf visible."""
        t = self.target(target)
        inner = ["nsenter", f"--net={t.netns_path}", "--"] + list(cmd)
        if isinstance(t, Pod):
            # Join the pod's cgroup first, then exec into its netns.
            return ["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', t.cgroup] + inner
        return inner

    def run(self, target: Node | Pod | str, cmd: list[str], timeout: float = 60, check: bool = False,
            **kw) -> subprocess.CompletedProcess:
        kw.setdefault("capture_output", True)
        res = subprocess.run(self.wrap(target, cmd), timeout=timeout, **kw)
        if check and res.returncode != 0:
            raise ClusterError(f"{cmd} in {self.target(target).name} failed ({res.returncode}): {res.stderr!r}")
        return res

    def popen(self, target: Node | Pod | str, cmd: list[str], **kw) -> subprocess.Popen:
        """Starts a background process in the target; it is killed (with its process group) on down()."""
        kw.setdefault("start_new_session", True)
        p = subprocess.Popen(self.wrap(target, cmd), **kw)
        self._procs.append(p)
        return p

    def capture(self, node: Node | str, iface: str = "eth0", bpf_filter: str = "tcp") -> "Capture":
        """Starts tcpdump on a node interface (default: the uplink wire). Stop it with .stop()."""
        return Capture(self, self.target(node), iface, bpf_filter)

    def wait_tcp(self, target: Node | Pod | str, ip: str, port: int, timeout: float = 10) -> None:
        """Waits until a TCP connect from target to ip:port succeeds."""
        deadline = time.time() + timeout
        probe = ("import socket,sys\ns=socket.create_connection((sys.argv[1],int(sys.argv[2])),timeout=1)\ns.close()")
        while time.time() < deadline:
            if self.run(target, ["python3", "-c", probe, ip, str(port)], timeout=5).returncode == 0:
                return
            time.sleep(0.1)
        raise ClusterError(f"{ip}:{port} not reachable from {self.target(target).name} within {timeout}s")


class Capture:
    def __init__(self, cluster: Cluster, node: Node | Pod, iface: str, bpf_filter: str):
        fd, path = tempfile_path(f"{cluster.prefix}-{node.name}-{iface}", ".pcap")
        os.close(fd)
        self.path = path
        self.proc = cluster.popen(node, ["tcpdump", "-i", iface, "--immediate-mode", "-U", "-n", "-s", "0", "-w", path, bpf_filter],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        # tcpdump prints "listening on" once the capture is armed.
        deadline = time.time() + 10
        line = b""
        while time.time() < deadline and b"listening on" not in line:
            line = self.proc.stderr.readline()
            if not line and self.proc.poll() is not None:
                raise ClusterError(f"tcpdump failed on {node.name}/{iface}")
        self._stopped = False

    def stop(self) -> str:
        if not self._stopped:
            time.sleep(0.2)  # let the last packets land
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            self._stopped = True
        return self.path

    def data(self) -> bytes:
        self.stop()
        return Path(self.path).read_bytes()

    def summary(self, extra_filter: str = "") -> list[str]:
        """One line per captured packet (tcpdump -nn -r), optionally filtered."""
        self.stop()
        cmd = ["tcpdump", "-nn", "-r", self.path]
        if extra_filter:
            cmd.append(extra_filter)
        return [l for l in sh(cmd, check=False).stdout.splitlines() if l.strip()]

    def cleanup(self) -> None:
        self.stop()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


def tempfile_path(stem: str, suffix: str) -> tuple[int, str]:
    import tempfile
    return tempfile.mkstemp(prefix=stem + "-", suffix=suffix)


def _rmdir_cgroup(path: Path) -> None:
    """Removes a cgroup directory tree, moving any leftover process out first (to the parent's parent)."""
    if not path.exists():
        return
    for child in sorted(path.rglob("*"), key=lambda p: -len(p.parts)):
        if child.is_dir():
            _rmdir_cgroup_one(child)
    _rmdir_cgroup_one(path)


def _rmdir_cgroup_one(path: Path) -> None:
    procs = path / "cgroup.procs"
    if procs.exists():
        for pid in procs.read_text().split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass
        for _ in range(50):
            if not procs.read_text().split():
                break
            time.sleep(0.05)
    try:
        path.rmdir()
    except OSError:
        pass


def _netns_pids(netns: str) -> list[int]:
    res = sh(["ip", "netns", "pids", netns], check=False)
    return [int(x) for x in res.stdout.split()]


def destroy_prefix(prefix: str) -> None:
    """Removes every namespace, cgroup, pinned BPF object and state file of one run."""
    names = [n for n in sh(["ip", "netns", "list"], check=False).stdout.split() if n.startswith(prefix + "-")]
    # Kill whatever still runs inside our namespaces (agents, servers), then delete them.
    for ns in names:
        for pid in _netns_pids(ns):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    for ns in names:
        for _ in range(20):
            if not _netns_pids(ns):
                break
            time.sleep(0.05)
        sh(["ip", "netns", "del", ns], check=False)
    try:
        _rmdir_cgroup(_cgroup2_root() / "zeromesh" / prefix)
        root = _cgroup2_root() / "zeromesh"
        if root.exists() and not any(p.is_dir() for p in root.iterdir()):
            root.rmdir()
    except (ClusterError, OSError):
        pass
    # Agents pin under /sys/fs/bpf/zeromesh/<prefix>-<node>; remove those pins (this detaches pinned links).
    if BPF_ROOT.exists():
        for d in BPF_ROOT.glob(prefix + "-*"):
            sh(["rm", "-rf", str(d)], check=False)
        try:
            BPF_ROOT.rmdir()
        except OSError:
            pass
    try:
        (STATE_DIR / f"{prefix}.json").unlink()
    except FileNotFoundError:
        pass


def gc() -> list[str]:
    """Removes what runs whose owner process is gone left behind. Returns the prefixes removed."""
    removed = []
    if STATE_DIR.exists():
        for f in STATE_DIR.glob("zm*.json"):
            try:
                owner = json.loads(f.read_text()).get("owner_pid", 0)
            except (OSError, ValueError):
                owner = 0
            # owner 0: created by the CLI (`up`), owned by whoever calls `down`; never collected.
            if not owner or Path(f"/proc/{owner}").exists():
                continue
            destroy_prefix(f.stem)
            removed.append(f.stem)
    return removed


def load(prefix: str) -> Cluster:
    """Re-opens a cluster created by another process (the CLI's `up`), for exec and down."""
    path = STATE_DIR / f"{prefix}.json"
    if not path.exists():
        raise ClusterError(f"no cluster {prefix} (no {path})")
    state = json.loads(path.read_text())
    c = Cluster(prefix=prefix, keep=True, families=tuple(state.get("families", ["ipv4"])))
    c.nodes = [Node(**n) for n in state["nodes"]]
    c.hosts = [Node(**h) for h in state.get("hosts", [])]
    for p in state["pods"]:
        node = c.node(p.pop("node"))
        c.pods.append(Pod(node=node, **p))
    c._up = True
    return c


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="zmcluster", description="zeromesh simulated cluster (network namespaces)")
    sub = ap.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="create a cluster and print its state as JSON")
    up.add_argument("--nodes", type=int, default=2)
    up.add_argument("--pods", type=int, default=2, help="pods per node")
    up.add_argument("--prefix", default="")
    up.add_argument("--families", default="ipv4", help="ipv4, ipv4,ipv6 (dual-stack), ipv6,ipv4 or ipv6")
    dn = sub.add_parser("down", help="remove a cluster")
    dn.add_argument("prefix")
    sub.add_parser("gc", help="remove leftovers of runs whose owner died")
    sub.add_parser("list", help="list clusters")
    ex = sub.add_parser("exec", help="run a command in a node or pod")
    ex.add_argument("prefix")
    ex.add_argument("target")
    ex.add_argument("command", nargs=argparse.REMAINDER)
    args = ap.parse_args(argv)
    try:
        if args.cmd == "up":
            c = Cluster(nodes=args.nodes, pods_per_node=args.pods, prefix=args.prefix, keep=True,
                        families=tuple(args.families.split(","))).up()
            atexit.unregister(c.down)
            # The CLI process exits: the cluster is owned by nobody until `down`; mark it as such for gc.
            state = json.loads((STATE_DIR / f"{c.prefix}.json").read_text())
            state["owner_pid"] = 0
            (STATE_DIR / f"{c.prefix}.json").write_text(json.dumps(state, indent=2))
            print(json.dumps(state, indent=2))
        elif args.cmd == "down":
            destroy_prefix(args.prefix)
        elif args.cmd == "gc":
            for p in gc():
                print(f"removed {p}")
        elif args.cmd == "list":
            for f in sorted(STATE_DIR.glob("zm*.json")) if STATE_DIR.exists() else []:
                print(f.stem)
        elif args.cmd == "exec":
            c = load(args.prefix)
            cmd = args.command[1:] if args.command[:1] == ["--"] else args.command
            return subprocess.call(c.wrap(args.target, cmd))
    except ClusterError as e:
        print(f"zmcluster: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
