"""Debian packages a test runs for real (nginx, caddy), installed only where that is allowed.

Installing changes the machine, so it happens only as root and either in CI (``CI`` set,
as .ci/run does) or when ``SCIM_TESTS_INSTALL_PACKAGES=1`` asks for it. Services the
packages bring are kept from starting while they install (invoke-rc.d's policy hook).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

ALLOW = "SCIM_TESTS_INSTALL_PACKAGES"
POLICY_RC = Path("/usr/sbin/policy-rc.d")


class PackageError(Exception):
    """A package could not be installed; the message says why."""


def missing_packages(packages: Sequence[str]) -> list[str]:
    """The packages of ``packages`` dpkg does not list as installed."""
    missing = []
    for package in packages:
        result = subprocess.run(
            ["dpkg-query", "-W", "-f=${Status}", package],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0 or not result.stdout.endswith(" installed"):
            missing.append(package)
    return missing


def why_not_installable(packages: Sequence[str]) -> str | None:
    """None when this run may install ``packages``, else the reason it may not."""
    names = " ".join(packages)
    if shutil.which("dpkg-query") is None or shutil.which("apt-get") is None:
        return f"{names} missing and this is not a Debian system with apt-get"
    if os.geteuid() != 0:
        return f"{names} missing: install with `sudo apt-get install {names}` (needs root)"
    if not os.environ.get("CI") and os.environ.get(ALLOW) != "1":
        return f"{names} missing: set {ALLOW}=1 (or CI=true) to let the tests apt-get install it"
    return None


@contextmanager
def services_kept_stopped() -> Iterator[None]:
    """Deny every service start during package installation (invoke-rc.d's policy hook)."""
    if POLICY_RC.exists() or POLICY_RC.is_symlink():
        yield
        return
    POLICY_RC.write_text("#!/bin/sh\nexit 101\n")
    POLICY_RC.chmod(0o755)
    try:
        yield
    finally:
        POLICY_RC.unlink(missing_ok=True)


def _run(argv: Sequence[str]) -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    result = subprocess.run(
        list(argv), capture_output=True, text=True, env=env, timeout=900, check=False
    )
    if result.returncode != 0:
        output = (result.stderr or result.stdout).strip()[-2000:]
        raise PackageError(f"{' '.join(argv[:3])} failed (exit {result.returncode}): {output}")


def install_packages(packages: Sequence[str]) -> list[str]:
    """Install the missing ``packages`` with apt-get, their services not started.

    Returns what it installed. The caller checks ``why_not_installable`` first.
    """
    missing = missing_packages(packages)
    if not missing:
        return []
    with services_kept_stopped():
        _run(["apt-get", "update", "-qq"])
        _run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing])
    still = missing_packages(packages)
    if still:
        raise PackageError(f"still missing after apt-get install: {' '.join(still)}")
    return missing


def tool(package: str, command: str) -> str:
    """The path of ``command``, installing its Debian ``package`` where this run may.

    Skips (saying why) where installing is not allowed; fails when it is and does not work.
    """
    if missing_packages([package]):
        reason = why_not_installable([package])
        if reason is not None:
            pytest.skip(reason)
        try:
            install_packages([package])
        except PackageError as exc:
            pytest.fail(f"cannot install {package}: {exc}", pytrace=False)
    found = shutil.which(command) or shutil.which(command, path="/usr/sbin:/usr/bin")
    assert found, f"{package} is installed but {command} is not on the path"
    return found
