"""The deployment files in deploy/: the systemd unit and the compose example."""

from __future__ import annotations

import json
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.api.helpers import user_body
from tests.conftest import TOKEN
from tests.debian import tool
from tests.servers import clean_environment, serving
from tests.test_scripts import free_port

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "deploy" / "scim-ldap.service"
INSTALLED = "/opt/scim-ldap/bin/scim-ldap"
ENTRY_POINT = Path(sys.executable).parent / "scim-ldap"


@pytest.fixture(scope="module")
def systemd_analyze() -> str:
    """systemd-analyze, from Debian's systemd package (installed in CI when missing)."""
    return tool("systemd", "systemd-analyze")


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


def test_the_unit_passes_systemd_analyze_verify(unit: Path, systemd_analyze: str) -> None:
    result = subprocess.run(
        [systemd_analyze, "verify", "--man=no", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr


def test_the_unit_is_rated_well_sandboxed(unit: Path, systemd_analyze: str) -> None:
    """systemd's own exposure score (0 = locked down, 10 = unprotected) stays under 2."""
    result = subprocess.run(
        [systemd_analyze, "security", "--offline=yes", "--threshold=20", str(unit)],
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


COMPOSE = ROOT / "deploy" / "compose.yaml"
OPENLDAP = ROOT / "deploy" / "openldap"


def compose() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


def test_the_compose_example_is_consistent() -> None:
    document = compose()
    services = document["services"]
    assert set(services) == {"openldap", "scim-ldap"}
    for service in services.values():
        build = service["build"]
        context = (COMPOSE.parent / build["context"]).resolve()
        assert (context / build["dockerfile"]).is_file()
        for secret in service.get("secrets", []):
            assert secret in document["secrets"]
        for volume in service.get("volumes", []):
            assert volume.split(":")[0] in document["volumes"]
    for secret in document["secrets"].values():
        assert secret["file"].startswith("./secrets/")
    server = services["scim-ldap"]
    assert server["depends_on"]["openldap"]["condition"] == "service_healthy"
    assert server["ports"] == ["127.0.0.1:8080:8080"]
    environment: dict[str, str] = server["environment"]
    assert json.loads(environment["SCIM_LDAP_LDAP__URLS"]) == ["ldap://openldap:389"]
    assert environment["SCIM_LDAP_LDAP__BIND_PASSWORD_FILE"] == "/run/secrets/ldap_admin_password"
    assert environment["SCIM_LDAP_AUTH__TOKENS_FILE"] == "/run/secrets/scim_tokens"
    assert not [key for key in environment if key.endswith(("PASSWORD", "TOKENS", "SECRET"))]
    directory = services["openldap"]["environment"]
    assert directory["LDAP_BASE_DN"] == environment["SCIM_LDAP_LDAP__BASE_DN"]
    assert environment["SCIM_LDAP_LDAP__BIND_DN"] == f"cn=admin,{directory['LDAP_BASE_DN']}"
    assert directory["LDAP_ADMIN_PASSWORD_FILE"] == "/run/secrets/ldap_admin_password"


def test_the_compose_settings_are_valid_settings() -> None:
    """Every setting the compose file gives (but the secret files) is one the server accepts."""
    environment = compose()["services"]["scim-ldap"]["environment"]
    plain = {
        key: value
        for key, value in environment.items()
        if key.startswith("SCIM_LDAP_") and not key.endswith("_FILE")
    }
    result = subprocess.run(
        [sys.executable, "-c", "from app.config import load_settings; load_settings()"],
        cwd=ROOT,
        env={**clean_environment(), **plain},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_the_openldap_image_copies_what_its_entrypoint_reads() -> None:
    dockerfile = (OPENLDAP / "Dockerfile").read_text(encoding="utf-8")
    copied = re.findall(r"^COPY (.+) (\S+)$", dockerfile, re.M)
    sources = [source for names, _ in copied for source in names.split()]
    for source in sources:
        assert (ROOT / source).is_file(), source
    names = {Path(source).name for source in sources}
    assert {"config.ldif", "base.ldif", "openssh-lpk.ldif", "scim-ldap.ldif"} <= names


@pytest.fixture
def compose_directory(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """deploy/openldap/entrypoint.sh run here, its paths moved under ``tmp_path``."""
    templates = tmp_path / "templates"
    templates.mkdir()
    for source in ("config.ldif", "base.ldif"):
        shutil.copy(OPENLDAP / source, templates)
    for schema in ("openssh-lpk.ldif", "scim-ldap.ldif"):
        shutil.copy(ROOT / "app" / "ldap" / "schema" / schema, templates)
    password = tmp_path / "ldap-admin-password"
    password.write_text(f"{secrets.token_urlsafe(18)}\n")
    password.chmod(0o600)
    port = free_port()
    url = f"ldap://127.0.0.1:{port}"
    environment = {
        **compose()["services"]["openldap"]["environment"],
        "LDAP_ADMIN_PASSWORD_FILE": str(password),
        "SLAPD_CONFIG_DIR": str(tmp_path / "slapd.d"),
        "SLAPD_DATA_DIR": str(tmp_path / "data"),
        "SLAPD_RUN_DIR": str(tmp_path / "run"),
        "SLAPD_TEMPLATE_DIR": str(templates),
        "SLAPD_URLS": f"{url}/",
        "SLAPD_USER": "",
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
    }
    process = subprocess.Popen(
        ["sh", str(OPENLDAP / "entrypoint.sh")],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, process.communicate()[0]
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert time.monotonic() < deadline, "slapd did not listen"
            time.sleep(0.1)
        yield url, password
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=30)
        assert password.read_text().strip() not in output


@pytest.mark.skipif(shutil.which("slapadd", path="/usr/sbin:/usr/bin") is None, reason="no slapd")
def test_the_compose_directory_passes_check_and_takes_a_user(
    compose_directory: tuple[str, Path],
) -> None:
    """The OpenLDAP image's first start makes a directory ``scim-ldap check`` finds complete."""
    url, password = compose_directory
    environment = {
        key: value
        for key, value in compose()["services"]["scim-ldap"]["environment"].items()
        if key.startswith("SCIM_LDAP_") and not key.endswith("_FILE")
    }
    environment |= {
        "SCIM_LDAP_LDAP__URLS": json.dumps([url]),
        "SCIM_LDAP_LDAP__BIND_PASSWORD": password.read_text().strip(),
        "SCIM_LDAP_AUTH__TOKENS": json.dumps([TOKEN]),
    }
    checked = subprocess.run(
        [sys.executable, "-m", "app", "check"],
        cwd=ROOT,
        env={**clean_environment(), **environment},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "configuration is valid" in checked.stdout
    assert "warning" not in checked.stdout, checked.stdout
    with serving([environment]) as (server,):
        created = httpx.post(
            f"{server}/scim/v2/Users",
            json=user_body("compose@example.com"),
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=30,
        )
    assert created.status_code == 201, created.text
    assert created.json()["meta"]["location"].startswith("https://scim.example.com/scim/v2/Users/")
