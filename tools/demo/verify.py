"""`tools/demo.sh verify`: the scripted proof that the running demo mesh does what it promises."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import zmcluster
from controlplane import ControlPlane

APP = str(Path(__file__).resolve().parent / "app.py")
PYTHON = sys.executable
VIP_URL = "http://10.96.0.10:80/"
INVENTORY = "10.96.0.20:50051"
GRPC_PYTHON = "/usr/bin/python3"  # with python3-grpcio
DENY = """apiVersion: zeromesh.io/v1alpha1
kind: TrafficPermission
metadata:
  name: verify-deny-frontend
  namespace: shop
spec:
  action: DENY
  sources:
    identities: ["spiffe://{td}/ns/shop/sa/frontend"]
  destination:
    selector:
      matchLabels: {{app: backend}}
"""


class Checks:
    def __init__(self):
        self.failed = 0

    def report(self, ok: bool, what: str, detail: str = "") -> bool:
        mark = "\033[32m✓\033[0m" if ok else "\033[31m✗\033[0m"
        print(f"  {mark} {what}" + (f"  ({detail})" if detail else ""), flush=True)
        self.failed += 0 if ok else 1
        return ok


def sample(cluster: zmcluster.Cluster, pod: str, n: int, url: str = VIP_URL, header: str | None = None) -> dict:
    res = cluster.run(pod, [PYTHON, APP, "sample", url, str(n)] + ([header] if header else []), text=True,
                      timeout=120)
    if res.returncode != 0:
        return {"error:" + res.stderr.strip()[-200:]: n}
    return json.loads(res.stdout)


def grpc_sample(cluster: zmcluster.Cluster, method: str, n: int) -> dict:
    """n calls of shop.Inventory/method from frontend on one gRPC channel (one HTTP/2 connection): counts per answer."""
    res = cluster.run("frontend", [GRPC_PYTHON, APP, "grpc-sample", INVENTORY, method, str(n)], text=True, timeout=120)
    if res.returncode != 0:
        return {"error:" + res.stderr.strip()[-200:]: n}
    return json.loads(res.stdout)


def check_grpc(cluster: zmcluster.Cluster, checks: Checks) -> None:
    """The GRPCRoute on inventory, per call on one connection: Get split 80/20, Reserve (v2 only) always to v2."""
    counts = grpc_sample(cluster, "Get", 200)
    v1, v2 = counts.get("inventory-v1", 0), counts.get("inventory-v2", 0)
    checks.report(v1 + v2 == 200, "frontend -> inventory (gRPC): 200 of 200 Get calls on one connection answered",
                  json.dumps(counts))
    # L4 would send every call of the one connection to one version; per call routing gives both, about 80/20.
    share = v2 / max(1, v1 + v2)
    checks.report(0.1 <= share <= 0.3, "the calls of that one connection split roughly 80/20 between inventory-v1 and "
                  "inventory-v2 (GRPCRoute, per call)", f"v1={v1} v2={v2}")
    reserve = grpc_sample(cluster, "Reserve", 30)
    checks.report(reserve == {"inventory-v2": 30}, "Reserve calls (only v2 implements it) all reach inventory-v2 "
                  "(GRPCRoute method match)", json.dumps(reserve))


def check_stat(cp: ControlPlane, checks: Checks, sampled: int) -> None:
    """meshctl stat counts those calls per route (the agents report every 2 s in the demo): the sampled ones plus the
    frontend's own loop calls (one line each in frontend-grpc.log) made so far, at least."""
    log = cp.workdir / "frontend-grpc.log"
    at_least = sampled + (len(log.read_text().splitlines()) if log.exists() else 0)
    deadline, rows, total, failures = time.monotonic() + 10, [], 0, 0
    while time.monotonic() < deadline:
        res = cp.meshctl("stat", "-o", "json")
        rows = json.loads(res.stdout) if res.returncode == 0 else []
        mine = [r for r in rows if r["route"].startswith("shop/inventory#")]
        total, failures = sum(r["requests"] for r in mine), sum(r["failures"] for r in mine)
        if total >= at_least:
            break
        time.sleep(0.5)
    checks.report(total >= at_least and failures == 0, f"meshctl stat counts those {sampled} gRPC calls (and the "
                  "frontend's) on the GRPCRoute's rules, all successful",
                  f"{total} calls of at least {at_least}, {failures} failed")


