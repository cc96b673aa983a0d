"""SCIM groups as posixGroup entries against a real slapd: names, gids, members, nesting."""

from __future__ import annotations

import itertools
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from ldap3 import MODIFY_ADD, MODIFY_REPLACE, Connection
from scim2_models import InvalidValueException, PreconditionFailedException, UniquenessException

from app.config import AccountSettings, GroupSettings, Settings
from app.ldap.connection import Directory, Session
from app.ldap.groupentries import GroupDirectory, GroupRecord
from app.ldap.mapping import UserMapping
from app.ldap.pending import Pending
from app.ldap.sandbox import Sandbox
from app.ldap.users import UserDirectory
from tests.api.helpers import (
    USERS,
    configured_client,
    delete_quietly,
    ensure_entry,
    new_user,
    patch,
    unique,
)
from tests.ldap.scratch import Scratch

_blocks = itertools.count(80_000, 200)


@pytest.fixture
def scratch(sandbox: Sandbox, ldap: Connection) -> Iterator[Scratch]:
    """A container below ou=groups, where the user writes look for memberships."""
    box = Scratch(ldap, sandbox.directory.groups_dn, "scim")
    yield box
    box.remove()


def settings_for(sandbox: Sandbox, scratch: Scratch, **groups: Any) -> Settings:
    low = next(_blocks)
    settings = Settings(ldap=sandbox.directory.ldap_settings())
    settings.ldap.groups_dn = scratch.dn
    options: dict[str, Any] = {"gid_range": (low, low + 199), "id_pool_dn": scratch.child("gids")}
    options.update(groups)
    settings.groups = GroupSettings(**options)
    return settings


def directory_for(pool: Directory, settings: Settings) -> GroupDirectory:
    mapping = UserMapping(settings.users, settings.ldap, settings.posix, settings.accounts)
    return GroupDirectory(pool, settings, UserDirectory(pool, mapping))


@pytest.fixture
def groups(pool: Directory, sandbox: Sandbox, scratch: Scratch) -> GroupDirectory:
    return directory_for(pool, settings_for(sandbox, scratch))


@pytest.fixture
def users(client: TestClient) -> Iterator[Callable[[], dict[str, Any]]]:
    made: list[str] = []

    def make() -> dict[str, Any]:
        user = new_user(client)
        made.append(user["id"])
        return user

    yield make
    delete_quietly(client, *made)


def read(scratch: Scratch, dn: str) -> dict[str, list[str]]:
    entry = scratch.read(dn, "*", "+")
    assert entry is not None
    return entry


def login_of(user: dict[str, Any]) -> str:
    """The login of a test user: its userName's local part is a valid one."""
    return str(user["userName"]).split("@")[0]


def user_dn(sandbox: Sandbox, user: dict[str, Any]) -> str:
    return f"uid={login_of(user)},{sandbox.directory.users_dn}"


def update(groups: GroupDirectory, current: GroupRecord, **changes: Any) -> GroupRecord:
    arguments: dict[str, Any] = {
        "display_name": current.display_name,
        "external_id": current.external_id,
        "add": [],
        "remove": [],
        "replace_members": None,
        "if_match": None,
    }
    arguments.update(changes)
    return groups.update(current, **arguments)


