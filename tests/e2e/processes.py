"""Processes by mount namespace, and stopping them: what the e2e stacks and the package
installation share."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterable
from contextlib import suppress
from pathlib import Path

STOP_TIMEOUT = 10.0

DAEMON_NAMES = frozenset(
    {"sssd", "sssd_be", "sssd_nss", "sssd_pam", "sssd_ssh", "sssd_kcm", "nslcd", "nscd"}
)


class ClientError(RuntimeError):
    """A client stack could not be installed, started or queried."""


def host_mount_namespace() -> int:
    return os.stat("/proc/self/ns/mnt").st_ino


def processes() -> dict[int, tuple[str, int]]:
    """Every process's name and mount namespace inode, by pid."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            name = (entry / "comm").read_text().strip()
            namespace = os.stat(entry / "ns" / "mnt").st_ino
        except OSError:
            continue
        found[int(entry.name)] = (name, namespace)
    return found


def host_daemons() -> set[int]:
    host = host_mount_namespace()
    return {
        pid
        for pid, (name, namespace) in processes().items()
        if name in DAEMON_NAMES and namespace == host
    }


def kill(pids: Iterable[int]) -> None:
    pids = list(pids)
    for pid in pids:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    while pids and time.monotonic() < deadline:
        pids = [pid for pid in pids if Path(f"/proc/{pid}").exists() and not zombie(pid)]
        time.sleep(0.05)
    for pid in pids:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def zombie(pid: int) -> bool:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return True
    return fields[0] == "Z"
