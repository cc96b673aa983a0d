"""GET /Users and POST /.search with sortBy and sortOrder (RFC 7644 §3.4.2.3).

Every order is checked on the three ways a page is read (pages.py): one plain
search sorted in Python, the directory's sort with a virtual list view, and
the walk of a directory without VLV.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.ldap.sandbox import Sandbox
from app.main import create_app
from tests.api.helpers import (
    POSIX,
    USERS,
    assert_error,
    delete_quietly,
    new_user,
    uid_number,
    unique,
)
from tests.conftest import TOKEN, make_settings

SEARCH_REQUEST = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
UID_NUMBER = f"{POSIX}:uidNumber"
PATHS = ("small", "vlv", "walk")


@dataclass
class Sorted:
    """Five users sharing ``tag`` at the start of their userName, by their short names."""

    tag: str
    ids: dict[str, str]
    uid_numbers: dict[str, int]

    def of(self, *names: str) -> list[str]:
        return [self.ids[name] for name in names]


@pytest.fixture(scope="module")
def people(client: TestClient) -> Iterator[Sorted]:
    """Created one second apart (createTimestamp has seconds), not in login order.

    ``u4`` and ``u1`` have family names equal but for case (a tie broken by
    login); ``u2`` and ``u5`` have no familyName, so their ``sn`` is the templated
    default, their login (``s...``, after ``beta``), which is what the directory sorts
    by; ``u2`` and ``u5`` have uidNumbers of five digits, the others six or
    more, so a lexicographic sort would put them last.
    """
    tag = unique("s")
    low = 90000 + random.randrange(4000)
    specs: dict[str, dict[str, Any]] = {
        "u3": {"userName": f"{tag}d@example.com", "name": {"familyName": "alpha"}},
        "u1": {
            "userName": f"{tag}c@example.com",
            "displayName": "delta",
            "name": {"familyName": "Beta"},
            "emails": [{"type": "work", "value": f"b.{tag}@example.com"}],
        },
        "u5": {"userName": f"{tag}e@example.com", "displayName": "Alpha"},
        "u2": {
            "userName": f"{tag}A@example.com",
            "displayName": "Charlie",
            "emails": [{"type": "work", "value": f"C.{tag}@example.com"}],
        },
        "u4": {
            "userName": f"{tag}B@example.com",
            "displayName": "bravo",
            "name": {"familyName": "beta"},
            "emails": [{"type": "work", "value": f"a.{tag}@example.com"}],
        },
    }
    numbers = {"u2": low, "u5": low + 5000}
    ids: dict[str, str] = {}
    try:
        for index, (name, spec) in enumerate(specs.items()):
            if index:
                time.sleep(1.05)
            number = numbers.setdefault(name, uid_number())
            user_name = spec.pop("userName")
            ids[name] = new_user(client, user_name, **spec, **{POSIX: {"uidNumber": number}})["id"]
        yield Sorted(tag, ids, numbers)
    finally:
        delete_quietly(client, *ids.values())


@pytest.fixture(scope="module")
def paths(sandbox: Sandbox) -> Iterator[dict[str, TestClient]]:
    """A client per way of reading a page: the plain search, VLV, and the walk."""
    clients: dict[str, TestClient] = {}
    try:
        for path in PATHS:
            app = create_app(make_settings(sandbox.directory))
            pages = app.state.users.users.pages
            if path != "small":
                pages.small_search = 0
            if path == "walk":
                pages._vlv = False
            client = TestClient(app, headers={"Authorization": f"Bearer {TOKEN}"})
            client.__enter__()
            clients[path] = client
        yield clients
    finally:
        for client in clients.values():
            client.__exit__(None, None, None)


def listed(client: TestClient, people: Sorted, **params: Any) -> list[str]:
    params.setdefault("filter", f'userName sw "{people.tag}"')
    response = client.get(USERS, params={"count": 100, **params})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["totalResults"] == len(body["Resources"])
    return [r["id"] for r in body["Resources"]]


ORDERS = {
    "userName": ("u2", "u4", "u1", "u3", "u5"),
    "displayName": ("u5", "u4", "u2", "u1", "u3"),
    "name.familyName": ("u3", "u4", "u1", "u2", "u5"),
    "emails.value": ("u4", "u1", "u2", "u3", "u5"),
    'emails[type eq "work"].value': ("u4", "u1", "u2", "u3", "u5"),
    "emails": ("u4", "u1", "u2", "u3", "u5"),
    "meta.created": ("u3", "u1", "u5", "u2", "u4"),
}
"""Ascending orders: values case-insensitively, ties and missing values (last) by login."""

DESCENDING = {
    "userName": ("u5", "u3", "u1", "u4", "u2"),
    "displayName": ("u3", "u1", "u2", "u4", "u5"),
    "name.familyName": ("u5", "u2", "u4", "u1", "u3"),
    "emails.value": ("u3", "u5", "u2", "u1", "u4"),
    "meta.created": ("u4", "u2", "u5", "u1", "u3"),
}
"""Descending orders: missing values first, ties still by login ascending (as slapd does)."""


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("sort_by", sorted(ORDERS))
def test_ascending(paths: dict[str, TestClient], people: Sorted, path: str, sort_by: str) -> None:
    expected = people.of(*ORDERS[sort_by])
    assert listed(paths[path], people, sortBy=sort_by) == expected
    assert listed(paths[path], people, sortBy=sort_by, sortOrder="ascending") == expected


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("sort_by", sorted(DESCENDING))
def test_descending(paths: dict[str, TestClient], people: Sorted, path: str, sort_by: str) -> None:
    expected = people.of(*DESCENDING[sort_by])
    assert listed(paths[path], people, sortBy=sort_by, sortOrder="descending") == expected


@pytest.mark.parametrize("path", PATHS)
def test_integers_sort_by_value(paths: dict[str, TestClient], people: Sorted, path: str) -> None:
    by_number = sorted(people.ids, key=lambda name: people.uid_numbers[name])
    assert by_number[:2] == ["u2", "u5"]
    assert listed(paths[path], people, sortBy=UID_NUMBER) == people.of(*by_number)
    assert listed(paths[path], people, sortBy=UID_NUMBER, sortOrder="descending") == people.of(
        *reversed(by_number)
    )


@pytest.mark.parametrize("path", PATHS)
def test_names_and_orders_are_case_insensitive(
    paths: dict[str, TestClient], people: Sorted, path: str
) -> None:
    expected = people.of(*DESCENDING["displayName"])
    for sort_by, sort_order in (("DISPLAYNAME", "Descending"), ("displayname", "DESCENDING")):
        assert listed(paths[path], people, sortBy=sort_by, sortOrder=sort_order) == expected
    expected = people.of(*ORDERS["name.familyName"])
    assert listed(paths[path], people, sortBy="NAME.FAMILYNAME") == expected


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(
    ("sort_by", "sort_order"),
    [("displayName", "descending"), (UID_NUMBER, "ascending"), ("name.familyName", "descending")],
)
def test_pages_follow_the_order(
    paths: dict[str, TestClient], people: Sorted, path: str, sort_by: str, sort_order: str
) -> None:
    client = paths[path]
    whole = listed(client, people, sortBy=sort_by, sortOrder=sort_order)
    for count in (1, 2, 3):
        seen: list[str] = []
        for start in range(1, len(whole) + 1, count):
            response = client.get(
                USERS,
                params={
                    "filter": f'userName sw "{people.tag}"',
                    "sortBy": sort_by,
                    "sortOrder": sort_order,
                    "startIndex": start,
                    "count": count,
                },
            )
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["totalResults"] == len(whole)
            seen.extend(r["id"] for r in body["Resources"])
        assert seen == whole


@pytest.mark.parametrize("path", PATHS)
def test_sort_with_a_filter(paths: dict[str, TestClient], people: Sorted, path: str) -> None:
    found = listed(
        paths[path],
        people,
        filter=f'userName sw "{people.tag}" and displayName pr',
        sortBy="displayName",
        sortOrder="descending",
    )
    assert found == people.of("u1", "u2", "u4", "u5")


@pytest.mark.parametrize("path", PATHS)
def test_sort_order_alone_is_ignored(
    paths: dict[str, TestClient], people: Sorted, path: str
) -> None:
    by_login = people.of(*ORDERS["userName"])
    assert listed(paths[path], people) == by_login
    assert listed(paths[path], people, sortOrder="descending") == by_login
    assert listed(paths[path], people, sortOrder="sideways") == by_login
    assert listed(paths[path], people, sortBy="", sortOrder="descending") == by_login


def test_unfiltered_listing_sorts(client: TestClient, people: Sorted) -> None:
    """Without a filter every page is read from the directory's sort (VLV)."""
    for sort_order in ("ascending", "descending"):
        response = client.get(
            USERS, params={"sortBy": "meta.created", "sortOrder": sort_order, "count": 10}
        )
        assert response.status_code == 200, response.text
        created = [r["meta"]["created"] for r in response.json()["Resources"]]
        assert len(created) >= len(people.ids)
        assert created == sorted(created, reverse=sort_order == "descending")


