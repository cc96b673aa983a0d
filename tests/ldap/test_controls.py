"""Sort, VLV and assertion controls against a real slapd with the sssvlv overlay."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from ldap3 import BASE, LEVEL, MODIFY_REPLACE, SUBTREE, Connection, Server
from ldap3.core.exceptions import LDAPInvalidFilterError

from app.ldap.controls import (
    ASSERTION_FAILED,
    ASSERTION_OID,
    OFFSET_RANGE_ERROR,
    SLAPD_OFFSET_RANGE_ERROR,
    SORT_RESPONSE_OID,
    VLV_ERROR,
    VLV_RESPONSE_OID,
    ControlDecodingError,
    SortKey,
    VlvResult,
    assertion_control,
    encode_filter,
    read_sort_response,
    read_vlv_response,
    sort_control,
    vlv_control,
)
from app.ldap.sandbox import SandboxDirectory

PEOPLE = 30
BY_UID = (SortKey("uid", "caseIgnoreOrderingMatch"),)
LISTED = "(objectClass=inetOrgPerson)"
BUSY = 51
INAPPROPRIATE_MATCHING = 18
NO_SUCH_ATTRIBUTE = 16


@dataclass(frozen=True)
class Page:
    result: int
    message: str
    uids: list[str]
    vlv: VlvResult | None
    sort_result: int | None


@dataclass(frozen=True)
class Tree:
    directory: SandboxDirectory
    dn: str
    list_dn: str
    uids_sorted: list[str]


def connect(directory: SandboxDirectory) -> Connection:
    return Connection(
        Server(directory.url, get_info="NO_INFO"),
        directory.admin_dn,
        directory.admin_password,
        auto_bind=True,
        raise_exceptions=False,
    )


def delete_subtree(conn: Connection, dn: str) -> None:
    conn.search(dn, "(objectClass=*)", SUBTREE, attributes=["1.1"])
    dns = [entry["dn"] for entry in conn.response if entry["type"] == "searchResEntry"]
    for child in sorted(dns, key=len, reverse=True):
        conn.delete(child)


def search_page(
    conn: Connection,
    base: str,
    controls: Sequence[tuple[str, bool, bytes]],
    search_filter: str = LISTED,
) -> Page:
    conn.search(base, search_filter, LEVEL, attributes=["uid"], controls=list(controls))
    uids = [e["attributes"]["uid"][0] for e in conn.response if e["type"] == "searchResEntry"]
    return Page(
        result=conn.result["result"],
        message=conn.result["message"],
        uids=uids,
        vlv=read_vlv_response(conn.result),
        sort_result=read_sort_response(conn.result),
    )


def vlv_page(tree: Tree, offset: int, before: int, after: int, content_count: int = 0) -> Page:
    """One VLV search on its own connection: sssvlv keeps every VLV result list
    alive until the connection closes (see test_vlv_lists_are_held_until_unbind)."""
    conn = connect(tree.directory)
    try:
        controls = [sort_control(BY_UID), vlv_control(offset, before, after, content_count)]
        return search_page(conn, tree.list_dn, controls)
    finally:
        conn.unbind()


def entry_state(conn: Connection, dn: str) -> dict[str, Any] | None:
    conn.search(dn, "(objectClass=*)", BASE, attributes=["entryCSN", "description", "uid"])
    entries = [e for e in conn.response or [] if e["type"] == "searchResEntry"]
    if not entries:
        return None
    raw = entries[0]["raw_attributes"]
    return {
        "csn": raw["entryCSN"][0].decode(),
        "description": sorted(v.decode() for v in raw.get("description", [])),
    }


@pytest.fixture
def admin(directory: SandboxDirectory) -> Iterator[Connection]:
    conn = connect(directory)
    yield conn
    conn.unbind()


@pytest.fixture
def tree(directory: SandboxDirectory, admin: Connection) -> Iterator[Tree]:
    """``ou=controls-<random>`` holding ``ou=list`` with 30 people whose uids mix
    letter case and are added out of order."""
    name = f"controls-{uuid.uuid4().hex[:12]}"
    dn = f"ou={name},{directory.base_dn}"
    list_dn = f"ou=list,{dn}"
    assert admin.add(dn, ["organizationalUnit"], {"ou": name}), admin.result
    assert admin.add(list_dn, ["organizationalUnit"], {"ou": "list"}), admin.result
    uids = []
    for i in range(PEOPLE):
        n = (i * 7) % PEOPLE
        uid = f"{'U' if n % 3 == 0 else 'u'}ser{n:02d}"
        uids.append(uid)
        attrs = {"uid": uid, "cn": f"Person {PEOPLE - n}", "sn": "Person"}
        assert admin.add(f"uid={uid},{list_dn}", ["inetOrgPerson"], attrs), admin.result
    try:
        yield Tree(directory, dn, list_dn, sorted(uids, key=str.lower))
    finally:
        delete_subtree(admin, dn)


@pytest.fixture
def person(tree: Tree, admin: Connection) -> str:
    dn = f"uid=target,{tree.dn}"
    attrs = {"uid": "target", "cn": "Target", "sn": "Target", "description": "v0"}
    assert admin.add(dn, ["inetOrgPerson"], attrs), admin.result
    return dn


def test_vlv_page_at_offset_is_sorted_with_content_count(tree: Tree) -> None:
    page = vlv_page(tree, offset=11, before=0, after=4)

    assert page.result == 0, page.message
    assert page.uids == tree.uids_sorted[10:15]
    assert page.vlv is not None
    assert page.vlv.result_code == 0
    assert page.vlv.target_position == 11
    assert page.vlv.content_count == PEOPLE
    assert page.vlv.context_id
    assert page.sort_result == 0


def test_vlv_before_count_and_last_page(tree: Tree) -> None:
    around = vlv_page(tree, offset=11, before=2, after=1)
    last = vlv_page(tree, offset=PEOPLE, before=0, after=4)

    assert around.uids == tree.uids_sorted[8:12]
    assert last.result == 0, last.message
    assert last.uids == tree.uids_sorted[-1:]
    assert last.vlv is not None
    assert last.vlv.target_position == PEOPLE


@pytest.mark.parametrize("offset", [PEOPLE + 1, 1000])
def test_vlv_offset_beyond_end_is_range_error(tree: Tree, offset: int) -> None:
    page = vlv_page(tree, offset=offset, before=0, after=4)

    assert page.result == VLV_ERROR
    assert page.uids == []
    assert page.vlv is not None
    assert page.vlv.result_code in {OFFSET_RANGE_ERROR, SLAPD_OFFSET_RANGE_ERROR}
    assert page.vlv.content_count == PEOPLE


def test_vlv_content_count_estimate_scales_offset(tree: Tree) -> None:
    """draft-ietf-ldapext-ldapv3-vlv-09 section 4.3: a non-zero content count makes
    the offset relative, so only 0 gives exact positions."""
    half = vlv_page(tree, offset=11, before=0, after=0, content_count=PEOPLE // 2)
    one = vlv_page(tree, offset=1, before=0, after=0, content_count=1)

    assert half.vlv is not None
    assert half.vlv.target_position == 22
    assert half.uids == tree.uids_sorted[21:22]
    assert one.uids == tree.uids_sorted[-1:]


def test_vlv_without_sort_control_fails(tree: Tree, admin: Connection) -> None:
    page = search_page(admin, tree.list_dn, [vlv_control(1, 0, 4)])

    assert page.result == VLV_ERROR
    assert page.uids == []
    assert page.vlv is not None
    assert page.vlv.result_code != 0


def test_vlv_lists_are_held_until_unbind(tree: Tree) -> None:
    """Every VLV search without a context ID keeps its sorted list on the connection
    until unbind; once olcSssVlvMaxPerConn lists exist the connection gets busy."""
    conn = connect(tree.directory)
    try:
        results = []
        for _ in range(100):
            page = search_page(conn, tree.list_dn, [sort_control(BY_UID), vlv_control(1, 0, 0)])
            results.append(page.result)
            if page.result != 0:
                break
        assert results[-1] == BUSY
        assert len(results) > 1
        assert set(results[:-1]) == {0}
    finally:
        conn.unbind()
    assert vlv_page(tree, offset=1, before=0, after=0).result == 0


def test_vlv_context_id_returns_the_cached_list(tree: Tree) -> None:
    """With a context ID slapd serves the list computed by the earlier search and
    ignores the new filter."""
    conn = connect(tree.directory)
    try:
        first = search_page(conn, tree.list_dn, [sort_control(BY_UID), vlv_control(1, 0, 0)])
        assert first.vlv is not None
        again = search_page(
            conn,
            tree.list_dn,
            [sort_control(BY_UID), vlv_control(2, 0, 0, context_id=first.vlv.context_id)],
            search_filter=f"(uid={tree.uids_sorted[-1]})",
        )
    finally:
        conn.unbind()

    assert again.vlv is not None
    assert again.vlv.content_count == PEOPLE
    assert again.uids == tree.uids_sorted[1:2]


def test_sort_by_uid_needs_ordering_rule(tree: Tree, admin: Connection) -> None:
    for critical in (True, False):
        plain = search_page(
            admin, tree.list_dn, [sort_control([SortKey("uid")], critical=critical)]
        )
        assert plain.result == INAPPROPRIATE_MATCHING
        assert plain.uids == []

    ordered = search_page(admin, tree.list_dn, [sort_control(BY_UID)])
    reverse = search_page(
        admin, tree.list_dn, [sort_control([SortKey("uid", "caseIgnoreOrderingMatch", True)])]
    )
    assert ordered.result == 0
    assert ordered.uids == tree.uids_sorted
    assert ordered.sort_result == 0
    assert reverse.uids == tree.uids_sorted[::-1]


def test_sort_by_unknown_attribute_or_rule_fails(tree: Tree, admin: Connection) -> None:
    unknown_attr = search_page(
        admin, tree.list_dn, [sort_control([SortKey("noSuchAttr", "caseIgnoreOrderingMatch")])]
    )
    unknown_rule = search_page(admin, tree.list_dn, [sort_control([SortKey("uid", "noSuchRule")])])

    assert unknown_attr.result == NO_SUCH_ATTRIBUTE
    assert unknown_rule.result == INAPPROPRIATE_MATCHING


def test_assertion_guards_modify(admin: Connection, person: str) -> None:
    before = entry_state(admin, person)
    assert before is not None
    ok = assertion_control(f"(entryCSN={before['csn']})")
    assert admin.modify(person, {"description": [(MODIFY_REPLACE, ["v1"])]}, controls=[ok])
    after = entry_state(admin, person)
    assert after is not None
    assert after["description"] == ["v1"]
    assert after["csn"] != before["csn"]

    stale = assertion_control(f"(entryCSN={before['csn']})")
    assert not admin.modify(person, {"description": [(MODIFY_REPLACE, ["v2"])]}, controls=[stale])
    assert admin.result["result"] == ASSERTION_FAILED
    assert entry_state(admin, person) == after


def test_assertion_guards_delete(admin: Connection, person: str) -> None:
    before = entry_state(admin, person)
    assert before is not None
    assert admin.modify(person, {"description": [(MODIFY_REPLACE, ["v1"])]})
    current = entry_state(admin, person)
    assert current is not None

    assert not admin.delete(person, controls=[assertion_control(f"(entryCSN={before['csn']})")])
    assert admin.result["result"] == ASSERTION_FAILED
    assert entry_state(admin, person) == current

    assert admin.delete(person, controls=[assertion_control(f"(entryCSN={current['csn']})")])
    assert entry_state(admin, person) is None


def test_assertion_guards_modify_dn(admin: Connection, person: str, tree: Tree) -> None:
    before = entry_state(admin, person)
    assert before is not None
    assert admin.modify(person, {"description": [(MODIFY_REPLACE, ["v1"])]})
    current = entry_state(admin, person)
    assert current is not None
    renamed = f"uid=renamed,{tree.dn}"

    stale = assertion_control(f"(entryCSN={before['csn']})")
    assert not admin.modify_dn(person, "uid=renamed", controls=[stale])
    assert admin.result["result"] == ASSERTION_FAILED
    assert entry_state(admin, person) == current
    assert entry_state(admin, renamed) is None

    fresh = assertion_control(f"(entryCSN={current['csn']})")
    assert admin.modify_dn(person, "uid=renamed", controls=[fresh]), admin.result
    assert entry_state(admin, person) is None
    assert entry_state(admin, renamed) is not None


def test_assertion_filter_with_escaped_asterisk(admin: Connection, tree: Tree) -> None:
    star, other = f"cn=a*b,{tree.dn}", f"cn=axb,{tree.dn}"
    assert admin.add(star, ["person"], {"cn": "a*b", "sn": "x"}), admin.result
    assert admin.add(other, ["person"], {"cn": "axb", "sn": "x"}), admin.result
    change = {"description": [(MODIFY_REPLACE, ["seen"])]}
    literal = assertion_control(r"(cn=a\2ab)")

    assert admin.modify(star, change, controls=[literal]), admin.result
    assert not admin.modify(other, change, controls=[literal])
    assert admin.result["result"] == ASSERTION_FAILED
    assert admin.modify(other, change, controls=[assertion_control("(cn=a*b)")]), admin.result


def test_assertion_control_value_is_ber_filter() -> None:
    oid, critical, value = assertion_control(r"(cn=a\2ab)")

    assert (oid, critical) == (ASSERTION_OID, True)
    assert value == bytes.fromhex("a309 0402 636e 0403 612a62")


@pytest.mark.parametrize(
    ("escaped", "raw"),
    [
        (r"(cn=\28x\29)", b"(x)"),
        (r"(cn=a\5cb)", b"a\\b"),
        (r"(cn=caf\c3\a9)", "café".encode()),
        ("(cn=café)", "café".encode()),
        (r"(cn=\00)", b"\x00"),
    ],
)
def test_filter_escapes_decode_to_raw_octets(escaped: str, raw: bytes) -> None:
    expected = b"\xa3" + bytes([6 + len(raw)]) + b"\x04\x02cn\x04" + bytes([len(raw)]) + raw
    assert encode_filter(escaped) == expected


def test_filter_with_boolean_operators_encodes() -> None:
    value = encode_filter(r"(&(objectClass=inetOrgPerson)(!(uid=a\2a))(cn=J*n))")

    assert value[0] == 0xA0
    assert b"\xa2\x0b\xa3\x09\x04\x03uid\x04\x02a*" in value
    assert b"\xa4\x0c\x04\x02cn\x30\x06\x80\x01J\x82\x01n" in value


@pytest.mark.parametrize("bad", ["cn=x", "(cn=x", "(&)", "", r"(cn=\zz)", "(cn=a\\)"])
def test_invalid_filter_is_rejected(bad: str) -> None:
    with pytest.raises(LDAPInvalidFilterError):
        assertion_control(bad)


def test_request_values_match_ldapsearch() -> None:
    """Bytes sent by ``ldapsearch -E sss=uid:caseIgnoreOrderingMatch/-cn -E vlv=0/4/11/0``."""
    sort = sort_control([SortKey("uid", "caseIgnoreOrderingMatch"), SortKey("cn", reverse=True)])
    vlv = vlv_control(11, 0, 4)

    assert sort[2] == bytes.fromhex(
        "3029301e040375696480176361736549676e6f72654f72646572696e674d6174636830070402636e8101ff"
    )
    assert vlv[2] == bytes.fromhex("300e020100020104a00602010b020100")
    assert vlv_control(1, 2, 3, 30, b"ctx")[2] == bytes.fromhex(
        "3013020102020103a00602010102011e0403637478"
    )


def test_read_responses_from_result_dicts() -> None:
    vlv_value = bytes.fromhex("301102010b02011e0a01000406") + b"ctx123"
    result = {
        "controls": {
            VLV_RESPONSE_OID: {"value": vlv_value},
            SORT_RESPONSE_OID: {"value": bytes.fromhex("30030a0112")},
        }
    }

    assert read_vlv_response(result) == VlvResult(11, 30, 0, b"ctx123")
    assert read_sort_response(result) == INAPPROPRIATE_MATCHING
    assert read_vlv_response({"result": 0}) is None
    assert read_sort_response(None) is None
    no_context = {
        "controls": {VLV_RESPONSE_OID: {"value": bytes.fromhex("30090201000201000a014c")}}
    }
    assert read_vlv_response(no_context) == VlvResult(0, 0, 76, None)
    with pytest.raises(ControlDecodingError):
        read_vlv_response({"controls": {VLV_RESPONSE_OID: {"value": vlv_value[:-2]}}})
    with pytest.raises(ControlDecodingError):
        read_vlv_response({"controls": {VLV_RESPONSE_OID: {"value": vlv_value + b"\0"}}})
    with pytest.raises(ControlDecodingError):
        read_sort_response({"controls": {SORT_RESPONSE_OID: {"value": b"\x30\x03\x0a\x01"}}})
