"""A real Kubernetes API server for tests: etcd + kube-apiserver on 127.0.0.1 random ports, generated certificates
(openssl CLI), a ServiceAccount issuer and signing key, RBAC authorization and an admin kubeconfig. No kubelet,
scheduler or controller-manager run: objects are stored and validated, nothing reconciles them.

    with ApiServer() as api:
        api.request("GET", "/version")
        api.apply_file("api/crds/x.yaml")
        token = api.token("zeromesh-system", "zeromesh-controller")

Binaries come from tests/k8s/tools.sh (built once, cached). Everything lives in a temp dir removed on exit.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
TOOLS = HERE / "tools.sh"


def bin_dir() -> Path:
    """The cached tool directory; builds the tools if missing (slow only the first time)."""
    env = {**os.environ, "PATH": os.environ.get("PATH", "/usr/bin:/bin") + ":/usr/local/go/bin"}
    out = subprocess.run(["bash", str(TOOLS), "--bindir"], capture_output=True, text=True, env=env)
    if out.returncode != 0:
        out = subprocess.run(["bash", str(TOOLS)], capture_output=True, text=True, env=env)
        if out.returncode != 0:
            raise RuntimeError(f"tests/k8s/tools.sh failed:\n{out.stderr[-4000:]}")
    return Path(out.stdout.strip().splitlines()[-1])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_process(p: subprocess.Popen, timeout: float = 15) -> None:
    """Ends a process a test started: SIGTERM, SIGKILL after `timeout`; closes its stdout pipe if it has one."""
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    if p.stdout:
        p.stdout.close()


class ApiError(Exception):
    def __init__(self, status: int, body: str):
        super().__init__(f"HTTP {status}: {body[:2000]}")
        self.status = status
        self.body = body


class ApiServer:
    def __init__(self, workdir: str | None = None):
        self.bin = bin_dir()
        self._own_dir = workdir is None
        self.dir = Path(workdir or tempfile.mkdtemp(prefix="zm-k8s-"))
        self.dir.mkdir(parents=True, exist_ok=True)
        self.etcd: subprocess.Popen | None = None
        self.apiserver: subprocess.Popen | None = None
        self.port = 0
        self.server = ""
        self.kubeconfig = self.dir / "admin.kubeconfig"

    # ---- lifecycle -------------------------------------------------------------------------------------------------
    def __enter__(self) -> "ApiServer":
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _openssl(self, *args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=self.dir)

    def _certs(self) -> None:
        d = self.dir
        self._openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                      "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=zeromesh-test-ca")
        (d / "server.ext").write_text(
            "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
            "subjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,"
            "DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local\n")
        (d / "client.ext").write_text(
            "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n")
        for name, subj, ext in (("server", "/CN=kube-apiserver", "server.ext"),
                                ("admin", "/O=system:masters/CN=zeromesh-test-admin", "client.ext")):
            self._openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                          "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subj)
            self._openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                          "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", "-extfile", ext)
        self._openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "sa.key")
        self._openssl("pkey", "-in", "sa.key", "-pubout", "-out", "sa.pub")
        for f in d.glob("*.key"):
            f.chmod(0o600)

    def start(self, timeout: float = 90) -> None:
        self._certs()
        etcd_client, etcd_peer = free_port(), free_port()
        self.port = free_port()
        self.server = f"https://127.0.0.1:{self.port}"
        with open(self.dir / "etcd.log", "wb") as log:
            self.etcd = subprocess.Popen(
                [str(self.bin / "etcd"), "--name", "zm", "--data-dir", str(self.dir / "etcd"),
                 "--listen-client-urls", f"http://127.0.0.1:{etcd_client}",
                 "--advertise-client-urls", f"http://127.0.0.1:{etcd_client}",
                 "--listen-peer-urls", f"http://127.0.0.1:{etcd_peer}",
                 "--initial-advertise-peer-urls", f"http://127.0.0.1:{etcd_peer}",
                 "--initial-cluster", f"zm=http://127.0.0.1:{etcd_peer}",
                 "--unsafe-no-fsync", "--log-level", "warn"],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.etcd_url = f"http://127.0.0.1:{etcd_client}"
        self._write_kubeconfig(self.kubeconfig, user={
            "client-certificate": str(self.dir / "admin.crt"), "client-key": str(self.dir / "admin.key")})
        self._start_apiserver(timeout)

    def _start_apiserver(self, timeout: float) -> None:
        d = self.dir
        with open(self.dir / "apiserver.log", "ab") as log:
            self.apiserver = subprocess.Popen(
                [str(self.bin / "kube-apiserver"),
                 f"--etcd-servers={self.etcd_url}",
                 "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", f"--secure-port={self.port}",
                 f"--tls-cert-file={d / 'server.crt'}", f"--tls-private-key-file={d / 'server.key'}",
                 f"--client-ca-file={d / 'ca.crt'}",
                 "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                 f"--service-account-key-file={d / 'sa.pub'}",
                 f"--service-account-signing-key-file={d / 'sa.key'}",
                 "--authorization-mode=RBAC", "--service-cluster-ip-range=10.96.0.0/16",
                 "--allow-privileged=true", "--enable-priority-and-fairness=false",
                 f"--cert-dir={d / 'certs'}", "--v=1"],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + timeout
        last = ""
        while time.time() < deadline:
            for name, p in (("etcd", self.etcd), ("kube-apiserver", self.apiserver)):
                if p.poll() is not None:
                    raise RuntimeError(f"{name} exited with {p.returncode}:\n{self.log(name)[-4000:]}")
            try:
                self.request("GET", "/readyz")
                # RBAC bootstrap roles and the default namespace are created by post-start hooks.
                self.request("GET", "/api/v1/namespaces/default")
                return
            except (ApiError, OSError) as e:
                last = str(e)
            time.sleep(0.5)
        raise RuntimeError(f"kube-apiserver not ready after {timeout}s ({last}):\n{self.log('kube-apiserver')[-4000:]}")

    def restart_apiserver(self, between=None, timeout: float = 90) -> None:
        """Stops kube-apiserver (every watch connection ends), runs `between()` while it is down, starts it again on
        the same port with the same etcd (a fresh watch cache)."""
        p = self.apiserver
        os.killpg(p.pid, signal.SIGTERM)
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(timeout=5)
        if between:
            between()
        self._start_apiserver(timeout)

    def _etcd(self, method: str, body: dict) -> dict:
        req = urllib.request.Request(self.etcd_url + method, data=json.dumps(body).encode(), method="POST")
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def etcd_revision(self) -> int:
        return int(self._etcd("/v3/kv/range", {"key": base64.b64encode(b"/registry/").decode(), "limit": 1})
                   ["header"]["revision"])

    def compact_etcd(self) -> int:
        """Compacts etcd's history up to now (through its JSON gateway), so older resourceVersions are gone (410)."""
        rev = self.etcd_revision()
        self._etcd("/v3/kv/compaction", {"revision": rev, "physical": True})
        return rev

    def stop(self) -> None:
        for p in (self.apiserver, self.etcd):
            if p is None or p.poll() is not None:
                continue
            try:
                os.killpg(p.pid, signal.SIGTERM)
                p.wait(timeout=15)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                    p.wait(timeout=5)
                except ProcessLookupError:
                    pass
        self.apiserver = self.etcd = None
        if self._own_dir and not os.environ.get("ZM_KEEP_K8S"):
            shutil.rmtree(self.dir, ignore_errors=True)

    def log(self, name: str) -> str:
        f = self.dir / ("etcd.log" if name == "etcd" else "apiserver.log")
        return f.read_text(errors="replace") if f.exists() else ""

    def helm(self, *args: str, home: Path, check: bool = True) -> subprocess.CompletedProcess:
        """helm as the admin, with its state (HOME, cache) under `home`; raises on failure unless check=False."""
        r = subprocess.run([str(self.bin / "helm"), "--kubeconfig", str(self.kubeconfig), *args],
                           capture_output=True, text=True, timeout=180,
                           env={**os.environ, "HOME": str(home), "HELM_CACHE_HOME": str(Path(home) / "helm")})
        if check and r.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed:\n{r.stdout}\n{r.stderr}")
        return r

    # ---- credentials -----------------------------------------------------------------------------------------------
    def _write_kubeconfig(self, path: Path, user: dict, server: str | None = None) -> Path:
        ca = base64.b64encode((self.dir / "ca.crt").read_bytes()).decode()
        cfg = {"apiVersion": "v1", "kind": "Config", "current-context": "zm",
               "clusters": [{"name": "zm", "cluster": {"server": server or self.server,
                                                       "certificate-authority-data": ca}}],
               "users": [{"name": "u", "user": user}],
               "contexts": [{"name": "zm", "context": {"cluster": "zm", "user": "u"}}]}
        path.write_text(json.dumps(cfg, indent=2))  # JSON is YAML
        path.chmod(0o600)
        return path

    def token(self, namespace: str, service_account: str, seconds: int = 3600, audiences: list[str] | None = None,
              pod: dict | None = None) -> str:
        """A token for a ServiceAccount (TokenRequest API). With `pod` (the Pod object), it is bound to that pod the
        way the kubelet's projected token volume binds it: valid only while the pod exists, carrying its node."""
        spec = {"expirationSeconds": seconds}
        if audiences:
            spec["audiences"] = audiences
        if pod:
            spec["boundObjectRef"] = {"kind": "Pod", "apiVersion": "v1", "name": pod["metadata"]["name"],
                                      "uid": pod["metadata"]["uid"]}
        r = self.request("POST", f"/api/v1/namespaces/{namespace}/serviceaccounts/{service_account}/token",
                         {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec})
        return r["status"]["token"]

    def token_kubeconfig(self, namespace: str, service_account: str, path: Path, server: str | None = None) -> Path:
        """A kubeconfig that authenticates with nothing but the ServiceAccount's token (`server` overrides the
        address, e.g. a forwarder into a simulated host)."""
        return self._write_kubeconfig(Path(path), user={"token": self.token(namespace, service_account)},
                                      server=server)

    # ---- REST ------------------------------------------------------------------------------------------------------
    def _ssl(self, admin: bool = True) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.dir / "ca.crt"))
        if admin:
            ctx.load_cert_chain(str(self.dir / "admin.crt"), str(self.dir / "admin.key"))
        return ctx

    def request(self, method: str, path: str, body=None, content_type: str = "application/json",
                token: str | None = None, timeout: float = 30):
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        req = urllib.request.Request(self.server + path, data=data, method=method)
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", content_type)
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, context=self._ssl(admin=token is None), timeout=timeout) as resp:
                text = resp.read().decode()
        except urllib.error.HTTPError as e:
            raise ApiError(e.code, e.read().decode(errors="replace")) from None
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return text

    def create(self, path: str, obj: dict) -> dict:
        return self.request("POST", path, obj)

    def patch_status(self, path: str, status: dict) -> dict:
        return self.request("PATCH", path + "/status", {"status": status},
                            content_type="application/merge-patch+json")

    def make_pod(self, ns: str, name: str, sa: str, node: str, labels: dict | None = None, ip: str | None = None,
                 host_network: bool = False) -> dict:
        """A Pod scheduled to `node`; with `ip`, Running with that IP as a kubelet would report. Returns the Pod (its
        uid is what a bound token refers to)."""
        obj = self.create(f"/api/v1/namespaces/{ns}/pods", {
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns, "labels": labels or {}},
            "spec": {"serviceAccountName": sa, "nodeName": node, "hostNetwork": host_network,
                     "containers": [{"name": "app", "image": "registry.invalid/app:1"}]}})
        if ip:
            self.patch_status(f"/api/v1/namespaces/{ns}/pods/{name}",
                              {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]})
        return obj

    def secret_data(self, namespace: str, name: str, key: str, timeout: float = 60) -> bytes:
        """One key of a Secret, decoded; waits for the Secret to appear (e.g. the CA mesh-controller creates)."""
        def get():
            try:
                return self.request("GET", f"/api/v1/namespaces/{namespace}/secrets/{name}")["data"][key]
            except ApiError as e:
                if e.status == 404:
                    return None
                raise
        return base64.b64decode(self.wait_for(f"Secret {namespace}/{name}", get, timeout=timeout, interval=0.2))

    def configmap_data(self, namespace: str, name: str, key: str, timeout: float = 60) -> str:
        """One key of a ConfigMap; waits for it to appear (e.g. the trust bundle mesh-controller publishes)."""
        def get():
            try:
                return self.request("GET", f"/api/v1/namespaces/{namespace}/configmaps/{name}")["data"][key]
            except ApiError as e:
                if e.status == 404:
                    return None
                raise
        return self.wait_for(f"ConfigMap {namespace}/{name}", get, timeout=timeout, interval=0.2)

    def wait_for(self, what: str, fn, timeout: float = 30, interval: float = 0.5):
        """Polls fn() until it returns something truthy; raises with `what` on timeout."""
        deadline = time.time() + timeout
        last_exc = None
        while time.time() < deadline:
            try:
                v = fn()
                if v:
                    return v
            except ApiError as e:
                last_exc = e
            time.sleep(interval)
        raise TimeoutError(f"timed out waiting for {what}" + (f" (last error: {last_exc})" if last_exc else ""))