@pytest.mark.parametrize(
    "sort_by",
    [
        "nickName",
        "noSuchAttribute",
        "name",
        "meta.location",
        "meta",
        "password",
        "emails.display",
        'emails[value eq "x"].value',
        "userName[",
        "user Name",
        "urn:example:unknown:2.0:User:thing",
    ],
)
def test_unknown_or_unmapped_sort_by(client: TestClient, sort_by: str) -> None:
    body = assert_error(client.get(USERS, params={"sortBy": sort_by}), 400, "invalidValue")
    assert "sortBy" in body["detail"]


def test_unsortable_attribute_names_it(client: TestClient) -> None:
    """``active`` is a boolean: its directory attribute has no ordering rule."""
    body = assert_error(client.get(USERS, params={"sortBy": "active"}), 400, "invalidValue")
    assert "scimActive" in body["detail"]


@pytest.mark.parametrize("sort_order", ["up", "asc", "descending!", "1"])
def test_bad_sort_order(client: TestClient, sort_order: str) -> None:
    response = client.get(USERS, params={"sortBy": "userName", "sortOrder": sort_order})
    body = assert_error(response, 400, "invalidValue")
    assert "sortOrder" in body["detail"]


@pytest.mark.parametrize("path", PATHS)
def test_search_request_sorts(paths: dict[str, TestClient], people: Sorted, path: str) -> None:
    response = paths[path].post(
        f"{USERS}/.search",
        json={
            "schemas": [SEARCH_REQUEST],
            "filter": f'userName sw "{people.tag}"',
            "sortBy": "emails.value",
            "sortOrder": "descending",
        },
    )
    assert response.status_code == 200, response.text
    assert [r["id"] for r in response.json()["Resources"]] == people.of(*DESCENDING["emails.value"])


@pytest.mark.parametrize(
    "body", [{"sortBy": ["userName"]}, {"sortBy": "userName", "sortOrder": 1}, {"sortBy": "x y"}]
)
def test_search_request_bad_sort(client: TestClient, body: dict[str, Any]) -> None:
    response = client.post(f"{USERS}/.search", json={"schemas": [SEARCH_REQUEST], **body})
    assert_error(response, 400, "invalidValue")
