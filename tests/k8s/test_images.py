"""Container images from tools/images.sh: the archives' structure (OCI layout + docker-archive manifest, digests, image
config), a minimal root (no shell, only ELF files whose every needed library is inside), each binary running from a
chroot of the extracted layer (proof that the loader and libraries are complete) with the controller as 65532 on a
read-only root, the agent's size limit, reproducible output, and Debian's containerd importing them under the names a
kubelet looks for. Needs root (chroot, mounts, containerd).
"""

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
import unittest
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tools" / "images.sh"
IMAGES = ("mesh-agent", "mesh-controller", "pause")
AGENT_LIMIT = 60 * 1000 * 1000
ENTRYPOINTS = {"mesh-agent": "/usr/local/bin/mesh-agent", "mesh-controller": "/usr/local/bin/mesh-controller",
               "pause": "/pause"}
USERS = {"mesh-agent": None, "mesh-controller": "65532:65532", "pause": "65535:65535"}
# Files an image may hold besides ELF binaries and libraries.
BASE_FILES = {"etc/passwd", "etc/group", "etc/nsswitch.conf", "etc/ssl/certs/ca-certificates.crt"}
FORBIDDEN = {"sh", "bash", "dash", "busybox", "apt", "apt-get", "dpkg", "ldconfig", "ldd"}


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def extract(archive: Path, dest: Path) -> list[tarfile.TarInfo]:
    """Extracts as stored (modes, owners, links): Debian's Python 3.11.2 predates extraction filters."""
    with tarfile.open(archive) as t:
        kw = {"filter": "fully_trusted"} if hasattr(tarfile, "fully_trusted_filter") else {}
        t.extractall(dest, numeric_owner=True, **kw)
        return t.getmembers()


