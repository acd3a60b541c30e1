"""The zeromesh local demo: a two-node mesh made of network namespaces, a real controller and real agents.

    demo.py up | verify | status | meshctl CMD... | exec TARGET -- CMD... | down   (via tools/demo.sh, as root)
    demo.py console        the web console's address and sign-in token
    demo.py console-env    the same as shell lines (ZM_CONSOLE_URL=..., for the browser tests)
    demo.py agent stop|start NODE    stop or restart one node's mesh-agent (the console tests' fault)

Everything lives in namespaces named <prefix>-* (prefix "zmdemo", or $ZM_DEMO_PREFIX) and in /run/zeromesh/<prefix>;
nothing in the root network namespace is touched.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "cluster"))
import zmcluster  # noqa: E402
from controlplane import ControlPlane  # noqa: E402

PREFIX = os.environ.get("ZM_DEMO_PREFIX", "zmdemo")
WORKDIR = Path(os.environ.get("ZM_DEMO_DIR", f"/run/zeromesh/{PREFIX}"))
APP = str(ROOT / "tools" / "demo" / "app.py")
PYTHON = sys.executable
BACKEND_VIP = "10.96.0.10"
BACKEND_PORT = 80
APP_PORT = 8080
INVENTORY_VIP = "10.96.0.20"
GRPC_PORT = 50051
GRPC_PYTHON = "/usr/bin/python3"  # Debian's, with python3-grpcio (tools/deps.sh): the gRPC apps
CONSOLE_PORT = 15080  # on the control-plane host; bridged to 127.0.0.1:<free port> in the root namespace
STATUS_INTERVAL_MS = 2000  # agents report traffic every 2 s: the console's graph moves while you watch
NSBRIDGE = str(ROOT / "tests" / "cluster" / "nsbridge.py")
VERBOSE = os.environ.get("ZM_DEMO_QUIET") != "1"


def say(msg: str) -> None:
    if VERBOSE:
        print(f"\033[1m[demo]\033[0m {msg}", flush=True)


class DemoError(RuntimeError):
    pass


# ---- preflight ---------------------------------------------------------------------------------------------------
def preflight() -> None:
    if os.geteuid() != 0:
        raise DemoError("the demo needs root (eBPF, network namespaces): run it with sudo")
    if not Path("/sys/kernel/btf/vmlinux").exists():
        raise DemoError("this kernel has no BTF (/sys/kernel/btf/vmlinux): zeromesh needs CONFIG_DEBUG_INFO_BTF=y")
    major, minor = (int(x) for x in os.uname().release.split(".")[:2])
    if (major, minor) < (6, 6):
        raise DemoError(f"kernel {os.uname().release} has no tcx (needs 6.6 or newer)")
    others = [n for n in zmcluster.sh(["ip", "netns", "list"], check=False).stdout.split()
              if n.startswith(PREFIX + "-")]
    if others and not (zmcluster.STATE_DIR / f"{PREFIX}.json").exists():
        raise DemoError(f"network namespaces named {PREFIX}-* exist but are not the demo's ({', '.join(others[:3])}"
                        f"...): remove them or set ZM_DEMO_PREFIX to another name")


def running() -> bool:
    """True when a demo cluster exists and its controller and agents are alive."""
    if not (zmcluster.STATE_DIR / f"{PREFIX}.json").exists() or not (WORKDIR / "demo.json").exists():
        return False
    state = json.loads((WORKDIR / "demo.json").read_text())
    return all(Path(f"/proc/{pid}").exists() for pid in state["pids"].values())


# ---- manifests ---------------------------------------------------------------------------------------------------
def write_manifests(cp: ControlPlane, pods: dict) -> None:
    cp.workload(pods["frontend"], ns="shop", sa="frontend", labels={"app": "frontend"})
    cp.workload(pods["backend-v1"], ns="shop", sa="backend", labels={"app": "backend", "version": "v1"})
    cp.workload(pods["backend-v2"], ns="shop", sa="backend", labels={"app": "backend", "version": "v2"})
    cp.workload(pods["inventory-v1"], ns="shop", sa="inventory", labels={"app": "inventory", "version": "v1"})
    cp.workload(pods["inventory-v2"], ns="shop", sa="inventory", labels={"app": "inventory", "version": "v2"})
    # legacy stays out of the mesh by its Namespace's label (as `kubectl label namespace` does it in Kubernetes), so the
    # console's wizard can enroll the whole namespace by changing that one label.
    cp.namespace("legacy", {"zeromesh.io/mesh": "disabled"})
    cp.workload(pods["legacy-client"], ns="legacy", sa="legacy-client", enrolled=None,
                labels={"app": "legacy-client"})
    for name, vip, selector in (("backend", BACKEND_VIP, "{app: backend}"),
                                ("backend-v1", "10.96.0.11", "{app: backend, version: v1}"),
                                ("backend-v2", "10.96.0.12", "{app: backend, version: v2}")):
        cp.write(f"service-shop-{name}.yaml", f"""apiVersion: zeromesh.io/v1alpha1