class Calls:
    """Counts the LDAP operations sessions send."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.seen: Counter[str] = Counter()
        for name in ("search", "add", "modify", "rename", "delete"):
            original = getattr(Session, name)

            def counted(
                self_: Session, *args: Any, _o: Any = original, _n: str = name, **kw: Any
            ) -> Any:
                self.seen[_n] += 1
                return _o(self_, *args, **kw)

            monkeypatch.setattr(Session, name, counted)


# ---- create


def test_an_empty_group_is_a_posix_group_named_by_its_display_name(
    groups: GroupDirectory, scratch: Scratch
) -> None:
    record = groups.create("Sales Team", external_id="e-1", gid_number=None, member_ids=[])
    assert record.name == "sales_team"
    assert record.display_name == "Sales Team"
    assert record.external_id == "e-1"
    assert record.members == []
    low, high = groups.settings.gid_range
    assert low <= record.gid_number <= high
    entry = read(scratch, record.dn)
    assert {"posixGroup", "scimGroup"} <= set(entry["objectClass"])
    assert entry["gidNumber"] == [str(record.gid_number)]
    assert "member" not in entry and "memberUid" not in entry
    assert entry["entryUUID"] == [record.id]
    assert record.version == entry["entryCSN"][0]
    again = groups.get(record.id)
    assert again == record


def test_a_non_ascii_display_name_gets_an_ascii_name(groups: GroupDirectory) -> None:
    record = groups.create("Équipe Über 2", external_id=None, gid_number=None, member_ids=[])
    assert record.name == "equipe_uber_2"
    assert record.display_name == "Équipe Über 2"


def test_a_display_name_held_in_another_case_is_409(groups: GroupDirectory) -> None:
    groups.create("Finance", external_id=None, gid_number=None, member_ids=[])
    with pytest.raises(UniquenessException):
        groups.create("FINANCE", external_id=None, gid_number=None, member_ids=[])


def test_a_taken_name_gets_a_hash_suffix(groups: GroupDirectory, scratch: Scratch) -> None:
    scratch.group("ops", 1_999_999)
    record = groups.create("Ops", external_id=None, gid_number=None, member_ids=[])
    assert record.name.startswith("ops-") and len(record.name) == 10


def test_a_requested_gid_is_kept_and_a_taken_one_is_409(
    groups: GroupDirectory, scratch: Scratch
) -> None:
    scratch.group("held", 1_999_998)
    record = groups.create("Mine", external_id=None, gid_number=1_999_997, member_ids=[])
    assert record.gid_number == 1_999_997
    with pytest.raises(UniquenessException):
        groups.create("Other", external_id=None, gid_number=1_999_998, member_ids=[])
    with pytest.raises(InvalidValueException):
        groups.create("Low", external_id=None, gid_number=10, member_ids=[])


def test_allocated_gids_skip_numbers_groups_and_accounts_hold(
    groups: GroupDirectory, scratch: Scratch
) -> None:
    low = groups.settings.gid_range[0]
    scratch.group("manual", low)
    scratch.account("someone", low + 1)
    record = groups.create("Fresh", external_id=None, gid_number=None, member_ids=[])
    assert record.gid_number == low + 2


def test_two_servers_creating_at_once_get_distinct_gids(
    pool: Directory, sandbox: Sandbox, scratch: Scratch
) -> None:
    settings = settings_for(sandbox, scratch)
    servers = [directory_for(Directory(settings.ldap), settings) for _ in range(2)]
    made: list[int] = []
    errors: list[BaseException] = []
    start = threading.Barrier(6)

    def work(server: GroupDirectory, index: int) -> None:
        start.wait()
        try:
            for round_ in range(4):
                record = server.create(
                    f"team {index} {round_}", external_id=None, gid_number=None, member_ids=[]
                )
                made.append(record.gid_number)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(servers[i % 2], i)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for server in servers:
        server.directory.close()
    assert not errors
    assert len(made) == 24 and len(set(made)) == 24


# ---- members


def test_create_with_members_lists_logins_and_dns(
    groups: GroupDirectory, scratch: Scratch, sandbox: Sandbox, users: Callable[[], Any]
) -> None:
    alice, bob = users(), users()
    record = groups.create(
        "Devs", external_id=None, gid_number=None, member_ids=[alice["id"], bob["id"]]
    )
    entry = read(scratch, record.dn)
    assert sorted(entry["memberUid"]) == sorted([login_of(alice), login_of(bob)])
    assert sorted(entry["member"]) == sorted([user_dn(sandbox, alice), user_dn(sandbox, bob)])
    got = groups.get(record.id)
    assert got.members is not None
    assert {(m.id, m.kind, m.display) for m in got.members} == {
        (alice["id"], "User", alice["userName"]),
        (bob["id"], "User", bob["userName"]),
    }
    assert groups.get(record.id, members=False).members is None


def test_an_unknown_member_id_is_400_naming_it(groups: GroupDirectory) -> None:
    missing = "5b0e3e0c-0000-4000-8000-000000000000"
    with pytest.raises(InvalidValueException, match=missing):
        groups.create("Ghosts", external_id=None, gid_number=None, member_ids=[missing])
    with pytest.raises(InvalidValueException, match="not-a-uuid"):
        groups.create("Ghosts", external_id=None, gid_number=None, member_ids=["not-a-uuid"])


def test_adding_and_removing_one_member_is_one_modify(
    groups: GroupDirectory,
    scratch: Scratch,
    users: Callable[[], Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    alice = users()
    record = groups.create("Ones", external_id=None, gid_number=None, member_ids=[])
    calls = Calls(monkeypatch)
    update(groups, record, add=[alice["id"]])
    assert calls.seen == {"search": 1, "modify": 1}
    assert read(scratch, record.dn)["memberUid"] == [login_of(alice)]
    calls.seen.clear()
    update(groups, record, remove=[alice["id"]])
    assert calls.seen == {"search": 1, "modify": 1}
    assert "memberUid" not in read(scratch, record.dn)


def test_adding_twice_and_removing_an_absent_member_are_fine(
    groups: GroupDirectory, scratch: Scratch, users: Callable[[], Any]
) -> None:
    alice, bob = users(), users()
    record = groups.create("Twice", external_id=None, gid_number=None, member_ids=[alice["id"]])
    update(groups, record, add=[alice["id"], bob["id"]])
    update(groups, record, remove=[alice["id"]])
    update(groups, record, remove=[alice["id"], "5b0e3e0c-0000-4000-8000-000000000001"])
    entry = read(scratch, record.dn)
    assert entry["memberUid"] == [login_of(bob)]
    assert len(entry["member"]) == 1


def test_replacing_members_reads_the_values_once(
    groups: GroupDirectory,
    scratch: Scratch,
    users: Callable[[], Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    alice, bob, carol = users(), users(), users()
    record = groups.create(
        "Swap", external_id=None, gid_number=None, member_ids=[alice["id"], bob["id"]]
    )
    calls = Calls(monkeypatch)
    after = update(groups, record, replace_members=[bob["id"], carol["id"]], members=True)
    assert calls.seen["modify"] == 1
    assert {m.id for m in after.members or []} == {bob["id"], carol["id"]}
    assert sorted(read(scratch, record.dn)["memberUid"]) == sorted([login_of(bob), login_of(carol)])
    emptied = update(groups, record, replace_members=[], members=True)
    assert emptied.members == []


def test_member_values_in_another_spelling_are_the_same_members(
    groups: GroupDirectory,
    scratch: Scratch,
    sandbox: Sandbox,
    ldap: Connection,
    users: Callable[[], Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A member DN written by hand (case, spaces) is read as the member and kept by a replace."""
    alice, bob = users(), users()
    record = groups.create("Spelled", external_id=None, gid_number=None, member_ids=[alice["id"]])
    spelled = user_dn(sandbox, bob).upper().replace(",", " , ")
    ldap.modify(
        record.dn,
        {"member": [(MODIFY_ADD, [spelled])], "memberUid": [(MODIFY_ADD, [login_of(bob)])]},
    )
    assert ldap.result["result"] == 0, ldap.result
    shown = groups.get(record.id)
    assert {m.id for m in shown.members or []} == {alice["id"], bob["id"]}
    calls = Calls(monkeypatch)
    same = update(groups, shown, replace_members=[alice["id"], bob["id"]])
    assert calls.seen["modify"] == 0, "nothing to change: the spelled value is bob"
    assert len(read(scratch, record.dn)["member"]) == 2
    update(groups, same, replace_members=[alice["id"]])
    assert [v.lower() for v in read(scratch, record.dn)["member"]] == [
        user_dn(sandbox, alice).lower()
    ]