def is_elf(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(4) == b"\x7fELF"


def resolve_in(root: Path, path: str, depth: int = 0) -> Path | None:
    """path looked up with root as "/" (symlinks, absolute ones too, stay inside root); None if it does not exist."""
    if depth > 40:
        return None
    cur = root
    parts = [p for p in path.split("/") if p]
    for i, part in enumerate(parts):
        nxt = cur / part
        if nxt.is_symlink():
            target = os.readlink(nxt)
            base = "/" if target.startswith("/") else "/" + str(cur.relative_to(root))
            rest = "/".join(parts[i + 1:])
            return resolve_in(root, os.path.normpath(os.path.join(base, target)) + "/" + rest, depth + 1)
        if not nxt.exists():
            return None
        cur = nxt
    return cur


class ImagesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if os.geteuid() != 0:
            raise RuntimeError("test_images needs root (chroot, mounts, containerd): run it with sudo")
        cls.tmp = Path(tempfile.mkdtemp(prefix="zm-images-"))
        try:
            cls.version = yaml.safe_load((ROOT / "charts/zeromesh/Chart.yaml").read_text())["appVersion"]
            cls.revision = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True,
                                          text=True, check=True).stdout.strip()
            cls.out = cls.tmp / "out"
            start = time.monotonic()
            cls.run_output = cls.images_sh("--out", str(cls.out))
            print(f"tools/images.sh took {time.monotonic() - start:.1f}s:\n{cls.run_output}", flush=True)
            cls.layouts = {}
            for img in IMAGES:
                d = cls.tmp / "x" / img
                d.mkdir(parents=True)
                extract(cls.archive(img), d)
                cls.layouts[img] = d
        except BaseException:
            shutil.rmtree(cls.tmp, ignore_errors=True)
            raise

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    @classmethod
    def images_sh(cls, *args: str) -> str:
        # The test runs after the build: the script packs the binaries ctest was built with.
        r = subprocess.run(["bash", str(SCRIPT), "--no-build", *args], capture_output=True, text=True, timeout=240)
        if r.returncode != 0:
            raise AssertionError(f"tools/images.sh {' '.join(args)} failed ({r.returncode}):\n{r.stdout}{r.stderr}")
        return r.stdout

    @classmethod
    def archive(cls, img: str, out: Path | None = None) -> Path:
        return (out or cls.out) / f"{img}-{cls.version}.oci.tar"

    def name(self, img: str) -> str:
        return f"docker.io/zeromesh/{img}:{self.version}"

    def load(self, img: str, rel: str):
        return json.loads((self.layouts[img] / rel).read_text())

    def blob(self, img: str, digest: str) -> Path:
        return self.layouts[img] / "blobs" / "sha256" / digest.split(":", 1)[1]

    def manifest_and_config(self, img: str) -> tuple[dict, dict]:
        index = self.load(img, "index.json")
        m = json.loads(self.blob(img, index["manifests"][0]["digest"]).read_text())
        return m, json.loads(self.blob(img, m["config"]["digest"]).read_text())

    def layer_root(self, img: str) -> Path:
        """The layer extracted once (as root: owners and modes as stored)."""
        root = self.tmp / "roots" / img
        if not root.exists():
            m, _ = self.manifest_and_config(img)
            root.mkdir(parents=True)
            for member in extract(self.blob(img, m["layers"][0]["digest"]), root):
                self.assertEqual((member.uid, member.gid), (0, 0), f"{img}: {member.name} not owned by 0:0")
        return root

    def test_script_prints_each_archive_with_sizes(self):
        for img in IMAGES:
            line = next((ln for ln in self.run_output.splitlines() if ln.startswith(str(self.archive(img)))), "")
            self.assertRegex(line, r" \d+\.\d MB \(layer \d+\.\d MB uncompressed\)  " + re.escape(self.name(img)))

    def test_layout_index_and_docker_manifest(self):
        for img in IMAGES:
            with self.subTest(img=img):
                d = self.layouts[img]
                self.assertEqual(self.load(img, "oci-layout"), {"imageLayoutVersion": "1.0.0"})
                index = self.load(img, "index.json")
                self.assertEqual(index["schemaVersion"], 2)
                self.assertEqual(index["mediaType"], "application/vnd.oci.image.index.v1+json")
                self.assertEqual(len(index["manifests"]), 1)
                desc = index["manifests"][0]
                self.assertEqual(desc["mediaType"], "application/vnd.oci.image.manifest.v1+json")
                self.assertEqual(desc["annotations"]["io.containerd.image.name"], self.name(img))
                self.assertEqual(desc["annotations"]["org.opencontainers.image.ref.name"], self.name(img))
                self.assertEqual(desc["platform"]["os"], "linux")
                m, config = self.manifest_and_config(img)
                # Every descriptor matches its blob, and there are no other blobs.
                descriptors = [desc, m["config"], *m["layers"]]
                for dd in descriptors:
                    blob = self.blob(img, dd["digest"])
                    self.assertEqual(sha256_file(blob), dd["digest"])
                    self.assertEqual(blob.stat().st_size, dd["size"])
                self.assertEqual(sorted(p.name for p in (d / "blobs" / "sha256").iterdir()),
                                 sorted(dd["digest"].split(":")[1] for dd in descriptors))
                self.assertEqual(m["config"]["mediaType"], "application/vnd.oci.image.config.v1+json")
                self.assertEqual(len(m["layers"]), 1)
                self.assertEqual(m["layers"][0]["mediaType"], "application/vnd.oci.image.layer.v1.tar")
                # Uncompressed layer: its digest is its diff_id.
                self.assertEqual(config["rootfs"], {"type": "layers", "diff_ids": [m["layers"][0]["digest"]]})
                self.assertEqual(config["architecture"], desc["platform"]["architecture"])
                docker = self.load(img, "manifest.json")
                self.assertEqual(docker, [{"Config": "blobs/sha256/" + m["config"]["digest"].split(":")[1],
                                           "RepoTags": [self.name(img)],
                                           "Layers": ["blobs/sha256/" + m["layers"][0]["digest"].split(":")[1]]}])

    def test_image_config(self):
        for img in IMAGES:
            with self.subTest(img=img):
                _, config = self.manifest_and_config(img)
                c = config["config"]
                self.assertEqual(c["Entrypoint"], [ENTRYPOINTS[img]])
                self.assertEqual(c.get("User"), USERS[img])
                self.assertNotIn("Cmd", c)
                labels = c["Labels"]
                self.assertEqual(labels["org.opencontainers.image.title"], img)
                self.assertEqual(labels["org.opencontainers.image.version"], self.version)
                self.assertEqual(labels["org.opencontainers.image.revision"], self.revision)
                self.assertEqual(labels["org.opencontainers.image.source"], "https://github.com/zeromesh/zeromesh")

    def test_roots_are_minimal(self):
        for img in IMAGES:
            with self.subTest(img=img):
                root = self.layer_root(img)
                files = set()
                for p in root.rglob("*"):
                    rel = str(p.relative_to(root))
                    self.assertNotIn(p.name, FORBIDDEN, f"{img} holds {rel}")
                    if p.is_file() and not p.is_symlink():
                        files.add(rel)
                        if rel not in BASE_FILES:
                            self.assertTrue(is_elf(p), f"{img}: {rel} is neither ELF nor a base file")
                entry = ENTRYPOINTS[img].lstrip("/")
                self.assertIn(entry, files)
                if img == "pause":
                    self.assertEqual(files, {"pause"})
                    continue
                self.assertTrue(BASE_FILES <= files, BASE_FILES - files)
                self.assertEqual((root / "tmp").stat().st_mode & 0o7777, 0o1777)
                self.assertIn("nonroot:x:65532:65532:", (root / "etc/passwd").read_text())
                self.assertIn("nonroot:x:65532:", (root / "etc/group").read_text())
                self.assertIn("BEGIN CERTIFICATE", (root / "etc/ssl/certs/ca-certificates.crt").read_text())
                binaries = {f for f in files if f.startswith("usr/local/bin/")}
                # The agent runs its uninstall check (libcurl) as a separate program, found beside it.
                want = ({"usr/local/bin/mesh-agent", "usr/local/bin/mesh-agent-uninstall-check"} if img == "mesh-agent"
                        else {"usr/local/bin/mesh-controller", "usr/local/bin/meshctl"})
                self.assertEqual(binaries, want)
                # Stripped copies: no symbol table left.
                for b in binaries:
                    syms = subprocess.run(["readelf", "-S", str(root / b)], capture_output=True, text=True).stdout
                    self.assertNotIn(".symtab", syms, b)

    def test_every_elf_finds_its_libraries_inside(self):
        multiarch = subprocess.run(["gcc", "-print-multiarch"], capture_output=True, text=True).stdout.strip()
        search = [f"/lib/{multiarch}", f"/usr/lib/{multiarch}", "/lib", "/usr/lib"]
        for img in IMAGES:
            root = self.layer_root(img)
            for p in sorted(root.rglob("*")):
                if p.is_symlink() or not p.is_file() or not is_elf(p):
                    continue
                rel = str(p.relative_to(root))
                with self.subTest(img=img, elf=rel):
                    headers = subprocess.run(["readelf", "-lW", str(p)], capture_output=True, text=True).stdout
                    interp = re.search(r"Requesting program interpreter: (\S+)\]", headers)
                    if interp:
                        self.assertIsNotNone(resolve_in(root, interp.group(1)), f"loader {interp.group(1)} missing")
                    dyn = subprocess.run(["readelf", "-dW", str(p)], capture_output=True, text=True).stdout
                    for lib in re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", dyn):
                        found = [d for d in search if resolve_in(root, f"{d}/{lib}")]
                        self.assertTrue(found, f"{rel} needs {lib}, which is not in the image")
        self.assertFalse(any(self.layer_root("pause").rglob("*.so*")), "pause is static: no libraries")

    def chroot(self, img: str, userspec: str, *argv: str) -> subprocess.CompletedProcess:
        """argv run in a private mount namespace on a read-only bind of the image's root, as the kubelet would with
        readOnlyRootFilesystem; the mounts vanish with the process."""
        root = self.layer_root(img)
        mnt = self.tmp / "mnt" / img
        mnt.mkdir(parents=True, exist_ok=True)
        script = ('set -e; mount --bind "$1" "$2"; mount -o remount,bind,ro "$2"; shift 2; '
                  'exec /usr/sbin/chroot --userspec="$0" "$@"')
        return subprocess.run(["unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", script, userspec,
                               str(root), str(mnt), str(mnt), *argv],
                              capture_output=True, text=True, timeout=30, env={})

    def test_binaries_run_from_the_image_root(self):
        for img, user, binary, usage in (
                ("mesh-agent", "0:0", "/usr/local/bin/mesh-agent", "usage: mesh-agent --node NAME"),
                ("mesh-controller", "65532:65532", "/usr/local/bin/mesh-controller", "usage: mesh-controller ("),
                ("mesh-controller", "65532:65532", "/usr/local/bin/meshctl", "usage: meshctl [flags] COMMAND")):
            with self.subTest(binary=binary):
                r = self.chroot(img, user, binary, "--help")
                self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
                self.assertIn(usage, r.stdout + r.stderr)
        # The agent's uninstall check loads libcurl's tree from the image: outside a pod (no KUBERNETES_SERVICE_HOST)
        # it answers "keep" (exit 0) with the reason.
        r = self.chroot("mesh-agent", "0:0", "/usr/local/bin/mesh-agent-uninstall-check", "ns/agent", "/nonexistent")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("KUBERNETES_SERVICE_HOST", r.stdout)
        self.assertIn("keeping the data path", r.stdout)
        r = self.chroot("pause", "65535:65535", "/pause", "--version")
        self.assertEqual((r.returncode, r.stdout), (0, "pause (zeromesh)\n"), r.stderr)

    def test_pause_stops_on_sigterm(self):
        root = self.layer_root("pause")
        p = subprocess.Popen(["/usr/sbin/chroot", "--userspec=65535:65535", str(root), "/pause"],
                             stderr=subprocess.PIPE, text=True, env={})
        try:
            time.sleep(0.5)
            self.assertIsNone(p.poll(), "pause exited on its own")
            p.send_signal(signal.SIGTERM)
            self.assertEqual(p.wait(timeout=5), 0)
            self.assertIn("shutting down on signal 15", p.stderr.read())
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            p.stderr.close()

    def test_agent_within_size_limit(self):
        size = self.archive("mesh-agent").stat().st_size
        print("image sizes: " + ", ".join(f"{img} {self.archive(img).stat().st_size / 1e6:.1f} MB" for img in IMAGES))
        self.assertLessEqual(size, AGENT_LIMIT, f"mesh-agent image is {size / 1e6:.1f} MB")

    def test_reproducible(self):
        again = self.tmp / "again"
        self.images_sh("--out", str(again), "mesh-agent", "pause")
        for img in ("mesh-agent", "pause"):
            self.assertEqual(sha256_file(self.archive(img, again)), sha256_file(self.archive(img)), img)

    def test_bad_arguments_are_refused(self):
        for args, msg in ((["--version", "bad tag!"], "not a valid image tag"), (["mesh-proxy"], "unknown argument"),
                          (["--out"], "--out needs a directory")):
            r = subprocess.run(["bash", str(SCRIPT), "--no-build", *args], capture_output=True, text=True, timeout=30)
            self.assertNotEqual(r.returncode, 0, args)
            self.assertIn(msg, r.stderr, args)

    def test_containerd_imports_them(self):
        ctd = self.tmp / "containerd"
        ctd.mkdir()
        sock = ctd / "containerd.sock"
        # A private containerd: its own root, state, sockets and opt dir; no CRI plugin (it would set up CNI).
        (ctd / "config.toml").write_text(f"""version = 2
root = "{ctd}/root"
state = "{ctd}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "{sock}"
[ttrpc]
  address = "{sock}.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "{ctd}/opt"
""")
        log = open(ctd / "containerd.log", "w")
        proc = subprocess.Popen(["containerd", "--config", str(ctd / "config.toml")], stdout=log,
                                stderr=subprocess.STDOUT)
        self.addCleanup(self.stop_containerd, proc, log, ctd)

        def ctr(*args: str) -> str:
            r = subprocess.run(["ctr", "-a", str(sock), "-n", "k8s.io", *args], capture_output=True, text=True,
                               timeout=120)
            self.assertEqual(r.returncode, 0, f"ctr {' '.join(args)}: {r.stdout}{r.stderr}")
            return r.stdout

        deadline = time.monotonic() + 30
        while subprocess.run(["ctr", "-a", str(sock), "version"], capture_output=True).returncode != 0:
            self.assertIsNone(proc.poll(), (ctd / "containerd.log").read_text()[-3000:])
            self.assertLess(time.monotonic(), deadline, "containerd did not start within 30 s")
            time.sleep(0.2)
        for img in IMAGES:
            ctr("images", "import", str(self.archive(img)))
        names = ctr("images", "ls", "-q").split()
        self.assertEqual(sorted(names), sorted(self.name(img) for img in IMAGES))
        check = ctr("images", "check")
        for img in IMAGES:
            line = next(ln for ln in check.splitlines() if ln.startswith(self.name(img)))
            self.assertRegex(line, r"complete \(2/2\).*true$", "imported and unpacked")

    @staticmethod
    def stop_containerd(proc: subprocess.Popen, log, ctd: Path) -> None:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()
        # Snapshot mounts are short-lived during an unpack; unmount any that a failure left behind.
        mounts = [ln.split()[4] for ln in Path("/proc/self/mountinfo").read_text().splitlines()]
        for m in reversed(mounts):
            if m == str(ctd) or m.startswith(str(ctd) + "/"):
                subprocess.run(["umount", "-l", m], check=False)
        shutil.rmtree(ctd, ignore_errors=True)


if __name__ == "__main__":
    unittest.main(verbosity=2)
