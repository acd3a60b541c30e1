"""Shared setup of the traffic-management tests: a two-node cluster with the real controller, a client pod and
backend pods behind Service VIPs, and an in-pod client that counts which endpoint served each connection.

Pods: client (node1), b1 (node1, v1), b2 (node2, v1), b3 (node2, v2), ext (node2, declared but not enrolled). Every backend
serves podtool on 8080 and 8081. Services (namespace shop):
    backend     10.96.0.10  80->8080, 81->8081   selector app=backend    (b1, b2, b3)
    backend-v1  10.96.0.11  80->8080             selector version=v1     (b1, b2)
    backend-v2  10.96.0.12  80->8080             selector version=v2     (b3)
    external    10.96.0.20  80->8080             endpoints: [ext's IP]   (outside the mesh)
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "cluster"))
import zmcluster  # noqa: E402
from controlplane import ControlPlane  # noqa: E402

PODTOOL = str(Path(__file__).resolve().parents[2] / "cluster" / "podtool.py")
NS = "shop"
VIP, VIP_V1, VIP_V2, VIP_EXT = "10.96.0.10", "10.96.0.11", "10.96.0.12", "10.96.0.20"
ADMIN_PORT = 15000

# Opens N connections (CONC at a time) to HOST:PORT, sends PEER on each and records which server address answered.
# Prints {"by_server": {"ip:port": count}, "failed": n, "errors": [...], "seconds": s, "max_connect_s": s}.
# Every 20 ms: one connection to HOST:PORT; prints "<unix time> <server ip:port or ERR>" per connection for SECONDS.
POLLER = r"""
import socket, sys, time
host, port, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
end = time.time() + secs
while time.time() < end:
    t = time.time()
    try:
        c = socket.create_connection((host, port), timeout=2)
        c.sendall(b"PEER\n")
        buf = b""
        while True:
            d = c.recv(4096)
            if not d:
                break
            buf += d
        c.close()
        reply = dict(kv.split("=", 1) for kv in buf.decode().split())
        print(t, reply["local"], flush=True)
    except Exception as e:
        print(t, "ERR", flush=True)
    time.sleep(0.02)
"""

CONNS = r"""
import json, socket, sys, threading, time
host, port, n, conc = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
timeout = float(sys.argv[5]) if len(sys.argv) > 5 else 10
lock = threading.Lock()
by, errors = {}, []
state = {"next": 0, "failed": 0, "max_connect": 0.0}
def one():
    t0 = time.monotonic()
    c = socket.create_connection((host, port), timeout=timeout)
    c.sendall(b"PEER\n")
    buf = b""
    while True:
        d = c.recv(4096)
        if not d:
            break
        buf += d
    c.close()
    reply = dict(kv.split("=", 1) for kv in buf.decode().split())
    return reply["local"], time.monotonic() - t0
def worker():
    while True:
        with lock:
            if state["next"] >= n:
                return
            state["next"] += 1
        try:
            ip, secs = one()
            with lock:
                by[ip] = by.get(ip, 0) + 1
                state["max_connect"] = max(state["max_connect"], secs)
        except Exception as e:
            with lock:
                state["failed"] += 1
                if len(errors) < 10:
                    errors.append(repr(e))
t0 = time.monotonic()
ts = [threading.Thread(target=worker) for _ in range(conc)]
[t.start() for t in ts]
[t.join() for t in ts]
print(json.dumps({"by_server": by, "failed": state["failed"], "errors": errors,
                  "seconds": round(time.monotonic() - t0, 3), "max_connect_s": round(state["max_connect"], 3)}))
"""


class TrafficEnv:
    def __init__(self, holes: bool = False):
        self.tmp = tempfile.TemporaryDirectory(prefix="zm-traffic-")
        self.cluster = zmcluster.Cluster(nodes=2, pods_per_node=0).up()
        try:
            c = self.cluster
            self.node1, self.node2 = c.node("node1"), c.node("node2")
            self.client = c.add_pod("node1", "client")
            self.b1 = c.add_pod("node1", "b1")
            self.b2 = c.add_pod("node2", "b2")
            self.b3 = c.add_pod("node2", "b3")
            self.ext = c.add_pod("node2", "ext")
            self.holes = [c.add_pod("node1", "hole1"), c.add_pod("node2", "hole2")] if holes else []
            self.cp = ControlPlane(c, Path(self.tmp.name))
            self.cp.workload(self.client, ns=NS, sa="client", labels={"app": "client"})
            for pod, version in ((self.b1, "v1"), (self.b2, "v1"), (self.b3, "v2")):
                self.cp.workload(pod, ns=NS, sa="backend", labels={"app": "backend", "version": version})
            # A pod the agents know but that is not in the mesh (every pod of the simulated cluster is in an
            # enrolled namespace; an undeclared one would be held as "not known yet").
            self.cp.workload(self.ext, ns=NS, sa="ext", labels={"app": "ext"}, enrolled=False)
            self.service("backend", VIP, {"app": "backend"}, ports=((80, 8080), (81, 8081)))
            self.service("backend-v1", VIP_V1, {"version": "v1"})
            self.service("backend-v2", VIP_V2, {"version": "v2"})
            self.service("external", VIP_EXT, None, endpoints=[self.ext.ip])
            for pod in self.holes:
                self.cp.workload(pod, ns=NS, sa="hole", labels={"app": "hole"})
            self.servers = {}
            for pod in (self.b1, self.b2, self.b3, self.ext):
                for port in (8080, 8081):
                    self.servers[(pod.name, port)] = c.popen(pod, [sys.executable, PODTOOL, "serve", str(port)],
                                                             stdout=subprocess.DEVNULL)
            self.cp.start()
            for pod in (self.b1, self.b2, self.b3, self.ext):
                c.wait_tcp(pod, pod.ip, 8080)
            for pod in self.holes:  # blackholed: SYNs vanish, nothing answers
                c.run(pod, ["iptables", "-A", "INPUT", "-p", "tcp", "--dport", "8080", "-j", "DROP"], check=True)
        except BaseException:
            self.down()
            raise

    def down(self):
        self.cluster.down()
        self.tmp.cleanup()

    # ---- manifests -------------------------------------------------------------------------------------------------
    def service(self, name, vip, selector, ports=((80, 8080),), endpoints=None):
        sel = f"\n  selector: {json.dumps(selector)}" if selector else ""
        eps = f"\n  endpoints: {json.dumps(endpoints)}" if endpoints else ""
        port_yaml = "".join(f"\n  - port: {p}\n    targetPort: {t}" for p, t in ports)
        self.cp.write(f"service-{name}.yaml", f"""apiVersion: zeromesh.io/v1alpha1
