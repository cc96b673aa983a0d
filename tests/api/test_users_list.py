"""GET /Users: filters (RFC 7644 §3.4.2.2), paging (§3.4.2.4) and projections (§3.4.2.5)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from ldap3 import LEVEL, Connection

from app.ldap.accounts import ACCOUNT_FILTER
from app.ldap.sandbox import Sandbox
from app.main import create_app
from tests.api.helpers import (
    ENTERPRISE,
    LIST_RESPONSE,
    POSIX,
    USERS,
    assert_error,
    delete_quietly,
    new_user,
    uid_number,
    unique,
)
from tests.conftest import TOKEN, make_settings

PAGED = 25


@dataclass
class People:
    """Users with distinct values, all sharing ``tag`` at the start of their userName."""

    tag: str
    alice: dict[str, Any]
    bob: dict[str, Any]
    carol: dict[str, Any]

    def ids(self, *names: str) -> set[str]:
        return {getattr(self, name)["id"] for name in names}


@pytest.fixture(scope="module")
def people(client: TestClient) -> Iterator[People]:
    tag = unique("f")
    alice = new_user(
        client,
        f"{tag}.Alice@Contoso.com",
        externalId=f"Ext-{tag}",
        displayName="Alice",
        title="Engineer",
        name={"givenName": "Alice", "familyName": f"Zed{tag}"},
        emails=[{"type": "work", "value": f"{tag}.alice@example.com"}],
        **{POSIX: {"uidNumber": uid_number()}},
    )
    bob = new_user(
        client,
        f"{tag}.bob",
        active="False",
        name={"familyName": f"Young{tag}"},
        emails=[{"type": "work", "value": f"{tag}.bob@example.net"}],
        phoneNumbers=[{"type": "mobile", "value": f"+{tag}"}],
        **{ENTERPRISE: {"employeeNumber": f"E{tag}"}},
    )
    carol = new_user(client, f"{tag}.carol@contoso.com", title="Boss")
    yield People(tag, alice, bob, carol)
    delete_quietly(client, alice["id"], bob["id"], carol["id"])


def found(client: TestClient, filter_text: str, **params: Any) -> set[str]:
    response = client.get(USERS, params={"filter": filter_text, **params})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/scim+json")
    body = response.json()
    assert body["schemas"] == [LIST_RESPONSE]
    assert body["totalResults"] == len(body["Resources"])
    return {r["id"] for r in body["Resources"]}


def mine(client: TestClient, people: People, filter_text: str) -> set[str]:
    """Matches of ``filter_text`` among the fixture's users only."""
    return found(client, f'userName sw "{people.tag}" and ({filter_text})')


# ---- Entra's probes and matching filters


def test_probe_with_random_guid(client: TestClient, people: People) -> None:
    for attribute in ("userName", "externalId", 'emails[type eq "work"].value'):
        response = client.get(USERS, params={"filter": f'{attribute} eq "{uuid.uuid4()}"'})
        assert response.status_code == 200, response.text
        assert response.json() == {
            "schemas": [LIST_RESPONSE],
            "totalResults": 0,
            "itemsPerPage": 0,
            "startIndex": 1,
            "Resources": [],
        }


def test_unknown_query_parameters_are_ignored(client: TestClient, people: People) -> None:
    name = quote(people.alice["userName"], safe="")
    response = client.get(f'{USERS}?aadOptscim062020&filter=userName+eq+"{name}"')
    assert response.status_code == 200, response.text
    assert [r["id"] for r in response.json()["Resources"]] == [people.alice["id"]]


def test_user_name_eq_is_case_insensitive(client: TestClient, people: People) -> None:
    for variant in (
        people.alice["userName"],
        people.alice["userName"].lower(),
        people.alice["userName"].upper(),
    ):
        assert found(client, f'userName eq "{variant}"') == people.ids("alice")
    assert found(client, f'userName eq "{people.bob["userName"].upper()}"') == people.ids("bob")


def test_user_name_eq_does_not_match_the_login(client: TestClient, people: People) -> None:
    login = people.alice["userName"].split("@")[0].lower()
    assert found(client, f'userName eq "{login}"') == set()


def test_external_id_eq_is_case_sensitive(client: TestClient, people: People) -> None:
    assert found(client, f'externalId eq "Ext-{people.tag}"') == people.ids("alice")
    assert found(client, f'externalId eq "ext-{people.tag}"') == set()


