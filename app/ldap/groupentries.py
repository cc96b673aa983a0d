"""SCIM Group resources as posixGroup entries below ``ldap.groups_dn``.

An entry is ``posixGroup`` (the name ``cn`` and a ``gidNumber`` Linux reads)
with the auxiliary ``scimGroup`` (``displayName`` as sent, ``scimExternalId``,
``member``); it is named ``cn=<name>,<groups_dn>`` and its SCIM id is its
entryUUID, which survives renames. The name is made of the displayName by the
login rule's machinery (``groups.name_*``); a displayName another SCIM group
holds (compared as the directory compares it, ignoring case) is refused.
Members are listed as ``groups.membership`` says (app/ldap/groupmembers.py).

Round trips (pooled connection):

- create: 1 search of the names and displayName taken + the gidNumber (1
  counter read + 1 collision search + 1 compare-and-swap, or 1 search of a
  requested one) + 1 search of the members (when any) + 1 add with post-read;
- get: 1 search, + 1 search per 200 members when members are read;
- search: 1 search (VLV, or plain when selective), + 1 per 200 members;
- update: 1 read of the group (the caller's ``get``) + 1 search of the
  members named (when any) + 1 modify with post-read; adding or removing
  members is that one modify of the values alone (MODIFY_ADD/MODIFY_DELETE),
  falling back to one modify per value when one is already there (or gone);
  replacing all members adds 1 read of the member values; a new displayName
  adds 1 search of the names taken, and a rename 1 modrdn + 1 search of the
  groups nesting it (+1 modify each) + 1 read back;
- delete: 1 read + 1 delete + 1 search of the groups nesting it (+1 modify each).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from ldap3 import MODIFY_ADD, MODIFY_DELETE, MODIFY_REPLACE
from ldap3.protocol.rfc4527 import post_read_control
from ldap3.utils.ciDict import CaseInsensitiveDict
from scim2_models import InvalidValueException, NotFoundException, UniquenessException

from app.config import Settings
from app.ldap import writes
from app.ldap.connection import Control, Directory, Session
from app.ldap.controls import (
    MAX_INT,
    VLV_ERROR,
    VLV_REQUEST_OID,
    SortKey,
    read_vlv_response,
    sort_control,
    vlv_control,
)
from app.ldap.dn import child_dn, dn_key, rdn_of, same_dn
from app.ldap.errors import DirectoryFailure
from app.ldap.groupmembers import GROUP_CLASS, Member, MemberResolver, Target, canonical_id
from app.ldap.groups import PosixGroups
from app.ldap.ids import GidAllocator
from app.ldap.logins import assertion_value, folded, values_of
from app.ldap.mapping import OPERATIONAL, parse_generalized_time
from app.ldap.preflight import index_warnings, schema_warnings
from app.ldap.steps import Steps
from app.ldap.users import POST_READ, UserDirectory
from app.ldap.writer import version_guard

log = logging.getLogger(__name__)

__all__ = ["GroupDirectory", "GroupRecord", "Member"]

GROUP_FILTER = f"(&(objectClass=posixGroup)(objectClass={GROUP_CLASS}))"
READ = ["cn", "gidNumber", "displayName", "scimExternalId", "objectClass", *OPERATIONAL]
FILTERABLE = {
    "id": "entryUUID",
    "displayname": "displayName",
    "externalid": "scimExternalId",
    "meta.created": "createTimestamp",
    "meta.lastmodified": "modifyTimestamp",
}
INDEXES = {
    "objectClass": "eq",
    "entryUUID": "eq",
    "cn": "eq",
    "displayName": "eq",
    "scimExternalId": "eq",
    "gidNumber": "eq",
    "member": "eq",
    "memberUid": "eq",
}
"""What group reads and writes search on (preflight)."""

Changes = dict[str, list[tuple[str, list[str]]]]
SMALL_SEARCH = 200
"""Largest window a selective search answers without sorting in the directory."""


@dataclass
class GroupRecord:
    """A SCIM group entry read from the directory."""

    id: str
    dn: str
    name: str
    """The POSIX group name (cn)."""
    display_name: str
    external_id: str | None
    gid_number: int
    members: list[Member] | None
    """None when not read."""
    created: datetime | None
    modified: datetime | None
    version: str | None
    """entryCSN (the ETag)."""


def _first(attributes: Mapping[str, Any], name: str) -> str | None:
    found = values_of(attributes, name)
    return str(found[0]) if found else None


class GroupDirectory:
    """Reads and writes SCIM groups; members are named by id."""

    def __init__(self, directory: Directory, settings: Settings, users: UserDirectory) -> None:
        self.directory = directory
        self.settings = settings.groups
        self.posix = settings.posix
        self.base_dn = settings.ldap.base_dn
        self.container = settings.ldap.groups_dn
        self.rule = settings.groups.rule()
        self.gids = GidAllocator(directory, settings.groups, self.base_dn)
        self.posix_groups = PosixGroups(directory, settings.posix, self.container)
        self.resolver = MemberResolver(
            users.mapping, self.base_dn, self.container, settings.groups.membership
        )
        self.classes = ["top", *settings.groups.object_classes]
        self._vlv: bool | None = None

    # ---- reading

    def _attributes(self, members: bool) -> list[str]:
        return [*READ, *self.resolver.value_attributes] if members else READ

    def _record(self, entry: Mapping[str, Any], members: list[Member] | None) -> GroupRecord:
        attributes = entry["attributes"]
        dn = str(entry["dn"])
        name = _first(attributes, "cn") or ""
        return GroupRecord(
            id=canonical_id(_first(attributes, "entryUUID") or "") or "",
            dn=dn,
            name=name,
            display_name=_first(attributes, "displayName") or name,
            external_id=_first(attributes, "scimExternalId"),
            gid_number=int(_first(attributes, "gidNumber") or 0),
            members=members,
            created=parse_generalized_time(_first(attributes, "createTimestamp")),
            modified=parse_generalized_time(_first(attributes, "modifyTimestamp")),
            version=_first(attributes, "entryCSN"),
        )

    def _records(
        self, session: Session, entries: Sequence[Mapping[str, Any]], members: bool
    ) -> list[GroupRecord]:
        lists: Sequence[list[Member] | None] = (
            self.resolver.members(session, entries) if members else [None] * len(entries)
        )
        return [self._record(e, m) for e, m in zip(entries, lists, strict=True)]

    def _find(self, session: Session, group_id: str, members: bool) -> dict[str, Any]:
        canonical = canonical_id(group_id)
        if canonical is None:
            raise NotFoundException(detail=f"Group {group_id} not found")
        entries = session.search(
            self.container,
            f"(&{GROUP_FILTER}(entryUUID={canonical}))",
            self._attributes(members),
            action=f"read group {canonical}",
        )
        if not entries:
            raise NotFoundException(detail=f"Group {group_id} not found")
        return entries[0]

    def get(self, group_id: str, *, members: bool = True) -> GroupRecord:
        """The group with this id (404 for an unknown id or one that is not a UUID)."""
        with self.directory.session() as session:
            return self._records(session, [self._find(session, group_id, members)], members)[0]

    def filter_for(self, attribute: str) -> str | None:
        """The LDAP attribute a SCIM group attribute is filtered on; None when it is not."""
        return FILTERABLE.get(attribute.lower())

    def search(
        self, ldap_filter: str, start_index: int, count: int, *, members: bool
    ) -> tuple[int, list[GroupRecord]]:
        """The total of matches and the page asked for (1-based), sorted by name.

        ``ldap_filter`` is an escaped LDAP filter, ``(&)`` for every group.
        """
        start_index = min(max(start_index, 1), MAX_INT)
        count = min(max(count, 0), MAX_INT)
        full = GROUP_FILTER if ldap_filter == "(&)" else f"(&{GROUP_FILTER}{ldap_filter})"
        attributes = self._attributes(members)
        small = SMALL_SEARCH
        if ldap_filter != "(&)" and start_index - 1 + count <= small:
            with self.directory.session() as session:
                entries = session.search(
                    self.container, full, attributes, size_limit=small + 1, action="search groups"
                )
                if not session.limited:
                    return self._page(session, entries, start_index, count, members)
        with self.directory.session(dedicated=True) as session:
            if self._vlv is None:
                self._vlv = self._supports_vlv(session)
            if not self._vlv:
                entries = session.search(self.container, full, attributes, action="search groups")
                return self._page(session, entries, start_index, count, members)
            controls: list[Control] = [
                sort_control([SortKey("cn", "caseIgnoreOrderingMatch")]),
                vlv_control(start_index, 0, max(count - 1, 0)),
            ]
            entries = session.search(
                self.container,
                full,
                attributes if count else ["1.1"],
                controls=controls,
                tolerate=(VLV_ERROR,),
                action="search groups",
            )
            vlv = read_vlv_response(session.conn.result)
            if vlv is None:
                raise DirectoryFailure(detail="The directory did not answer the paged search")
            if start_index > vlv.content_count or not count:
                return vlv.content_count, []
            return vlv.content_count, self._records(session, entries[:count], members)

    def _page(
        self,
        session: Session,
        entries: list[dict[str, Any]],
        start_index: int,
        count: int,
        members: bool,
    ) -> tuple[int, list[GroupRecord]]:
        ordered = sorted(entries, key=lambda e: (_first(e["attributes"], "cn") or "").lower())
        page = ordered[start_index - 1 : start_index - 1 + count]
        return len(entries), self._records(session, page, members)

    def _supports_vlv(self, session: Session) -> bool:
        entries = session.search(
            "", "(objectClass=*)", ["supportedControl"], scope="BASE", action="read the root DSE"
        )
        controls = entries[0]["attributes"].get("supportedControl", []) if entries else []
        return VLV_REQUEST_OID in controls

    def groups_of_user(self, session: Session | None, user_dn: str, login: str) -> list[Member]:
        """The SCIM groups that list the user directly (one search)."""
        if session is not None:
            return self.resolver.groups_of(session, user_dn, login)
        with self.directory.session() as own:
            return self.resolver.groups_of(own, user_dn, login)

    def preflight_warnings(self) -> list[str]:
        """What the directory lacks for groups: schema elements, then indexes."""
        uses = {"displayName": "group displayName", "scimExternalId": "group externalId"}
        uses.update({"member": "group members", "memberUid": "group members"})
        with self.directory.session() as session:
            return [
                *schema_warnings(session, uses, self.settings.object_classes),
                *index_warnings(session, self.container, INDEXES),
            ]

    # ---- names and numbers

    def _candidates(self, display_name: str) -> tuple[str, ...]:
        if not display_name.strip():
            raise InvalidValueException(detail="displayName is required")
        try:
            return self.rule.candidates(display_name.replace("@", " "))
        except InvalidValueException:
            raise InvalidValueException(
                detail=f"displayName {display_name!r} is not a valid POSIX group name "
                f"(groups.name_pattern {self.rule.pattern.pattern!r}, at most "
                f"{self.rule.max_length} characters); groups.name_policy 'derive' makes a "
                "name of any displayName"
            ) from None

    def _choose_name(
        self,
        session: Session,
        display_name: str,
        *,
        current: GroupRecord | None = None,
        skip: Collection[str] = (),
    ) -> str:
        """The name of a group of this displayName: 409 when another group has the displayName.

        ``current`` (an update) keeps its name when it is a candidate.
        """
        candidates = self._candidates(display_name)
        names = "".join(f"(cn={assertion_value(c)})" for c in candidates)
        entries = session.search(
            self.base_dn,
            f"(|(&(objectClass=posixGroup)(|{names}))"
            f"(&(objectClass={GROUP_CLASS})(displayName={assertion_value(display_name)})))",
            ["cn", "displayName", "objectClass"],
            action="check which group names are taken",
        )
        taken = {folded(s) for s in skip}
        for entry in entries:
            if current is not None and same_dn(str(entry["dn"]), current.dn):
                continue
            attributes = entry["attributes"]
            classes = {str(c).lower() for c in values_of(attributes, "objectClass")}
            shown = _first(attributes, "displayName")
            if GROUP_CLASS.lower() in classes and folded(shown or "") == folded(display_name):
                raise UniquenessException(
                    detail=f"displayName {display_name} already exists (the group {entry['dn']})"
                )
            if "posixgroup" in classes:
                taken.update(folded(str(v)) for v in values_of(attributes, "cn"))
        if current is not None and current.name in candidates and folded(current.name) not in skip:
            return current.name
        for name in candidates:
            if folded(name) not in taken:
                return name
        if not self.rule.derives:
            raise UniquenessException(
                detail=f"the group name {candidates[0]!r} of displayName {display_name} is taken"
            )
        raise UniquenessException(
            detail=f"displayName {display_name} gets no free group name: "
            f"{', '.join(repr(c) for c in candidates)} are all taken"
        )

    def _check_gid(self, session: Session, gid: int) -> None:
        if gid < self.posix.min_gid_number:
            raise InvalidValueException(
                detail=f"gidNumber {gid} is below {self.posix.min_gid_number}: system ids are "
                "refused"
            )
        found = session.search(
            self.base_dn,
            f"(&(objectClass=posixGroup)(gidNumber={int(gid)}))",
            ["1.1"],
            size_limit=1,
            action=f"look for the group of gidNumber {gid}",
        )
        if found:
            raise UniquenessException(
                detail=f"gidNumber {gid} already belongs to another group ({found[0]['dn']})"
            )

    # ---- members

    def _resolve(
        self, session: Session, ids: Sequence[str], refuse: Sequence[str]
    ) -> dict[str, Target]:
        """Targets by canonical id; 400 naming the ids of ``refuse`` that name no member."""
        if not ids:
            return {}
        found, unknown = self.resolver.targets(session, ids)
        refused = [value for value in unknown if value in set(refuse)]
        if refused:
            raise InvalidValueException(
                detail=f"no user or group has the id {', '.join(dict.fromkeys(refused))}"
            )
        return found

    @staticmethod
    def _pick(found: Mapping[str, Target], ids: Sequence[str]) -> list[Target]:
        picked: dict[str, Target] = {}
        for value in ids:
            canonical = canonical_id(value)
            if canonical is not None and canonical in found:
                picked.setdefault(canonical, found[canonical])
        return list(picked.values())

    def _post_read(self) -> Control:
        control: Control = post_read_control(READ)
        return control

    def _after(self, result: Mapping[str, Any], dn: str) -> dict[str, Any] | None:
        control = (result.get("controls") or {}).get(POST_READ, {})
        raw = control.get("value", {}).get("result", {})
        if not raw:
            return None
        attributes = CaseInsensitiveDict()
        for name, values in raw.items():
            attributes[name] = [
                v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values
            ]
        return {"dn": dn, "attributes": attributes}

    def _reread(self, session: Session, dn: str, members: bool) -> GroupRecord:
        found = session.search(
            dn, "(objectClass=*)", self._attributes(members), scope="BASE", action="read group"
        )
        if not found:
            raise NotFoundException(detail="the group vanished during the update")
        return self._records(session, found, members)[0]

    # ---- writing

    def create(
        self,
        display_name: str,
        *,
        external_id: str | None,
        gid_number: int | None,
        member_ids: Sequence[str],
    ) -> GroupRecord:
        """Add the group with its members; 409 when the displayName or gidNumber is taken."""
        with self.directory.session() as session:
            name = self._choose_name(session, display_name)
            found = self._resolve(session, member_ids, member_ids)
            targets = self._pick(found, member_ids)
            if gid_number is not None:
                self._check_gid(session, gid_number)
                gid = gid_number
            else:
                gid = self.gids.allocate(session)
            attributes: dict[str, Any] = {
                "objectClass": self.classes,
                "gidNumber": str(gid),
                "displayName": display_name,
                **self.resolver.values(targets),
            }
            if external_id:
                attributes["scimExternalId"] = external_id
            tried: list[str] = []
            try:
                while True:
                    dn = child_dn("cn", name, self.container)
                    try:
                        result = session.add(
                            dn,
                            {**attributes, "cn": name},
                            controls=[self._post_read()],
                            action=f"create group {name}",
                        )
                        break
                    except UniquenessException:
                        if not self.rule.derives:
                            raise
                        tried.append(name)
                        log.info("the group name %s was taken meanwhile; trying the next", name)
                        name = self._choose_name(session, display_name, skip=tried)
                    except NotFoundException:
                        raise DirectoryFailure(
                            detail=f"Cannot create the group {dn}: the container "
                            f"{self.container} does not exist"
                        ) from None
            except BaseException:
                if gid_number is None:
                    self.gids.release(session, gid)
                raise
            entry = self._after(result, dn)
            members = [t.member for t in targets]
            if entry is None:
                record = self._reread(session, dn, members=False)
                record.members = members
                return record
            return self._record(entry, members)

    def update(
        self,
        current: GroupRecord,
        *,
        display_name: str,
        external_id: str | None,
        add: Sequence[str],
        remove: Sequence[str],
        replace_members: Sequence[str] | None,
        if_match: str | None,
        members: bool = False,
    ) -> GroupRecord:
        """Give the group these values and members.

        A new displayName renames the group (modrdn: the id and gidNumber
        stay) unless ``groups.rename`` is off; ``external_id`` None clears it.
        ``add`` and ``remove`` name members by id, ``replace_members`` (when
        not None) is the whole list, to which ``add`` is then added and from
        which ``remove`` is taken. An id in both ``add`` and ``remove`` ends
        removed. Adding a member or removing a non-member is not an error;
        an id of ``add`` or ``replace_members`` that names no user or group
        is 400, one of ``remove`` is ignored (it is no member). The returned
        record carries members when ``members`` is true.
        """
        guard = version_guard(if_match, current.version)
        with self.directory.session() as session:
            changes: Changes = {}
            new_name = current.name
            if display_name != current.display_name:
                if self.settings.rename:
                    new_name = self._choose_name(session, display_name, current=current)
                else:
                    self._choose_name(session, display_name, current=current)
                changes["displayName"] = [(MODIFY_REPLACE, [display_name])]
            if (external_id or None) != current.external_id:
                changes["scimExternalId"] = [(MODIFY_REPLACE, [external_id] if external_id else [])]
            inverse: Changes = {
                name: [(MODIFY_REPLACE, [value] if value else [])]
                for name, value in (
                    ("displayName", current.display_name),
                    ("scimExternalId", current.external_id),
                )
                if name in changes
            }
            wanted = [*add, *(replace_members or [])]
            found = self._resolve(session, [*wanted, *remove], wanted)
            added, removed = self._membership(session, current, found, add, remove, replace_members)
            with Steps() as steps:
                result = self._modify(
                    session, steps, current.dn, changes, inverse, added, removed, guard
                )
                dn = current.dn
                if new_name != current.name:
                    dn = self._rename(session, steps, current, display_name, new_name)
                    result = None
                if result is not None and not members:
                    entry = self._after(result, dn)
                    if entry is not None:
                        return self._record(entry, None)
                if not changes and not added and not removed and dn == current.dn and not members:
                    return current
                return self._reread(session, dn, members)

    def _membership(
        self,
        session: Session,
        current: GroupRecord,
        found: Mapping[str, Target],
        add: Sequence[str],
        remove: Sequence[str],
        replace_members: Sequence[str] | None,
    ) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
        """The member values to add and to delete."""
        if any(t.dn and same_dn(t.dn, current.dn) for t in self._pick(found, add)):
            raise InvalidValueException(detail="a group cannot be a member of itself")
        gone = {t.member.id for t in self._pick(found, remove)}
        if replace_members is None:
            joining = [t for t in self._pick(found, add) if t.member.id not in gone]
            return self.resolver.values(joining), self.resolver.values(self._pick(found, remove))
        desired = [
            t for t in self._pick(found, [*replace_members, *add]) if t.member.id not in gone
        ]
        if any(same_dn(t.dn, current.dn) for t in desired):
            raise InvalidValueException(detail="a group cannot be a member of itself")
        entries = session.search(
            current.dn,
            "(objectClass=*)",
            ["memberUid", "member"],
            scope="BASE",
            action="read the members of the group",
        )
        if not entries:
            raise NotFoundException(detail=f"Group {current.id} not found")
        have = entries[0]["attributes"]
        want = self.resolver.values(desired)
        adds: dict[str, list[str]] = {}
        deletes: dict[str, list[str]] = {}
        for attribute, key in (("memberUid", str), ("member", _dn_key)):
            present = {key(str(v)): str(v) for v in values_of(have, attribute)}
            target = {key(v): v for v in want.get(attribute, [])}
            if new := [v for k, v in target.items() if k not in present]:
                adds[attribute] = new
            if old := [v for k, v in present.items() if k not in target]:
                deletes[attribute] = old
        return adds, deletes

    def _modify(
        self,
        session: Session,
        steps: Steps,
        dn: str,
        changes: Changes,
        inverse: Changes,
        added: Mapping[str, list[str]],
        removed: Mapping[str, list[str]],
        guard: list[Control],
    ) -> dict[str, Any] | None:
        """One modify of the attributes and member values; the result (None: several modifies).

        When a value to add is there already or one to delete is gone (a
        concurrent change, a repeated request), the directory refuses the
        whole modify: the values are then sent one per modify, each
        tolerating that answer.
        """
        full: Changes = dict(changes)
        for attribute in ("memberUid", "member"):
            ops = [(MODIFY_ADD, added[attribute])] if added.get(attribute) else []
            ops += [(MODIFY_DELETE, removed[attribute])] if removed.get(attribute) else []
            if ops:
                full[attribute] = ops
        if not full:
            return None
        result = session.modify(
            dn,
            full,
            controls=[*guard, self._post_read()],
            tolerate=(writes.ATTRIBUTE_OR_VALUE_EXISTS, writes.NO_SUCH_ATTRIBUTE),
            action="update group",
        )
        if result["result"] == writes.SUCCESS:
            undo: Changes = dict(inverse)
            for attribute in ("memberUid", "member"):
                ops = [(MODIFY_DELETE, added[attribute])] if added.get(attribute) else []
                ops += [(MODIFY_ADD, removed[attribute])] if removed.get(attribute) else []
                if ops:
                    undo[attribute] = ops
            steps.done("the group modify", lambda: session.modify(dn, undo, action="undo a modify"))
            return result
        if changes or guard:
            session.modify(dn, changes, controls=guard, action="update group")
            steps.done(
                "the group modify", lambda: session.modify(dn, inverse, action="undo a modify")
            )
        groups = self.posix_groups
        for attribute, values in added.items():
            for value in values:
                if groups.add_value(session, dn, attribute, value):
                    steps.done(
                        "a member added",
                        partial(groups.remove_value, session, dn, attribute, value),
                    )
        for attribute, values in removed.items():
            for value in values:
                if groups.remove_value(session, dn, attribute, value):
                    steps.done(
                        "a member removed", partial(groups.add_value, session, dn, attribute, value)
                    )
        return None

    def _rename(
        self, session: Session, steps: Steps, current: GroupRecord, display_name: str, name: str
    ) -> str:
        """modrdn to ``cn=<name>`` (the next free name when it was taken meanwhile); the new DN.

        Groups nesting this one follow: their member value is renamed.
        """
        tried: list[str] = []
        while True:
            try:
                writes.rename(
                    session,
                    current.dn,
                    rdn_of("cn", name),
                    action=f"rename group {current.name} to {name}",
                )
                break
            except UniquenessException:
                if not self.rule.derives:
                    raise UniquenessException(
                        detail=f"the group name {name!r} is already taken"
                    ) from None
                tried.append(name)
                name = self._choose_name(session, display_name, current=current, skip=tried)
        dn = child_dn("cn", name, self.container)
        steps.done(
            "the rename",
            lambda: session.rename(dn, rdn_of("cn", current.name), action="undo a rename"),
        )
        if self.resolver.by_dn:
            self.posix_groups.rename_member_dn(session, current.dn, dn)
            steps.done(
                "the nesting renames",
                lambda: self.posix_groups.rename_member_dn(session, dn, current.dn),
            )
        return dn

    def delete(self, group_id: str, if_match: str | None) -> None:
        """Delete the group, then take its DN out of the groups nesting it.

        Its gidNumber is not handed out again: the counter only moves forward.
        """
        with self.directory.session() as session:
            record = self._records(session, [self._find(session, group_id, False)], False)[0]
            guard = version_guard(if_match, record.version)
            writes.delete(
                session,
                record.dn,
                controls=guard,
                tolerate=(writes.NO_SUCH_OBJECT,),
                action=f"delete group {record.name}",
            )
            if self.resolver.by_dn:
                self.posix_groups.remove_dn_everywhere(session, record.dn)


def _dn_key(dn: str) -> Any:
    try:
        return dn_key(dn)
    except (ValueError, IndexError):
        return dn.lower()