kind: Service
metadata:
  name: {name}
  namespace: shop
spec:
  vip: {vip}
  ports:
  - name: http
    port: {BACKEND_PORT}
    targetPort: {APP_PORT}
    appProtocol: http
  selector: {selector}
""")
    write_split(cp, 90, 10)
    write_inventory(cp)
    # Per request (the port speaks HTTP, so the node proxy routes each request): x-canary: 1 always reaches v2; other
    # requests match no rule and follow the TCPRoute's 90/10 split.
    cp.write("httproute-shop-backend-canary.yaml", f"""# Header canary: requests carrying x-canary: 1 go to backend-v2.
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: backend-canary
  namespace: shop
spec:
  parentRefs:
  - kind: Service
    name: backend
    port: {BACKEND_PORT}
  rules:
  - matches:
    - headers:
      - name: x-canary
        value: "1"
    backendRefs:
    - name: backend-v2
      port: {BACKEND_PORT}
""")


def write_inventory(cp: ControlPlane) -> None:
    """The gRPC service: inventory v1 and v2 behind one Service port with appProtocol grpc, so the node proxy routes
    each call (not each connection) by a GRPCRoute: Reserve, which only v2 implements, always goes to v2; the other
    calls of shop.Inventory are split 80/20."""
    for name, vip, selector in (("inventory", INVENTORY_VIP, "{app: inventory}"),
                                ("inventory-v1", "10.96.0.21", "{app: inventory, version: v1}"),
                                ("inventory-v2", "10.96.0.22", "{app: inventory, version: v2}")):
        cp.write(f"service-shop-{name}.yaml", f"""apiVersion: zeromesh.io/v1alpha1
kind: Service
metadata:
  name: {name}
  namespace: shop
spec:
  vip: {vip}
  ports:
  - name: grpc
    port: {GRPC_PORT}
    targetPort: {GRPC_PORT}
    appProtocol: grpc
  selector: {selector}
""")
    cp.write("grpcroute-shop-inventory.yaml", f"""# Per call: Reserve (new in v2) -> inventory-v2; every other shop.Inventory call 80% v1, 20% v2.
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata:
  name: inventory
  namespace: shop
spec:
  parentRefs:
  - kind: Service
    name: inventory
    port: {GRPC_PORT}
  rules:
  - matches:
    - method:
        service: shop.Inventory
        method: Reserve
    backendRefs:
    - name: inventory-v2
      port: {GRPC_PORT}
  - matches:
    - method:
        service: shop.Inventory
    backendRefs:
    - name: inventory-v1
      port: {GRPC_PORT}
      weight: 80
    - name: inventory-v2
      port: {GRPC_PORT}
      weight: 20
""")


def write_split(cp: ControlPlane, v1: int, v2: int) -> None:
    # The file name the console's wizard uses for this route (tcproute-<ns>-<name>.yaml), so its canary step edits it.
    cp.write("tcproute-shop-backend-split.yaml", f"""# Canary: 90% of new connections to backend go to v1, 10% to v2 (Gateway API mesh form, GAMMA).
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata:
  name: backend-split
  namespace: shop
spec:
  parentRefs:
  - kind: Service
    name: backend
    port: {BACKEND_PORT}
  rules:
  - backendRefs:
    - name: backend-v1
      port: {BACKEND_PORT}
      weight: {v1}
    - name: backend-v2
      port: {BACKEND_PORT}
      weight: {v2}
