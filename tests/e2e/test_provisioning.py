"""Entra-shaped HTTP requests, proven by real Linux logins under sssd and nslcd.

Each host runs the configuration ``python -m app client-config`` prints for the
server's settings (default disable profile), unchanged but for the host's own
bind credentials, ``--allow-plain-ldap`` (the sandbox is ldap:// on loopback)
and ``--cache-timeout 0`` (so each step is visible at once; the host's cache
is flushed as a host would after its timeout).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.ldap.sandbox import Sandbox
from app.main import create_app
from tests.conftest import TOKEN, make_settings
from tests.e2e.clients import ClientStack, StackKind
from tests.keys import public_key

ROOT = Path(__file__).resolve().parents[2]
USERS = "/scim/v2/Users"
CORE = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
POSIX = "urn:ietf:params:scim:schemas:extension:posix:2.0:User"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
PASSWORD = "Correct-Horse-7"


def client_config(sandbox: Sandbox, kind: StackKind, part: str, tmp: Path) -> str:
    directory = sandbox.directory
    secret = tmp / "bindpw"
    secret.write_text(directory.bind_password, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCIM_LDAP_")}
    env.update(
        {
            "SCIM_LDAP_LDAP__URLS": json.dumps([directory.url]),
            "SCIM_LDAP_LDAP__BASE_DN": directory.base_dn,
        }
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "app",
            "client-config",
            "--for",
            kind,
            "--part",
            part,
            "--bind-dn",
            directory.bind_dn,
            "--bind-password-file",
            str(secret),
            "--allow-plain-ldap",
            "--cache-timeout",
            "0",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return result.stdout


@pytest.fixture(scope="module")
def server(sandbox: Sandbox) -> Iterator[TestClient]:
    app = create_app(make_settings(sandbox.directory))
    with TestClient(app, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        yield client


@pytest.fixture(scope="module", params=["sssd", "nslcd"])
def host(
    request: pytest.FixtureRequest,
    client_packages: None,
    sandbox: Sandbox,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ClientStack]:
    kind: StackKind = request.param
    tmp = tmp_path_factory.mktemp(kind)
    config = client_config(sandbox, kind, "sssd.conf" if kind == "sssd" else "nslcd.conf", tmp)
    stack = ClientStack(
        kind,
        sandbox.directory,
        config,
        client_config(sandbox, kind, "nsswitch.conf", tmp),
        client_config(sandbox, kind, "pam", tmp),
        keys_script=None if kind == "sssd" else client_config(sandbox, kind, "ldap-ssh-keys", tmp),
    )
    with stack:
        yield stack


def patch(server: TestClient, user_id: str, *operations: dict[str, object]) -> None:
    response = server.patch(
        f"{USERS}/{user_id}", json={"schemas": [PATCH_OP], "Operations": list(operations)}
    )
    assert response.status_code == 200, response.text


def can_log_in(host: ClientStack, login: str, password: str = PASSWORD) -> tuple[bool, bool]:
    """(password accepted, account phase passed), after the host's cache is flushed."""
    host.flush()
    return host.authenticate(login, password), host.account(login)


def test_an_account_through_its_whole_life(server: TestClient, host: ClientStack) -> None:
    tag = uuid.uuid4().hex[:8]
    key = f"{public_key('ed25519', index=7)} pat-{tag}"
    body = {
        "schemas": [CORE, ENTERPRISE],
        "userName": f"Pat.{tag}@Example.com",
        "active": True,
        "displayName": "Pat Lee",
        "name": {"givenName": "Pat", "familyName": "Lee"},
        "emails": [{"primary": True, "type": "work", "value": f"pat.{tag}@example.com"}],
        "password": PASSWORD,
        POSIX: {"sshPublicKeys": [key]},
    }
    created = server.post(USERS, json=body)
    assert created.status_code == 201, created.text
    user = created.json()
    login = f"pat.{tag}"
    number = user[POSIX]["uidNumber"]
    try:
        host.flush()
        passwd = host.getent_passwd(login)
        assert passwd is not None, host.log_tail()
        assert passwd.split(":")[2] == str(number)
        identity = host.id(login)
        assert identity is not None and "gid=10000(scim-users)" in identity, identity
        assert can_log_in(host, login) == (True, True)
        assert host.authenticate(login, "wrong-password") is False
        assert [k.split()[1] for k in host.ssh_keys(login)] == [key.split()[1]]

        patch(server, user["id"], {"op": "Replace", "path": "active", "value": "False"})
        assert can_log_in(host, login) == (False, False), "disabled: no password, no account"
        assert host.ssh_keys(login) == []
        assert server.get(f"{USERS}/{user['id']}").json()["active"] is False

        patch(server, user["id"], {"op": "replace", "path": "active", "value": True})
        assert can_log_in(host, login) == (True, True), "enabled again"
        assert len(host.ssh_keys(login)) == 1

        renamed = f"lee.{tag}"
        patch(
            server,
            user["id"],
            {"op": "replace", "path": "userName", "value": f"{renamed}@example.com"},
        )
        host.flush()
        assert host.getent_passwd(login) is None
        moved = host.getent_passwd(renamed)
        assert moved is not None and moved.split(":")[2] == str(number)
        assert can_log_in(host, renamed) == (True, True)
        again = server.get(f"{USERS}/{user['id']}").json()
        assert again["id"] == user["id"] and again[POSIX]["uidNumber"] == number
        login = renamed
    finally:
        assert server.delete(f"{USERS}/{user['id']}").status_code == 204
    host.flush()
    assert host.getent_passwd(login) is None
    assert host.authenticate(login, PASSWORD) is False
