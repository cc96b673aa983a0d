"""Writes interrupted by a directory crash converge: killed at every step, then recovered.

Each multi-step write runs once to count its LDAP writes, then once per step
with slapd killed (SIGKILL) just before that step. The request answers 503,
or what it answers anyway when the kill comes after its last write. slapd
comes back; then either the client sends the same request again (as Entra
does after a failure) or the sweep runs. Either way the directory must be
back to the invariant of app/ldap/pending.py: no marker, every account
complete, no membership or private group without its account.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from ldap3 import Connection

from app.config import AccountSettings, DisableAction, PosixSettings
from app.ldap.connection import Session
from app.ldap.sandbox import Sandbox
from app.main import create_app
from tests.api.helpers import CORE, PATCH_OP, POSIX, USERS, ensure_entry
from tests.api.invariants import entries, problems
from tests.conftest import TOKEN, make_settings

WRITES = ("add", "modify", "rename", "delete", "set_password")
PASSWORD = "Interrupted-Pass-9"
LOGIN_GROUP = "linux-login"
HEAVY: tuple[DisableAction, ...] = ("lock", "expire", "hide", "move", "remove-group")
_serial = itertools.count(1)

Request = tuple[str, str, dict[str, Any] | None]


class Faults:
    """Kills slapd just before the n-th LDAP write of the server (0: never); counts writes."""

    def __init__(self, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sandbox = sandbox
        self.kill_at = 0
        self.count = 0
        for name in WRITES:
            monkeypatch.setattr(Session, name, self._wrap(getattr(Session, name)))

    def _wrap(self, original: Callable[..., Any]) -> Callable[..., Any]:
        def write(session: Session, *args: Any, **kwargs: Any) -> Any:
            self.count += 1
            if self.count == self.kill_at:
                self.sandbox.kill_server()
            return original(session, *args, **kwargs)

        return write

    def arm(self, step: int) -> None:
        self.count, self.kill_at = 0, step

    def heal(self) -> None:
        self.kill_at = 0
        self.sandbox.start_server()


def _create(active: bool = True) -> Callable[[dict[str, Any] | None, str], Request]:
    def make(_user: dict[str, Any] | None, token: str) -> Request:
        body = {
            "schemas": [CORE, POSIX],
            "userName": f"new{token}@example.com",
            "password": PASSWORD,
            "active": active,
        }
        return "POST", USERS, body

    return make


def _patch(*ops: dict[str, Any]) -> Callable[[dict[str, Any] | None, str], Request]:
    def make(user: dict[str, Any] | None, token: str) -> Request:
        assert user is not None
        filled = [
            {**op, "value": str(op["value"]).format(token=token)} if op.get("fill") else op
            for op in ops
        ]
        body = {
            "schemas": [PATCH_OP],
            "Operations": [{k: v for k, v in op.items() if k != "fill"} for op in filled],
        }
        return "PATCH", f"{USERS}/{user['id']}", body

    return make


def _delete(user: dict[str, Any] | None, _token: str) -> Request:
    assert user is not None
    return "DELETE", f"{USERS}/{user['id']}", None


@dataclass(frozen=True)
class Scenario:
    """A write to interrupt: its settings, the account before it, the request, its answers."""

    name: str
    actions: tuple[DisableAction, ...]
    request: Callable[[dict[str, Any] | None, str], Request]
    before: str = "none"
    """none, active or disabled: the account the request works on."""
    archive: bool = False
    ok: tuple[int, ...] = (200,)
    private: bool = True
    """Every account has a private group (posix.gid_strategy)."""


SCENARIOS = [
    Scenario("create", HEAVY, _create(), ok=(201,)),
    Scenario("create inactive", HEAVY, _create(active=False), ok=(201,)),
    Scenario(
        "disable", HEAVY, _patch({"op": "Replace", "path": "active", "value": "False"}), "active"
    ),
    Scenario(
        "enable", HEAVY, _patch({"op": "replace", "path": "active", "value": True}), "disabled"
    ),
    Scenario(
        "rename",
        HEAVY,
        _patch(
            {"op": "replace", "path": "userName", "value": "ren{token}@example.com", "fill": True}
        ),
        "active",
    ),
    Scenario(
        "password while disabled",
        ("lock", "expire", "hide"),
        _patch({"op": "replace", "path": "password", "value": "Another-Pass-77"}),
        "disabled",
    ),
    Scenario("delete", HEAVY, _delete, "active", ok=(204,)),
    Scenario("archive", HEAVY, _delete, "disabled", archive=True, ok=(204,)),
]


@pytest.fixture
def crashable() -> Iterator[Sandbox]:
    """A directory of its own for each test: it is killed over and over."""
    with Sandbox() as sandbox:
        directory = sandbox.directory
        base = directory.base_dn
        conn = Connection(
            directory.url, directory.admin_dn, directory.admin_password, auto_bind=True
        )
        ensure_entry(conn, f"ou=disabled,{base}", ["top", "organizationalUnit"], ou="disabled")
        ensure_entry(conn, f"ou=archive,{base}", ["top", "organizationalUnit"], ou="archive")
        group = f"cn={LOGIN_GROUP},{directory.groups_dn}"
        ensure_entry(conn, group, ["top", "posixGroup"], cn=LOGIN_GROUP, gidNumber="4711")
        conn.unbind()
        yield sandbox


def _admin(sandbox: Sandbox) -> Connection:
    directory = sandbox.directory
    return Connection(directory.url, directory.admin_dn, directory.admin_password, auto_bind=True)


def assert_converged(sandbox: Sandbox, scenario: Scenario) -> None:
    """No marker; each account complete; no membership or private group without its account."""
    conn = _admin(sandbox)
    try:
        found = problems(
            conn,
            sandbox.directory,
            scenario.actions,
            private=scenario.private,
            login_group=LOGIN_GROUP,
        )
    finally:
        conn.unbind()
    assert found == []


@pytest.mark.parametrize("recovery", ["retry", "sweep"])
@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_a_write_killed_at_every_step_converges(
    crashable: Sandbox, monkeypatch: pytest.MonkeyPatch, scenario: Scenario, recovery: str
) -> None:
    settings = make_settings(crashable.directory)
    settings.accounts = AccountSettings(
        disable=list(scenario.actions), delete="archive" if scenario.archive else "delete"
    )
    settings.posix = PosixSettings(gid_strategy="private-group")
    faults = Faults(crashable, monkeypatch)
    with TestClient(create_app(settings), headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        changes = client.app.state.users.changes  # type: ignore[attr-defined]

        def account() -> dict[str, Any] | None:
            if scenario.before == "none":
                return None
            body = {
                "schemas": [CORE],
                "userName": f"old{next(_serial)}@example.com",
                "password": PASSWORD,
            }
            made = client.post(USERS, json=body)
            assert made.status_code == 201, made.text
            user: dict[str, Any] = made.json()
            if scenario.before == "disabled":
                ops = [{"op": "replace", "path": "active", "value": False}]
                disabled = client.patch(
                    f"{USERS}/{user['id']}", json={"schemas": [PATCH_OP], "Operations": ops}
                )
                assert disabled.status_code == 200, disabled.text
            return user

        def send(user: dict[str, Any] | None, token: str) -> int:
            method, path, body = scenario.request(user, token)
            status: int = client.request(method, path, json=body).status_code
            return status

        for _warm_up in range(2):
            faults.arm(0)
            user = account()
            faults.arm(0)
            assert send(user, str(next(_serial))) in scenario.ok
        steps = faults.count
        assert steps >= 2, f"{scenario.name} is a single write"
        assert_converged(crashable, scenario)
        for step in range(1, steps + 1):
            faults.arm(0)
            user = account()
            token = str(next(_serial))
            faults.arm(step)
            first = send(user, token)
            assert first == 503, (step, first)
            faults.heal()
            if recovery == "retry":
                again = send(user, token)
                assert again in (*scenario.ok, 404 if scenario.ok == (204,) else -1), (step, again)
                if again == 404 and scenario.archive:
                    # SCIM no longer sees an archived entry; the sweep clears its marker.
                    changes.sweep(grace=0.0, settle=0.0)
            else:
                changes.sweep(grace=0.0, settle=0.0)
                if scenario.before == "none" and first == 503:
                    assert_converged(crashable, scenario)
                    again = send(user, token)
                    assert again in scenario.ok, (step, again)
            assert_converged(crashable, scenario)


def test_a_create_cut_short_answers_201_when_sent_again(
    crashable: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ghost: the account was written but its answer was a 503."""
    faults = Faults(crashable, monkeypatch)
    settings = make_settings(crashable.directory)
    with TestClient(create_app(settings), headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        body = {"schemas": [CORE], "userName": f"ghost{next(_serial)}@example.com"}
        for _ in range(2):
            faults.arm(0)
            probe = client.post(USERS, json={**body, "userName": f"probe{next(_serial)}"})
            assert probe.status_code == 201
        last = faults.count
        faults.arm(last)
        assert client.post(USERS, json=body).status_code == 503
        faults.heal()
        conn = _admin(crashable)
        try:
            [ghost] = entries(conn, crashable.directory.base_dn, "(scimPending=*)", "entryUUID")
        finally:
            conn.unbind()
        again = client.post(USERS, json=body)
        assert again.status_code == 201, again.text
        assert again.json()["id"] == str(ghost["attributes"]["entryUUID"])
        assert client.post(USERS, json=body).status_code == 409
        ghostly = Scenario("ghost", ("lock", "expire", "hide"), _create(), private=False)
        assert_converged(crashable, ghostly)
