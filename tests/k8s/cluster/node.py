"""One worker node of the real-cluster harness: a network namespace (the host's network) plus a mount namespace (the
host's files), in which containerd 2 + runc, a kubelet and kube-proxy run as they would on a machine.

The mount namespace gives each node its own copy of the paths a node owns (/run/containerd, /var/lib/kubelet,
/var/lib/containerd, /var/lib/cni, /etc/cni/net.d, /var/log/pods, /var/log/containers) as bind mounts of directories
under the run's work dir, so two nodes on one machine never share a socket, an image store or a hostPath. /sys stays
the machine's: the kubelet's cgroups and the agents' bpffs pins are real, and named after the node so the harness can
remove them. The kubelet's non-namespaced kernel tunables (vm.overcommit_memory, kernel.panic, ...) are files of the
work dir bind-mounted over /proc/sys inside the node with the values it wants (protectKernelDefaults: it only reads
them), so the machine's sysctls are never written.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from zmcluster import _rmdir_cgroup as rmdir_cgroup  # kills what is left in a cgroup tree, removes it deepest first

# Paths a node owns, bind-mounted per node.
NODE_DIRS = ["/run/containerd", "/var/lib/containerd", "/var/lib/kubelet", "/var/lib/cni", "/etc/cni/net.d",
             "/var/log/pods", "/var/log/containers"]
# What the kubelet checks with protectKernelDefaults (pkg/kubelet/cm: setupKernelTunables).
KERNEL_TUNABLES = {"vm/overcommit_memory": "1", "vm/panic_on_oom": "0", "kernel/panic": "10",
                   "kernel/panic_on_oops": "1", "kernel/keys/root_maxkeys": "1000000",
                   "kernel/keys/root_maxbytes": "25000000"}
CGROUP_V1 = Path("/sys/fs/cgroup")
HERE = Path(__file__).resolve().parent


def sh(cmd: list[str], check: bool = True, **kw) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr.strip()[-2000:]}")
    return r


class Node:
    def __init__(self, cluster, index: int):
        self.cluster = cluster
        self.index = index
        self.name = f"{cluster.prefix}-node{index}"
        self.netns = self.name
        self.ip = f"10.99.0.{index}"
        self.pod_cidr = f"10.244.{index}.0/24"
        self.dir = cluster.dir / f"node{index}"
        self.cgroup_root = f"/{self.name}"
        self.holder: subprocess.Popen | None = None
        self.procs: dict[str, subprocess.Popen] = {}

    # ---- running things inside the node ----------------------------------------------------------------------------
    def wrap(self, cmd: list[str]) -> list[str]:
        """argv running cmd in this node's network and mount namespaces."""
        return ["nsenter", f"--target={self.holder.pid}", "--mount", "--net", "--"] + list(cmd)

    def run(self, cmd: list[str], check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        return sh(self.wrap(cmd), check=check, timeout=timeout)

    def start(self, name: str, cmd: list[str]) -> subprocess.Popen:
        log = open(self.dir / f"{name}.log", "ab")
        p = subprocess.Popen(self.wrap(cmd), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self.procs[name] = p
        return p

    def log(self, name: str, tail: int = 4000) -> str:
        f = self.dir / f"{name}.log"
        return f.read_text(errors="replace")[-tail:] if f.exists() else ""

    def ctr(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.run([str(self.cluster.bin / "ctr"), "--address", "/run/containerd/containerd.sock",
                         "--namespace", "k8s.io", *args], check=check)

    # ---- bring-up --------------------------------------------------------------------------------------------------
    def create_host(self) -> None:
        """The node's network (uplink eth0 on the fabric, routes to the other nodes' pod CIDRs) and its mount
        namespace, held open by a sleeping process."""
        c = self.cluster
        sh(["ip", "netns", "add", self.netns])
        sh(["ip", "-n", self.netns, "link", "set", "lo", "up"])
        sh(["ip", "-n", c.fabric, "link", "add", f"up{self.index}", "type", "veth", "peer", "name", "eth0",
            "netns", self.netns])
        sh(["ip", "-n", c.fabric, "link", "set", f"up{self.index}", "master", "br0", "up"])
        sh(["ip", "-n", self.netns, "addr", "add", f"{self.ip}/24", "dev", "eth0"])
        sh(["ip", "-n", self.netns, "link", "set", "eth0", "up"])
        for key, val in (("net.ipv4.ip_forward", "1"), ("net.ipv4.conf.all.rp_filter", "0"),
                         ("net.ipv4.conf.default.rp_filter", "0")):
            sh(["nsenter", f"--net=/run/netns/{self.netns}", "sysctl", "-qw", f"{key}={val}"])
        self.dir.mkdir(parents=True, exist_ok=True)
        self.holder = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "slave", "--",
             "nsenter", f"--net=/run/netns/{self.netns}", "--", "sleep", "infinity"], start_new_session=True)
        for _ in range(100):  # until the exec chain reached sleep (then the pid has both namespaces)
            if Path(f"/proc/{self.holder.pid}/comm").read_text().strip() == "sleep":
                break
            time.sleep(0.02)
        # As on a systemd host, every mount of the node is shared within the node (its peers stay inside its mount
        # namespace: it is a slave of the machine's, never a master), so mountPropagation works (the agent's bpffs).
        self.run(["mount", "--make-rshared", "/"])
        for d in NODE_DIRS:
            src = self.dir / "root" / d.lstrip("/")
            src.mkdir(parents=True, exist_ok=True)
            c.ensure_mountpoint(Path(d))
            self.run(["mount", "--bind", str(src), d])
        sysctl = self.dir / "sysctl"
        for key, val in KERNEL_TUNABLES.items():
            f = sysctl / key.replace("/", "_")
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_text(val + "\n")
            self.run(["mount", "--bind", str(f), f"/proc/sys/{key}"])

    def create_cgroup_root(self) -> None:
        """The kubelet's cgroupRoot must exist in every hierarchy (cgroup v1 here: one mount per controller)."""
        for h in CGROUP_V1.iterdir():
            if not h.is_dir() or h.name == "unified" or not (h / "cgroup.procs").exists():
                continue
            d = h / self.cgroup_root.lstrip("/")
            d.mkdir(exist_ok=True)
            if h.name == "cpuset":  # a new cpuset has no CPUs or memory nodes until given its parent's
                for f in ("cpuset.cpus", "cpuset.mems"):
                    (d / f).write_text((h / f).read_text())

    def route_to(self, other: "Node") -> None:
        sh(["ip", "-n", self.netns, "route", "add", other.pod_cidr, "via", other.ip])

    def write_configs(self) -> None:
        c = self.cluster
        root = self.dir / "root"
        # CNI: ptp (a veth per pod, /32 host routes, the gateway on the node side) with host-local IPAM.
        (root / "etc/cni/net.d/10-zeromesh-e2e.conflist").write_text(f"""{{
  "cniVersion": "1.0.0",
  "name": "e2e",
  "plugins": [
    {{"type": "ptp", "mtu": 1500, "ipMasq": false,
      "ipam": {{"type": "host-local", "ranges": [[{{"subnet": "{self.pod_cidr}"}}]], "routes": [{{"dst": "0.0.0.0/0"}}]}}}},
    {{"type": "portmap", "capabilities": {{"portMappings": true}}}}
  ]
}}
""")
        (self.dir / "containerd.toml").write_text(f"""version = 3
root = "/var/lib/containerd"
state = "/run/containerd"

[grpc]
  address = "/run/containerd/containerd.sock"

[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = "{c.pause_image}"

[plugins.'io.containerd.cri.v1.runtime']
  netns_mounts_under_state_dir = true
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ["/usr/lib/cni"]
    conf_dir = "/etc/cni/net.d"
  [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
    # Our shim, not whichever containerd-shim-runc-v2 comes first on PATH (Debian's containerd 1.6 installs one).
    runtime_path = "{c.bin / 'containerd-shim-runc-v2'}"
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
      BinaryName = "{HERE / 'runc_compat.py'}"
      SystemdCgroup = false
""")
        (self.dir / "kubelet.yaml").write_text(f"""apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: {self.ip}
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {{enabled: false}}
  webhook: {{enabled: false}}
  x509: {{clientCAFile: "{c.pki / 'ca.crt'}"}}
authorization: {{mode: AlwaysAllow}}
containerRuntimeEndpoint: unix:///run/containerd/containerd.sock
cgroupDriver: cgroupfs
cgroupRoot: {self.cgroup_root}
failCgroupV1: false
failSwapOn: false
protectKernelDefaults: true
clusterDNS: [10.96.0.10]
clusterDomain: cluster.local
resolvConf: ""
podCIDR: {self.pod_cidr}
maxPods: 40
serializeImagePulls: false
rotateCertificates: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {{memory.available: "50Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}}
""")
        (self.dir / "kube-proxy.yaml").write_text(f"""apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {{kubeconfig: "{c.internal_kubeconfig}"}}
mode: iptables
hostnameOverride: {self.name}
clusterCIDR: 10.244.0.0/16
metricsBindAddress: 127.0.0.1:10249
healthzBindAddress: 127.0.0.1:10256
conntrack: {{maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}}
""")

    def start_runtime(self) -> None:
        b = self.cluster.bin
        self.start("containerd", [str(b / "containerd"), "--config", str(self.dir / "containerd.toml")])
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.procs["containerd"].poll() is not None:
                raise RuntimeError(f"containerd on {self.name} exited:\n{self.log('containerd')}")
            if self.ctr("version", check=False).returncode == 0:
                return
            time.sleep(0.2)
        raise RuntimeError(f"containerd on {self.name} did not answer within 60s:\n{self.log('containerd')}")

    def import_images(self, archives: list[Path]) -> None:
        for a in archives:
            self.ctr("images", "import", str(a))

    def start_kubelet(self) -> None:
        b = self.cluster.bin
        self.start("kubelet", [str(b / "kubelet"), f"--config={self.dir / 'kubelet.yaml'}",
                               f"--kubeconfig={self.cluster.internal_kubeconfig}",
                               f"--hostname-override={self.name}", f"--node-ip={self.ip}", "--v=1"])
        self.start("kube-proxy", [str(b / "kube-proxy"), f"--config={self.dir / 'kube-proxy.yaml'}", "--v=1"])

    # ---- teardown --------------------------------------------------------------------------------------------------
    def kill_all(self) -> None:
        """Kills everything of this node: its daemons, the containerd shims (they re-parent away from containerd), the
        containers (found through the node's cgroups) and the holder; then removes the node's cgroups."""
        victims: set[int] = set()
        for p in self.procs.values():
            victims.add(p.pid)
        mnt = None
        if self.holder and self.holder.poll() is None:
            try:
                mnt = os.readlink(f"/proc/{self.holder.pid}/ns/mnt")
            except OSError:
                pass
        for _ in range(3):
            pids = set(victims)
            for proc in Path("/proc").iterdir():
                if not proc.name.isdigit():
                    continue
                try:
                    if mnt and os.readlink(proc / "ns/mnt") == mnt:
                        pids.add(int(proc.name))
                except OSError:
                    pass
            pids |= self._cgroup_pids()
            pids.discard(os.getpid())
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.3)
            victims = set()
        for p in list(self.procs.values()) + ([self.holder] if self.holder else []):
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        self._remove_cgroups()

    def _cgroup_dirs(self) -> list[Path]:
        if not CGROUP_V1.exists():
            return []
        return [h / self.cgroup_root.lstrip("/") for h in CGROUP_V1.iterdir() if (h / self.cgroup_root.lstrip("/")).is_dir()]

    def _cgroup_pids(self) -> set[int]:
        pids: set[int] = set()
        for d in self._cgroup_dirs():
            for f in d.rglob("cgroup.procs"):
                try:
                    pids |= {int(x) for x in f.read_text().split()}
                except OSError:
                    pass
        return pids

    def _remove_cgroups(self) -> None:
        for d in self._cgroup_dirs():
            rmdir_cgroup(d)
