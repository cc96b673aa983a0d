"""An account's whole life in Entra, proven on Linux hosts by every way into them.

One user goes through Entra's requests against the real HTTP app with the server's
default settings (default disable profile), over StartTLS to a directory with a private
CA: create (POST with a password and an SSH key) -> disable (legacy ``"False"``) ->
enable (compliant ``true``) -> rename (userName) -> delete. After each step every login
path (see ``matrix.PATHS``) is tried on every setup (see ``setups.setups``), all setups
in parallel, each in its own mount namespace with its own sshd:

- stock and hand-hardened setups (``stock sssd``, ``sssd access``, ``stock nslcd``,
  ``nslcd authz``) have their caches cleared after each SCIM change the way an admin
  would: ``sss_cache -E`` and a restart of the daemon (nslcd keeps no cache). Left
  alone, stock sssd answers from its caches for much longer (``scripts/measure_disable.py
  --stock-cache`` measures how long);
- generated setups run what ``client-config`` printed, as printed, and are not
  flushed: each path is polled until it reaches its expected state, within a bound
  derived from the generated cache timeout, and the time it took is recorded.

Expected: while active every path lets the user in; disabled or deleted, none does;
after a rename the old login is refused everywhere and the new one works. The matrix
(setup x path x phase) is printed in the terminal summary.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Callable, Iterator
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
from tests.e2e.matrix import REPORTS, Column, Login, Matrix, check_once, poll, summary_lines
from tests.e2e.processes import ClientError
from tests.e2e.setups import Setup, setups

USERS = "/scim/v2/Users"
CORE = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
POSIX = "urn:ietf:params:scim:schemas:extension:posix:2.0:User"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
PASSWORD = "Correct-Horse-7"

CACHE_TIMEOUT = int(os.environ.get("SCIM_E2E_CACHE_TIMEOUT", "20"))
"""``--cache-timeout`` given to client-config for the generated setups."""
POLL_BOUND = 2 * CACHE_TIMEOUT + 15
"""How long a generated setup may take to reach a phase's expected state: the entry
cache and the in-memory cache may each hold an entry for the cache timeout, the negative
cache for at most 15 s."""
SETUPS = setups(CACHE_TIMEOUT)
CREATE, DISABLE, ENABLE, RENAME_OLD, RENAME_NEW, DELETE = (
    "create",
    "disable",
    "enable",
    "rename: old",
    "rename: new",
    "delete",
)


@dataclass
class Host:
    setup: Setup
    stack: ClientStack | None = None


@dataclass
class Lifecycle:
    matrix: Matrix
    controls: dict[str, list[str]]


def account_of(directory: SandboxDirectory, user_id: str) -> tuple[str, int, int]:
    """The uid, uidNumber and gidNumber the server gave the account with SCIM id
    ``user_id`` (its entryUUID)."""
    conn = Connection(directory.url, directory.admin_dn, directory.admin_password, auto_bind=True)
    try:
        conn.search(
            directory.base_dn,
            f"(entryUUID={user_id})",
            SUBTREE,
            attributes=["uid", "uidNumber", "gidNumber"],
        )
        assert len(conn.entries) == 1, conn.entries
        entry = conn.entries[0]
        return str(entry.uid.value), int(entry.uidNumber.value), int(entry.gidNumber.value)
    finally:
        conn.unbind()


def patch(server: TestClient, user_id: str, *operations: dict[str, object]) -> None:
    response = server.patch(
        f"{USERS}/{user_id}", json={"schemas": [PATCH_OP], "Operations": list(operations)}
    )
    assert response.status_code == 200, response.text


def observe(hosts: list[Host], matrix: Matrix, columns: list[Column], started: float) -> None:
    def one(host: Host) -> None:
        stack = host.stack
        if stack is None:
            return
        if host.setup.flushes:
            stack.restart()
            cells = check_once(stack, columns)
        else:
            cells = poll(stack, columns, started, POLL_BOUND)
        matrix.add(host.setup.name, cells)

    with ThreadPoolExecutor(len(hosts)) as pool:
        list(pool.map(one, hosts))


def controls(
    stack: ClientStack, login: Login, stranger: Path, numbers: tuple[int, int]
) -> list[str]:
    """NSS shows the numbers the directory holds and names the primary group; an active
    user is refused with a wrong password or a key it does not hold.

    After each wrong password a right one clears the directory's failure count, so the
    controls never reach the password policy's lockout.
    """
    failures = []
    passwd = stack.getent_passwd(login.name)
    if (passwd.split(":")[2:4] if passwd else []) != [str(number) for number in numbers]:
        failures.append(f"getent passwd {login.name}: {passwd!r}, the directory has {numbers}")
    identity = stack.id(login.name) or ""
    if not re.search(rf"\bgid={numbers[1]}\([^)]+\)", identity):
        failures.append(f"id {login.name} does not name the primary group: {identity!r}")
    wrong = login.password + "x"
    attempts: dict[str, Callable[[], bool]] = {
        "PAM accepted a wrong password": lambda: stack.authenticate(login.name, wrong),
        "sshd accepted a wrong password": lambda: stack.ssh_password_login(login.name, wrong),
        "su accepted a wrong password": lambda: stack.su_with_password(login.name, wrong),
    }
    for failure, attempt in attempts.items():
        if attempt():
            failures.append(failure)
        if not stack.authenticate(login.name, login.password):
            failures.append(f"the right password failed after: {failure}")
    if stack.ssh_key_login(login.name, stranger):
        failures.append("sshd accepted a key the user does not hold")
    return failures


def run_controls(
    server: TestClient,
    directory: SandboxDirectory,
    hosts: list[Host],
    public_key: str,
    ssh_identity: Path,
    stranger_identity: Path,
    tag: str,
) -> dict[str, list[str]]:
    """``controls`` on every host at once, each with its own user (so that the wrong
    passwords tried on one host never add up to a lockout of another host's user)."""
    users = []
    for index in range(len(hosts)):
        created = server.post(
            USERS,
            json={
                "schemas": [CORE],
                "userName": f"Ctl{index}.{tag}@Example.com",
                "active": True,
                "password": PASSWORD,
                POSIX: {"sshPublicKeys": [public_key]},
            },
        )
        assert created.status_code == 201, created.text
        users.append(created.json()["id"])

    def one(host: Host, user_id: str) -> tuple[str, list[str]]:
        if host.stack is None:
            return host.setup.name, []
        name, uid_number, gid_number = account_of(directory, user_id)
        login = Login(name, PASSWORD, public_key, ssh_identity)
        return host.setup.name, controls(
            host.stack, login, stranger_identity, (uid_number, gid_number)
        )

    try:
        with ThreadPoolExecutor(len(hosts)) as pool:
            return dict(pool.map(one, hosts, users))
    finally:
        for user_id in users:
            assert server.delete(f"{USERS}/{user_id}").status_code == 204


def start_hosts(directory: SandboxDirectory, workdir: Path, matrix: Matrix) -> list[Host]:
    """Every setup's stack, started in parallel; ``workdir`` holds the files client-config
    reads, the stacks live in /tmp (their users, such as nslcd, must reach their files)."""
    hosts = [Host(setup) for setup in SETUPS]

    def start(host: Host) -> None:
        try:
            host.stack = host.setup.build(directory, workdir).start()
        except (ClientError, OSError) as exc:
            matrix.errors[host.setup.name] = str(exc)

    with ThreadPoolExecutor(len(hosts)) as pool:
        list(pool.map(start, hosts))
    return hosts


@pytest.fixture(scope="module")
def lifecycle(
    client_packages: None,
    tls_sandbox: Sandbox,
    ssh_identity: Path,
    stranger_identity: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Lifecycle]:
    directory = tls_sandbox.directory
    matrix = Matrix(setups=[setup.name for setup in SETUPS])
    workdir = tmp_path_factory.mktemp("hosts")
    hosts = start_hosts(directory, workdir, matrix)
    public_key = Path(f"{ssh_identity}.pub").read_text().strip()
    tag = uuid.uuid4().hex[:8]
    app = create_app(make_settings(directory))
    try:
        with TestClient(app, headers={"Authorization": f"Bearer {TOKEN}"}) as server:
            body = {
                "schemas": [CORE, ENTERPRISE],
                "userName": f"Pat.{tag}@Example.com",
                "active": True,
                "displayName": "Pat Lee",
                "name": {"givenName": "Pat", "familyName": "Lee"},
                "emails": [{"primary": True, "type": "work", "value": f"pat.{tag}@example.com"}],
                "password": PASSWORD,
                POSIX: {"sshPublicKeys": [public_key]},
            }
            created = server.post(USERS, json=body)
            assert created.status_code == 201, created.text
            started = time.monotonic()
            user = created.json()
            user_id = user["id"]
            name, uid_number, _ = account_of(directory, user_id)
            assert uid_number == user[POSIX]["uidNumber"]
            login = Login(name, PASSWORD, public_key, ssh_identity)
            observe(hosts, matrix, [Column(CREATE, login, True)], started)
            checks = run_controls(
                server, directory, hosts, public_key, ssh_identity, stranger_identity, tag
            )

            patch(server, user_id, {"op": "Replace", "path": "active", "value": "False"})
            started = time.monotonic()
            assert server.get(f"{USERS}/{user_id}").json()["active"] is False
            observe(hosts, matrix, [Column(DISABLE, login, False)], started)

            patch(server, user_id, {"op": "replace", "path": "active", "value": True})
            started = time.monotonic()
            assert server.get(f"{USERS}/{user_id}").json()["active"] is True
            observe(hosts, matrix, [Column(ENABLE, login, True)], started)

            patch(
                server,
                user_id,
                {"op": "replace", "path": "userName", "value": f"Lee.{tag}@Example.com"},
            )
            started = time.monotonic()
            renamed = Login(account_of(directory, user_id)[0], PASSWORD, public_key, ssh_identity)
            assert renamed.name != login.name
            again = server.get(f"{USERS}/{user_id}").json()
            assert again[POSIX]["uidNumber"] == user[POSIX]["uidNumber"]
            observe(
                hosts,
                matrix,
                [Column(RENAME_OLD, login, False), Column(RENAME_NEW, renamed, True)],
                started,
            )

            assert server.delete(f"{USERS}/{user_id}").status_code == 204
            started = time.monotonic()
            observe(hosts, matrix, [Column(DELETE, renamed, False)], started)
        polled = [setup.name for setup in SETUPS if not setup.flushes]
        matrix.notes += [
            "",
            f"stock/hardened setups: sss_cache -E and a daemon restart after each SCIM change;"
            f" generated setups: client-config --cache-timeout {CACHE_TIMEOUT}, no flush,"
            f" polled up to {POLL_BOUND} s",
            "time from the SCIM change until every path reached its expected state:",
            *summary_lines(matrix, polled, [DISABLE, ENABLE, RENAME_OLD, DELETE]),
        ]
        yield Lifecycle(matrix, checks)
    finally:
        REPORTS.append(("login path matrix (setup x path x phase)", matrix.render()))
        for host in hosts:
            if host.stack is not None:
                host.stack.stop()


@pytest.mark.parametrize("setup", [setup.name for setup in SETUPS])
def test_every_login_path_follows_the_account(lifecycle: Lifecycle, setup: str) -> None:
    matrix = lifecycle.matrix
    assert setup not in matrix.errors, matrix.errors.get(setup)
    assert not lifecycle.controls[setup], lifecycle.controls[setup]
    failures = matrix.failures(setup)
    assert not failures, "\n".join(failures)


def test_generated_setups_close_every_path_within_the_cache_bound(lifecycle: Lifecycle) -> None:
    for setup in SETUPS:
        if setup.flushes or setup.name in lifecycle.matrix.errors:
            continue
        for phase in (DISABLE, DELETE, RENAME_OLD):
            seconds = lifecycle.matrix.closing_time(setup.name, phase)
            assert seconds is not None and seconds <= POLL_BOUND, (setup.name, phase, seconds)
