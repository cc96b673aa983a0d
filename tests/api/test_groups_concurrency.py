"""Concurrent writes to groups: members of one group from many threads, creates on two servers.

Adding or removing a member is one modify of that value alone, so concurrent
PATCHes of one group do not overwrite each other; gidNumbers come from one
compare-and-swap counter, so two server processes never hand out the same one;
the directory refuses the second entry of one name, so two servers creating
the same displayName at once give one group.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from ldap3 import BASE, Connection

from app.ldap.sandbox import Sandbox
from tests.api.helpers import PATCH_OP, delete_quietly, new_user, unique
from tests.conftest import TOKEN
from tests.servers import serving

GROUPS = "/scim/v2/Groups"
CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
POSIX_GROUP = "urn:ietf:params:scim:schemas:extension:posix:2.0:Group"
THREADS = 20
CREATES = 10
"""Groups each server process creates."""
LOW = 93000
HIGH = LOW + 99


def member_values(ldap: Connection, group_id: str) -> dict[str, set[str]]:
    """The raw memberUid and member values of the group (member DNs lower-cased)."""
    ldap.search("dc=example,dc=org", f"(entryUUID={group_id})", attributes=["1.1"])
    assert ldap.entries, group_id
    dn = str(ldap.entries[0].entry_dn)
    ldap.search(dn, "(objectClass=*)", BASE, attributes=["memberUid", "member"])
    found = ldap.entries[0].entry_attributes_as_dict
    return {
        "memberUid": {str(v) for v in found.get("memberUid", [])},
        "member": {str(v).lower() for v in found.get("member", [])},
    }


def shown_members(client: TestClient, group_id: str) -> set[str]:
    response = client.get(f"{GROUPS}/{group_id}")
    assert response.status_code == 200, response.text
    return {m["value"] for m in response.json().get("members", [])}


def login_and_dn(ldap: Connection, user_id: str) -> tuple[str, str]:
    ldap.search("dc=example,dc=org", f"(entryUUID={user_id})", attributes=["uid"])
    assert ldap.entries, user_id
    found = ldap.entries[0]
    return str(found.uid), str(found.entry_dn).lower()


@pytest.fixture
def group(client: TestClient) -> Iterator[dict[str, Any]]:
    response = client.post(
        GROUPS, json={"schemas": [CORE_GROUP], "displayName": f"Crowd {unique()}"}
    )
    assert response.status_code == 201, response.text
    made: dict[str, Any] = response.json()
    yield made
    client.delete(f"{GROUPS}/{made['id']}")


@pytest.fixture
def people(client: TestClient) -> Iterator[list[dict[str, Any]]]:
    made = [new_user(client) for _ in range(THREADS)]
    yield made
    delete_quietly(client, *(m["id"] for m in made))


def patch_in_parallel(
    client: TestClient, group_id: str, operation: Callable[[str], dict[str, Any]], ids: list[str]
) -> None:
    """One PATCH per id, all at once (one thread each), each with ``operation(id)``."""

    def send(member_id: str) -> httpx.Response:
        body = {"schemas": [PATCH_OP], "Operations": [operation(member_id)]}
        response: httpx.Response = client.patch(f"{GROUPS}/{group_id}", json=body)
        return response

    with ThreadPoolExecutor(max_workers=len(ids)) as threads:
        responses = list(threads.map(send, ids))
    assert [r.status_code for r in responses] == [204] * len(ids), [
        r.text for r in responses if r.status_code != 204
    ]


def test_concurrent_patches_add_and_remove_every_member(
    client: TestClient, ldap: Connection, group: dict[str, Any], people: list[dict[str, Any]]
) -> None:
    ids = [p["id"] for p in people]
    expected = [login_and_dn(ldap, i) for i in ids]

    patch_in_parallel(
        client,
        group["id"],
        lambda i: {"op": "add", "path": "members", "value": [{"value": i}]},
        ids,
    )
    assert shown_members(client, group["id"]) == set(ids)
    assert member_values(ldap, group["id"]) == {
        "memberUid": {login for login, _ in expected},
        "member": {dn for _, dn in expected},
    }

    patch_in_parallel(
        client,
        group["id"],
        lambda i: {"op": "Remove", "path": "members", "value": [{"value": i}]},
        ids,
    )
    assert shown_members(client, group["id"]) == set()
    assert member_values(ldap, group["id"]) == {"memberUid": set(), "member": set()}


def test_concurrent_patches_by_filter_remove_every_member(
    client: TestClient, ldap: Connection, group: dict[str, Any], people: list[dict[str, Any]]
) -> None:
    """The other dialect of removal: ``members[value eq "<id>"]``, one PATCH per member."""
    ids = [p["id"] for p in people]
    body = {
        "schemas": [PATCH_OP],
        "Operations": [{"op": "add", "path": "members", "value": [{"value": i} for i in ids]}],
    }
    assert client.patch(f"{GROUPS}/{group['id']}", json=body).status_code == 204
    patch_in_parallel(
        client, group["id"], lambda i: {"op": "remove", "path": f'members[value eq "{i}"]'}, ids
    )
    assert shown_members(client, group["id"]) == set()
    assert member_values(ldap, group["id"]) == {"memberUid": set(), "member": set()}


@pytest.fixture
def pool_dn(sandbox: Sandbox, ldap: Connection) -> Iterator[str]:
    dn = f"cn={unique('gids')},{sandbox.directory.counters_dn}"
    yield dn
    ldap.delete(dn)


@pytest.fixture
def servers(sandbox: Sandbox, pool_dn: str) -> Iterator[list[httpx.Client]]:
    """Two ``python -m app serve`` processes allocating gidNumbers from one counter."""
    env = {
        **sandbox.directory.environment(),
        "SCIM_LDAP_AUTH__TOKENS": json.dumps([TOKEN]),
        "SCIM_LDAP_GROUPS__GID_RANGE": json.dumps([LOW, HIGH]),
        "SCIM_LDAP_GROUPS__ID_POOL_DN": pool_dn,
        "SCIM_LDAP_LOG_LEVEL": "warning",
    }
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with serving([env, env]) as urls:
        clients = [
            httpx.Client(base_url=f"{url}/scim/v2", headers=headers, timeout=60) for url in urls
        ]
        try:
            yield clients
        finally:
            for client in clients:
                client.close()


def delete_groups(clients: list[httpx.Client], responses: list[httpx.Response]) -> None:
    for response in responses:
        if response.status_code == 201:
            deleted = clients[0].delete(f"/Groups/{response.json()['id']}")
            assert deleted.status_code == 204, deleted.text


def test_concurrent_group_creates_on_two_servers_get_distinct_gid_numbers(
    servers: list[httpx.Client], ldap: Connection
) -> None:
    prefix = unique("Team ")

    def create(index: int) -> httpx.Response:
        body = {"schemas": [CORE_GROUP], "displayName": f"{prefix} {index}"}
        return servers[index % 2].post("/Groups", json=body)

    responses: list[httpx.Response] = []
    try:
        with ThreadPoolExecutor(max_workers=2 * CREATES) as threads:
            responses = list(threads.map(create, range(2 * CREATES)))
        assert [r.status_code for r in responses] == [201] * (2 * CREATES), [
            r.text for r in responses if r.status_code != 201
        ]
        numbers = [r.json()[POSIX_GROUP]["gidNumber"] for r in responses]
        assert len(set(numbers)) == len(numbers), sorted(numbers)
        assert all(LOW <= n <= HIGH for n in numbers), sorted(numbers)
        for response in responses:
            ldap.search(
                "dc=example,dc=org",
                f"(entryUUID={response.json()['id']})",
                attributes=["gidNumber"],
            )
            assert [str(v) for v in ldap.entries[0].gidNumber.values] == [
                str(response.json()[POSIX_GROUP]["gidNumber"])
            ]
    finally:
        delete_groups(servers, responses)


@pytest.mark.parametrize("attempt", range(3))
def test_same_display_name_on_two_servers_at_once_gives_one_group(
    servers: list[httpx.Client], ldap: Connection, attempt: int
) -> None:
    display_name = f"Twins {unique()} {attempt}"
    body = {"schemas": [CORE_GROUP], "displayName": display_name}
    responses: list[httpx.Response] = []
    try:
        with ThreadPoolExecutor(max_workers=2) as threads:
            responses = list(threads.map(lambda c: c.post("/Groups", json=body), servers))
        assert sorted(r.status_code for r in responses) == [201, 409], [r.text for r in responses]
        refused = next(r for r in responses if r.status_code == 409)
        assert refused.json()["scimType"] == "uniqueness"
        ldap.search(
            "dc=example,dc=org",
            f"(&(objectClass=scimGroup)(displayName={display_name}))",
            attributes=["1.1"],
        )
        assert len(ldap.entries) == 1
    finally:
        delete_groups(servers, responses)
