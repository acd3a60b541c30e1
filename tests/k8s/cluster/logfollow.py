"""Follows the logs of a namespace's pods while a test step runs (`kubectl logs -f`, one per container as it starts).

A pod's log is gone with the pod: an agent replaced during a rollout takes its last lines with it, and those are the
ones that tell why a connection failed. Following them into files keeps every line for the failure message.
"""

from __future__ import annotations

import datetime
import json
import subprocess
import threading
from pathlib import Path


class LogFollower:
    def __init__(self, cluster, namespace: str, out_dir: Path, interval: float = 0.3):
        self.c = cluster
        self.ns = namespace
        self.dir = Path(out_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.interval = interval
        self.procs: dict[str, subprocess.Popen] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "LogFollower":
        self._start_new()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        for p in self.procs.values():
            p.terminate()
        for p in self.procs.values():
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()

    def _start_new(self) -> None:
        for pod in self.c.pods(self.ns):
            name = pod["metadata"]["name"]
            statuses = (pod.get("status") or {}).get("containerStatuses") or []
            if name in self.procs or not statuses or "running" not in statuses[0]["state"]:
                continue
            out = open(self.dir / f"{name}.log", "w")
            self.procs[name] = subprocess.Popen(
                [str(self.c.api.bin / "kubectl"), "--kubeconfig", str(self.c.kubeconfig), "logs", "-f", "-n", self.ns,
                 name], stdout=out, stderr=subprocess.DEVNULL)
            out.close()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self._start_new()
            except Exception:  # noqa: BLE001 - the API may blip during a rollout; the next round catches up
                pass

    def lines_near(self, t_ms: int, before_ms: int = 500, after_ms: int = 11000, skip: tuple[str, ...] = ()) -> str:
        """Every JSON log line (any followed pod) stamped in [t - before, t + after], in time order."""
        found = []
        for f in sorted(self.dir.glob("*.log")):
            for line in f.read_text(errors="replace").splitlines():
                try:
                    entry = json.loads(line)
                    ts = datetime.datetime.fromisoformat(entry["ts"].replace("Z", "+00:00")).timestamp() * 1000
                except (ValueError, KeyError, TypeError):
                    continue
                if -before_ms <= ts - t_ms <= after_ms and entry.get("msg") not in skip:
                    found.append((ts, f"{f.stem}: {line}"))
        return "\n".join(line for _, line in sorted(found))
