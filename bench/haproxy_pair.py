"""The HAProxy peer of the benchmarks: two instances (node1 client side, node2 server side) with mutual TLS 1.3
between them, certificates from the mesh's test CA. bench/dataplane.py (mode tcp) and bench/l7.py (mode http) share
the certificates, the global section and the checked writing of both configs; each adds its defaults and listeners."""

from __future__ import annotations

from pathlib import Path

import zmcluster


def pems(work: Path, ca, tag: str = "") -> dict:
    """{"client": pem, "server": pem}: a certificate and key per side, in one PEM file each (HAProxy's crt)."""
    out = {}
    for role in ("client", "server"):
        crt, key = ca.issue(ca.spiffe_id("haproxy", f"{tag}{role}"), f"haproxy-{tag}{role}")
        pem = work / f"haproxy-{tag}{role}.pem"
        pem.write_text(crt.read_text() + key.read_text())
        out[role] = pem
    return out


def global_section(threads: int, cipher: str) -> str:
    """TLS 1.3 only, one cipher suite, peers verified: the same terms the mesh's HBONE runs under."""
    return f"""global
    nbthread {threads}
    maxconn 8000
    ssl-default-bind-ciphersuites {cipher}
    ssl-default-server-ciphersuites {cipher}
    ssl-default-bind-options ssl-min-ver TLSv1.3 ssl-max-ver TLSv1.3
    ssl-default-server-options ssl-min-ver TLSv1.3 ssl-max-ver TLSv1.3
    ssl-server-verify required
"""


def write_checked(work: Path, tag: str, node1_cfg: str, node2_cfg: str) -> tuple[Path, Path]:
    """Writes both configs and has haproxy check them (a bad config fails here, not as a silent benchmark)."""
    c1, c2 = work / f"haproxy-{tag}node1.cfg", work / f"haproxy-{tag}node2.cfg"
    c1.write_text(node1_cfg)
    c2.write_text(node2_cfg)
    for cfg in (c1, c2):
        zmcluster.sh(["haproxy", "-c", "-q", "-f", str(cfg)])
    return c1, c2
