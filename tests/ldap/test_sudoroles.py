"""sudoRole entries follow the SCIM groups ``groups.sudo`` names (slapd with sudo's schema)."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator

import pytest
from ldap3 import SUBTREE, Connection
from scim2_models import SCIMException

from app.config import GroupSettings, Settings
from app.ldap.connection import Directory
from app.ldap.groupentries import GroupDirectory, GroupRecord
from app.ldap.mapping import UserMapping
from app.ldap.sandbox import Sandbox, SandboxError
from app.ldap.users import UserDirectory

RULES = {"Linux Admins": ["ALL"], "DB Admins": ["/usr/bin/psql", "/usr/bin/pg_dump"]}
_names = itertools.count(1)


@pytest.fixture(scope="module")
def sudo_sandbox() -> Iterator[Sandbox]:
    server = Sandbox(sudo=True)
    try:
        server.start()
    except SandboxError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def conn(sudo_sandbox: Sandbox) -> Iterator[Connection]:
    directory = sudo_sandbox.directory
    connection = Connection(
        directory.url, directory.admin_dn, directory.admin_password, auto_bind=True
    )
    yield connection
    connection.unbind()


def groups_for(sandbox: Sandbox, **options: object) -> Iterator[GroupDirectory]:
    settings = Settings(ldap=sandbox.directory.admin_settings())
    settings.groups = GroupSettings(sudo=RULES, **options)
    settings.groups.sudoers_dn = settings.groups.sudoers_dn or sandbox.directory.sudoers_dn
    pool = Directory(settings.ldap)
    mapping = UserMapping(settings.users, settings.ldap, settings.posix, settings.accounts)
    yield GroupDirectory(pool, settings, UserDirectory(pool, mapping))
    pool.close()


@pytest.fixture
def groups(sudo_sandbox: Sandbox) -> Iterator[GroupDirectory]:
    yield from groups_for(sudo_sandbox)


def roles(conn: Connection, base: str) -> dict[str, dict[str, list[str]]]:
    conn.search(base, "(objectClass=sudoRole)", SUBTREE, attributes=["*"])
    return {
        str(e.cn.value): {
            k: sorted(str(v) for v in vs) for k, vs in e.entry_attributes_as_dict.items()
        }
        for e in conn.entries
    }


def rename(groups: GroupDirectory, record: GroupRecord, display_name: str) -> GroupRecord:
    return groups.update(
        record,
        display_name=display_name,
        external_id=record.external_id,
        add=[],
        remove=[],
        replace_members=None,
        if_match=None,
    )


@pytest.fixture(autouse=True)
def clean(groups: GroupDirectory, conn: Connection, sudo_sandbox: Sandbox) -> Iterator[None]:
    yield
    _total, found = groups.search("(&)", 1, 1000, members=False)
    for record in found:
        groups.delete(record.id, None)
    conn.search(sudo_sandbox.directory.sudoers_dn, "(objectClass=sudoRole)", SUBTREE)
    for dn in [entry.entry_dn for entry in conn.entries]:
        conn.delete(dn)


def test_a_configured_group_gets_its_role(
    groups: GroupDirectory, conn: Connection, sudo_sandbox: Sandbox
) -> None:
    made = groups.create("linux  ADMINS", external_id=None, gid_number=None, member_ids=[])
    groups.create("Sales", external_id=None, gid_number=None, member_ids=[])
    found = roles(conn, sudo_sandbox.directory.sudoers_dn)
    assert list(found) == [made.name]
    role = found[made.name]
    assert role["objectClass"] == ["sudoRole", "top"]
    assert role["sudoUser"] == [f"%{made.name}"]
    assert role["sudoHost"] == ["ALL"]
    assert role["sudoCommand"] == ["ALL"]


def test_renames_move_give_and_take_the_role(
    groups: GroupDirectory, conn: Connection, sudo_sandbox: Sandbox
) -> None:
    base = sudo_sandbox.directory.sudoers_dn
    record = groups.create("Linux Admins", external_id=None, gid_number=None, member_ids=[])
    record = rename(groups, record, "DB Admins")
    assert list(roles(conn, base)) == [record.name] == ["db_admins"]
    assert roles(conn, base)["db_admins"]["sudoCommand"] == ["/usr/bin/pg_dump", "/usr/bin/psql"]
    record = rename(groups, record, "Support")
    assert roles(conn, base) == {}
    record = rename(groups, record, "Linux Admins")
    assert roles(conn, base)["linux_admins"]["sudoUser"] == ["%linux_admins"]


def test_the_next_change_repairs_a_missing_role(
    groups: GroupDirectory, conn: Connection, sudo_sandbox: Sandbox
) -> None:
    base = sudo_sandbox.directory.sudoers_dn
    record = groups.create("Linux Admins", external_id=None, gid_number=None, member_ids=[])
    assert conn.delete(f"cn={record.name},{base}")
    groups.update(
        record,
        display_name=record.display_name,
        external_id="entra-1",
        add=[],
        remove=[],
        replace_members=None,
        if_match=None,
    )
    assert list(roles(conn, base)) == [record.name]


def test_delete_takes_the_role(
    groups: GroupDirectory, conn: Connection, sudo_sandbox: Sandbox
) -> None:
    record = groups.create("Linux Admins", external_id=None, gid_number=None, member_ids=[])
    groups.delete(record.id, None)
    assert roles(conn, sudo_sandbox.directory.sudoers_dn) == {}


def test_a_refused_delete_keeps_the_role(
    groups: GroupDirectory, conn: Connection, sudo_sandbox: Sandbox
) -> None:
    """A delete the directory refuses gives the role back: all or nothing.

    An entry below the group makes slapd refuse to delete it (notAllowedOnNonLeaf).
    """
    record = groups.create("Linux Admins", external_id=None, gid_number=None, member_ids=[])
    child = f"cn=child,{record.dn}"
    assert conn.add(child, ["top", "organizationalRole"], {"cn": "child"}), conn.result
    try:
        with pytest.raises(SCIMException):
            groups.delete(record.id, None)
        assert list(roles(conn, sudo_sandbox.directory.sudoers_dn)) == [record.name]
    finally:
        conn.delete(child)


def test_a_missing_container_is_made(conn: Connection, sudo_sandbox: Sandbox) -> None:
    base = f"ou=sudo-{next(_names)},{sudo_sandbox.directory.base_dn}"
    for own in groups_for(sudo_sandbox, sudoers_dn=base):
        record = own.create("DB Admins", external_id=None, gid_number=None, member_ids=[])
        assert list(roles(conn, base)) == [record.name]
        own.delete(record.id, None)
    assert conn.delete(base)


def test_without_the_schema_the_group_is_written_and_the_failure_logged(
    sandbox: Sandbox, ldap: Connection, caplog: pytest.LogCaptureFixture
) -> None:
    """The shared sandbox has no sudo schema."""
    for own in groups_for(sandbox):
        with caplog.at_level(logging.ERROR, logger="app.ldap.sudoroles"):
            record = own.create("Linux Admins", external_id=None, gid_number=None, member_ids=[])
        try:
            assert "get no sudo rights" in caplog.text
            assert own.get(record.id).name == record.name
        finally:
            own.delete(record.id, None)
            ldap.delete(sandbox.directory.sudoers_dn)
