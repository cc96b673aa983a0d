"""Shared helpers of the HTTP tests: unique users, raw LDAP reads, cleanup."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi.testclient import TestClient
from httpx import Response
from ldap3 import BASE, SUBTREE, Connection
from ldap3.utils.conv import escape_filter_chars

from app.config import AccountSettings, PosixSettings, UserSettings
from app.ldap.dn import parent_of
from app.ldap.sandbox import Sandbox
from app.main import create_app
from tests.conftest import TOKEN, make_settings

USERS = "/scim/v2/Users"
CORE = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
POSIX = "urn:ietf:params:scim:schemas:extension:posix:2.0:User"
ECMA2HOST = "urn:ietf:params:scim:schemas:extension:ECMA2Host:2.0:User"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
LIST_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
SCIM_JSON = "application/scim+json"

_uid_numbers = itertools.count(int(uuid.uuid4().int % 1_000_000) + 100_000)


def unique(prefix: str = "u") -> str:
    """A login-safe unique token such as ``u3f9c2a1b7d``."""
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def uid_number() -> int:
    """A uidNumber not used by any other user of this test session."""
    return next(_uid_numbers)


def user_body(user_name: str | None = None, /, **overrides: Any) -> dict[str, Any]:
    """A minimal valid POST body; ``overrides`` replace or add top-level keys."""
    body: dict[str, Any] = {
        "schemas": [CORE, POSIX],
        "userName": f"{unique()}@example.com" if user_name is None else user_name,
        POSIX: {"uidNumber": uid_number()},
    }
    body.update(overrides)
    return body


def new_user(
    client: TestClient, user_name: str | None = None, /, **overrides: Any
) -> dict[str, Any]:
    """Create a user (asserting 201) and return the SCIM resource."""
    response = client.post(USERS, json=user_body(user_name, **overrides))
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def patch(
    client: TestClient, user_id: str, *operations: dict[str, Any], **headers: str
) -> Response:
    """PATCH a user with the given operations."""
    response: Response = client.patch(
        f"{USERS}/{user_id}",
        json={"schemas": [PATCH_OP], "Operations": list(operations)},
        headers=headers,
    )
    return response


def entry(ldap: Connection, dn_or_id: str) -> dict[str, list[str]] | None:
    """The raw attributes (user and operational) of an entry, by DN or by entryUUID."""
    if "=" in dn_or_id:
        ldap.search(dn_or_id, "(objectClass=*)", BASE, attributes=["*", "+"])
    else:
        base = parent_of(str(ldap.user))
        ldap.search(base, f"(entryUUID={dn_or_id})", SUBTREE, attributes=["*", "+"])
    if not ldap.response:
        return None
    found = [e for e in ldap.response if e.get("type") == "searchResEntry"]
    if not found:
        return None
    raw: dict[str, list[bytes]] = found[0]["raw_attributes"]
    out = {name: [v.decode("utf-8") for v in values] for name, values in raw.items()}
    out["dn"] = [str(found[0]["dn"])]
    return out


def by_login(ldap: Connection, login: str) -> dict[str, list[str]] | None:
    """The raw attributes of the account with this login, wherever it is below the base."""
    base = parent_of(str(ldap.user))
    ldap.search(base, f"(uid={escape_filter_chars(login)})", SUBTREE, attributes=["1.1"])
    found = [e for e in ldap.response or [] if e.get("type") == "searchResEntry"]
    return entry(ldap, str(found[0]["dn"])) if found else None


def ensure_entry(ldap: Connection, dn: str, object_classes: list[str], **attributes: Any) -> None:
    """Add an entry (a container, a group) unless it exists."""
    if entry(ldap, dn) is None:
        assert ldap.add(dn, object_classes, attributes), ldap.result


@contextmanager
def configured_client(
    sandbox: Sandbox,
    *,
    accounts: AccountSettings | None = None,
    posix: PosixSettings | None = None,
    users: UserSettings | None = None,
    admin: bool = False,
    **ldap: str,
) -> Iterator[TestClient]:
    """A client of a second app on the session sandbox, with other account settings.

    ``ldap`` overrides LDAP settings such as ``disabled_dn``. The app binds as the
    server's least-privilege account, or with ``admin`` as the rootdn (for counters and
    containers of a test's own, which that account may not write).
    """
    settings = make_settings(sandbox.directory)
    if admin:
        settings.ldap = sandbox.directory.admin_settings()
    for name, value in ldap.items():
        setattr(settings.ldap, name, value)
    if accounts is not None:
        settings.accounts = accounts
    if posix is not None:
        settings.posix = posix
    if users is not None:
        settings.users = users
    app = create_app(settings)
    with TestClient(app, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        yield client


def delete_quietly(client: TestClient, *user_ids: str) -> None:
    """Delete users created by a test; already deleted ones are fine."""
    for user_id in user_ids:
        response = client.delete(f"{USERS}/{user_id}")
        assert response.status_code in (204, 404), response.text


def assert_error(response: Response, status: int, scim_type: str | None = None) -> dict[str, Any]:
    """Assert a SCIM error response (RFC 7644 §3.12) and return its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(SCIM_JSON)
    body: dict[str, Any] = response.json()
    assert body["schemas"] == [ERROR]
    assert body["status"] == str(status)
    assert isinstance(body["detail"], str)
    if scim_type is not None:
        assert body.get("scimType") == scim_type, body
    return body


def binds(sandbox: Sandbox, dn: str, password: str) -> bool:
    """Whether a simple bind as ``dn`` with ``password`` succeeds (as a host's login does)."""
    conn = Connection(sandbox.directory.url, dn, password)
    try:
        return bool(conn.bind())
    finally:
        conn.unbind()
