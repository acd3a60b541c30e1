#!/usr/bin/env python3
"""Writes a container image archive from a root directory, without any registry or container tool: one uncompressed
layer, an OCI image config and manifest, laid out as an OCI image layout (oci-layout, index.json, blobs/sha256/...)
with a docker-archive manifest.json beside it. containerd's `ctr images import` (and so `kind load image-archive`)
reads index.json, naming the image from its io.containerd.image.name annotation; `podman load` and `docker load` read
either. The archive is deterministic: sorted entries, uid/gid 0, every mtime the given epoch.

Usage: oci.py ROOT OUT.tar --name docker.io/zeromesh/mesh-agent:0.1.0 --entrypoint /usr/local/bin/mesh-agent
              [--user 65532:65532] [--label KEY=VALUE ...] [--env KEY=VALUE ...] [--epoch SECONDS]
Prints the archive, its size, the layer's size, the image name and the manifest digest.
"""

import argparse
import hashlib
import io
import json
import os
import platform
import re
import sys
import tarfile
import tempfile
import time
from pathlib import Path

# registry/repository:tag with an explicit registry, as containerd stores names.
FULL_NAME = re.compile(r"^[a-z0-9.-]+(?::[0-9]+)?/[a-z0-9._/-]+:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le", "s390x": "s390x"}
MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER = "application/vnd.oci.image.layer.v1.tar"


def die(msg: str) -> None:
    sys.exit(f"oci.py: error: {msg}")


def normalize(info: tarfile.TarInfo, epoch: int) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mtime = epoch
    return info


def write_layer(root: Path, out, epoch: int) -> None:
    """The root's tree as a tar stream: parents before children, names sorted, owners and times normalized."""
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            base = Path(dirpath)
            # Symlinks to directories are listed in dirnames by os.walk but not followed: store them as links.
            for name in sorted(dirnames + filenames):
                path = base / name
                arcname = str(path.relative_to(root))
                info = tar.gettarinfo(str(path), arcname)
                if not (info.isdir() or info.isfile() or info.issym() or info.islnk()):
                    die(f"{path}: only directories, regular files and symlinks belong in an image root")
                normalize(info, epoch)
                if info.isfile():
                    with open(path, "rb") as f:
                        tar.addfile(info, f)
                else:
                    tar.addfile(info)


class HashingWriter(io.RawIOBase):
    def __init__(self, f):
        self.f, self.sha, self.size = f, hashlib.sha256(), 0

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:
        self.f.write(b)
        self.sha.update(b)
        self.size += len(b)
        return len(b)


def blob(data: bytes) -> tuple[str, bytes]:
    return "sha256:" + hashlib.sha256(data).hexdigest(), data


def canonical(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def key_values(items: list[str], flag: str) -> dict[str, str]:
    out = {}
    for item in items:
        k, sep, v = item.partition("=")
        if not sep or not k:
            die(f"{flag} wants KEY=VALUE, got {item!r}")
        out[k] = v
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description="write an OCI + docker-archive image tarball from a root directory")
    ap.add_argument("root", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--name", required=True, help="full image name, e.g. docker.io/zeromesh/mesh-agent:0.1.0")
    ap.add_argument("--entrypoint", required=True)
    ap.add_argument("--user", default="")
    ap.add_argument("--label", action="append", default=[])
    ap.add_argument("--env", action="append", default=[])
    ap.add_argument("--epoch", type=int, default=0, help="the time stamped on every entry and in the config")
    a = ap.parse_args()
    if not FULL_NAME.match(a.name):
        die(f"--name {a.name!r} is not a full image name registry/repository:tag (e.g. docker.io/zeromesh/x:1.0)")
    if not a.root.is_dir():
        die(f"{a.root} is not a directory")
    if not a.entrypoint.startswith("/") or not (a.root / a.entrypoint.lstrip("/")).is_file():
        die(f"entrypoint {a.entrypoint} is not a file in {a.root}")
    if a.user and not re.fullmatch(r"\d+(:\d+)?", a.user):
        die(f"--user wants UID[:GID], got {a.user!r}")
    arch = ARCH.get(platform.machine())
    if not arch:
        die(f"unknown machine {platform.machine()}")
    labels, env = key_values(a.label, "--label"), key_values(a.env, "--env")
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(a.epoch))

    a.out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=a.out.parent, prefix=".layer-") as layer:
        hw = HashingWriter(layer)
        write_layer(a.root, hw, a.epoch)
        layer.flush()
        layer_digest, layer_size = "sha256:" + hw.sha.hexdigest(), hw.size

        config = {
            "created": created,
            "architecture": arch,
            "os": "linux",
            "config": {
                "Entrypoint": [a.entrypoint],
                "Env": [f"{k}={v}" for k, v in {"PATH": "/usr/local/bin:/usr/bin:/bin", **env}.items()],
                "WorkingDir": "/",
                "Labels": labels,
                **({"User": a.user} if a.user else {}),
            },
            "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
            "history": [{"created": created, "created_by": "tools/images.sh (root assembled from the build)"}],
        }
        config_digest, config_bytes = blob(canonical(config))
        manifest = {
            "schemaVersion": 2,
            "mediaType": MT_MANIFEST,
            "config": {"mediaType": MT_CONFIG, "digest": config_digest, "size": len(config_bytes)},
            "layers": [{"mediaType": MT_LAYER, "digest": layer_digest, "size": layer_size}],
            "annotations": {"org.opencontainers.image.created": created, **labels},
        }
        manifest_digest, manifest_bytes = blob(canonical(manifest))
        index = {
            "schemaVersion": 2,
            "mediaType": MT_INDEX,
            "manifests": [{
                "mediaType": MT_MANIFEST,
                "digest": manifest_digest,
                "size": len(manifest_bytes),
                "platform": {"architecture": arch, "os": "linux"},
                # containerd names the image from the first; podman (oci-archive) and the OCI spec from the second.
                "annotations": {"io.containerd.image.name": a.name, "org.opencontainers.image.ref.name": a.name},
            }],
        }
        path_of = lambda d: "blobs/sha256/" + d.split(":", 1)[1]  # noqa: E731
        docker_manifest = [{"Config": path_of(config_digest), "RepoTags": [a.name],
                            "Layers": [path_of(layer_digest)]}]

        small = {
            path_of(config_digest): config_bytes,
            path_of(manifest_digest): manifest_bytes,
            "index.json": canonical(index),
            "manifest.json": canonical(docker_manifest),
            "oci-layout": canonical({"imageLayoutVersion": "1.0.0"}),
        }
        tmp_out = a.out.with_name(a.out.name + ".partial")
        with tarfile.open(tmp_out, "w", format=tarfile.PAX_FORMAT) as tar:
            for d in ("blobs", "blobs/sha256"):
                info = normalize(tarfile.TarInfo(d), a.epoch)
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            entries = sorted(list(small) + [path_of(layer_digest)])
            for name in entries:
                info = normalize(tarfile.TarInfo(name), a.epoch)
                info.mode = 0o644
                if name in small:
                    info.size = len(small[name])
                    tar.addfile(info, io.BytesIO(small[name]))
                else:
                    info.size = layer_size
                    with open(layer.name, "rb") as f:
                        tar.addfile(info, f)
        os.replace(tmp_out, a.out)
    mb = lambda n: f"{n / 1e6:.1f} MB"  # noqa: E731
    print(f"{a.out}  {mb(a.out.stat().st_size)} (layer {mb(layer_size)} uncompressed)  {a.name}  {manifest_digest}")


if __name__ == "__main__":
    main()