def test_work_email_value_path(client: TestClient, people: People) -> None:
    email = f"{people.tag}.alice@example.com"
    assert found(client, f'emails[type eq "work"].value eq "{email}"') == people.ids("alice")
    assert found(client, f'emails[type eq "WORK"].value eq "{email.upper()}"') == people.ids(
        "alice"
    )
    assert found(client, f'emails[type eq "home"].value eq "{email}"') == set()
    assert found(client, f'emails[value eq "{email}"]') == people.ids("alice")


def test_substring_operators(client: TestClient, people: People) -> None:
    assert found(client, f'emails.value co "{people.tag}"') == people.ids("alice", "bob")
    assert found(client, f'emails co "{people.tag}.bob@"') == people.ids("bob")
    assert found(client, f'name.familyName sw "zed{people.tag}"') == people.ids("alice")
    assert found(client, f'emails.value ew "{people.tag}.bob@example.net"') == people.ids("bob")
    assert found(client, f'userName sw "{people.tag}"') == people.ids("alice", "bob", "carol")
    assert found(client, f'phoneNumbers[type eq "mobile"].value eq "+{people.tag}"') == (
        people.ids("bob")
    )


def test_logical_operators(client: TestClient, people: People) -> None:
    assert mine(client, people, 'title eq "Engineer" or title eq "Boss"') == people.ids(
        "alice", "carol"
    )
    assert mine(client, people, "not (title pr)") == people.ids("bob")
    assert mine(client, people, 'title pr and not (title eq "boss")') == people.ids("alice")
    assert mine(client, people, '(title eq "Boss" or emails pr) and active eq true') == people.ids(
        "alice", "carol"
    )
    assert mine(client, people, 'userName ne "x" and not (userName co ".alice")') == people.ids(
        "bob", "carol"
    )
    assert mine(client, people, 'title eq "Boss" and title eq "Engineer"') == set()


def test_id_eq(client: TestClient, people: People) -> None:
    assert found(client, f'id eq "{people.carol["id"]}"') == people.ids("carol")
    assert found(client, f'id eq "{people.carol["id"].upper()}"') == people.ids("carol")
    assert found(client, 'id eq "not-a-uuid"') == set()
    assert mine(client, people, f'id ne "{people.carol["id"]}"') == people.ids("alice", "bob")


def test_meta_last_modified(client: TestClient, people: People) -> None:
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert mine(client, people, f'meta.lastModified gt "{past}"') == people.ids(
        "alice", "bob", "carol"
    )
    assert mine(client, people, f'meta.lastModified gt "{future}"') == set()
    assert mine(client, people, f'meta.created lt "{future}"') == people.ids(
        "alice", "bob", "carol"
    )
    assert_error(
        client.get(USERS, params={"filter": 'meta.lastModified gt "yesterday"'}),
        400,
        "invalidFilter",
    )


def test_active(client: TestClient, people: People) -> None:
    assert mine(client, people, "active eq false") == people.ids("bob")
    assert mine(client, people, 'active eq "False"') == people.ids("bob")
    assert mine(client, people, "active eq true") == people.ids("alice", "carol")
    assert mine(client, people, "active ne false") == people.ids("alice", "carol")


def test_posix_and_enterprise_extensions(client: TestClient, people: People) -> None:
    number = people.alice[POSIX]["uidNumber"]
    assert found(client, f"{POSIX}:uidNumber eq {number}") == people.ids("alice")
    between = f"{POSIX}:uidNumber gt {number - 1} and {POSIX}:uidNumber lt {number + 1}"
    assert found(client, between) == people.ids("alice")
    assert mine(client, people, f"{POSIX}:uidNumber ge {number}") >= people.ids("alice")
    assert mine(client, people, f"{POSIX}:uidNumber le {number - 1}").isdisjoint(
        people.ids("alice")
    )
    assert found(client, f'{POSIX}:uidNumber eq "{number}"') == people.ids("alice")
    assert found(client, f'{ENTERPRISE}:employeeNumber eq "E{people.tag}"') == people.ids("bob")
    assert_error(
        client.get(USERS, params={"filter": f'{POSIX}:uidNumber eq "abc"'}), 400, "invalidFilter"
    )