kind: Service
metadata:
  name: {name}
  namespace: {NS}
spec:
  vip: {vip}
  ports:{port_yaml}{sel}{eps}
""")

    def route(self, name, parent, port, backends):
        refs = "".join(f"\n    - name: {b}\n      port: {p}\n      weight: {w}" for b, p, w in backends)
        self.cp.write(f"route-{name}.yaml", f"""apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata:
  name: {name}
  namespace: {NS}
spec:
  parentRefs:
  - kind: Service
    name: {parent}
    port: {port}
  rules:
  - backendRefs:{refs}
""")

    def policy(self, name, target, spec: dict):
        body = json.dumps({"targetRef": {"kind": "Service", "name": target}, **spec})
        self.cp.write(f"policy-{name}.yaml", f"""apiVersion: zeromesh.io/v1alpha1
kind: ServicePolicy
metadata:
  name: {name}
  namespace: {NS}
spec: {body}
""")

    def refuse_new(self, pod, port: int, on: bool):
        """New connections to pod:port are reset (the endpoint is gone); established ones are untouched."""
        rule = ["INPUT", "-p", "tcp", "--dport", str(port), "--syn", "-j", "REJECT", "--reject-with", "tcp-reset"]
        self.cluster.run(pod, ["iptables", "-A" if on else "-D", *rule], check=True)

    def kill_server(self, pod, port: int):
        p = self.servers.pop((pod.name, port))
        p.kill()
        p.wait(timeout=10)

    def start_server(self, pod, port: int):
        self.servers[(pod.name, port)] = self.cluster.popen(pod, [sys.executable, PODTOOL, "serve", str(port)],
                                                            stdout=subprocess.DEVNULL)
        self.cluster.wait_tcp(pod, pod.ip, port)

    def metric(self, node, name: str) -> float:
        res = self.cluster.run(node, ["curl", "-sS", "--max-time", "3", f"http://{node.ip}:15020/metrics"], text=True,
                               timeout=15)
        for line in res.stdout.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
        raise AssertionError(f"{name} not in the metrics of {node.name}")

    def remove_glob(self, pattern):
        for f in self.cp.manifests.glob(pattern):
            f.unlink()

    # ---- observation -----------------------------------------------------------------------------------------------
    def config_dump(self, node) -> dict:
        res = self.cluster.run(node, ["curl", "-sS", "--max-time", "3", f"http://127.0.0.1:{ADMIN_PORT}/debug/config_dump"],
                               text=True, timeout=15)
        return json.loads(res.stdout) if res.returncode == 0 and res.stdout else {}

    def dump_service(self, node, name) -> dict | None:
        snap = self.config_dump(node).get("snapshot") or {}
        for s in snap.get("services", []):
            if s["name"] == name and s["namespace"] == NS:
                return s
        return None

    def wait_dump(self, node, name, pred, timeout=10.0) -> dict:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = self.dump_service(node, name)
            if last is not None and pred(last):
                return last
            time.sleep(0.05)
        raise AssertionError(f"service {name} on {node.name} never matched: {json.dumps(last)[:2000]}\n"
                             f"controller: {self.cp.log('controller', 2000)}")

    def conns(self, host, port, n, conc=8, timeout=10.0, src=None) -> dict:
        res = self.cluster.run(src or self.client, [sys.executable, "-c", CONNS, host, str(port), str(n), str(conc),
                                                    str(timeout)], text=True, timeout=600)
        if res.returncode != 0:
            raise AssertionError(f"client failed: {res.stderr[-2000:]}")
        return json.loads(res.stdout)

    def ip_names(self) -> dict:
        return {p.ip: p.name for p in (self.b1, self.b2, self.b3, self.ext, *self.holes)}

    def named(self, by_server: dict, with_port: bool = False) -> dict:
        """{"10.244.1.11:8080": n} -> {"b1": n} (or {"b1:8080": n})."""
        names, out = self.ip_names(), {}
        for addr, n in by_server.items():
            ip, port = addr.rsplit(":", 1)
            key = names.get(ip, ip) + (f":{port}" if with_port else "")
            out[key] = out.get(key, 0) + n
        return out