""")


# ---- commands ----------------------------------------------------------------------------------------------------
def up() -> int:
    preflight()
    if running():
        say("the demo is already running")
        print_summary()
        return 0
    if (zmcluster.STATE_DIR / f"{PREFIX}.json").exists() or WORKDIR.exists():
        say("removing a previous demo that is no longer healthy")
        down()
    t0 = time.time()
    say("creating nodes node1 and node2 (network namespaces joined by a bridge)")
    cluster = zmcluster.Cluster(nodes=2, pods_per_node=0, prefix=PREFIX, keep=True)
    cluster.up()
    import atexit
    atexit.unregister(cluster.down)  # the demo outlives this command
    try:
        pods = {name: cluster.add_pod(node, name) for name, node in
                (("frontend", "node1"), ("backend-v2", "node1"), ("backend-v1", "node2"),
                 ("legacy-client", "node2"), ("inventory-v1", "node2"), ("inventory-v2", "node1"))}
        WORKDIR.mkdir(parents=True, exist_ok=True)
        cp = ControlPlane(cluster, WORKDIR)
        cp.tokens["viewer"] = secrets.token_hex(16)  # the console's read-only sign-in
        cp.controller_args = ["--console-addr", f"{cp.host.ip}:{CONSOLE_PORT}"]
        write_manifests(cp, pods)
        say(f"starting mesh-controller (universal mode, manifests in {cp.manifests}, console on)")
        cp.start_controller()
        console_url, bridge = start_console_bridge(cluster, cp)
        say("starting mesh-agent on node1 and node2")
        for node in cluster.nodes:
            cp.start_agent(node, wait=False, extra_args=["--status-interval-ms", str(STATUS_INTERVAL_MS)])
        for node in cluster.nodes:
            cp.wait_agent_ready(node)
        say("starting the applications: backend-v1, backend-v2 (HTTP), frontend calling http://backend")
        pids = {"controller": cp.controller.pid, "console-bridge": bridge.pid,
                **{f"agent-{n}": p.pid for n, p in cp.agents.items()}}
        for name in ("backend-v1", "backend-v2"):
            p = cluster.popen(pods[name], [PYTHON, APP, "serve", name, str(APP_PORT)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            pids[name] = p.pid
        say("starting the gRPC inventory service: inventory-v1 (Get), inventory-v2 (Get, Reserve)")
        for name, methods in (("inventory-v1", ["Get"]), ("inventory-v2", ["Get", "Reserve"])):
            p = cluster.popen(pods[name], [GRPC_PYTHON, APP, "grpc-serve", name, str(GRPC_PORT), *methods],
                              stdout=subprocess.DEVNULL, stderr=open(WORKDIR / f"{name}.log", "wb"))
            pids[name] = p.pid
        for name in ("backend-v1", "backend-v2"):  # from the pod itself: STRICT pods refuse the node's plaintext
            cluster.wait_tcp(pods[name], pods[name].ip, APP_PORT)
        for name in ("inventory-v1", "inventory-v2"):
            cluster.wait_tcp(pods[name], pods[name].ip, GRPC_PORT)
        p = cluster.popen(pods["frontend"], [PYTHON, APP, "loop", f"http://{BACKEND_VIP}:{BACKEND_PORT}/",
                                             str(WORKDIR / "frontend.log"), "1"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        pids["frontend"] = p.pid
        p = cluster.popen(pods["frontend"], [GRPC_PYTHON, APP, "grpc-loop", f"{INVENTORY_VIP}:{GRPC_PORT}",
                                             str(WORKDIR / "frontend-grpc.log"), "1"],
                          stdout=subprocess.DEVNULL, stderr=open(WORKDIR / "frontend-grpc.err", "wb"))
        pids["frontend-grpc"] = p.pid
        cp.save()
        (WORKDIR / "demo.json").write_text(json.dumps({"prefix": PREFIX, "pids": pids, "console": console_url},
                                                      indent=2))
    except BaseException:
        down()
        raise
    say(f"up in {time.time() - t0:.1f}s")
    print_summary()
    return 0


def start_console_bridge(cluster: zmcluster.Cluster, cp: ControlPlane) -> tuple[str, subprocess.Popen]:
    """The console listens on the control-plane host (a network namespace); a browser on this machine reaches it
    through a forwarder listening on 127.0.0.1 in the root namespace (never on another address)."""
    with socket.socket() as s:  # a free loopback port in the root namespace
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = WORKDIR / "console-bridge.log"
    # This process's own network namespace (the root one), handed to the forwarder as an open descriptor.
    home = os.open("/proc/self/ns/net", os.O_RDONLY)
    try:
        with open(log, "wb") as out:  # a file, not a pipe: the forwarder outlives this command
            bridge = cluster.popen(cp.host, [PYTHON, NSBRIDGE, "--listen-netns", f"/proc/self/fd/{home}",
                                             "--listen", f"127.0.0.1:{port}", "--connect",
                                             f"{cp.host.ip}:{CONSOLE_PORT}"], stdout=out, stderr=subprocess.STDOUT,
                                   pass_fds=(home,))
    finally:
        os.close(home)
    deadline = time.time() + 10
    while "ready" not in log.read_text(errors="replace"):
        if bridge.poll() is not None or time.time() > deadline:
            raise DemoError(f"the console forwarder did not start: {log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}/", bridge


def demo_state() -> dict:
    if not (WORKDIR / "demo.json").exists():
        raise DemoError("the demo is not running: start it with 'sudo tools/demo.sh'")
    return json.loads((WORKDIR / "demo.json").read_text())


def console(args: list[str]) -> int:
    state, cp = demo_state(), attach()
    if args == ["--env"]:
        print(f"ZM_CONSOLE_URL={state['console'].rstrip('/')}")
        print(f"ZM_CONSOLE_TOKEN={cp.tokens['admin']}")
        print(f"ZM_CONSOLE_VIEWER_TOKEN={cp.tokens['viewer']}")
        return 0
    print(f"""zeromesh console: {state['console']}
  sign in with the admin token (may write):    {cp.tokens['admin']}
  or the read-only one:                        {cp.tokens['viewer']}
