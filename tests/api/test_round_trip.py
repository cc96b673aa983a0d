"""The round-trip contract of the User document.

Every attribute of the RFC 7643 User (§4.1) and enterprise extension (§4.3), and
every element of the multi-valued ones with its ``type``, ``primary`` and
``display``, comes back as it was written. Values the mapping stores in LDAP
attributes live there (the work e-mail in ``mail``...); the rest is kept in
``scimUnmapped``. ``primary`` is true for at most one element (RFC 7643 §2.4).

The documented normalisations, and no others:

- ``password`` is write-only: never answered (RFC 7643 §4.1.1);
- ``manager`` gains ``$ref``, the URL of the manager (RFC 7643 §4.3);
- booleans sent as strings (``"True"``) come back as JSON booleans (ENTRA.md §2);
- a ``primary`` true that another element took over comes back false (RFC 7643 §2.4);
- an element left with nothing but ``type`` and ``primary`` is dropped;
- a lone value of a multi-valued attribute comes back as a list (``badge`` is stored in
  employeeType, multi-valued in LDAP, so /Schemas announces it multi-valued);
- names come back spelt as the schema spells them (``EMAILS`` -> ``emails``).
"""

from __future__ import annotations

import copy
import itertools
import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from ldap3 import Connection

from app.config import UserSettings
from app.ldap.sandbox import Sandbox
from app.main import create_app
from tests.api.helpers import (
    CORE,
    ENTERPRISE,
    POSIX,
    USERS,
    delete_quietly,
    entry,
    patch,
    uid_number,
    unique,
)
from tests.conftest import TOKEN, make_settings

ACME = "urn:ietf:params:scim:schemas:extension:acme:2.0:User"
BADGE = f"{ACME}:badge"
CERTIFICATE = "MIIBszCCAVmgAwIBAgIUQ2VydGlmaWNhdGUgb2YgdGhlIHRlc3Q="
SERVER_KEYS = ("id", "meta", "schemas")

Document = dict[str, Any]