def first_change(cluster: zmcluster.Cluster, want_ok: bool, limit: float) -> float | None:
    """Seconds until a frontend call to the Service has the wanted outcome, or None."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        answer = next(iter(sample(cluster, "frontend", 1)))
        if answer.startswith("backend") == want_ok:
            return time.monotonic() - t0
        time.sleep(0.02)
    return None


def deny_and_restore(cp: ControlPlane, checks: Checks) -> None:
    """Writes a DENY policy for frontend -> backend into the manifests, then removes it again."""
    deny = cp.manifests / "verify-deny.yaml"
    try:
        cp.write("verify-deny.yaml", DENY.format(td=cp.trust_domain))
        took = first_change(cp.cluster, False, 10)
        checks.report(took is not None and took <= 1.0, "a DENY TrafficPermission blocks frontend -> backend within 1 s",
                      f"{took:.2f}s" if took is not None else "still allowed after 10s")
    finally:
        deny.unlink(missing_ok=True)
    took = first_change(cp.cluster, True, 10)
    checks.report(took is not None and took <= 1.0, "removing it restores traffic within 1 s",
                  f"{took:.2f}s" if took is not None else "still denied after 10s")


def verify(cp: ControlPlane) -> int:
    c = cp.cluster
    checks = Checks()
    print("zeromesh demo: verify")

    counts = sample(c, "frontend", 200)
    v1, v2 = counts.get("backend-v1", 0), counts.get("backend-v2", 0)
    errors = {k: v for k, v in counts.items() if not k.startswith("backend")}
    checks.report(v1 + v2 == 200 and not errors, "frontend -> backend: 200 of 200 calls answered", json.dumps(counts))
    share = v2 / max(1, v1 + v2)
    checks.report(0.05 <= share <= 0.16, "responses split roughly 90/10 between backend-v1 and backend-v2",
                  f"v1={v1} v2={v2}")

    canary = sample(c, "frontend", 50, header="x-canary:1")
    checks.report(canary == {"backend-v2": 50}, "requests with x-canary: 1 all reach backend-v2 (HTTPRoute, per request)",
                  json.dumps(canary))

    check_grpc(c, checks)
    check_stat(cp, checks, 230)  # 200 Get + 30 Reserve

    caps = [c.capture(node, "eth0", "tcp and not port 15012") for node in ("node1", "node2")]
    try:
        sample(c, "frontend", 20)
        data = b"".join(cap.data() for cap in caps)
        lines = [l for cap in caps for l in cap.summary()]
        non_hbone = [l for l in lines if ".15008" not in l]
        checks.report(bool(lines) and not non_hbone, "the wire between the nodes carries TLS to port 15008 only",
                      f"{len(lines)} packets" + (f", e.g. {non_hbone[0]}" if non_hbone else ""))
        checks.report(b"GET /" not in data and b"backend-v1\n" not in data, "no HTTP plaintext on the wire")
    finally:
        for cap in caps:
            cap.cleanup()

    legacy_vip = sample(c, "legacy-client", 3)
    backend_v1 = c.pod("backend-v1")
    legacy_pod = sample(c, "legacy-client", 3, f"http://{backend_v1.ip}:8080/")
    refused = not any(k.startswith("backend") for k in list(legacy_vip) + list(legacy_pod))
    checks.report(refused, "legacy-client (not in the mesh) -> backend is refused (STRICT)",
                  f"via Service: {next(iter(legacy_vip))}, direct to the pod: {next(iter(legacy_pod))}")

    if v1 + v2 == 0:
        checks.report(False, "a DENY TrafficPermission blocks frontend -> backend within 1 s",
                      "cannot tell: frontend -> backend does not work to begin with")
    else:
        deny_and_restore(cp, checks)

    res = cp.meshctl("status")
    checks.report(res.returncode == 0, "meshctl status reports a healthy mesh",
                  (res.stdout + res.stderr).strip().splitlines()[-1][:80] if (res.stdout + res.stderr).strip()
                  else f"exit {res.returncode}")
    if res.returncode != 0:
        print(res.stdout + res.stderr)

    print(f"{checks.failed} check(s) failed" if checks.failed else "all checks passed")
    return 1 if checks.failed else 0
