"""The deployment files in deploy/: the systemd unit and the compose example."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "deploy" / "scim-ldap.service"
INSTALLED = "/opt/scim-ldap/bin/scim-ldap"
ENTRY_POINT = Path(sys.executable).parent / "scim-ldap"

needs_systemd_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed"
)


def directives(text: str) -> dict[str, list[str]]:
    """``Section.Key`` -> the values given, in order (a unit may repeat a key)."""
    found: dict[str, list[str]] = {}
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        found.setdefault(f"{section}.{key}", []).append(value)
    return found


@pytest.fixture
def unit(tmp_path: Path) -> Path:
    """The unit, its ExecStart pointed at this checkout's entry point (systemd checks it exists)."""
    text = UNIT.read_text(encoding="utf-8")
    assert text.count(INSTALLED) == 1
    assert ENTRY_POINT.is_file()
    path = tmp_path / UNIT.name
    path.write_text(text.replace(INSTALLED, str(ENTRY_POINT)), encoding="utf-8")
    return path


@needs_systemd_analyze
def test_the_unit_passes_systemd_analyze_verify(unit: Path) -> None:
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr


@needs_systemd_analyze
def test_the_unit_is_rated_well_sandboxed(unit: Path) -> None:
    """systemd's own exposure score (0 = locked down, 10 = unprotected) stays under 2."""
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", "--threshold=20", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    assert "Overall exposure level" in result.stdout


def test_the_unit_runs_serve_sandboxed_with_credentials() -> None:
    found = directives(UNIT.read_text(encoding="utf-8"))
    command = f"{INSTALLED} serve --config /etc/scim-ldap/scim-ldap.toml"
    assert found["Service.ExecStart"] == [command]
    for key, value in {
        "DynamicUser": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "NoNewPrivileges": "yes",
        "CapabilityBoundingSet": "",
        "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
    }.items():
        assert found[f"Service.{key}"] == [value], key
    assert "@system-service" in found["Service.SystemCallFilter"]
    credentials = dict(value.split(":", 1) for value in found["Service.LoadCredential"])
    assert set(credentials) == {"bind-password", "tokens"}
    assert all(path.startswith("/etc/scim-ldap/credentials/") for path in credentials.values())
    environment = dict(value.split("=", 1) for value in found["Service.Environment"])
    assert environment["SCIM_LDAP_LDAP__BIND_PASSWORD_FILE"] == "%d/bind-password"
    assert environment["SCIM_LDAP_AUTH__TOKENS_FILE"] == "%d/tokens"
    assert not [key for key in environment if key.endswith(("PASSWORD", "TOKENS"))]