def test_names_and_operators_are_case_insensitive(client: TestClient, people: People) -> None:
    name = people.carol["userName"]
    assert found(client, f'USERNAME eq "{name}"') == people.ids("carol")
    assert found(client, f'username EQ "{name}"') == people.ids("carol")
    assert found(client, f"{POSIX.upper()}:UIDNUMBER eq {people.carol[POSIX]['uidNumber']}") == (
        people.ids("carol")
    )


@pytest.mark.parametrize(
    "filter_text",
    [
        'nickName eq "x"',
        'noSuchAttribute eq "x"',
        'urn:example:params:scim:schemas:Other:2.0:User:x eq "x"',
        f'{ENTERPRISE}:manager eq "x"',
        'groups eq "x"',
        'name eq "x"',
        "title eq null",
        "userName eq 5",
        'active eq "maybe"',
        'id gt "x"',
        'title gt "a"',
        'userName ge "a"',
    ],
)
def test_unsupported_attribute_is_invalid_filter(client: TestClient, filter_text: str) -> None:
    assert_error(client.get(USERS, params={"filter": filter_text}), 400, "invalidFilter")


@pytest.mark.parametrize(
    "filter_text",
    [
        "userName eq",
        'userName eq "x" and',
        'userName xx "x"',
        '(userName eq "x"',
        'userName eq "x")',
        'userName eq "unterminated',
        'emails[type eq "work"',
        "userName eq alice bob",
    ],
)
def test_syntax_error_is_invalid_filter(client: TestClient, filter_text: str) -> None:
    assert_error(client.get(USERS, params={"filter": filter_text}), 400, "invalidFilter")


def test_unquoted_value_of_older_entra_examples(client: TestClient, people: People) -> None:
    alice = people.alice
    response = client.get(USERS, params={"filter": f"userName eq {alice['userName']}"})
    assert response.status_code == 200, response.text
    assert [r["id"] for r in response.json()["Resources"]] == [alice["id"]]


def test_always_present_attributes(client: TestClient, people: People) -> None:
    everyone = people.ids("alice", "bob", "carol")
    assert mine(client, people, "id pr") == everyone
    assert mine(client, people, "meta.lastModified pr and title pr") == people.ids("alice", "carol")
    assert mine(client, people, "not (id pr)") == set()


def test_empty_filter_lists_everyone(client: TestClient, people: People) -> None:
    response = client.get(USERS, params={"filter": " ", "count": "0"})
    assert response.status_code == 200
    assert response.json()["totalResults"] >= 3


# ---- paging


@pytest.fixture(scope="module")
def paged(client: TestClient) -> Iterator[tuple[str, list[str]]]:
    """PAGED users whose userNames start with one prefix; their ids in login order."""
    prefix = unique("pg")
    created = [new_user(client, f"{prefix}{i:02d}@example.com") for i in range(PAGED)]
    yield prefix, [u["id"] for u in created]
    delete_quietly(client, *(u["id"] for u in created))


@pytest.fixture(scope="module")
def small_client(sandbox: Sandbox) -> Iterator[TestClient]:
    """An app serving at most 5 users a page, so listings take the VLV path."""
    app = create_app(make_settings(sandbox.directory, max_page_size=5))
    with TestClient(app, headers={"Authorization": f"Bearer {TOKEN}"}) as test_client:
        yield test_client


def page(client: TestClient, prefix: str, **params: Any) -> dict[str, Any]:
    response = client.get(USERS, params={"filter": f'userName sw "{prefix}"', **params})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["itemsPerPage"] == len(body["Resources"])
    return body


@pytest.mark.parametrize("which", ["default", "small"])
def test_pages_cover_everyone_once(
    client: TestClient,
    small_client: TestClient,
    paged: tuple[str, list[str]],
    which: str,
) -> None:
    prefix, ids = paged
    http = client if which == "default" else small_client
    seen: list[str] = []
    for start in range(1, PAGED + 1, 4):
        body = page(http, prefix, startIndex=start, count=4)
        assert body["totalResults"] == PAGED
        assert body["startIndex"] == start
        assert body["itemsPerPage"] == min(4, PAGED - start + 1)
        seen.extend(r["id"] for r in body["Resources"])
    assert seen == ids


