"""The audit trail: one JSON line per directory change, exactly, with no value and no secret."""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import pytest
from fastapi import Depends, FastAPI, Request
from fastapi.testclient import TestClient
from ldap3 import MODIFY_REPLACE, Connection

from app import audit
from app.config import AuditSettings
from app.ldap.connection import Directory
from app.ldap.pending import Pending
from app.ldap.sandbox import Sandbox
from app.logs import JsonFormatter
from app.main import create_app
from app.sweeper import Sweeper
from tests.api.helpers import CORE, PATCH_OP, USERS, ensure_entry, unique
from tests.conftest import TOKEN, make_settings

GROUPS = "/scim/v2/Groups"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PASSWORD = "Audit-me-n0t-Ever!"
TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
KEYS = [
    "time",
    "request_id",
    "token",
    "operation",
    "resource_id",
    "dn",
    "ldap_operation",
    "attributes",
    "result",
]


@pytest.fixture
def trail(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "audit.jsonl"
    yield path
    audit.configure(AuditSettings())


@pytest.fixture
def audited_app(sandbox: Sandbox, trail: Path) -> FastAPI:
    settings = make_settings(sandbox.directory)
    settings.audit = AuditSettings(sink="file", path=trail)
    return create_app(settings)


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def of(path: Path, *request_ids: str) -> list[dict[str, Any]]:
    """The lines of these requests (the sweep may write lines of its own meanwhile)."""
    return [line for line in lines(path) if line["request_id"] in request_ids]


def shape(line: dict[str, Any]) -> tuple[Any, ...]:
    """A line without its time, checked by form: what the exact sequence compares."""
    assert TIME.match(line["time"]), line
    assert [k for k in line if k != "new_dn"] == KEYS, line
    assert isinstance(line["token"], str) and line["token"] and TOKEN not in line["token"]
    return (
        line["request_id"],
        line["operation"],
        line["resource_id"],
        line["dn"],
        line.get("new_dn"),
        line["ldap_operation"],
        line["attributes"],
        line["result"]["code"],
        line["result"]["description"],
    )


def lifecycle(client: TestClient, tag: str) -> tuple[str, str, str, str]:
    """Create, patch, disable, enable, rename, group, delete; the login, ids and new login."""
    login = unique()
    created = client.post(
        USERS,
        json={"schemas": [CORE], "userName": f"{login}@example.com", "password": PASSWORD},
        headers={"X-Request-Id": f"{tag}-create"},
    )
    assert created.status_code == 201, created.text
    assert created.headers["x-request-id"] == f"{tag}-create"
    user_id = created.json()["id"]

    def patch(step: str, *operations: dict[str, Any]) -> None:
        response = client.patch(
            f"{USERS}/{user_id}",
            json={"schemas": [PATCH_OP], "Operations": list(operations)},
            headers={"X-Request-Id": f"{tag}-{step}"},
        )
        assert response.status_code == 200, response.text

    patch("patch", {"op": "replace", "path": "displayName", "value": "Pat Audit"})
    patch("disable", {"op": "replace", "path": "active", "value": False})
    patch("enable", {"op": "replace", "path": "active", "value": True})
    patch("rename", {"op": "replace", "path": "userName", "value": f"{login}x@example.com"})
    group = client.post(
        GROUPS,
        json={"schemas": [GROUP], "displayName": f"g{login}", "members": [{"value": user_id}]},
        headers={"X-Request-Id": f"{tag}-group"},
    )
    assert group.status_code == 201, group.text
    group_id = group.json()["id"]
    gone = client.delete(f"{USERS}/{user_id}", headers={"X-Request-Id": f"{tag}-delete"})
    assert gone.status_code == 204, gone.text
    gone = client.delete(f"{GROUPS}/{group_id}", headers={"X-Request-Id": f"{tag}-ungroup"})
    assert gone.status_code == 204, gone.text
    return login, user_id, group_id, f"{login}x"


def test_a_lifecycle_writes_exactly_these_audit_lines(
    audited_app: FastAPI, trail: Path, sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        caplog.at_level(logging.DEBUG),
        TestClient(audited_app, headers={"Authorization": f"Bearer {TOKEN}"}) as client,
    ):
        lifecycle(client, "warm")
        login, user_id, group_id, renamed = lifecycle(client, "t")
    steps = ("create", "patch", "disable", "enable", "rename", "group", "delete", "ungroup")
    found = [shape(line) for line in of(trail, *(f"t-{s}" for s in steps))]

    base = sandbox.directory.base_dn
    user = f"uid={login},ou=people,{base}"
    moved = f"uid={renamed},ou=people,{base}"
    group = f"cn=g{login},ou=groups,{base}"
    ids = f"cn=scim-ldap-ids,{base}"
    gids = f"cn=scim-ldap-gids,{base}"
    [number] = [
        line["dn"]
        for line in of(trail, "t-create")
        if line["dn"].endswith(f",cn=scim-ldap-uids,{base}")
    ]
    ok, lost = (0, "success"), (122, "assertionFailed")
    stash = ["objectClass", "pwdAccountLockedTime", "scimActive", "scimStash", "shadowExpire"]
    new_user = [
        *("cn", "gidNumber", "homeDirectory", "loginShell", "objectClass"),
        *("scimDefaulted", "scimPending", "scimUserName", "sn", "uid", "uidNumber"),
    ]
    create, alloc = ("t-create", "Users.create"), ("t-create", "allocate")
    patch = "Users.patch"
    assert found == [
        (*alloc, None, ids, None, "modify", ["uidNumber"], *ok),
        (*create, None, number, None, "add", ["cn", "description", "objectClass"], *ok),
        (*create, user_id, user, None, "add", new_user, *ok),
        (*create, user_id, user, None, "passwordModify", ["userPassword"], *ok),
        (*create, user_id, user, None, "modify", ["scimPending"], *ok),
        ("t-patch", patch, user_id, user, None, "modify", ["cn", "displayName"], *ok),
        ("t-disable", patch, user_id, user, None, "modify", stash, *ok),
        ("t-enable", patch, user_id, user, None, "modify", stash, *ok),
        ("t-rename", patch, user_id, user, None, "modify", ["scimPending", "scimUserName"], *ok),
        ("t-rename", patch, user_id, user, moved, "modrdn", ["uid"], *ok),
        ("t-rename", patch, user_id, moved, None, "modify", ["scimPending"], *ok),
        ("t-group", "allocate", None, gids, None, "modify", ["gidNumber"], *ok),
        (
            *("t-group", "Groups.create", group_id, group, None, "add"),
            ["cn", "displayName", "gidNumber", "member", "memberUid", "objectClass"],
            *ok,
        ),
        ("t-delete", "Users.delete", user_id, moved, None, "modify", ["scimPending"], *ok),
        ("t-delete", "Users.delete", user_id, group, None, "modify", ["member", "memberUid"], *ok),
        ("t-delete", "Users.delete", user_id, moved, None, "delete", [], *ok),
        ("t-delete", "Users.delete", user_id, number, None, "delete", [], *lost),
        ("t-delete", "Users.delete", user_id, number, None, "delete", [], *ok),
        ("t-ungroup", "Groups.delete", group_id, group, None, "delete", [], *ok),
    ]

    text = trail.read_text(encoding="utf-8")
    formatter = JsonFormatter()
    logged = "\n".join(formatter.format(record) for record in caplog.records)
    for secret in (TOKEN, PASSWORD, sandbox.directory.bind_password):
        assert secret not in text
        assert secret not in logged
        assert secret not in caplog.text


def named(request: Request) -> None:
    """What the auth dependency does once it has matched a token."""
    request.state.token_name = "entra-prod"


def touch(request: Request, _name: Annotated[None, Depends(named)]) -> dict[str, str]:
    directory: Directory = request.app.state.directory
    with directory.session() as session:
        session.modify(
            request.app.state.touched,
            {"description": [(MODIFY_REPLACE, ["audited"])]},
            action="touch",
        )
    return {}


def test_the_token_name_set_by_authentication_reaches_the_trail(
    audited_app: FastAPI,
    trail: Path,
    sandbox: Sandbox,
    ldap: Connection,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The auth dependency names the token in ``request.state.token_name``."""
    dn = f"ou=audited,{sandbox.directory.counters_dn}"
    ensure_entry(ldap, dn, ["top", "organizationalUnit"], ou="audited")

    audited_app.state.touched = dn
    audited_app.add_api_route("/touch", touch, methods=["POST"], operation_id="touch")
    with TestClient(audited_app) as client:
        response = client.post("/touch", headers={"X-Request-Id": "touch-1"})
        assert response.status_code == 200, response.text
    [line] = of(trail, "touch-1")
    assert (line["token"], line["operation"], line["dn"]) == ("entra-prod", "touch", dn)
    assert line["attributes"] == ["description"]
    [access] = [r for r in caplog.records if r.name == "app.access"]
    fields = json.loads(JsonFormatter().format(access))
    assert (fields["token"], fields["operation"], fields["request_id"]) == (
        "entra-prod",
        "touch",
        "touch-1",
    )


def test_the_sweep_writes_without_a_request_id(
    audited_app: FastAPI, trail: Path, sandbox: Sandbox
) -> None:
    """A delete cut short (its marker left on the entry) is finished by the sweep."""
    settings = make_settings(sandbox.directory, request_timeout=0.01)
    with TestClient(audited_app, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        created = client.post(USERS, json={"schemas": [CORE], "userName": f"{unique()}@x.org"})
        assert created.status_code == 201, created.text
        changes = audited_app.state.users.changes
        record = changes.get(created.json()["id"])
        with audited_app.state.directory.session() as session:
            changes.pending.mark(session, record.dn, Pending("delete", record.login, record.dn))
        time.sleep(0.05)
        assert Sweeper(changes, settings).once() == 1
    swept = [shape(line) for line in lines(trail) if line["operation"] == "sweep"]
    assert (None, "sweep", None, record.dn, None, "delete", [], 0, "success") in swept
    assert all(line[0] is None and line[2] is None for line in swept), swept
