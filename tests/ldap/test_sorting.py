"""The Python order of sorting.py against slapd's server-side sort (RFC 2891, sssvlv)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from ldap3 import LEVEL, Connection, Server

from app.ldap.connection import Directory
from app.ldap.controls import sort_control
from app.ldap.sandbox import Sandbox, SandboxDirectory
from app.ldap.sorting import Order, attribute_order
from app.ldap.subschema import Subschema

PEOPLE: dict[str, dict[str, object]] = {
    "a": {"title": "Zeta", "displayName": "bob", "description": ["m", "b", "y"]},
    "b": {"title": "alpha", "displayName": "Alice", "description": ["c", "z"]},
    "c": {"displayName": "  carl  x", "telephoneNumber": "+1 555 3"},
    "d": {"title": "Beta", "description": ["d"], "displayName": "\uff22"},
    "e": {"title": "beta", "displayName": "\u00c5lice"},
    "f": {"displayName": "carl y", "telephoneNumber": "+1 555-22"},
    "g": {"displayName": "\ufb01x"},
    "h": {},
}


@pytest.fixture(scope="module")
def listing(sandbox_directory: SandboxDirectory) -> Iterator[tuple[Connection, str]]:
    directory = sandbox_directory
    conn = Connection(
        Server(directory.url, get_info="NO_INFO"),
        directory.admin_dn,
        directory.admin_password,
        auto_bind=True,
        raise_exceptions=False,
    )
    name = f"sorting-{uuid.uuid4().hex[:12]}"
    dn = f"ou={name},{directory.base_dn}"
    assert conn.add(dn, ["organizationalUnit"], {"ou": name}), conn.result
    for uid, attrs in PEOPLE.items():
        values = {"uid": uid, "cn": uid, "sn": uid, **attrs}
        assert conn.add(f"uid={uid},{dn}", ["inetOrgPerson"], values), conn.result
    try:
        yield conn, dn
    finally:
        for uid in PEOPLE:
            conn.delete(f"uid={uid},{dn}")
        conn.delete(dn)
        conn.unbind()


@pytest.fixture(scope="module")
def sandbox_directory(sandbox: Sandbox) -> SandboxDirectory:
    return sandbox.directory


@pytest.fixture(scope="module")
def schema(sandbox_directory: SandboxDirectory) -> Iterator[Subschema]:
    pool = Directory(sandbox_directory.ldap_settings())
    try:
        with pool.session() as session:
            yield Subschema.read(session)
    finally:
        pool.close()


def uids(conn: Connection, dn: str, order: Order) -> list[str]:
    """The uids in the directory's order."""
    controls = [sort_control(order.keys("uid"))]
    conn.search(dn, "(objectClass=inetOrgPerson)", LEVEL, attributes=["uid"], controls=controls)
    assert conn.result["result"] == 0, conn.result
    return [str(e["attributes"]["uid"][0]) for e in conn.response if e["type"] == "searchResEntry"]


@pytest.mark.parametrize(
    "attribute",
    ["title", "displayName", "description", "telephoneNumber", "entryUUID", "createTimestamp"],
)
@pytest.mark.parametrize("descending", [False, True], ids=["ascending", "descending"])
def test_python_order_is_the_directory_order(
    listing: tuple[Connection, str], schema: Subschema, attribute: str, descending: bool
) -> None:
    conn, dn = listing
    order = attribute_order(schema, attribute, descending=descending)
    assert order is not None
    by_directory = uids(conn, dn, order)
    conn.search(dn, "(objectClass=inetOrgPerson)", LEVEL, attributes=["uid", attribute])
    entries = [e for e in conn.response if e["type"] == "searchResEntry"]
    by_python = [str(e["attributes"]["uid"][0]) for e in order.sort(entries, "uid")]
    assert by_python == by_directory
    assert len(by_directory) == len(PEOPLE)


def test_measured_directory_order(listing: tuple[Connection, str], schema: Subschema) -> None:
    """What slapd does: missing values last ascending and first descending, ties by uid
    ascending in both orders, the least of several values, NFKC and case folded,
    telephone numbers without spaces and hyphens."""
    conn, dn = listing

    def by(attribute: str, descending: bool = False) -> list[str]:
        order = attribute_order(schema, attribute, descending=descending)
        assert order is not None
        return uids(conn, dn, order)

    assert by("title") == ["b", "d", "e", "a", "c", "f", "g", "h"]
    assert by("title", descending=True) == ["c", "f", "g", "h", "a", "d", "e", "b"]
    assert by("description") == ["a", "b", "d", "c", "e", "f", "g", "h"]
    assert by("description", descending=True) == ["c", "e", "f", "g", "h", "d", "b", "a"]
    assert by("displayName") == ["b", "d", "a", "c", "f", "g", "e", "h"]
    assert by("telephoneNumber") == ["f", "c", "a", "b", "d", "e", "g", "h"]


def test_attribute_without_ordering_rule(schema: Subschema) -> None:
    assert attribute_order(schema, "objectClass") is None
    assert attribute_order(None, "uidNumber", "integer") == Order(
        "uidNumber", "integerOrderingMatch"
    )
    assert attribute_order(None, "displayName") == Order("displayName", "caseIgnoreOrderingMatch")