@pytest.mark.parametrize("which", ["default", "small"])
def test_count_zero_and_beyond_the_end(
    client: TestClient,
    small_client: TestClient,
    paged: tuple[str, list[str]],
    which: str,
) -> None:
    prefix, _ids = paged
    http = client if which == "default" else small_client
    body = page(http, prefix, count=0)
    assert body["totalResults"] == PAGED
    assert body["Resources"] == []
    for start in (PAGED + 1, PAGED + 100):
        body = page(http, prefix, startIndex=start, count=3)
        assert body["totalResults"] == PAGED
        assert body["Resources"] == []
        assert body["startIndex"] == start
    body = page(http, prefix, startIndex=PAGED, count=3)
    assert body["itemsPerPage"] == 1


def test_count_is_capped(small_client: TestClient, paged: tuple[str, list[str]]) -> None:
    prefix, ids = paged
    body = page(small_client, prefix, count=1000)
    assert body["totalResults"] == PAGED
    assert [r["id"] for r in body["Resources"]] == ids[:5]
    body = page(small_client, prefix)
    assert body["itemsPerPage"] == 5
    body = page(small_client, prefix, startIndex=21, count=50)
    assert [r["id"] for r in body["Resources"]] == ids[20:25]


def test_default_page(client: TestClient, paged: tuple[str, list[str]]) -> None:
    prefix, ids = paged
    body = page(client, prefix)
    assert body["startIndex"] == 1
    assert [r["id"] for r in body["Resources"]] == ids


def test_out_of_range_parameters(client: TestClient, paged: tuple[str, list[str]]) -> None:
    prefix, ids = paged
    body = page(client, prefix, startIndex=0, count=2)
    assert body["startIndex"] == 1
    assert [r["id"] for r in body["Resources"]] == ids[:2]
    body = page(client, prefix, startIndex=-5, count=-1)
    assert body["totalResults"] == PAGED
    assert body["Resources"] == []
    for params in ({"startIndex": "x"}, {"count": "1.5"}):
        assert_error(client.get(USERS, params=params), 400, "invalidValue")


@pytest.mark.parametrize("which", ["default", "small"])
def test_unfiltered_listing(
    client: TestClient,
    small_client: TestClient,
    ldap: Connection,
    sandbox: Sandbox,
    paged: tuple[str, list[str]],
    which: str,
) -> None:
    http = client if which == "default" else small_client
    ldap.search(sandbox.directory.users_dn, ACCOUNT_FILTER, LEVEL, attributes=["1.1"])
    total = len(ldap.response)
    body = http.get(USERS, params={"count": "0"}).json()
    assert body["totalResults"] == total
    assert body["Resources"] == []
    first = http.get(USERS, params={"count": "3"}).json()
    assert first["totalResults"] == total
    assert first["itemsPerPage"] == 3
    logins = [r["userName"].split("@")[0].lower() for r in first["Resources"]]
    assert logins == sorted(logins)


# ---- projections


def test_attributes_projection(client: TestClient, people: People) -> None:
    response = client.get(
        USERS,
        params={"filter": f'id eq "{people.alice["id"]}"', "attributes": "userName"},
    )
    resource = response.json()["Resources"][0]
    assert set(resource) == {"schemas", "id", "userName"}
    assert resource["userName"] == people.alice["userName"]

    fetched = client.get(
        f"{USERS}/{people.alice['id']}",
        params={"attributes": f"emails.value,name.givenName,{POSIX}:uidNumber"},
    ).json()
    assert set(fetched) == {"schemas", "id", "emails", "name", POSIX}
    assert fetched["emails"] == [{"value": f"{people.tag}.alice@example.com"}]
    assert fetched["name"] == {"givenName": "Alice"}
    assert fetched[POSIX] == {"uidNumber": people.alice[POSIX]["uidNumber"]}


def test_excluded_attributes_projection(client: TestClient, people: People) -> None:
    response = client.get(
        USERS,
        params={"filter": f'id eq "{people.alice["id"]}"', "excludedAttributes": "emails"},
    )
    resource = response.json()["Resources"][0]
    assert "emails" not in resource
    expected = {k: v for k, v in people.alice.items() if k != "emails"}
    assert resource == expected

    fetched = client.get(
        f"{USERS}/{people.bob['id']}",
        params={"excludedAttributes": f"id,userName,{ENTERPRISE}"},
    ).json()
    assert fetched["id"] == people.bob["id"]
    assert "userName" not in fetched
    assert ENTERPRISE not in fetched
    assert ENTERPRISE not in fetched["schemas"]
    assert fetched[POSIX] == people.bob[POSIX]
