"""Concurrent creates spread over two server processes sharing one directory."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from ldap3 import Connection

from app.ldap.sandbox import Sandbox
from tests.api.helpers import CORE, POSIX, entry, unique
from tests.conftest import TOKEN
from tests.servers import serving

CREATES = 50
LOW = 36000


@pytest.fixture
def pool_dn(sandbox: Sandbox, ldap: Connection) -> Iterator[str]:
    dn = f"cn={unique('concurrent')},{sandbox.directory.counters_dn}"
    yield dn
    ldap.delete(dn)


@pytest.fixture
def servers(sandbox: Sandbox, pool_dn: str) -> Iterator[list[str]]:
    """Two ``python -m app serve`` processes allocating from the same counter."""
    env = {
        **sandbox.directory.environment(),
        "SCIM_LDAP_AUTH__TOKENS": json.dumps([TOKEN]),
        "SCIM_LDAP_POSIX__UID_RANGE": json.dumps([LOW, LOW + 999]),
        "SCIM_LDAP_POSIX__ID_POOL_DN": pool_dn,
        "SCIM_LDAP_LOG_LEVEL": "warning",
    }
    with serving([env, env]) as urls:
        yield [f"{url}/scim/v2" for url in urls]


def test_concurrent_creates_on_two_servers_get_distinct_numbers(
    servers: list[str], ldap: Connection
) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    clients = [httpx.Client(base_url=url, headers=headers, timeout=60) for url in servers]
    prefix = unique("c")

    def create(index: int) -> httpx.Response:
        body = {"schemas": [CORE, POSIX], "userName": f"{prefix}{index}", POSIX: {}}
        return clients[index % 2].post("/Users", json=body)

    try:
        with ThreadPoolExecutor(max_workers=CREATES) as threads:
            responses = list(threads.map(create, range(CREATES)))
        assert [r.status_code for r in responses] == [201] * CREATES, [
            r.text for r in responses if r.status_code != 201
        ]
        users = [r.json() for r in responses]
        numbers = sorted(u[POSIX]["uidNumber"] for u in users)
        assert numbers == list(range(LOW, LOW + CREATES))
        for user in users[:: CREATES // 5]:
            stored = entry(ldap, user["id"])
            assert stored is not None
            assert stored["uidNumber"] == [str(user[POSIX]["uidNumber"])]
    finally:
        ids = [r.json()["id"] for r in responses if r.status_code == 201]
        with ThreadPoolExecutor(max_workers=8) as threads:
            deleted = list(
                threads.map(lambda i: clients[i % 2].delete(f"/Users/{ids[i]}"), range(len(ids)))
            )
        for client in clients:
            client.close()
    assert [r.status_code for r in deleted] == [204] * len(ids)


def test_concurrent_creates_with_one_explicit_number_give_one_account(
    servers: list[str], ldap: Connection, sandbox: Sandbox
) -> None:
    """The ``unique`` overlay decides: the check before the add cannot, between two servers."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    clients = [httpx.Client(base_url=url, headers=headers, timeout=60) for url in servers]
    prefix = unique("same")
    number = LOW + 900

    def create(index: int) -> httpx.Response:
        body = {
            "schemas": [CORE, POSIX],
            "userName": f"{prefix}{index}",
            POSIX: {"uidNumber": number},
        }
        return clients[index % 2].post("/Users", json=body)

    try:
        with ThreadPoolExecutor(max_workers=CREATES) as threads:
            responses = list(threads.map(create, range(CREATES)))
        statuses = sorted(r.status_code for r in responses)
        assert statuses == [201] + [409] * (CREATES - 1), [r.text for r in responses]
        for response in responses:
            if response.status_code == 409:
                assert response.json()["scimType"] == "uniqueness"
                assert str(number) in response.json()["detail"]
        ldap.search(sandbox.directory.base_dn, f"(uidNumber={number})", attributes=["1.1"])
        assert len(ldap.entries) == 1
    finally:
        for response in responses:
            if response.status_code == 201:
                clients[0].delete(f"/Users/{response.json()['id']}")
        for client in clients:
            client.close()
