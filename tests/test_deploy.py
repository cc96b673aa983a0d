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
    assert set(services) == {"prepare", "openldap", "scim-ldap"}
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
    prepare, directory, server = (services[name] for name in ("prepare", "openldap", "scim-ldap"))
    assert directory["depends_on"]["prepare"]["condition"] == "service_completed_successfully"
    assert server["depends_on"]["openldap"]["condition"] == "service_healthy"
    assert prepare["build"] == server["build"]
    assert server["ports"] == ["127.0.0.1:8080:8080"]
    environment: dict[str, str] = server["environment"]
    settings = {key: value for key, value in environment.items() if not key.endswith("_FILE")}
    del settings["PORT"]
    assert prepare["environment"] == settings
    assert json.loads(environment["SCIM_LDAP_LDAP__URLS"]) == ["ldap://openldap:389"]
    assert environment["SCIM_LDAP_LDAP__BIND_PASSWORD_FILE"] == "/run/secrets/ldap_server_password"
    assert environment["SCIM_LDAP_AUTH__TOKENS_FILE"] == "/run/secrets/scim_tokens"
    assert not [key for key in environment if key.endswith(("PASSWORD", "TOKENS", "SECRET"))]
    assert "ldap_admin_password" not in server["secrets"]
    assert set(prepare["secrets"]) == {"ldap_server_password", "ldap_hosts_password"}
    assert set(directory["secrets"]) == {"ldap_admin_password"}
    ldap = directory["environment"]
    assert ldap["LDAP_BASE_DN"] == environment["SCIM_LDAP_LDAP__BASE_DN"]
    server_dn = f"cn=scim-ldap,ou=services,{ldap['LDAP_BASE_DN']}"
    assert environment["SCIM_LDAP_LDAP__BIND_DN"] == server_dn
    assert ldap["LDAP_ADMIN_PASSWORD_FILE"] == "/run/secrets/ldap_admin_password"
    assert f"ldap-prepared:{ldap['SLAPD_PREPARED_DIR']}:ro" in directory["volumes"]
    assert f"ldap-prepared:{ldap['SLAPD_PREPARED_DIR']}" in prepare["volumes"]


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
    """Only the entrypoint: the directory's preparation comes from the prepare service."""
    dockerfile = (OPENLDAP / "Dockerfile").read_text(encoding="utf-8")
    copied = re.findall(r"^COPY (.+) (\S+)$", dockerfile, re.M)
    sources = [source for names, _ in copied for source in names.split()]
    for source in sources:
        assert (ROOT / source).is_file(), source
    assert sources == ["deploy/openldap/entrypoint.sh"]
    assert sorted(path.name for path in OPENLDAP.iterdir()) == ["Dockerfile", "entrypoint.sh"]


def prepare_script(prepared: Path, secrets_dir: Path) -> str:
    """The prepare service's script as its shell runs it, its paths moved here."""
    service = compose()["services"]["prepare"]
    assert service["entrypoint"] == ["sh", "-c"]
    (script,) = service["command"]
    assert isinstance(script, str)
    return (
        script.replace("$$", "$")
        .replace("/prepared/", f"{prepared}/")
        .replace("/run/secrets/", f"{secrets_dir}/")
    )


@pytest.fixture
def compose_directory(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """The prepare service's script, then deploy/openldap/entrypoint.sh, run here.

    Their paths are moved under ``tmp_path``; yields the URL and the server account's
    password.
    """
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir(mode=0o700)
    passwords = {}
    for name in ("ldap_admin_password", "ldap_server_password", "ldap_hosts_password"):
        passwords[name] = secrets.token_urlsafe(18)
        (secrets_dir / name).write_text(f"{passwords[name]}\n")
    prepared = tmp_path / "prepared"
    prepared.mkdir()
    service = compose()["services"]["prepare"]
    made = subprocess.run(
        ["sh", "-c", prepare_script(prepared, secrets_dir)],
        cwd=tmp_path,
        env={
            **clean_environment(),
            **service["environment"],
            "PATH": f"{ENTRY_POINT.parent}:/usr/bin:/bin",
        },
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert made.returncode == 0, made.stdout + made.stderr
    parts = sorted(path.name for path in prepared.iterdir())
    assert parts == sorted(
        f"{part}.ldif" for part in ("schema", "modules", "config", "database", "overlays", "data")
    )
    assert all((prepared / part).stat().st_mode & 0o077 == 0 for part in parts)
    port = free_port()
    url = f"ldap://127.0.0.1:{port}"
    environment = {
        **compose()["services"]["openldap"]["environment"],
        "LDAP_ADMIN_PASSWORD_FILE": str(secrets_dir / "ldap_admin_password"),
        "SLAPD_PREPARED_DIR": str(prepared),
        "SLAPD_CONFIG_DIR": str(tmp_path / "slapd.d"),
        "SLAPD_DATA_DIR": str(tmp_path / "data"),
        "SLAPD_RUN_DIR": str(tmp_path / "run"),
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
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.communicate()[0]
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert time.monotonic() < deadline, "slapd did not listen"
            time.sleep(0.1)
        yield url, passwords["ldap_server_password"]
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=30)
        assert not [password for password in passwords.values() if password in output]


@pytest.mark.skipif(shutil.which("slapadd", path="/usr/sbin:/usr/bin") is None, reason="no slapd")
def test_the_compose_directory_passes_check_and_takes_a_user(
    compose_directory: tuple[str, str],
) -> None:
    """The directory the prepare service and the OpenLDAP image's first start make is one
    ``scim-ldap check`` finds complete, with the server bound as its own account."""
    url, password = compose_directory
    environment = {
        key: value
        for key, value in compose()["services"]["scim-ldap"]["environment"].items()
        if key.startswith("SCIM_LDAP_") and not key.endswith("_FILE")
    }
    assert environment["SCIM_LDAP_LDAP__BIND_DN"].startswith("cn=scim-ldap,ou=services,")
    environment |= {
        "SCIM_LDAP_LDAP__URLS": json.dumps([url]),
        "SCIM_LDAP_LDAP__BIND_PASSWORD": password,
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
