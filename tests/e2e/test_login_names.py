"""Every userName of the README's login table becomes an account that logs in on Linux.

Each userName is provisioned through the real HTTP app (default settings, StartTLS) with
a password and an SSH key; its login, read back from the directory, must be the table's
login (or the table's alternative, when an earlier row already took it), and on hosts
running the generated sssd and nslcd configurations NSS must know it, PAM must accept
its password and sshd its key.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from ldap3 import SUBTREE, Connection

from app.ldap.sandbox import Sandbox, SandboxDirectory
from app.main import create_app
from tests.conftest import TOKEN, make_settings
from tests.e2e.clients import ClientStack
from tests.e2e.setups import generated_stack
from tests.ldap.test_logins import readme_rows

USERS = "/scim/v2/Users"
CORE = "urn:ietf:params:scim:schemas:core:2.0:User"
POSIX = "urn:ietf:params:scim:schemas:extension:posix:2.0:User"
PASSWORD = "Correct-Horse-7"
ROWS = readme_rows()


@dataclass(frozen=True)
class Account:
    user_name: str
    login: str
    expected: tuple[str, str]


def login_of(directory: SandboxDirectory, user_id: str) -> str:
    conn = Connection(directory.url, directory.admin_dn, directory.admin_password, auto_bind=True)
    try:
        conn.search(directory.base_dn, f"(entryUUID={user_id})", SUBTREE, attributes=["uid"])
        return str(conn.entries[0].uid.value)
    finally:
        conn.unbind()


@pytest.fixture(scope="module")
def hosts(
    client_packages: None, tls_sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, ClientStack]]:
    workdir = tmp_path_factory.mktemp("login-hosts")
    stacks = {
        kind: generated_stack(tls_sandbox.directory, kind, workdir, 0) for kind in ("sssd", "nslcd")
    }
    with ThreadPoolExecutor(len(stacks)) as pool:
        list(pool.map(ClientStack.start, stacks.values()))
    try:
        yield stacks
    finally:
        for stack in stacks.values():
            stack.stop()


@pytest.fixture(scope="module")
def accounts(tls_sandbox: Sandbox, ssh_identity: Path) -> Iterator[list[Account]]:
    """The README's userNames provisioned in table order (a userName equal to an earlier
    one but for letter case is the same account for Entra, and is skipped)."""
    directory = tls_sandbox.directory
    key = Path(f"{ssh_identity}.pub").read_text().strip()
    app = create_app(make_settings(directory))
    created: list[tuple[str, Account]] = []
    seen: set[str] = set()
    with TestClient(app, headers={"Authorization": f"Bearer {TOKEN}"}) as server:
        try:
            for user_name, login, taken in ROWS:
                if user_name.casefold() in seen:
                    continue
                seen.add(user_name.casefold())
                response = server.post(
                    USERS,
                    json={
                        "schemas": [CORE],
                        "userName": user_name,
                        "active": True,
                        "password": PASSWORD,
                        POSIX: {"sshPublicKeys": [key]},
                    },
                )
                assert response.status_code == 201, (user_name, response.text)
                user_id = response.json()["id"]
                account = Account(user_name, login_of(directory, user_id), (login, taken))
                created.append((user_id, account))
            yield [account for _, account in created]
        finally:
            for user_id, _ in created:
                server.delete(f"{USERS}/{user_id}")


def test_each_login_is_the_readme_s(accounts: list[Account]) -> None:
    assert len(accounts) >= len(ROWS) - 1
    for account in accounts:
        assert account.login in account.expected, account


@pytest.mark.parametrize("kind", ["sssd", "nslcd"])
def test_each_account_logs_in(
    accounts: list[Account], hosts: dict[str, ClientStack], kind: str, ssh_identity: Path
) -> None:
    stack = hosts[kind]

    def paths(account: Account) -> list[str]:
        refused = []
        if stack.getent_passwd(account.login) is None:
            refused.append("getent passwd")
        if not stack.authenticate(account.login, PASSWORD):
            refused.append("PAM password")
        if not stack.ssh_key_login(account.login, ssh_identity):
            refused.append("ssh key")
        return refused

    with ThreadPoolExecutor(8) as pool:
        refused = {
            f"{account.user_name} ({account.login})": failed
            for account, failed in zip(accounts, pool.map(paths, accounts), strict=True)
            if failed
        }
    assert not refused, refused
