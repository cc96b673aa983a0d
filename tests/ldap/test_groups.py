"""POSIX groups against a real slapd: default group, private groups, memberUid."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from ldap3 import Connection
from scim2_models import NotFoundException, UniquenessException

from app.config import PosixSettings
from app.ldap.connection import Directory, Session
from app.ldap.dn import child_dn
from app.ldap.errors import DirectoryFailure
from app.ldap.groups import PosixGroups
from app.ldap.sandbox import Sandbox
from tests.ldap.scratch import Scratch

_gids = itertools.count(90_000)


@pytest.fixture
def scratch(sandbox: Sandbox, ldap: Connection) -> Iterator[Scratch]:
    box = Scratch(ldap, sandbox.directory.base_dn, "groups")
    yield box
    box.remove()


def make(
    pool: Directory, scratch: Scratch, kind: type[PosixGroups] = PosixGroups, **posix: Any
) -> PosixGroups:
    return kind(pool, PosixSettings(**posix), scratch.dn)


def groups_with_gid(ldap: Connection, base_dn: str, gid: int) -> list[str]:
    ldap.search(base_dn, f"(&(objectClass=posixGroup)(gidNumber={gid}))", attributes=["1.1"])
    return [str(e["dn"]) for e in ldap.response if e.get("type") == "searchResEntry"]


def members(scratch: Scratch, name: str) -> list[str]:
    entry = scratch.read(scratch.child(name), "memberUid")
    assert entry is not None
    return sorted(entry.get("memberUid", []))


# ---- default group


def test_ensure_default_creates_the_group_once(
    pool: Directory, scratch: Scratch, ldap: Connection, sandbox: Sandbox
) -> None:
    gid = next(_gids)
    for _ in range(2):
        groups = make(pool, scratch, default_gid_number=gid, default_group="staff")
        with pool.session() as session:
            groups.ensure_default(session)
            groups.ensure_default(session)
    assert groups_with_gid(ldap, sandbox.directory.base_dn, gid) == [scratch.child("staff")]
    entry = scratch.read(scratch.child("staff"), "objectClass", "cn", "gidNumber")
    assert entry is not None
    assert "posixGroup" in entry["objectClass"]
    assert entry["gidNumber"] == [str(gid)]


def test_ensure_default_accepts_a_group_with_that_gid_elsewhere(
    pool: Directory, scratch: Scratch, ldap: Connection, sandbox: Sandbox
) -> None:
    gid = next(_gids)
    elsewhere = Scratch(ldap, sandbox.directory.base_dn, "elsewhere")
    try:
        existing = elsewhere.group("users", gid)
        with pool.session() as session:
            make(pool, scratch, default_gid_number=gid).ensure_default(session)
        assert groups_with_gid(ldap, sandbox.directory.base_dn, gid) == [existing]
    finally:
        elsewhere.remove()


def test_ensure_default_loses_a_creation_race_gracefully(
    pool: Directory, scratch: Scratch, ldap: Connection, sandbox: Sandbox
) -> None:
    gid = next(_gids)

    class Late(PosixGroups):
        looks = 0

        def _gid_exists(self, session: Session, number: int) -> bool:
            self.looks += 1
            return self.looks > 1 and super()._gid_exists(session, number)

    with pool.session() as session:
        make(pool, scratch, default_gid_number=gid).ensure_default(session)
        late = make(pool, scratch, Late, default_gid_number=gid)
        late.ensure_default(session)
    assert isinstance(late, Late)
    assert late.looks == 2
    assert len(groups_with_gid(ldap, sandbox.directory.base_dn, gid)) == 1


def test_ensure_default_refuses_a_name_clash(pool: Directory, scratch: Scratch) -> None:
    gid = next(_gids)
    scratch.group("scim-users", next(_gids))
    with pool.session() as session, pytest.raises(DirectoryFailure) as caught:
        make(pool, scratch, default_gid_number=gid).ensure_default(session)
    assert str(gid) in caught.value.detail
    assert caught.value.status == 500


def test_a_missing_container_is_a_clear_error(pool: Directory, sandbox: Sandbox) -> None:
    missing = child_dn("ou", "no-such-container", sandbox.directory.base_dn)
    groups = PosixGroups(pool, PosixSettings(default_gid_number=next(_gids)), missing)
    with pool.session() as session, pytest.raises(DirectoryFailure) as caught:
        groups.ensure_default(session)
    assert missing in caught.value.detail


# ---- private groups


def test_private_group_lifecycle(pool: Directory, scratch: Scratch) -> None:
    groups = make(pool, scratch, gid_strategy="private-group")
    gid = next(_gids)
    with pool.session() as session:
        assert groups.create_private(session, "alice", gid) == scratch.child("alice")
        entry = scratch.read(scratch.child("alice"), "cn", "gidNumber")
        assert entry == {"cn": ["alice"], "gidNumber": [str(gid)]}

        with pytest.raises(UniquenessException) as caught:
            groups.create_private(session, "alice", next(_gids))
        assert caught.value.status == 409

        assert groups.rename_private(session, "alice", "alice2", gid)
        assert scratch.read(scratch.child("alice")) is None
        assert scratch.read(scratch.child("alice2"), "cn", "gidNumber") == {
            "cn": ["alice2"],
            "gidNumber": [str(gid)],
        }
        assert not groups.rename_private(session, "nobody", "nobody2")

        assert groups.delete_private(session, "alice2", gid)
        assert scratch.read(scratch.child("alice2")) is None
        assert not groups.delete_private(session, "alice2", gid)


def test_renaming_onto_a_taken_name_is_409(pool: Directory, scratch: Scratch) -> None:
    groups = make(pool, scratch)
    scratch.group("bob", next(_gids))
    scratch.group("taken", next(_gids))
    with pool.session() as session, pytest.raises(UniquenessException) as caught:
        groups.rename_private(session, "bob", "taken")
    assert "'taken'" in caught.value.detail
    assert scratch.read(scratch.child("bob")) is not None


def test_a_same_named_group_with_another_gid_is_left_alone(
    pool: Directory, scratch: Scratch
) -> None:
    groups = make(pool, scratch)
    gid = next(_gids)
    scratch.group("carol", gid)
    with pool.session() as session:
        assert not groups.rename_private(session, "carol", "carol2", gid + 1)
        assert not groups.delete_private(session, "carol", gid + 1)
    assert scratch.read(scratch.child("carol")) is not None
    assert scratch.read(scratch.child("carol2")) is None


# ---- memberUid


def test_rename_member_in_every_group(pool: Directory, scratch: Scratch) -> None:
    groups = make(pool, scratch)
    scratch.group("one", next(_gids), ["dave", "erin"])
    scratch.group("two", next(_gids), ["dave"])
    scratch.group("both", next(_gids), ["dave", "dave2"])
    scratch.group("other", next(_gids), ["erin"])
    with pool.session() as session:
        old, new = ("dave", "uid=dave,ou=x"), ("dave2", "uid=dave2,ou=x")
        assert groups.rename_account(session, old, new) == 3
        assert groups.rename_account(session, old, new) == 0
    assert members(scratch, "one") == ["dave2", "erin"]
    assert members(scratch, "two") == ["dave2"]
    assert members(scratch, "both") == ["dave2"]
    assert members(scratch, "other") == ["erin"]


def test_member_dns_are_renamed_and_removed_with_the_logins(
    pool: Directory, scratch: Scratch, ldap: Connection
) -> None:
    groups = make(pool, scratch)
    old, new = "uid=kim,ou=people,dc=x", "uid=kim2,ou=people,dc=x"
    others = [f"uid=other{n},ou=people,dc=x" for n in range(50)]
    both = scratch.group("both", next(_gids), ["kim"])
    scim = [("MODIFY_ADD", ["scimGroup"])]
    assert ldap.modify(both, {"objectClass": scim, "member": [("MODIFY_ADD", [old, *others])]})
    by_dn = scratch.group("dns", next(_gids))
    assert ldap.modify(by_dn, {"objectClass": scim, "member": [("MODIFY_ADD", [old.upper()])]})
    by_login = scratch.group("logins", next(_gids), ["kim", "lee"])
    with pool.session() as session:
        listings = groups._listings(session, "kim", old)
        assert session.conn.response is not None
        returned = [e["attributes"].get("member", []) for e in session.conn.response]
        assert sorted(map(len, returned)) == [0, 1, 1], "only the matched values come back"
        assert sorted(listings) == sorted(
            [(both, True, True), (by_dn, False, True), (by_login, True, False)]
        )
        assert groups.rename_account(session, ("kim", old), ("kim2", new)) == 3
        assert members(scratch, "both") == ["kim2"]
        assert scratch.read(by_dn, "member") == {"member": [new]}
        assert members(scratch, "logins") == ["kim2", "lee"]
        removed = groups.remove_account(session, "kim2", new)
        assert len(removed) == 4
    assert sorted((scratch.read(both, "member") or {})["member"]) == sorted(others)
    assert not (scratch.read(by_dn, "member") or {}).get("member")
    assert members(scratch, "logins") == ["lee"]


def test_add_and_remove_member_are_idempotent(pool: Directory, scratch: Scratch) -> None:
    groups = make(pool, scratch)
    scratch.group("login", next(_gids))
    with pool.session() as session:
        assert groups.add_member(session, "login", "frank")
        assert not groups.add_member(session, "login", "frank")
        assert groups.add_member(session, "login", "grace")
        assert members(scratch, "login") == ["frank", "grace"]
        assert groups.remove_member(session, "login", "frank")
        assert not groups.remove_member(session, "login", "frank")
        assert members(scratch, "login") == ["grace"]
        assert not groups.remove_member(session, "no-such-group", "grace")
        with pytest.raises(NotFoundException) as caught:
            groups.add_member(session, "no-such-group", "grace")
    assert "no-such-group" in caught.value.detail


def test_remove_member_everywhere_and_undo(
    pool: Directory, scratch: Scratch, ldap: Connection
) -> None:
    groups = make(pool, scratch)
    nested = child_dn("ou", "nested", scratch.dn)
    assert ldap.add(nested, ["organizationalUnit"], {"ou": "nested"}), ldap.result
    deep = child_dn("cn", "deep", nested)
    assert ldap.add(deep, ["posixGroup"], {"cn": "deep", "gidNumber": str(next(_gids))})
    assert ldap.modify(deep, {"memberUid": [("MODIFY_ADD", ["heidi"])]}), ldap.result
    scratch.group("top", next(_gids), ["heidi", "ivan"])
    scratch.group("unrelated", next(_gids), ["ivan"])
    with pool.session() as session:
        removed = groups.remove_account(session, "heidi", "uid=heidi,ou=x")
        assert sorted(removed) == sorted(
            [(deep, "memberUid", "heidi"), (scratch.child("top"), "memberUid", "heidi")]
        )
        assert members(scratch, "top") == ["ivan"]
        assert groups.remove_account(session, "heidi", "uid=heidi,ou=x") == []
        for listing in removed:
            assert groups.add_value(session, *listing)
    assert members(scratch, "top") == ["heidi", "ivan"]
    assert scratch.read(deep, "memberUid") == {"memberUid": ["heidi"]}
    assert members(scratch, "unrelated") == ["ivan"]