(the tokens are join-token entries "admin" and "viewer" in {cp.join_tokens_file})""")
    return 0


def agent(args: list[str]) -> int:
    """stop NODE: kills that node's mesh-agent (the mesh fails closed for its STRICT pods); start NODE: starts it
    again and waits until it is ready."""
    if len(args) != 2 or args[0] not in ("stop", "start"):
        raise DemoError("usage: tools/demo.sh agent stop|start NODE")
    action, node_name = args
    state, cp = demo_state(), attach()
    node = next((n for n in cp.cluster.nodes if n.name == node_name), None)
    if node is None:
        raise DemoError(f"no node '{node_name}' (there are: {', '.join(n.name for n in cp.cluster.nodes)})")
    key = f"agent-{node_name}"
    pid = state["pids"].get(key)
    alive = pid is not None and Path(f"/proc/{pid}").exists()
    if action == "stop":
        if alive:
            os.kill(pid, signal.SIGKILL)
            for _ in range(100):
                if not Path(f"/proc/{pid}").exists():
                    break
                time.sleep(0.05)
        say(f"mesh-agent on {node_name} stopped")
    else:
        if alive:
            say(f"mesh-agent on {node_name} already runs")
            return 0
        log = WORKDIR / f"agent-{node_name}.log"
        cp._ready_seen[node_name] = (log.read_text(errors="replace").count('"msg":"agent ready"')
                                     if log.exists() else 0)
        p = cp.start_agent(node, wait=True, extra_args=["--status-interval-ms", str(STATUS_INTERVAL_MS)])
        state["pids"][key] = p.pid
        say(f"mesh-agent on {node_name} started")
    (WORKDIR / "demo.json").write_text(json.dumps(state, indent=2))
    return 0


def print_summary() -> None:
    cp = attach()
    me = "sudo tools/demo.sh"
    print(f"""
zeromesh demo is running.

  nodes        node1, node2  (agents: mesh-agent, logs in {WORKDIR}/agent-node*.log)
  controller   {cp.address} on host "cp" (log: {WORKDIR}/controller.log)
  namespace    shop (enrolled, STRICT): frontend@node1, backend-v1@node2, backend-v2@node1
               Service backend {BACKEND_VIP}:{BACKEND_PORT} (HTTP) -> 90% backend-v1, 10% backend-v2;
               requests with x-canary: 1 -> backend-v2 (HTTPRoute, routed per request)
               gRPC Service inventory {INVENTORY_VIP}:{GRPC_PORT}: inventory-v1@node2, inventory-v2@node1;
               GRPCRoute per call: Reserve -> v2, other shop.Inventory calls 80% v1 / 20% v2
  namespace    legacy (not enrolled): legacy-client@node2
  manifests    {cp.manifests}   (edit them: the controller applies changes within a second)
  console      {demo_state().get('console', '-')}   ({me} console: the address and the sign-in tokens)
  frontend     calls http://{BACKEND_VIP}/ every second: tail -f {WORKDIR}/frontend.log
               and shop.Inventory/Get on one gRPC connection: tail -f {WORKDIR}/frontend-grpc.log