def _client(sandbox: Sandbox, users: UserSettings) -> Iterator[TestClient]:
    settings = make_settings(sandbox.directory)
    settings.users = users
    with TestClient(create_app(settings), headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        yield client


@pytest.fixture(scope="module")
def acme(sandbox: Sandbox) -> Iterator[TestClient]:
    """The default settings, with the custom extension attribute ``badge`` in employeeType."""
    yield from _client(sandbox, UserSettings(mapping={BADGE: "employeeType"}))


@pytest.fixture(scope="module")
def bare(sandbox: Sandbox) -> Iterator[TestClient]:
    """The same, keeping no unmapped values (``users.unmapped_attribute = ""``)."""
    yield from _client(
        sandbox, UserSettings(mapping={BADGE: "employeeType"}, unmapped_attribute="")
    )


@pytest.fixture(scope="module")
def managers(acme: TestClient) -> Iterator[list[str]]:
    """Two users to be managers."""
    ids = []
    for _ in range(2):
        response = acme.post(
            USERS,
            json={"schemas": [CORE], "userName": f"{unique('boss')}@example.com"},
        )
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    yield ids
    delete_quietly(acme, *ids)


def rich_body(manager: str) -> Document:
    """A user with every attribute of RFC 7643 §4.1 and §4.3, and a custom one."""
    login = unique("rich.")
    return {
        "schemas": [CORE, ENTERPRISE, POSIX, ACME],
        "userName": f"{login}@example.com",
        "externalId": f"ext-{login}",
        "name": {
            "formatted": "Ms. Barbara J Jensen, III",
            "familyName": "Jensen",
            "givenName": "Barbara",
            "middleName": "Jane",
            "honorificPrefix": "Ms.",
            "honorificSuffix": "III",
        },
        "displayName": "Babs Jensen",
        "nickName": "Babs",
        "profileUrl": "https://login.example.com/bjensen",
        "title": "Tour Guide",
        "userType": "Employee",
        "preferredLanguage": "en-US",
        "locale": "en-US",
        "timezone": "America/Los_Angeles",
        "active": True,
        "password": "t1meMa$heen",
        "emails": [
            {"value": f"{login}@example.com", "type": "work", "primary": True, "display": "Work"},
            {"value": f"{login}@home.example", "type": "home", "display": "Home mail"},
        ],
        "phoneNumbers": [
            {"value": "+1 555 555 5555", "type": "work", "primary": True},
            {"value": "+1 555 555 4444", "type": "mobile", "display": "Mobile"},
            {"value": "+1 555 555 3333", "type": "fax"},
        ],
        "ims": [{"value": "someaimhandle", "type": "aim", "primary": True, "display": "AIM"}],
        "photos": [
            {
                "value": "https://photos.example.com/profilephoto/72930000000Ccne/F",
                "type": "photo",
                "primary": True,
                "display": "Portrait",
            }
        ],
        "addresses": [
            {
                "type": "work",
                "formatted": "100 Universal City Plaza\nHollywood, CA 91608 USA",
                "streetAddress": "100 Universal City Plaza",
                "locality": "Hollywood",
                "region": "CA",
                "postalCode": "91608",
                "country": "USA",
                "primary": True,
            },
            {
                "type": "home",
                "formatted": "456 Hollywood Blvd\nHollywood, CA 91608 USA",
                "streetAddress": "456 Hollywood Blvd",
                "locality": "Hollywood",
                "region": "CA",
                "postalCode": "91608",
                "country": "USA",
            },
        ],
        "entitlements": [
            {"value": "vpn", "type": "network", "primary": True, "display": "VPN access"}
        ],
        "roles": [{"value": "guide", "type": "job", "primary": True, "display": "Guide"}],
        "x509Certificates": [
            {"value": CERTIFICATE, "type": "signing", "primary": True, "display": "Signing"}
        ],
        ENTERPRISE: {
            "employeeNumber": "701984",
            "costCenter": "4130",
            "organization": "Universal Studios",
            "division": "Theme Park",
            "department": "Tour Operations",
            "manager": {"value": manager},
        },
        POSIX: {"uidNumber": uid_number()},
        ACME: {"badge": ["B-1234"]},
    }


def user_url(client: TestClient, user_id: str) -> str:
    return f"{client.base_url}{USERS}/{user_id}"


def expected_of(client: TestClient, sent: Document) -> Document:
    """What GET answers for a body sent: the body with the documented normalisations."""
    doc = {k: copy.deepcopy(v) for k, v in sent.items() if k not in (*SERVER_KEYS, "password")}
    manager = doc.get(ENTERPRISE, {}).get("manager")
    if manager:
        manager["$ref"] = user_url(client, manager["value"])
    return doc


def document(client: TestClient, user_id: str) -> Document:
    """The user as GET answers it, without id, meta and schemas."""
    response = client.get(f"{USERS}/{user_id}")
    assert response.status_code == 200, response.text
    body: Document = response.json()
    assert "password" not in body
    declared = set(body["schemas"])
    assert declared == {CORE, *(k for k in body if k.startswith("urn:"))}, body["schemas"]
    return {k: v for k, v in body.items() if k not in SERVER_KEYS}


def create(client: TestClient, body: Document) -> str:
    response = client.post(USERS, json=body)
    assert response.status_code == 201, response.text
    user_id: str = response.json()["id"]
    return user_id


def raw_of(ldap: Connection, user_id: str) -> dict[str, list[str]]:
    raw = entry(ldap, user_id)
    assert raw is not None
    return raw


# ---- 1. POST then GET


def test_rich_user_round_trips(
    acme: TestClient, ldap: Connection, managers: list[str], sandbox: Sandbox
) -> None:
    body = rich_body(managers[0])
    user_id = create(acme, body)
    try:
        assert document(acme, user_id) == expected_of(acme, body)
        response = acme.get(f"{USERS}/{user_id}")
        assert set(response.json()["schemas"]) == {CORE, ENTERPRISE, POSIX, ACME}

        raw = raw_of(ldap, user_id)
        manager_dn = raw_of(ldap, managers[0])["dn"][0]
        login = body["userName"].split("@")[0]
        mapped = {
            "scimUserName": body["userName"],
            "scimExternalId": body["externalId"],
            "displayName": "Babs Jensen",
            "givenName": "Barbara",
            "sn": "Jensen",
            "scimFormattedName": "Ms. Barbara J Jensen, III",
            "title": "Tour Guide",
            "preferredLanguage": "en-US",
            "mail": f"{login}@example.com",
            "telephoneNumber": "+1 555 555 5555",
            "mobile": "+1 555 555 4444",
            "facsimileTelephoneNumber": "+1 555 555 3333",
            "street": "100 Universal City Plaza",
            "l": "Hollywood",
            "st": "CA",
            "postalCode": "91608",
            "co": "USA",
            "employeeNumber": "701984",
            "departmentNumber": "Tour Operations",
            "manager": manager_dn,
            "employeeType": "B-1234",
            "uidNumber": str(body[POSIX]["uidNumber"]),
            "scimActive": "TRUE",
        }
        assert {name: raw.get(name) for name in mapped} == {
            name: [value] for name, value in mapped.items()
        }
        assert raw["userPassword"][0] != body["password"], "stored hashed"

        text = raw["scimUnmapped"][0]
        assert body["password"] not in text
        rest = json.loads(text)
        assert not {"userName", "externalId", "displayName", "title", "preferredLanguage"} & set(
            rest
        ), "mapped values are not stored twice"
        assert set(rest["name"]) == {"middleName", "honorificPrefix", "honorificSuffix"}
        assert "value" not in rest["emails"][0]
        assert all("value" not in p for p in rest.get("phoneNumbers", []))
        assert set(rest["addresses"][0]) == {"type", "formatted", "primary"}
        assert not {"employeeNumber", "department", "manager"} & set(rest[ENTERPRISE])
        assert ACME not in rest
        assert rest["nickName"] == "Babs"
        assert rest["emails"][1] == body["emails"][1]
        assert rest["addresses"][1] == body["addresses"][1]
        assert rest["addresses"][0]["formatted"] == body["addresses"][0]["formatted"]
        assert rest[ENTERPRISE]["costCenter"] == "4130"
        for name in ("ims", "photos", "entitlements", "roles", "x509Certificates"):
            assert rest[name] == body[name]
    finally:
        delete_quietly(acme, user_id)


def test_normalisations(acme: TestClient, managers: list[str]) -> None:
    """Booleans as strings, a bare manager id, string integers, a lone value of a
    multi-valued attribute: the canonical form."""
    body = rich_body(managers[0])
    body["active"] = "True"
    body["emails"][0]["primary"] = "True"
    body["roles"][0]["primary"] = "true"
    body[ENTERPRISE]["manager"] = managers[0]
    body[POSIX]["uidNumber"] = str(body[POSIX]["uidNumber"])
    body[ACME]["badge"] = "B-1234"
    user_id = create(acme, body)
    try:
        expected = expected_of(acme, rich_body(managers[0]))
        got = document(acme, user_id)
        expected["userName"] = body["userName"]
        expected["externalId"] = body["externalId"]
        expected["emails"] = copy.deepcopy(body["emails"])
        expected["emails"][0]["primary"] = True
        expected[POSIX]["uidNumber"] = int(body[POSIX]["uidNumber"])
        assert got == expected
    finally:
        delete_quietly(acme, user_id)


PHONES = [
    {"value": "+1 555 0100", "type": "work"},
    {"value": "+1 555 0101", "type": "mobile", "primary": True},
    {"value": "+1 555 0102", "type": "fax"},
    {"value": "+1 555 0103", "type": "pager"},
]


@pytest.mark.parametrize(
    "order",
    list(itertools.permutations(range(4))),
    ids=lambda o: "-".join(PHONES[i]["type"] for i in o),
)
def test_element_order_round_trips(acme: TestClient, order: tuple[int, ...]) -> None:
    """Mapped (work, mobile, fax) and unmapped (pager) elements come back in the order sent."""
    body = {
        "schemas": [CORE, POSIX],
        "userName": f"{unique('order.')}@example.com",
        POSIX: {"uidNumber": uid_number()},
        "phoneNumbers": [PHONES[i] for i in order],
        "addresses": [
            {"type": "home", "locality": "Bellevue"},
            {"type": "work", "locality": "Redmond"},
        ],
    }
    user_id = create(acme, body)
    try:
        assert document(acme, user_id) == expected_of(acme, body)
    finally:
        delete_quietly(acme, user_id)


@pytest.mark.parametrize(
    "emails",
    [
        [{"value": "a@example.com"}, {"value": "b@example.com"}],
        [{"value": "a@example.com", "display": "A"}, {"value": "b@example.com", "type": "home"}],
        [{"value": "h@example.com", "type": "home"}, {"value": "a@example.com"}],
        [{"value": "a@example.com", "type": "Work"}, {"value": "h@example.com", "type": "home"}],
        [{"value": "h@example.com", "type": "HOME"}, {"value": "a@example.com", "type": "WORK"}],
        [{"value": "a@example.com", "primary": True}],
    ],
    ids=["untyped", "untyped-display", "untyped-last", "Work", "WORK-last", "untyped-primary"],
)
def test_elements_keep_their_type(acme: TestClient, emails: list[Document]) -> None:
    """An element without type, or with a type in other case, comes back as sent, though
    its value is the one the work e-mail's attribute (mail) holds."""
    body = {
        "schemas": [CORE, POSIX],
        "userName": f"{unique('type.')}@example.com",
        POSIX: {"uidNumber": uid_number()},
        "emails": emails,
    }
    user_id = create(acme, body)
    try:
        assert document(acme, user_id) == expected_of(acme, body)
    finally:
        delete_quietly(acme, user_id)


# ---- 2. PATCH each attribute, in both dialects

_FILTERED = re.compile(r'^(?P<attr>\w+)\[type eq "(?P<type>\w+)"\](?:\.(?P<sub>\w+))?$')


def _locate(doc: Document, path: str) -> tuple[Document, str]:
    if path.startswith("urn:"):
        urn, _, name = path.rpartition(":")
        return doc.setdefault(urn, {}), name
    return doc, path


def set_path(doc: Document, path: str, value: Any) -> None:
    """Write a value at a path of an expected document, as the contract says."""
    container, name = _locate(doc, path)
    found = _FILTERED.match(name)
    if found:
        elements = container.setdefault(found["attr"], [])
        element = next((e for e in elements if e.get("type") == found["type"]), None)
        if element is None:
            element = {"type": found["type"]}
            elements.append(element)
        element[found["sub"]] = value
    elif "." in name:
        attr, sub = name.split(".")
        container.setdefault(attr, {})[sub] = value
    else:
        container[name] = value


def remove_path(doc: Document, path: str) -> None:
    """Remove a path from an expected document; what is left empty (or hollow) goes too."""
    container, name = _locate(doc, path)
    found = _FILTERED.match(name)
    if found:
        elements = container.get(found["attr"], [])
        for element in elements:
            if element.get("type") == found["type"]:
                element.pop(found["sub"], None)
        kept = [e for e in elements if not set(e) <= {"type", "primary"}]
        if kept:
            container[found["attr"]] = kept
        else:
            container.pop(found["attr"], None)
    elif "." in name:
        attr, sub = name.split(".")
        container.get(attr, {}).pop(sub, None)
        if not container.get(attr):
            container.pop(attr, None)
    else:
        container.pop(name, None)
    for key in [k for k, v in doc.items() if k.startswith("urn:") and not v]:
        doc.pop(key)


SINGLE = [
    ("displayName", "Barbara Jensen", "B. Jensen"),
    ("nickName", "Barb", "BJ"),
    ("profileUrl", "https://example.com/b", "https://example.com/bj"),
    ("title", "Senior Guide", "Head Guide"),
    ("userType", "Contractor", "Intern"),
    ("preferredLanguage", "fr-FR", "de-DE"),
    ("locale", "fr-FR", "de-DE"),
    ("timezone", "Europe/Paris", "Europe/Berlin"),
    ("externalId", "ext-1", "ext-2"),
    ("name.formatted", "Barbara Jensen", "B. Jensen"),
    ("name.familyName", "Jansen", "Johnson"),
    ("name.givenName", "Barb", "Babette"),
    ("name.middleName", "J.", "Joy"),
    ("name.honorificPrefix", "Dr.", "Prof."),
    ("name.honorificSuffix", "Jr.", "Sr."),
    ('emails[type eq "work"].value', "w1@example.com", "w2@example.com"),
    ('emails[type eq "home"].value', "h1@example.com", "h2@example.com"),
    ('emails[type eq "work"].display', "Office", "Desk"),
    ('phoneNumbers[type eq "work"].value', "+1 555 0001", "+1 555 0002"),
    ('phoneNumbers[type eq "mobile"].value', "+1 555 0003", "+1 555 0004"),
    ('phoneNumbers[type eq "fax"].value', "+1 555 0005", "+1 555 0006"),
    ('addresses[type eq "work"].streetAddress', "1 Main St", "2 Main St"),
    ('addresses[type eq "work"].locality', "Redmond", "Seattle"),
    ('addresses[type eq "work"].region', "WA", "OR"),
    ('addresses[type eq "work"].postalCode', "98052", "98101"),
    ('addresses[type eq "work"].country', "US", "CA"),
    ('addresses[type eq "work"].formatted', "1 Main St, Redmond", "2 Main St, Seattle"),
    ('addresses[type eq "home"].locality', "Bellevue", "Kirkland"),
    ('ims[type eq "aim"].value', "aim2", "aim3"),
    ('roles[type eq "job"].display', "Lead", "Head"),
    (f"{ENTERPRISE}:employeeNumber", "1001", "1002"),
    (f"{ENTERPRISE}:costCenter", "5000", "6000"),
    (f"{ENTERPRISE}:organization", "Acme", "Globex"),
    (f"{ENTERPRISE}:division", "North", "South"),
    (f"{ENTERPRISE}:department", "Sales", "Support"),
    (BADGE, ["B-1"], ["B-2"]),
    (f"{POSIX}:loginShell", "/bin/zsh", "/bin/sh"),
    (f"{POSIX}:gecos", "Barbara", "Babs"),
]

Step = tuple[str, dict[str, Any], Callable[[Document], None]]


def legacy_steps(path: str, first: Any, second: Any) -> list[Step]:
    """Capitalised ops, path-less value objects whose keys are paths."""
    return [
        ("Remove", {"op": "Remove", "path": path}, lambda d: remove_path(d, path)),
        ("Add", {"op": "Add", "value": {path: first}}, lambda d: set_path(d, path, first)),
        (
            "Replace",
            {"op": "Replace", "value": {path: second}},
            lambda d: set_path(d, path, second),
        ),
        ("Clear", {"op": "Replace", "value": {path: ""}}, lambda d: remove_path(d, path)),
    ]


def compliant_steps(path: str, first: Any, second: Any) -> list[Step]:
    """Lower-case ops with paths."""
    return [
        ("remove", {"op": "remove", "path": path}, lambda d: remove_path(d, path)),
        ("add", {"op": "add", "path": path, "value": first}, lambda d: set_path(d, path, first)),
        (
            "replace",
            {"op": "replace", "path": path, "value": second},
            lambda d: set_path(d, path, second),
        ),
    ]


def legacy_path_steps(path: str, first: Any, second: Any) -> list[Step]:
    """Capitalised ops with paths, as ENTRA.md §2 shows the legacy dialect too."""
    return [
        (name.capitalize(), {**operation, "op": operation["op"].capitalize()}, change)
        for name, operation, change in compliant_steps(path, first, second)
    ]


DIALECTS = {"legacy": legacy_steps, "legacy-path": legacy_path_steps, "compliant": compliant_steps}


MAPPED = {
    "displayName": "displayName",
    "title": "title",
    "preferredLanguage": "preferredLanguage",
    "externalId": "scimExternalId",
    "name.formatted": "scimFormattedName",
    "name.familyName": "sn",
    "name.givenName": "givenName",
    'emails[type eq "work"].value': "mail",
    'phoneNumbers[type eq "work"].value': "telephoneNumber",
    'phoneNumbers[type eq "mobile"].value': "mobile",
    'phoneNumbers[type eq "fax"].value': "facsimileTelephoneNumber",
    'addresses[type eq "work"].streetAddress': "street",
    'addresses[type eq "work"].locality': "l",
    'addresses[type eq "work"].region': "st",
    'addresses[type eq "work"].postalCode': "postalCode",
    'addresses[type eq "work"].country': "co",
    f"{ENTERPRISE}:employeeNumber": "employeeNumber",
    f"{ENTERPRISE}:department": "departmentNumber",
    BADGE: "employeeType",
    f"{POSIX}:loginShell": "loginShell",
    f"{POSIX}:gecos": "gecos",
}
"""The paths of SINGLE the default mapping (and the badge) store in an LDAP attribute."""


def get_path(doc: Document, path: str) -> Any:
    container, name = _locate(copy.deepcopy(doc), path)
    found = _FILTERED.match(name)
    if found:
        elements = container.get(found["attr"], [])
        return next((e.get(found["sub"]) for e in elements if e["type"] == found["type"]), None)
    if "." in name:
        attr, sub = name.split(".")
        return container.get(attr, {}).get(sub)
    return container.get(name)


def run_steps(
    client: TestClient,
    user_id: str,
    expected: Document,
    steps: list[Step],
    check: Callable[[Document], None] | None = None,
) -> None:
    for name, operation, change in steps:
        response = patch(client, user_id, operation)
        assert response.status_code == 200, f"{name}: {response.text}"
        change(expected)
        answered = {k: v for k, v in response.json().items() if k not in SERVER_KEYS}
        assert answered == expected, f"{name} answered"
        assert document(client, user_id) == expected, f"after {name}"
        if check is not None:
            check(expected)


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize(("path", "first", "second"), SINGLE, ids=[s[0] for s in SINGLE])
def test_patch_each_attribute(
    acme: TestClient,
    ldap: Connection,
    managers: list[str],
    dialect: str,
    path: str,
    first: Any,
    second: Any,
) -> None:
    """After each step GET answers the expected document, and a mapped value is in its
    LDAP attribute and not in scimUnmapped."""
    body = rich_body(managers[0])
    user_id = create(acme, body)

    def stored(doc: Document) -> None:
        raw = raw_of(ldap, user_id)
        value = get_path(doc, path)
        rest = json.loads(raw["scimUnmapped"][0])
        if path in MAPPED:
            values = value if isinstance(value, list) else [value]
            if value is not None:
                assert raw.get(MAPPED[path]) == values
            elif MAPPED[path] not in ("sn", "loginShell"):
                assert MAPPED[path] not in raw, "removed"
            assert get_path(rest, path) is None, "a mapped value is not stored twice"
        else:
            assert get_path(rest, path) == value

    try:
        steps = DIALECTS[dialect](path, first, second)
        run_steps(acme, user_id, expected_of(acme, body), steps, stored)
    finally:
        delete_quietly(acme, user_id)


@pytest.mark.parametrize("dialect", ["legacy", "compliant"])
def test_patch_manager(acme: TestClient, managers: list[str], dialect: str) -> None:
    body = rich_body(managers[0])
    user_id = create(acme, body)
    path = f"{ENTERPRISE}:manager"

    def to(manager: str) -> Callable[[Document], None]:
        def change(doc: Document) -> None:
            doc[ENTERPRISE]["manager"] = {
                "value": manager,
                "$ref": user_url(acme, manager),
            }

        return change

    def gone(doc: Document) -> None:
        doc[ENTERPRISE].pop("manager")

    if dialect == "legacy":
        steps: list[Step] = [
            ("Remove", {"op": "Remove", "path": path}, gone),
            ("Add", {"op": "Add", "value": {path: managers[1]}}, to(managers[1])),
            (
                "Replace",
                {"op": "Replace", "value": {path: {"value": managers[0]}}},
                to(managers[0]),
            ),
            ("Clear", {"op": "Replace", "value": {path: {"value": ""}}}, gone),
        ]
    else:
        steps = [
            ("remove", {"op": "remove", "path": path}, gone),
            ("add", {"op": "add", "path": path, "value": {"value": managers[1]}}, to(managers[1])),
            (
                "replace",
                {"op": "replace", "path": f"{path}.value", "value": managers[0]},
                to(managers[0]),
            ),
            ("clear", {"op": "replace", "path": path, "value": ""}, gone),
        ]
    try:
        run_steps(acme, user_id, expected_of(acme, body), steps)
    finally:
        delete_quietly(acme, user_id)


@pytest.mark.parametrize("dialect", ["legacy", "compliant"])
def test_patch_active_and_password(
    acme: TestClient, ldap: Connection, managers: list[str], dialect: str
) -> None:
    body = rich_body(managers[0])
    user_id = create(acme, body)

    def active(value: bool) -> Callable[[Document], None]:
        return lambda doc: doc.update(active=value)

    def same(doc: Document) -> None:
        return None

    hashed = raw_of(ldap, user_id)["userPassword"]
    op = "Replace" if dialect == "legacy" else "replace"
    false = "False" if dialect == "legacy" else False
    steps: list[Step] = [
        ("deactivate", {"op": op, "path": "active", "value": false}, active(False)),
        ("activate", {"op": op, "value": {"active": "True"}}, active(True)),
        ("password", {"op": op, "path": "password", "value": "n3w-Pa$$word"}, same),
    ]
    try:
        run_steps(acme, user_id, expected_of(acme, body), steps)
        raw = raw_of(ldap, user_id)
        assert raw["userPassword"] != hashed
        assert "n3w-Pa$$word" not in raw["scimUnmapped"][0]
    finally:
        delete_quietly(acme, user_id)


MULTI = {
    "emails": ({"value": "o@example.net", "type": "other", "display": "Other"}, "value"),
    "phoneNumbers": ({"value": "+1 555 0009", "type": "pager", "display": "Pager"}, "value"),
    "ims": ({"value": "xmpp-handle", "type": "xmpp", "display": "Jabber"}, "value"),
    "photos": ({"value": "https://photos.example.com/t", "type": "thumbnail"}, "value"),
    "addresses": ({"type": "other", "locality": "Burbank", "country": "USA"}, "locality"),
    "entitlements": ({"value": "wifi", "type": "radio", "display": "Wi-Fi"}, "value"),
    "roles": ({"value": "driver", "type": "vehicle", "display": "Driver"}, "value"),
    "x509Certificates": ({"value": "TUlJQ2FnbWVudA==", "type": "encryption"}, "value"),
}


@pytest.mark.parametrize("dialect", ["legacy", "compliant"])
@pytest.mark.parametrize("attr", MULTI)
def test_patch_elements(acme: TestClient, managers: list[str], dialect: str, attr: str) -> None:
    """Add an element, remove it by value, replace them all, remove the attribute."""
    body = rich_body(managers[0])
    user_id = create(acme, body)
    element, key = MULTI[attr]
    original = copy.deepcopy(body[attr])

    def appended(doc: Document) -> None:
        doc[attr] = [*doc[attr], element]

    def restored(doc: Document) -> None:
        doc[attr] = copy.deepcopy(original)

    def only(doc: Document) -> None:
        doc[attr] = [element]

    def gone(doc: Document) -> None:
        doc.pop(attr, None)

    if dialect == "legacy":
        steps: list[Step] = [
            ("Add", {"op": "Add", "value": {attr: [element]}}, appended),
            ("Remove", {"op": "Remove", "path": attr, "value": [{key: element[key]}]}, restored),
            ("Replace", {"op": "Replace", "value": {attr: [element]}}, only),
            ("Remove all", {"op": "Remove", "path": attr}, gone),
        ]
    else:
        steps = [
            ("add", {"op": "add", "path": attr, "value": [element]}, appended),
            ("remove", {"op": "remove", "path": f'{attr}[{key} eq "{element[key]}"]'}, restored),
            ("replace", {"op": "replace", "path": attr, "value": [element]}, only),
            ("remove all", {"op": "remove", "path": attr}, gone),
        ]
    try:
        run_steps(acme, user_id, expected_of(acme, body), steps)
    finally:
        delete_quietly(acme, user_id)


@pytest.mark.parametrize("dialect", ["legacy", "compliant"])
def test_patch_filtered_element(acme: TestClient, managers: list[str], dialect: str) -> None:
    """Filtered paths naming whole elements: ``emails[type eq "home"]``."""
    body = rich_body(managers[0])
    user_id = create(acme, body)
    home = {"value": "new@home.example", "display": "New home"}
    path = 'emails[type eq "home"]'

    def merged(doc: Document) -> None:
        doc["emails"][1].update(home)

    def dropped(doc: Document) -> None:
        doc["emails"] = doc["emails"][:1]

    def back(doc: Document) -> None:
        doc["emails"].append({"type": "home", **home})

    ops = ("Replace", "Remove", "Add") if dialect == "legacy" else ("replace", "remove", "add")
    steps: list[Step] = [
        ("replace", {"op": ops[0], "path": path, "value": home}, merged),
        ("remove", {"op": ops[1], "path": path}, dropped),
        ("add", {"op": ops[2], "path": path, "value": home}, back),
    ]
    try:
        run_steps(acme, user_id, expected_of(acme, body), steps)
    finally:
        delete_quietly(acme, user_id)


# ---- 3. primary stays unique


@pytest.mark.parametrize("attr", MULTI)
def test_primary_moves_on_patch(acme: TestClient, managers: list[str], attr: str) -> None:
    body = rich_body(managers[0])
    user_id = create(acme, body)
    element = {**MULTI[attr][0], "primary": True}
    try:
        response = patch(acme, user_id, {"op": "add", "path": attr, "value": [element]})
        assert response.status_code == 200, response.text
        expected = expected_of(acme, body)
        expected[attr] = [*expected[attr], element]
        expected[attr][0]["primary"] = False
        assert document(acme, user_id) == expected
        assert [e.get("primary") for e in document(acme, user_id)[attr]].count(True) == 1
    finally:
        delete_quietly(acme, user_id)


PRIMARY_HOME = {
    "filtered": {"op": "replace", "path": 'emails[type eq "home"].primary', "value": True},
    "legacy": {"op": "Replace", "value": {'emails[type eq "home"].primary': "True"}},
    "merged": {"op": "add", "path": "emails", "value": [{"type": "home", "primary": True}]},
    "legacy-merged": {"op": "Add", "value": {"emails": [{"type": "home", "primary": "True"}]}},
    "element": {"op": "replace", "path": 'emails[type eq "home"]', "value": {"primary": True}},
}


@pytest.mark.parametrize("operation", PRIMARY_HOME.values(), ids=PRIMARY_HOME)
def test_primary_moves_to_an_existing_element(
    acme: TestClient, managers: list[str], operation: dict[str, Any]
) -> None:
    body = rich_body(managers[0])
    user_id = create(acme, body)
    try:
        response = patch(acme, user_id, operation)
        assert response.status_code == 200, response.text
        expected = expected_of(acme, body)
        expected["emails"][0]["primary"] = False
        expected["emails"][1]["primary"] = True
        assert document(acme, user_id) == expected
    finally:
        delete_quietly(acme, user_id)


@pytest.mark.parametrize("attr", MULTI)
def test_primary_unique_in_post(acme: TestClient, managers: list[str], attr: str) -> None:
    """Two elements sent with primary true: the last one written keeps it."""
    body = rich_body(managers[0])
    body[attr] = [*body[attr], {**MULTI[attr][0], "primary": "True"}]
    user_id = create(acme, body)
    try:
        got = document(acme, user_id)[attr]
        assert [e.get("primary") for e in got] == [
            False,
            *[e.get("primary") for e in rich_body(managers[0])[attr][1:]],
            True,
        ]
    finally:
        delete_quietly(acme, user_id)


# ---- 4. PUT replaces everything


def test_put_replaces_everything(acme: TestClient, ldap: Connection, managers: list[str]) -> None:
    body = rich_body(managers[0])
    user_id = create(acme, body)
    number = body[POSIX]["uidNumber"]
    smaller = {
        "schemas": [CORE],
        "userName": body["userName"],
        "name": {"givenName": "Barbara"},
        "emails": [{"value": "only@example.com", "type": "home", "primary": True}],
        "roles": [{"value": "guide"}],
    }
    try:
        response = acme.put(f"{USERS}/{user_id}", json=smaller)
        assert response.status_code == 200, response.text
        expected = expected_of(acme, smaller)
        expected[POSIX] = {"uidNumber": number}
        expected["active"] = True
        assert document(acme, user_id) == expected, "the uidNumber and active are kept"
        raw = raw_of(ldap, user_id)
        for gone in ("mail", "mobile", "street", "l", "employeeNumber", "manager", "employeeType"):
            assert gone not in raw, gone
        rest = json.loads(raw["scimUnmapped"][0])
        assert set(rest) <= {"emails", "roles"}, rest
    finally:
        delete_quietly(acme, user_id)


# ---- 5. No unmapped attribute


def test_without_unmapped_attribute(
    bare: TestClient, ldap: Connection, managers: list[str]
) -> None:
    body = rich_body(managers[0])
    user_id = create(bare, body)
    login = body["userName"].split("@")[0]
    try:
        work = body["addresses"][0]
        expected = {
            "userName": body["userName"],
            "externalId": body["externalId"],
            "active": True,
            "displayName": "Babs Jensen",
            "name": {
                "formatted": "Ms. Barbara J Jensen, III",
                "familyName": "Jensen",
                "givenName": "Barbara",
            },
            "title": "Tour Guide",
            "preferredLanguage": "en-US",
            "emails": [{"type": "work", "value": f"{login}@example.com"}],
            "phoneNumbers": [
                {"type": "work", "value": "+1 555 555 5555"},
                {"type": "mobile", "value": "+1 555 555 4444"},
                {"type": "fax", "value": "+1 555 555 3333"},
            ],
            "addresses": [
                {
                    "type": "work",
                    **{
                        k: work[k]
                        for k in ("streetAddress", "locality", "region", "postalCode", "country")
                    },
                }
            ],
            ENTERPRISE: {
                "employeeNumber": "701984",
                "department": "Tour Operations",
                "manager": {"value": managers[0], "$ref": user_url(bare, managers[0])},
            },
            POSIX: {"uidNumber": body[POSIX]["uidNumber"]},
            ACME: {"badge": ["B-1234"]},
        }
        assert document(bare, user_id) == expected
        response = patch(bare, user_id, {"op": "add", "path": "nickName", "value": "Babs"})
        assert response.status_code == 200, response.text
        assert document(bare, user_id) == expected
        assert "scimUnmapped" not in raw_of(ldap, user_id)

        response = bare.get("/scim/v2/Schemas")
        assert response.status_code == 200, response.text
        announced = {
            s["id"]: {a["name"]: a for a in s["attributes"]} for s in response.json()["Resources"]
        }
        core = announced[CORE]
        assert set(core) == {
            "userName",
            "externalId",
            "active",
            "password",
            "displayName",
            "name",
            "title",
            "preferredLanguage",
            "emails",
            "phoneNumbers",
            "addresses",
        }
        assert {a["name"] for a in core["name"]["subAttributes"]} == {
            "formatted",
            "familyName",
            "givenName",
        }
        assert {a["name"] for a in core["emails"]["subAttributes"]} == {"value", "type"}
        assert set(announced[ENTERPRISE]) == {"employeeNumber", "department", "manager"}
        assert set(announced[ACME]) == {"badge"}
    finally:
        delete_quietly(bare, user_id)


# ---- 6. Letter case


def test_names_in_other_case(acme: TestClient, managers: list[str]) -> None:
    login = unique("case.")
    body: Document = {
        "SCHEMAS": [CORE],
        "USERNAME": f"{login}@example.com",
        "EMAILS": [
            {"Value": f"{login}@example.com", "Type": "work", "PRIMARY": True},
            {"VALUE": f"{login}@home.example", "TYPE": "home", "Display": "Home"},
        ],
        "Name": {"GivenName": "Barbara", "FAMILYNAME": "Jensen", "middlename": "Jane"},
        "nickname": "Babs",
        ENTERPRISE.upper(): {"DEPARTMENT": "Tours", "CostCenter": "4130"},
        "Roles": [{"VALUE": "guide", "Primary": "true"}],
    }
    response = acme.post(USERS, json=body)
    assert response.status_code == 201, response.text
    user_id = response.json()["id"]
    try:
        expected: Document = {
            "userName": f"{login}@example.com",
            "emails": [
                {"value": f"{login}@example.com", "type": "work", "primary": True},
                {"value": f"{login}@home.example", "type": "home", "display": "Home"},
            ],
            "name": {"givenName": "Barbara", "familyName": "Jensen", "middleName": "Jane"},
            "nickName": "Babs",
            ENTERPRISE: {"department": "Tours", "costCenter": "4130"},
            "roles": [{"value": "guide", "primary": True}],
        }
        assert {k: v for k, v in document(acme, user_id).items() if k != POSIX} == expected
        response = patch(
            acme,
            user_id,
            {"op": "Replace", "path": 'EMAILS[TYPE eq "home"].VALUE', "value": "x@home.example"},
            {"op": "Replace", "value": {"NAME.GIVENNAME": "Babs", "NickName": "B"}},
            {"op": "add", "path": f"{ENTERPRISE.upper()}:Division", "value": "Park"},
        )
        assert response.status_code == 200, response.text
        expected["emails"][1]["value"] = "x@home.example"
        expected["name"]["givenName"] = "Babs"
        expected["nickName"] = "B"
        expected[ENTERPRISE]["division"] = "Park"
        assert {k: v for k, v in document(acme, user_id).items() if k != POSIX} == expected
    finally:
        delete_quietly(acme, user_id)
