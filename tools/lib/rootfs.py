#!/usr/bin/env python3
"""Assembles a minimal container root from host binaries: each binary (stripped copy), exactly the shared libraries
`ldd` resolves for it (real files plus every symlink on the way, the dynamic loader included) and, with --base, the
files a program expects in any image: the CA bundle, /etc/passwd and /etc/group (root and 65532 "nonroot"),
/etc/nsswitch.conf (so /etc/hosts is read before DNS) and /tmp (1777). Nothing else: no shell, no package manager.

Usage: rootfs.py ROOT [--base] --binary SRC=DEST [--binary SRC=DEST ...]
ROOT is emptied first. Used by tools/images.sh.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
PASSWD = ("root:x:0:0:root:/root:/sbin/nologin\n"
          "nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")
GROUP = "root:x:0:\nnonroot:x:65532:\n"
# Without this file glibc asks DNS before /etc/hosts; the kubelet writes /etc/hosts for every pod.
NSSWITCH = "passwd: files\ngroup: files\nhosts: files dns\n"
# "libfoo.so.1 => /path (0x...)", "/lib64/ld-linux-x86-64.so.2 (0x...)"; linux-vdso has no path and is skipped.
LDD_LINE = re.compile(r"^\s*(?:(\S+) => )?(\S+)(?: \(0x[0-9a-f]+\))?\s*$")


def die(msg: str) -> None:
    sys.exit(f"rootfs.py: error: {msg}")


def shared_libraries(binary: Path) -> list[str]:
    """The absolute paths ldd resolves for binary (empty for a static one); any unresolved library is an error."""
    r = subprocess.run(["ldd", str(binary)], capture_output=True, text=True)
    out = r.stdout + r.stderr
    if "not a dynamic executable" in out or "statically linked" in out:
        return []
    if r.returncode != 0:
        die(f"ldd {binary} failed: {out.strip()}")
    paths = []
    for line in r.stdout.splitlines():
        if "not found" in line:
            die(f"{binary}: a library is missing on this host: {line.strip()}")
        m = LDD_LINE.match(line)
        if not m:
            die(f"ldd {binary}: unexpected line {line!r}")
        if m.group(2).startswith("/"):
            paths.append(m.group(2))
    return paths


class Root:
    def __init__(self, root: Path):
        self.root = root

    def inside(self, path: str) -> Path:
        return self.root / path.lstrip("/")

    def mkdir(self, path: str, mode: int = 0o755) -> None:
        d = self.inside(path)
        if not d.is_dir():
            d.mkdir(parents=True)
            d.chmod(mode)

    def write(self, path: str, text: str, mode: int = 0o644) -> None:
        self.mkdir(os.path.dirname(path))
        f = self.inside(path)
        f.write_text(text)
        f.chmod(mode)

    def copy_host_path(self, path: str, depth: int = 0) -> None:
        """Copies host path into the root as the host has it: every symlink met on the way (a directory like /lib64 or
        the file itself) is recreated with the same target, and the target is copied too."""
        if depth > 40:
            die(f"too many symlinks resolving {path}")
        parts = Path(path).parts[1:]
        cur = Path("/")
        for i, part in enumerate(parts):
            nxt = cur / part
            if nxt.is_symlink():
                target = os.readlink(nxt)
                link = self.inside(str(nxt))
                if not link.is_symlink():
                    self.mkdir(str(cur))
                    link.symlink_to(target)
                resolved = os.path.normpath(target if target.startswith("/") else str(cur / target))
                self.copy_host_path(str(Path(resolved, *parts[i + 1:])), depth + 1)
                return
            if i == len(parts) - 1:
                if not nxt.is_file():
                    die(f"{nxt} is not a regular file")
                dest = self.inside(str(nxt))
                if not dest.exists():
                    self.mkdir(str(cur))
                    shutil.copyfile(nxt, dest)
                    dest.chmod(nxt.stat().st_mode & 0o7777)
                return
            cur = nxt

    def add_binary(self, src: Path, dest: str) -> None:
        if not src.is_file() or not os.access(src, os.X_OK):
            die(f"{src} is not an executable file (build it first)")
        for lib in shared_libraries(src):
            self.copy_host_path(lib)
        self.mkdir(os.path.dirname(dest))
        out = self.inside(dest)
        shutil.copyfile(src, out)
        out.chmod(0o755)
        # Only the copy is stripped: the build's binary keeps its symbols for debugging.
        r = subprocess.run(["strip", "--strip-unneeded", str(out)], capture_output=True, text=True)
        if r.returncode != 0:
            die(f"strip {out}: {r.stderr.strip()}")

    def add_base(self) -> None:
        if not CA_BUNDLE.is_file():
            die(f"{CA_BUNDLE} is missing: install Debian's ca-certificates package")
        self.mkdir("/etc/ssl/certs")
        shutil.copyfile(CA_BUNDLE, self.inside(str(CA_BUNDLE)))
        self.inside(str(CA_BUNDLE)).chmod(0o644)
        self.write("/etc/passwd", PASSWD)
        self.write("/etc/group", GROUP)
        self.write("/etc/nsswitch.conf", NSSWITCH)
        self.mkdir("/tmp", 0o1777)
        self.inside("/tmp").chmod(0o1777)


def main() -> None:
    ap = argparse.ArgumentParser(description="assemble a minimal container root from host binaries")
    ap.add_argument("root", type=Path)
    ap.add_argument("--base", action="store_true", help="add CA bundle, passwd/group, nsswitch.conf and /tmp")
    ap.add_argument("--binary", action="append", default=[], metavar="SRC=DEST", required=True)
    a = ap.parse_args()
    binaries = []
    for spec in a.binary:
        src, sep, dest = spec.partition("=")
        if not sep or not src or not dest.startswith("/"):
            die(f"--binary wants SRC=/absolute/dest, got {spec!r}")
        binaries.append((Path(src), dest))
    if a.root.exists():
        shutil.rmtree(a.root)
    a.root.mkdir(parents=True)
    a.root.chmod(0o755)
    root = Root(a.root)
    if a.base:
        root.add_base()
    for src, dest in binaries:
        root.add_binary(src, dest)


if __name__ == "__main__":
    main()