Try next:
  {me} console         # the web console: overview, traffic graph, the onboarding wizard
  {me} status          # meshctl status: the mesh's health
  {me} verify          # the scripted proof (split, canary, gRPC per call, wire, STRICT, policy)
  {me} exec frontend -- curl -s http://{BACKEND_VIP}/
  {me} exec frontend -- curl -s -H 'x-canary: 1' http://{BACKEND_VIP}/   # always backend-v2
  {me} meshctl routes  # the TCPRoute split, the HTTPRoute canary, the GRPCRoute (any meshctl command works)
  {me} meshctl stat    # requests, success rate, RPS and latency per Service and route
  {me} exec frontend -- /usr/bin/python3 {APP} grpc-sample {INVENTORY_VIP}:{GRPC_PORT} Get 50   # one connection, both versions
  {me} exec legacy-client -- curl -sm2 http://{BACKEND_VIP}/     # refused: not in the mesh
  {me} exec node1 -- tcpdump -ni eth0 -c 20 'tcp and not port 15012'  # the wire: TLS to 15008 only
  deny frontend -> backend:
    cat > {cp.manifests}/deny.yaml <<'EOF'
apiVersion: zeromesh.io/v1alpha1
kind: TrafficPermission
metadata: {{name: deny-frontend, namespace: shop}}
spec:
  action: DENY
  sources: {{identities: ["spiffe://cluster.local/ns/shop/sa/frontend"]}}
  destination: {{selector: {{matchLabels: {{app: backend}}}}}}
EOF
  {me} down            # remove everything
""")


def attach() -> ControlPlane:
    if not (WORKDIR / "demo.json").exists():
        raise DemoError("the demo is not running: start it with 'sudo tools/demo.sh'")
    cluster = zmcluster.load(PREFIX)
    return ControlPlane.attach(cluster, WORKDIR)


def status(args: list[str]) -> int:
    return meshctl(["status", *args])


def meshctl(args: list[str]) -> int:
    """Any meshctl command against the demo's controller, e.g. `routes`, `services -o yaml`, `policies`."""
    if not args:
        raise DemoError("usage: tools/demo.sh meshctl COMMAND [flags]   (e.g. routes, services, policies)")
    res = attach().meshctl(*args)
    sys.stdout.write(res.stdout)
    sys.stderr.write(res.stderr)
    return res.returncode


def exec_(args: list[str]) -> int:
    if not args:
        raise DemoError("usage: tools/demo.sh exec POD|NODE -- CMD...")
    target, cmd = args[0], args[1:]
    if cmd[:1] == ["--"]:
        cmd = cmd[1:]
    if not cmd:
        cmd = ["bash"]
    cluster = zmcluster.load(PREFIX)
    try:
        cluster.target(target)
    except zmcluster.ClusterError:
        names = [n.name for n in cluster.nodes + cluster.hosts] + [p.name for p in cluster.pods]
        raise DemoError(f"no pod or node '{target}' (there are: {', '.join(names)})")
    return subprocess.call(cluster.wrap(target, cmd))


def down() -> int:
    if not (zmcluster.STATE_DIR / f"{PREFIX}.json").exists() and not WORKDIR.exists():
        names = [n for n in zmcluster.sh(["ip", "netns", "list"], check=False).stdout.split()
                 if n.startswith(PREFIX + "-")]
        if not names:
            say("nothing to remove")
            return 0
    zmcluster.destroy_prefix(PREFIX)
    shutil.rmtree(WORKDIR, ignore_errors=True)
    say("demo removed")
    return 0


def main(argv: list[str]) -> int:
    cmd = argv[0] if argv else "up"
    try:
        if cmd == "up":
            return up()
        if cmd == "verify":
            from verify import verify
            return verify(attach())
        if cmd == "status":
            return status(argv[1:])
        if cmd == "meshctl":
            return meshctl(argv[1:])
        if cmd == "exec":
            return exec_(argv[1:])
        if cmd == "down":
            return down()
        if cmd == "console":
            return console(argv[1:])
        if cmd == "console-env":
            return console(["--env"])
        if cmd == "agent":
            return agent(argv[1:])
        if cmd in ("-h", "--help", "help"):
            print(__doc__)
            return 0
        raise DemoError(f"unknown command '{cmd}' (use up, verify, status, meshctl, exec, console, agent, down)")
    except (DemoError, zmcluster.ClusterError) as e:
        print(f"\033[31m[demo] error:\033[0m {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