def test_a_nested_group_is_listed_in_member_only_and_deleting_it_cleans_up(
    groups: GroupDirectory, scratch: Scratch
) -> None:
    inner = groups.create("Inner", external_id=None, gid_number=None, member_ids=[])
    outer = groups.create("Outer", external_id=None, gid_number=None, member_ids=[inner.id])
    entry = read(scratch, outer.dn)
    assert entry["member"] == [inner.dn] and "memberUid" not in entry
    assert [(m.id, m.kind, m.display) for m in groups.get(outer.id).members or []] == [
        (inner.id, "Group", "Inner")
    ]
    renamed = update(groups, groups.get(inner.id), display_name="Inner Circle")
    assert read(scratch, outer.dn)["member"] == [renamed.dn]
    groups.delete(inner.id, None)
    assert "member" not in read(scratch, outer.dn)


def test_nesting_needs_member_values(pool: Directory, sandbox: Sandbox, scratch: Scratch) -> None:
    groups = directory_for(pool, settings_for(sandbox, scratch, membership="rfc2307"))
    inner = groups.create("Solo", external_id=None, gid_number=None, member_ids=[])
    with pytest.raises(InvalidValueException):
        groups.create("Nest", external_id=None, gid_number=None, member_ids=[inner.id])


def test_rfc2307bis_lists_dns_only(
    pool: Directory, sandbox: Sandbox, scratch: Scratch, users: Callable[[], Any]
) -> None:
    groups = directory_for(pool, settings_for(sandbox, scratch, membership="rfc2307bis"))
    alice = users()
    record = groups.create("Bis", external_id=None, gid_number=None, member_ids=[alice["id"]])
    entry = read(scratch, record.dn)
    assert entry["member"] == [user_dn(sandbox, alice)] and "memberUid" not in entry
    assert [m.id for m in groups.get(record.id).members or []] == [alice["id"]]


