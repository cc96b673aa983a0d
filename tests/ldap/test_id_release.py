"""A create that fails after its uidNumber was allocated gives the number back."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from ldap3 import BASE, Connection

from app.config import PosixSettings
from app.ldap.ids import IdAllocator
from app.ldap.sandbox import Sandbox
from tests.api.helpers import (
    CORE,
    POSIX,
    USERS,
    assert_error,
    configured_client,
    delete_quietly,
    unique,
)

LOW = 47000


@pytest.fixture
def pool(sandbox: Sandbox, ldap: Connection) -> Iterator[tuple[TestClient, str]]:
    pool_dn = f"cn={unique('release')},{sandbox.directory.base_dn}"
    posix = PosixSettings(uid_range=(LOW, LOW + 99), id_pool_dn=pool_dn)
    with configured_client(sandbox, posix=posix, admin=True) as client:
        yield client, pool_dn
    ldap.delete(pool_dn)


def counter(ldap: Connection, pool_dn: str) -> int:
    assert ldap.search(pool_dn, "(objectClass=*)", BASE, attributes=["uidNumber"])
    return int(ldap.entries[0].uidNumber.value)


def test_failed_creates_burn_no_number(pool: tuple[TestClient, str], ldap: Connection) -> None:
    client, pool_dn = pool
    first = client.post(USERS, json={"schemas": [CORE], "userName": unique("rel")})
    assert first.status_code == 201, first.text
    assert first.json()[POSIX]["uidNumber"] == LOW
    assert counter(ldap, pool_dn) == LOW + 1
    failing = [
        {"schemas": [CORE], "userName": first.json()["userName"]},
        {
            "schemas": [CORE],
            "userName": unique("rel"),
            "phoneNumbers": [{"type": "work", "value": "\u260e"}],
        },
    ]
    second = None
    try:
        for _ in range(3):
            for body in failing:
                response = client.post(USERS, json=body)
                assert response.status_code in (400, 409), response.text
                assert_error(response, response.status_code)
        assert counter(ldap, pool_dn) == LOW + 1
        second = client.post(USERS, json={"schemas": [CORE], "userName": unique("rel")})
        assert second.status_code == 201, second.text
        assert second.json()[POSIX]["uidNumber"] == LOW + 1
    finally:
        delete_quietly(client, first.json()["id"])
        if second is not None and second.status_code == 201:
            delete_quietly(client, second.json()["id"])


def test_a_number_allocated_after_it_is_not_given_back(
    pool: tuple[TestClient, str], ldap: Connection
) -> None:
    client, pool_dn = pool
    made = [client.post(USERS, json={"schemas": [CORE], "userName": unique("rel")}) for _ in "ab"]
    try:
        numbers = [r.json()[POSIX]["uidNumber"] for r in made]
        assert numbers == [LOW, LOW + 1]
        state = client.app.state  # type: ignore[attr-defined]
        ids = IdAllocator(state.directory, state.settings.posix, state.settings.ldap.base_dn)
        with state.directory.session() as session:
            ids.release(session, LOW)
        assert counter(ldap, pool_dn) == LOW + 2
    finally:
        delete_quietly(client, *(r.json()["id"] for r in made))
