"""Certificates for the real-cluster harness, made with the openssl CLI: one cluster CA, the API server's serving
certificate (every name and address a client uses: loopback through the test's forwarder, the control-plane host, the
`kubernetes` Service ClusterIP), one client certificate for the cluster's own components and the admin, and the
ServiceAccount signing key pair. Short-lived (2 days): they only ever live for one test run.
"""

from __future__ import annotations

import subprocess
from pathlib import Path


def _openssl(cwd: Path, *args: str) -> None:
    r = subprocess.run(["openssl", *args], capture_output=True, text=True, cwd=cwd)
    if r.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args[:2])} failed: {r.stderr.strip()}")


def _leaf(d: Path, name: str, subject: str, ext: str) -> None:
    (d / f"{name}.ext").write_text("basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n" + ext)
    _openssl(d, "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject)
    _openssl(d, "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", f"{name}.crt", "-days", "2", "-extfile", f"{name}.ext")


def make(d: Path, apiserver_ips: list[str]) -> None:
    """Writes ca.{crt,key}, apiserver.{crt,key}, admin.{crt,key} (system:masters) and sa.{key,pub} into d."""
    d.mkdir(parents=True, exist_ok=True)
    _openssl(d, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=zeromesh-e2e-cluster-ca")
    sans = ",".join([f"IP:{ip}" for ip in apiserver_ips] +
                    ["DNS:localhost", "DNS:kubernetes", "DNS:kubernetes.default", "DNS:kubernetes.default.svc",
                     "DNS:kubernetes.default.svc.cluster.local"])
    _leaf(d, "apiserver", "/CN=kube-apiserver", f"extendedKeyUsage=serverAuth\nsubjectAltName={sans}\n")
    # One identity for the admin, the controller-manager, the scheduler, kube-proxy, the kubelets and the API
    # server's kubelet client: the harness tests a mesh, not Kubernetes' node authorizer.
    _leaf(d, "admin", "/O=system:masters/CN=zeromesh-e2e-admin", "extendedKeyUsage=clientAuth\n")
    _openssl(d, "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "sa.key")
    _openssl(d, "pkey", "-in", "sa.key", "-pubout", "-out", "sa.pub")
    for f in d.glob("*.key"):
        f.chmod(0o600)


def kubeconfig(d: Path, path: Path, server: str) -> Path:
    """A kubeconfig for `server` authenticating with the admin certificate (files referenced, not embedded)."""
    path.write_text(f"""apiVersion: v1
kind: Config
current-context: zeromesh-e2e
clusters:
- name: zeromesh-e2e
  cluster: {{server: "{server}", certificate-authority: "{d / 'ca.crt'}"}}
users:
- name: admin
  user: {{client-certificate: "{d / 'admin.crt'}", client-key: "{d / 'admin.key'}"}}
contexts:
- name: zeromesh-e2e
  context: {{cluster: zeromesh-e2e, user: admin}}
""")
    path.chmod(0o600)
    return path
