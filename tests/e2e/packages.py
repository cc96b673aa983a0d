"""The Debian packages of the e2e stacks, installed without changing how the host
resolves or logs in users."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from tests import debian
from tests.e2e.processes import ClientError, host_daemons, kill

SSSD_PACKAGES = ("sssd-ldap", "sssd-tools", "libnss-sss", "libpam-sss")
NSLCD_PACKAGES = ("nslcd", "libnss-ldapd", "libpam-ldapd")
TOOL_PACKAGES = ("pamtester", "ldap-utils", "openssh-server", "openssh-client")
SUDO_PACKAGES = ("sudo", "libsss-sudo")
"""sudo and its sssd plugin (sudo-ldap, for nslcd hosts, would replace sudo: not used)."""
PACKAGES = (*SSSD_PACKAGES, *NSLCD_PACKAGES, *TOOL_PACKAGES, *SUDO_PACKAGES)

NSSWITCH = Path("/etc/nsswitch.conf")
PAM_DIR = Path("/etc/pam.d")
PAM_PROFILES = Path("/usr/share/pam-configs")
DEBCONF_SELECTIONS = "libnss-ldapd libnss-ldapd/nsswitch multiselect \n"


def missing_packages(packages: Iterable[str] = PACKAGES) -> list[str]:
    """The Debian packages of ``packages`` (default: every e2e stack's) that are not installed."""
    return debian.missing_packages(list(packages))


def _snapshot() -> dict[Path, tuple[bytes, int]]:
    files = [NSSWITCH, *sorted(path for path in PAM_DIR.iterdir() if path.is_file())]
    return {path: (path.read_bytes(), stat.S_IMODE(path.stat().st_mode)) for path in files}


def _restore(snapshot: Mapping[Path, tuple[bytes, int]]) -> None:
    for path, (content, mode) in snapshot.items():
        if not path.is_file() or path.read_bytes() != content:
            path.write_bytes(content)
        if stat.S_IMODE(path.stat().st_mode) != mode:
            path.chmod(mode)
    changed = [path for path, (content, _) in snapshot.items() if path.read_bytes() != content]
    if changed:
        raise ClientError(f"could not restore {', '.join(map(str, changed))}")


def _run_root(argv: Sequence[str], what: str, *, input: str | None = None) -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    result = subprocess.run(
        list(argv), input=input, capture_output=True, text=True, env=env, check=False
    )
    if result.returncode != 0:
        output = (result.stderr or result.stdout).strip()[-2000:]
        raise ClientError(f"{what} failed (exit {result.returncode}): {output}")


def install_packages(packages: Iterable[str] = PACKAGES) -> list[str]:
    """Install the missing ``packages`` without changing how the host resolves or logs in users.

    Returns the packages it installed (none when all were there). Needs root. The
    postinst scripts add ``sss``/``ldap`` to /etc/nsswitch.conf and enable their PAM
    profiles in /etc/pam.d/common-*: those files are restored byte for byte, and the new
    profiles are recorded as seen but disabled so a later ``pam-auth-update`` leaves
    them off. Daemons are kept from starting; any that started anyway are stopped.
    """
    missing = missing_packages(packages)
    if not missing:
        return []
    if os.geteuid() != 0:
        raise ClientError(f"installing {' '.join(missing)} needs root")
    if shutil.which("apt-get") is None:
        raise ClientError(f"apt-get not found; install {' '.join(missing)} by hand")
    snapshot = _snapshot()
    profiles = {path.name for path in PAM_PROFILES.iterdir()}
    daemons = host_daemons()
    try:
        with debian.services_kept_stopped():
            _run_root(
                ["debconf-set-selections"], "debconf-set-selections", input=DEBCONF_SELECTIONS
            )
            _run_root(["apt-get", "update", "-qq"], "apt-get update")
            _run_root(
                ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
                f"apt-get install {' '.join(missing)}",
            )
    finally:
        kill(host_daemons() - daemons)
        added = sorted({path.name for path in PAM_PROFILES.iterdir()} - profiles)
        try:
            if added and shutil.which("pam-auth-update"):
                _run_root(["pam-auth-update", "--disable", *added], "pam-auth-update")
        finally:
            _restore(snapshot)
    still = missing_packages(packages)
    if still:
        raise ClientError(f"still missing after apt-get install: {' '.join(still)}")
    return missing
