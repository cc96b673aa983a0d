"""Stopping a slapd with SIGSTOP, the way a hung directory behaves: connections accepted,
never answered."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from app.ldap.sandbox import Sandbox


def wait_stopped(pid: int) -> None:
    """Wait until the kernel shows the process stopped: SIGSTOP is delivered asynchronously."""
    deadline = time.monotonic() + 5
    stat = Path(f"/proc/{pid}/stat")
    while time.monotonic() < deadline:
        if stat.read_text().rsplit(")", 1)[1].split()[0] in ("T", "t"):
            return
        time.sleep(0.01)
    raise AssertionError(f"process {pid} did not stop")


@contextmanager
def stopped(sandbox: Sandbox) -> Iterator[None]:
    """The sandbox's slapd stopped for the block, and running again after it."""
    pid = int((sandbox.root / "slapd.pid").read_text().strip())
    os.kill(pid, signal.SIGSTOP)
    try:
        wait_stopped(pid)
        yield
    finally:
        os.kill(pid, signal.SIGCONT)