def test_rfc2307_lists_logins_only(
    pool: Directory, sandbox: Sandbox, scratch: Scratch, users: Callable[[], Any]
) -> None:
    groups = directory_for(pool, settings_for(sandbox, scratch, membership="rfc2307"))
    alice = users()
    record = groups.create("Plain", external_id=None, gid_number=None, member_ids=[alice["id"]])
    entry = read(scratch, record.dn)
    assert entry["memberUid"] == [login_of(alice)] and "member" not in entry
    assert [m.id for m in groups.get(record.id).members or []] == [alice["id"]]


# ---- rename, externalId, If-Match, delete


def test_a_rename_keeps_id_and_gid(groups: GroupDirectory, scratch: Scratch) -> None:
    record = groups.create("Before", external_id="x", gid_number=None, member_ids=[])
    after = update(groups, record, display_name="After Rename", external_id=None)
    assert (after.id, after.gid_number) == (record.id, record.gid_number)
    assert after.name == "after_rename" and after.dn != record.dn
    assert after.external_id is None
    assert read(scratch, after.dn)["displayName"] == ["After Rename"]
    assert scratch.read(record.dn) is None
    case_only = update(groups, after, display_name="AFTER RENAME")
    assert case_only.dn == after.dn and case_only.display_name == "AFTER RENAME"


def test_a_stale_version_is_412(groups: GroupDirectory) -> None:
    record = groups.create("Versioned", external_id=None, gid_number=None, member_ids=[])
    update(groups, record, external_id="new")
    with pytest.raises(PreconditionFailedException):
        update(groups, record, external_id="newer", if_match=record.version)
    with pytest.raises(PreconditionFailedException):
        groups.delete(record.id, record.version)


def test_search_pages_sorted_by_name(groups: GroupDirectory) -> None:
    for name in ("Gamma", "Alpha", "Beta"):
        groups.create(name, external_id=name.lower(), gid_number=None, member_ids=[])
    total, page = groups.search("(&)", 2, 2, members=False)
    assert total == 3 and [r.name for r in page] == ["beta", "gamma"]
    attribute = groups.filter_for("externalId")
    total, page = groups.search(f"({attribute}=alpha)", 1, 10, members=True)
    assert total == 1 and page[0].display_name == "Alpha" and page[0].members == []


# ---- the users' side


def test_user_rename_and_delete_keep_memberships_right(
    groups: GroupDirectory,
    scratch: Scratch,
    sandbox: Sandbox,
    client: TestClient,
    users: Callable[[], Any],
) -> None:
    alice = users()
    record = groups.create("Members", external_id=None, gid_number=None, member_ids=[alice["id"]])
    renamed_to = f"{unique('r')}@example.com"
    response = patch(
        client, alice["id"], {"op": "replace", "path": "userName", "value": renamed_to}
    )
    assert response.status_code == 200, response.text
    renamed = response.json()
    entry = read(scratch, record.dn)
    assert entry["memberUid"] == [login_of(renamed)]
    assert entry["member"] == [user_dn(sandbox, renamed)]
    [member] = groups.get(record.id).members or []
    assert (member.id, member.display) == (alice["id"], renamed_to)
    assert [
        g.id for g in groups.groups_of_user(None, user_dn(sandbox, renamed), login_of(renamed))
    ] == [record.id]
    assert client.delete(f"{USERS}/{alice['id']}").status_code == 204
    entry = read(scratch, record.dn)
    assert "memberUid" not in entry and "member" not in entry


