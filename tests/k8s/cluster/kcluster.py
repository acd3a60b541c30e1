"""A real Kubernetes cluster on one machine, for the end-to-end tests: etcd, kube-apiserver, kube-controller-manager
and kube-scheduler on a control-plane host, and worker nodes each with containerd 2 + runc, the CNI ptp plugin, a
kubelet and kube-proxy (iptables mode). Every host is a network namespace on one bridge (the wire between the
machines); nodes have their own mount namespace as well (tests/k8s/cluster/node.py). Nothing is pulled from a
registry: the images (zeromesh's own from tools/images.sh, the sandbox, CoreDNS and a test app) are imported into
each node's containerd.

    <prefix>-fabric   bridge br0: the wire (captures run here)
    <prefix>-cp       10.99.0.100: etcd (127.0.0.1), kube-apiserver :6443, controller-manager, scheduler
    <prefix>-node<i>  10.99.0.<i>: pod CIDR 10.244.<i>.0/24, Service CIDR 10.96.0.0/16, cluster DNS 10.96.0.10

The test process reaches the API server through a forwarder holding a socket in each namespace (tests/cluster/
nsbridge.py), so the root namespace gets no interface, route or rule. Binaries: tests/k8s/tools.sh (built once,
cached). Everything is removed on exit, also after a failure or a kill (`python3 kcluster.py gc`): processes,
namespaces, mounts (they live in the nodes' mount namespaces), cgroups (/<prefix>-node<i> in each v1 hierarchy or
under cgroup2) and BPF pins (/sys/fs/bpf/zeromesh/<prefix>-*).

    with KCluster() as c:
        c.install_chart()  # helm install, as a user does
        c.api.request("GET", "/api/v1/nodes")
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(REPO / "tests" / "cluster"))

from apiserver import ApiError, ApiServer, bin_dir  # noqa: E402

import addons  # noqa: E402
import images  # noqa: E402
import pki  # noqa: E402
import wire  # noqa: E402
from node import Node, rmdir_cgroup, sh  # noqa: E402

STATE_DIR = Path("/run/zeromesh/kclusters")
BPF_ROOT = Path("/sys/fs/bpf/zeromesh")
CP_IP = "10.99.0.100"


def quiet(fn, *args):
    """fn(*args), or None while the server is not up yet (connection refused or reset through the forwarder)."""
    try:
        return fn(*args)
    except OSError:
        return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class KCluster:
    def __init__(self, nodes: int = 2, keep: bool = False):
        self.prefix = "zk" + secrets.token_hex(2)
        self.keep = keep or bool(os.environ.get("ZM_KEEP_K8S"))
        self.bin = bin_dir()
        self.dir = Path(os.environ.get("ZM_E2E_DIR", "/var/tmp/zeromesh-e2e")) / self.prefix
        self.pki = self.dir / "pki"
        self.fabric = f"{self.prefix}-fabric"
        self.cp = f"{self.prefix}-cp"
        self.nodes = [Node(self, i) for i in range(1, nodes + 1)]
        self.procs: dict[str, subprocess.Popen] = {}
        self.created_mountpoints: list[Path] = []
        self.internal_kubeconfig = self.dir / "internal.kubeconfig"
        self.kubeconfig = self.dir / "admin.kubeconfig"
        self.pause_image = ""
        self.images: dict[str, str] = {}
        self.api: ApiServer | None = None
        self._up = False

    # ---- lifecycle -------------------------------------------------------------------------------------------------
    def __enter__(self) -> "KCluster":
        try:
            self.up()
        except BaseException:
            if not self.keep:  # ZM_KEEP_K8S=1 leaves a failed cluster up for a look (then: kcluster.py gc)
                self.down()
            raise
        return self

    def __exit__(self, *exc) -> None:
        if not self.keep:
            self.down()

    def up(self) -> "KCluster":
        if os.geteuid() != 0:
            raise RuntimeError("the real-cluster harness needs root (namespaces, mounts, cgroups, eBPF)")
        gc()
        self._up = True
        self.dir.mkdir(parents=True)
        self._save_state()
        if not self.keep:
            atexit.register(self.down)
        for sig in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, lambda s, _f: (self.down(), sys.exit(128 + s)))
        t0 = time.time()
        self._network()
        pki.make(self.pki, ["127.0.0.1", CP_IP, "10.96.0.1"])
        pki.kubeconfig(self.pki, self.internal_kubeconfig, f"https://{CP_IP}:6443")
        archives = images.build_all(self)
        self._control_plane()
        for n in self.nodes:
            n.create_cgroup_root()
            n.write_configs()
            n.start_runtime()
            n.import_images(archives)
            n.start_kubelet()
        self._wait_nodes_ready()
        self._addons()
        self.timings = {"up_seconds": round(time.time() - t0, 1)}
        return self

    def down(self) -> None:
        if not self._up:
            return
        self._up = False
        destroy(self.prefix, self.nodes, self.procs.values(), self.created_mountpoints)
        if not os.environ.get("ZM_KEEP_E2E_LOGS"):
            shutil.rmtree(self.dir, ignore_errors=True)

    def _save_state(self) -> None:
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        (STATE_DIR / f"{self.prefix}.json").write_text(json.dumps({
            "prefix": self.prefix, "owner_pid": os.getpid(), "dir": str(self.dir),
            "nodes": len(self.nodes), "mountpoints": [str(p) for p in self.created_mountpoints]}))

    def ensure_mountpoint(self, path: Path) -> None:
        """Creates an empty directory to bind a node's copy onto, remembered so teardown removes it again."""
        if path.exists():
            return
        missing = []
        p = path
        while not p.exists():
            missing.append(p)
            p = p.parent
        path.mkdir(parents=True)
        self.created_mountpoints.extend(missing)
        self._save_state()

    # ---- network ---------------------------------------------------------------------------------------------------
    def _network(self) -> None:
        for ns in (self.fabric, self.cp):
            sh(["ip", "netns", "add", ns])
            sh(["ip", "-n", ns, "link", "set", "lo", "up"])
        sh(["ip", "-n", self.fabric, "link", "add", "br0", "type", "bridge"])
        sh(["ip", "-n", self.fabric, "link", "set", "br0", "up"])
        sh(["ip", "-n", self.fabric, "link", "add", "cp0", "type", "veth", "peer", "name", "eth0", "netns", self.cp])
        sh(["ip", "-n", self.fabric, "link", "set", "cp0", "master", "br0", "up"])
        sh(["ip", "-n", self.cp, "addr", "add", f"{CP_IP}/24", "dev", "eth0"])
        sh(["ip", "-n", self.cp, "link", "set", "eth0", "up"])
        for n in self.nodes:
            n.create_host()
        for n in self.nodes:
            # The control plane reaches pods (replies to pods talking to the API server) like any machine would.
            sh(["ip", "-n", self.cp, "route", "add", n.pod_cidr, "via", n.ip])
            for other in self.nodes:
                if other is not n:
                    n.route_to(other)
            # Machines have a default route; Service VIPs (DNAT'ed by kube-proxy after routing) need one. It leads
            # to the control-plane host, which forwards nothing: no packet leaves the run's namespaces.
            sh(["ip", "-n", n.netns, "route", "add", "default", "via", CP_IP])

    def in_cp(self, cmd: list[str]) -> list[str]:
        return ["nsenter", f"--net=/run/netns/{self.cp}", "--"] + cmd

    def _start(self, name: str, argv: list[str]) -> subprocess.Popen:
        log = open(self.dir / f"{name}.log", "ab")
        p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self.procs[name] = p
        return p

    def log(self, name: str, tail: int = 4000) -> str:
        f = self.dir / f"{name}.log"
        return f.read_text(errors="replace")[-tail:] if f.exists() else ""

    # ---- control plane ---------------------------------------------------------------------------------------------
    def _control_plane(self) -> None:
        b, k = self.bin, self.pki
        self._start("etcd", self.in_cp([
            str(b / "etcd"), "--name", "cp", "--data-dir", str(self.dir / "etcd"),
            "--listen-client-urls", "http://127.0.0.1:2379", "--advertise-client-urls", "http://127.0.0.1:2379",
            "--listen-peer-urls", "http://127.0.0.1:2380", "--initial-advertise-peer-urls", "http://127.0.0.1:2380",
            "--initial-cluster", "cp=http://127.0.0.1:2380", "--unsafe-no-fsync", "--log-level", "warn"]))
        self._start("kube-apiserver", self.in_cp([
            str(b / "kube-apiserver"), "--etcd-servers=http://127.0.0.1:2379",
            "--bind-address=0.0.0.0", f"--advertise-address={CP_IP}", "--secure-port=6443",
            f"--tls-cert-file={k / 'apiserver.crt'}", f"--tls-private-key-file={k / 'apiserver.key'}",
            f"--client-ca-file={k / 'ca.crt'}",
            f"--kubelet-client-certificate={k / 'admin.crt'}", f"--kubelet-client-key={k / 'admin.key'}",
            "--kubelet-preferred-address-types=InternalIP",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={k / 'sa.pub'}", f"--service-account-signing-key-file={k / 'sa.key'}",
            "--authorization-mode=Node,RBAC", "--service-cluster-ip-range=10.96.0.0/16", "--allow-privileged=true",
            f"--cert-dir={self.dir / 'apiserver-certs'}", "--v=1"]))
        # The test's way in: a forwarder listening on the root namespace's loopback, connecting from the cp host.
        port = free_port()
        fwd = self._start("api-forwarder", self.in_cp([
            sys.executable, str(REPO / "tests/cluster/nsbridge.py"), "--listen-netns", f"/proc/{os.getpid()}/ns/net",
            "--listen", f"127.0.0.1:{port}", "--connect", f"{CP_IP}:6443"]))
        self.api = ApiServer(workdir=str(self.pki))
        self.api.server = f"https://127.0.0.1:{port}"
        pki.kubeconfig(self.pki, self.kubeconfig, self.api.server)
        self.api.kubeconfig = self.kubeconfig
        self.api.wait_for("kube-apiserver /readyz", lambda: self._alive() and quiet(self.api.request, "GET", "/readyz"),
                          timeout=120)
        self.api.wait_for("namespace default", lambda: self.api.request("GET", "/api/v1/namespaces/default"),
                          timeout=60)
        kc = str(self.internal_kubeconfig)
        self._start("kube-controller-manager", self.in_cp([
            str(b / "kube-controller-manager"), f"--kubeconfig={kc}", f"--authentication-kubeconfig={kc}",
            f"--authorization-kubeconfig={kc}", "--bind-address=127.0.0.1", "--leader-elect=false",
            f"--service-account-private-key-file={k / 'sa.key'}", f"--root-ca-file={k / 'ca.crt'}",
            "--use-service-account-credentials=true", "--controllers=*", "--v=1"]))
        self._start("kube-scheduler", self.in_cp([
            str(b / "kube-scheduler"), f"--kubeconfig={kc}", f"--authentication-kubeconfig={kc}",
            f"--authorization-kubeconfig={kc}", "--bind-address=127.0.0.1", "--leader-elect=false", "--v=1"]))
        del fwd

    def _alive(self) -> bool:
        for name, p in self.procs.items():
            if p.poll() is not None:
                raise RuntimeError(f"{name} exited with {p.returncode}:\n{self.log(name)}")
        for n in self.nodes:
            for name, p in n.procs.items():
                if p.poll() is not None:
                    raise RuntimeError(f"{name} on {n.name} exited with {p.returncode}:\n{n.log(name)}")
        return True

    def _wait_nodes_ready(self, timeout: float = 180) -> None:
        def ready():
            self._alive()
            items = self.api.request("GET", "/api/v1/nodes")["items"]
            ok = [i["metadata"]["name"] for i in items
                  if any(c["type"] == "Ready" and c["status"] == "True" for c in i["status"].get("conditions") or [])]
            return len(ok) == len(self.nodes)
        try:
            self.api.wait_for("every node Ready", ready, timeout=timeout, interval=1)
        except TimeoutError as e:
            raise TimeoutError(f"{e}\n" + "\n".join(f"--- {n.name} kubelet:\n{n.log('kubelet', 3000)}"
                                                     for n in self.nodes)) from None

    # ---- add-ons and workloads -------------------------------------------------------------------------------------
    def _addons(self) -> None:
        self.apply(addons.coredns(self.images["coredns"]))
        self.wait_deployment("kube-system", "coredns", timeout=120)

    def apply(self, objects: list[dict]) -> None:
        """Creates each object (server-side apply, so re-applying updates it)."""
        for o in objects:
            path = self.object_path(o)
            self.api.request("PATCH", f"{path}?fieldManager=zeromesh-e2e&force=true", o,
                             content_type="application/apply-patch+yaml")

    @staticmethod
    def object_path(o: dict) -> str:
        kind, md = o["kind"], o["metadata"]
        group_version = o["apiVersion"]
        base = f"/api/{group_version}" if "/" not in group_version else f"/apis/{group_version}"
        plural = {"Deployment": "deployments", "Service": "services", "ServiceAccount": "serviceaccounts",
                  "ClusterRole": "clusterroles", "ClusterRoleBinding": "clusterrolebindings",
                  "ConfigMap": "configmaps", "Namespace": "namespaces", "DaemonSet": "daemonsets",
                  "Pod": "pods"}[kind]
        if kind in ("Namespace", "ClusterRole", "ClusterRoleBinding"):
            return f"{base}/{plural}/{md['name']}"
        return f"{base}/namespaces/{md.get('namespace', 'default')}/{plural}/{md['name']}"

    def wait_deployment(self, ns: str, name: str, timeout: float = 120) -> None:
        def ready():
            self._alive()
            d = self.api.request("GET", f"/apis/apps/v1/namespaces/{ns}/deployments/{name}")
            want = d["spec"].get("replicas", 1)
            st = d.get("status") or {}
            return (st.get("observedGeneration", 0) >= d["metadata"]["generation"] and
                    st.get("updatedReplicas", 0) == want and st.get("readyReplicas", 0) == want and
                    st.get("replicas", 0) == want)
        try:
            self.api.wait_for(f"Deployment {ns}/{name} ready", ready, timeout=timeout, interval=1)
        except TimeoutError as e:
            raise TimeoutError(f"{e}\n{self.describe_pods(ns)}") from None

    def pods(self, ns: str, selector: str = "") -> list[dict]:
        q = f"?labelSelector={selector}" if selector else ""
        return self.api.request("GET", f"/api/v1/namespaces/{ns}/pods{q}")["items"]

    def describe_pods(self, ns: str) -> str:
        """One line per pod with its phase, node and container states, plus recent events: for failure messages."""
        lines = []
        try:
            for p in self.pods(ns):
                cs = [f"{c['name']}:{list((c.get('state') or {}).keys())}:restarts={c.get('restartCount')}"
                      for c in (p.get("status") or {}).get("containerStatuses") or []]
                lines.append(f"{p['metadata']['name']} {p['status'].get('phase')} node={p['spec'].get('nodeName')} "
                             f"ip={p['status'].get('podIP')} {cs}")
            ev = self.api.request("GET", f"/api/v1/namespaces/{ns}/events")["items"][-15:]
            lines += [f"event {e.get('reason')}: {e.get('message')}" for e in ev]
        except (ApiError, OSError) as e:
            lines.append(f"(listing pods failed: {e})")
        return "\n".join(lines)

    def pod_log(self, ns: str, name: str, container: str = "") -> str:
        """A container's log through the API server (API server -> kubelet -> containerd's log file)."""
        q = f"?container={container}" if container else ""
        out = self.api.request("GET", f"/api/v1/namespaces/{ns}/pods/{name}/log{q}")
        return out if isinstance(out, str) else json.dumps(out)

    def helm(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.api.helm(*args, home=self.dir / "helm-home", check=check)

    def node_of(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    def capture(self) -> "wire.Capture":
        """tcpdump on the bridge between the machines: everything the nodes send each other."""
        return wire.Capture(self.fabric, self.dir)


# ---- teardown (also for runs whose process died) -------------------------------------------------------------------
def destroy(prefix: str, nodes: list[Node], procs, mountpoints: list[Path]) -> None:
    for n in nodes:
        n.kill_all()
    for p in procs:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
    _remove_leftovers(prefix, mountpoints)


def _remove_leftovers(prefix: str, mountpoints: list[Path]) -> None:
    names = [n for n in sh(["ip", "netns", "list"], check=False).stdout.split() if n.startswith(prefix + "-")]
    for ns in names:
        for pid in sh(["ip", "netns", "pids", ns], check=False).stdout.split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
    for ns in names:
        sh(["ip", "netns", "del", ns], check=False)
    # cgroups of kubelets whose Node objects are gone (a killed run): /<prefix>-node<i> in every hierarchy.
    for base in (Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/unified")):
        if not base.exists():
            continue
        for h in [base] + [p for p in base.iterdir() if p.is_dir()]:
            for d in h.glob(f"{prefix}-node*"):
                rmdir_cgroup(d)
    if BPF_ROOT.exists():
        for d in BPF_ROOT.glob(prefix + "-*"):
            sh(["rm", "-rf", str(d)], check=False)
        try:
            BPF_ROOT.rmdir()
        except OSError:
            pass
    for p in sorted(mountpoints, key=lambda p: len(p.parts), reverse=True):
        try:
            p.rmdir()
        except OSError:
            pass
    try:
        (STATE_DIR / f"{prefix}.json").unlink()
    except FileNotFoundError:
        pass


def gc() -> list[str]:
    """Removes what runs whose owner process is gone left behind."""
    removed = []
    if STATE_DIR.exists():
        for f in STATE_DIR.glob("zk*.json"):
            try:
                st = json.loads(f.read_text())
            except (OSError, ValueError):
                st = {}
            owner = st.get("owner_pid", 0)
            if owner and Path(f"/proc/{owner}").exists():
                continue
            # Processes of the dead run: anything whose netns is one of ours, found by _remove_leftovers; the nodes'
            # mount namespaces end with their last process.
            _remove_leftovers(f.stem, [Path(p) for p in st.get("mountpoints", [])])
            if st.get("dir"):
                shutil.rmtree(st["dir"], ignore_errors=True)
            removed.append(f.stem)
    return removed


def main() -> int:
    ap = argparse.ArgumentParser(description="real two-node Kubernetes cluster for zeromesh's e2e tests")
    ap.add_argument("command", choices=["up", "gc"])
    a = ap.parse_args()
    if a.command == "gc":
        print("\n".join(gc()) or "nothing to collect")
        return 0
    with KCluster(keep=False) as c:
        print(f"cluster {c.prefix} up in {c.timings['up_seconds']}s; KUBECONFIG={c.kubeconfig}; Ctrl-C ends it",
              flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
