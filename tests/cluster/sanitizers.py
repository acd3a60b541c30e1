"""Sanitizer reports of the daemons a cluster test starts (the asan preset runs data-plane and controller tests too).

With ZM_SANITIZER_REPORTS set (the asan test preset sets it), arm() points ASan's and UBSan's log_path of every
process this test starts at a fresh directory, and check() fails the test when any report landed there. The daemons
are SIGKILLed at teardown, so leaks are not checked here (the unit tests check them); memory errors and undefined
behaviour are, because the sanitized build aborts at the first one and writes the report first.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


class SanitizerError(Exception):
    pass


def _append(var: str, option: str) -> None:
    current = os.environ.get(var, "")
    os.environ[var] = f"{current}:{option}" if current else option


def arm() -> Path | None:
    """Sends this test's child processes' sanitizer reports to a new directory; None when reports are not collected."""
    root = os.environ.get("ZM_SANITIZER_REPORTS")
    if not root:
        return None
    Path(root).mkdir(parents=True, exist_ok=True)
    directory = Path(tempfile.mkdtemp(prefix="run-", dir=root))
    # Later options win. log_path is common to both runtimes (the last one parsed is used), so both name the same
    # file; the pid is appended.
    _append("ASAN_OPTIONS", f"log_path={directory}/report:detect_leaks=0")
    _append("UBSAN_OPTIONS", f"log_path={directory}/report:print_stacktrace=1")
    return directory


def check(directory: Path | None) -> None:
    """Raises SanitizerError with the first report if any child process wrote one."""
    if directory is None or not directory.exists():
        return
    reports = sorted(p for p in directory.iterdir() if p.is_file() and p.stat().st_size > 0)
    if reports:
        first = reports[0].read_text(errors="replace")
        names = ", ".join(p.name for p in reports)
        raise SanitizerError(f"{len(reports)} sanitizer report(s) from this test's processes ({names}):\n{first[:6000]}")
