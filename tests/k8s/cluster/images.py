"""Images the real-cluster harness imports into every node (no registry anywhere):
- zeromesh's own (mesh-agent, mesh-controller, pause), from tools/images.sh and the build the tests run against;
- CoreDNS, the cluster's DNS (tests/k8s/tools.sh builds it with Go), as a one-file image;
- testapp (tests/k8s/cluster/testapp/testapp.c), a stock client and server that know nothing of the mesh.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
TESTAPP_IMAGE = "docker.io/zeromesh-e2e/testapp:1"


def _run(cmd: list[str], **kw) -> None:
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd[:3]))} failed ({r.returncode}):\n{r.stdout[-2000:]}{r.stderr[-3000:]}")


def app_version() -> str:
    for line in (REPO / "charts/zeromesh/Chart.yaml").read_text().splitlines():
        if line.startswith("appVersion:"):
            return line.split(":", 1)[1].strip().strip('"')
    raise RuntimeError("no appVersion in charts/zeromesh/Chart.yaml")


def _one_file_image(work: Path, binary: Path, dest: str, name: str, out: Path, user: str = "") -> Path:
    root = work / f"rootfs-{out.stem}"
    _run(["python3", str(REPO / "tools/lib/rootfs.py"), str(root), "--base", "--binary", f"{binary}={dest}"])
    args = ["python3", str(REPO / "tools/lib/oci.py"), str(root), str(out), "--name", name, "--entrypoint", dest]
    if user:
        args += ["--user", user]
    _run(args)
    return out


def build_all(cluster) -> list[Path]:
    """Builds every archive into the run's dir; sets cluster.pause_image and cluster.images; returns the archives."""
    out = cluster.dir / "images"
    out.mkdir(parents=True, exist_ok=True)
    version = app_version()
    build_dir = os.environ.get("ZM_BUILD_DIR", str(REPO / "build/default"))
    # The product images from the binaries under test (--no-build: ctest already built them).
    _run(["bash", str(REPO / "tools/images.sh"), "--no-build", "--out", str(out)],
         env={**os.environ, "ZM_BUILD_DIR": build_dir})
    archives = [out / f"{img}-{version}.oci.tar" for img in ("mesh-agent", "mesh-controller", "pause")]
    cluster.pause_image = f"docker.io/zeromesh/pause:{version}"
    cluster.images["agent"] = f"docker.io/zeromesh/mesh-agent:{version}"
    cluster.images["controller"] = f"docker.io/zeromesh/mesh-controller:{version}"

    app = out / "testapp.bin"
    _run(["gcc", "-static", "-O2", "-Wall", "-Wextra", "-Werror", "-s", "-o", str(app),
          str(HERE / "testapp/testapp.c")])
    archives.append(_one_file_image(out, app, "/testapp", TESTAPP_IMAGE, out / "testapp.oci.tar", user="65532:65532"))
    cluster.images["testapp"] = TESTAPP_IMAGE

    coredns = cluster.bin / "coredns"
    stamp = (cluster.bin / ".coredns.version")
    tag = stamp.read_text().split()[0].lstrip("v") if stamp.exists() else "local"
    cluster.images["coredns"] = f"docker.io/zeromesh-e2e/coredns:{tag}"
    archives.append(_one_file_image(out, coredns, "/coredns", cluster.images["coredns"], out / "coredns.oci.tar",
                                    user="65532:65532"))
    return archives