def test_a_disable_that_moves_the_account_moves_its_member_values(
    groups: GroupDirectory, scratch: Scratch, sandbox: Sandbox, ldap: Connection
) -> None:
    base = sandbox.directory.base_dn
    ensure_entry(ldap, f"ou=disabled,{base}", ["top", "organizationalUnit"], ou="disabled")
    with configured_client(sandbox, accounts=AccountSettings(disable=["move"])) as client:
        alice = new_user(client)
        try:
            record = groups.create(
                "Movers", external_id=None, gid_number=None, member_ids=[alice["id"]]
            )
            off = {"op": "replace", "path": "active", "value": False}
            assert patch(client, alice["id"], off).status_code == 200
            moved = f"uid={login_of(alice)},ou=disabled,{base}"
            assert read(scratch, record.dn)["member"] == [moved]
            assert read(scratch, record.dn)["memberUid"] == [login_of(alice)]
            on = {"op": "replace", "path": "active", "value": True}
            assert patch(client, alice["id"], on).status_code == 200
            assert read(scratch, record.dn)["member"] == [user_dn(sandbox, alice)]
        finally:
            delete_quietly(client, alice["id"])
    assert "member" not in read(scratch, record.dn)


def test_an_interrupted_move_has_its_member_values_finished(
    groups: GroupDirectory,
    scratch: Scratch,
    sandbox: Sandbox,
    ldap: Connection,
    client: TestClient,
    users: Callable[[], Any],
) -> None:
    alice = users()
    here = user_dn(sandbox, alice)
    before = f"uid={login_of(alice)},ou=disabled,{sandbox.directory.base_dn}"
    record = groups.create("Halfway", external_id=None, gid_number=None, member_ids=[])
    assert ldap.modify(record.dn, {"member": [(MODIFY_ADD, [before])]}), ldap.result
    marker = Pending(op="update", login=login_of(alice), dn=here, old_dn=before)
    assert ldap.modify(here, {"scimPending": [(MODIFY_REPLACE, [marker.encode()])]}), ldap.result
    assert client.get(f"{USERS}/{alice['id']}").status_code == 200
    assert read(scratch, record.dn)["member"] == [here]
    assert "scimPending" not in read(scratch, here)


def test_the_sandbox_has_what_groups_need(groups: GroupDirectory) -> None:
    assert groups.preflight_warnings() == []


def test_two_creates_of_one_display_name_at_once_leave_one_group(
    pool: Directory, sandbox: Sandbox, scratch: Scratch
) -> None:
    settings = settings_for(sandbox, scratch)
    servers = [directory_for(Directory(settings.ldap), settings) for _ in range(4)]
    start = threading.Barrier(len(servers))
    outcomes: list[str] = []

    def work(server: GroupDirectory, shown: str) -> None:
        start.wait()
        try:
            server.create(shown, external_id=None, gid_number=None, member_ids=[])
            outcomes.append("made")
        except UniquenessException:
            outcomes.append("409")

    threads = [
        threading.Thread(target=work, args=(server, shown))
        for server, shown in zip(servers, ["Race", "RACE", "race", "Race"], strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for server in servers:
        server.directory.close()
    assert sorted(outcomes) == ["409", "409", "409", "made"]
    total, found = servers[0].search("(displayName=race)", 1, 10, members=False)
    assert total == 1 and found[0].name == "race"


def test_round_trips_of_each_operation(
    groups: GroupDirectory, users: Callable[[], Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    alice, bob = users(), users()
    groups.create("Warm", external_id=None, gid_number=None, member_ids=[])
    calls = Calls(monkeypatch)

    def cost(action: Callable[[], Any]) -> dict[str, int]:
        calls.seen.clear()
        action()
        return dict(calls.seen)

    made: list[GroupRecord] = []
    assert cost(
        lambda: made.append(
            groups.create("Trips", external_id=None, gid_number=None, member_ids=[alice["id"]])
        )
    ) == {"search": 4, "modify": 1, "add": 1}, (
        "names taken, members, counter read, collision search, compare-and-swap, add"
    )
    record = made[0]
    assert cost(lambda: groups.get(record.id, members=False)) == {"search": 1}
    assert cost(lambda: groups.get(record.id)) == {"search": 2}
    assert cost(lambda: update(groups, record, add=[bob["id"]])) == {"search": 1, "modify": 1}
    assert cost(lambda: update(groups, record, remove=[bob["id"]])) == {"search": 1, "modify": 1}
    assert cost(lambda: update(groups, record, replace_members=[bob["id"]])) == {
        "search": 2,
        "modify": 1,
    }, "members, the values now, one modify"
    record = groups.get(record.id, members=False)
    assert cost(lambda: update(groups, record, display_name="Trips Renamed")) == {
        "search": 3,
        "modify": 1,
        "rename": 1,
    }, "names taken, modify, modrdn, groups nesting it, read back"
    assert cost(lambda: groups.delete(record.id, None)) == {"search": 2, "delete": 1}
