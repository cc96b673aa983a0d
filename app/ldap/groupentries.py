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
- delete: 1 read + 1 search of the groups nesting it (+1 modify each) + 1 delete.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ldap3 import MODIFY_REPLACE
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
from app.ldap.dn import child_dn
from app.ldap.errors import DirectoryFailure
from app.ldap.groupedits import Changes, GroupEdits, Values
from app.ldap.groupmembers import (
    GROUP_CLASS,
    Member,
    MemberResolver,
    Target,
    canonical_id,
    pick,
)
from app.ldap.groupnames import GroupNames
from app.ldap.groups import PosixGroups
from app.ldap.ids import GidAllocator
from app.ldap.logins import values_of
from app.ldap.mapping import OPERATIONAL, parse_generalized_time
from app.ldap.preflight import GROUP_INDEXES, index_warnings, schema_warnings
from app.ldap.steps import Steps
from app.ldap.sudoroles import SudoRoles
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
        self.names = GroupNames(settings.groups.rule(), self.base_dn, settings.posix.min_gid_number)
        self.gids = GidAllocator(directory, settings.groups, self.base_dn)
        self.posix_groups = PosixGroups(directory, settings.posix, self.container)
        self.resolver = MemberResolver(
            users.mapping, self.base_dn, self.container, settings.groups.membership
        )
        self.edits = GroupEdits(
            self.resolver, self.names, self.posix_groups, self.container, self._post_read()
        )
        self.classes = ["top", *settings.groups.object_classes]
        self.sudo = SudoRoles(settings.groups)
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
        classes = list(self.settings.object_classes)
        if self.settings.sudo:
            uses.update({"sudoUser": "groups.sudo", "sudoCommand": "groups.sudo"})
            classes.append("sudoRole")
        with self.directory.session() as session:
            return [
                *schema_warnings(session, uses, classes),
                *index_warnings(session, self.container, GROUP_INDEXES),
            ]

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
            name = self.names.choose(session, display_name)
            found = self._resolve(session, member_ids, member_ids)
            targets = pick(found, member_ids)
            if gid_number is not None:
                self.names.check_gid(session, gid_number)
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
                        if not self.names.derives:
                            raise
                        tried.append(name)
                        log.info("the group name %s was taken meanwhile; trying the next", name)
                        name = self.names.choose(session, display_name, skip=tried)
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
            else:
                record = self._record(entry, members)
            self.sudo.grant(session, record.name, record.display_name)
            return record

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
        gid_number: int | None = None,
    ) -> GroupRecord:
        """Give the group these values and members.

        A ``gid_number`` other than the current one is checked like a requested
        one (no other group holds it) and written; hosts then see the group
        under the new number, and files owned by the old one lose their group.

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
                    new_name = self.names.choose(
                        session, display_name, current=(current.dn, current.name)
                    )
                else:
                    self.names.choose(session, display_name, current=(current.dn, current.name))
                changes["displayName"] = [(MODIFY_REPLACE, [display_name])]
            if (external_id or None) != current.external_id:
                changes["scimExternalId"] = [(MODIFY_REPLACE, [external_id] if external_id else [])]
            if gid_number is not None and gid_number != current.gid_number:
                self.names.check_gid(session, gid_number)
                changes["gidNumber"] = [(MODIFY_REPLACE, [str(gid_number)])]
            inverse: Changes = {
                name: [(MODIFY_REPLACE, [value] if value else [])]
                for name, value in (
                    ("displayName", current.display_name),
                    ("scimExternalId", current.external_id),
                    ("gidNumber", str(current.gid_number)),
                )
                if name in changes
            }
            wanted = [*add, *(replace_members or [])]
            found = self._resolve(session, [*wanted, *remove], wanted)
            added, removed = self.edits.membership(
                session, current.dn, found, add, remove, replace_members
            )
            self.sudo.leaving(
                session, (current.name, current.display_name), (new_name, display_name)
            )
            record = self._write(
                session,
                current,
                (display_name, new_name),
                changes,
                inverse,
                added,
                removed,
                guard,
                members,
            )
            self.sudo.grant(session, record.name, record.display_name)
            return record

    def _write(
        self,
        session: Session,
        current: GroupRecord,
        new: tuple[str, str],
        changes: Changes,
        inverse: Changes,
        added: Values,
        removed: Values,
        guard: list[Control],
        members: bool,
    ) -> GroupRecord:
        """The modify, and the rename to the (displayName, name) ``new``, of ``update``:
        both undone when one fails."""
        display_name, new_name = new
        with Steps() as steps:
            result = self.edits.modify(
                session, steps, current.dn, changes, inverse, added, removed, guard
            )
            dn = current.dn
            if new_name != current.name:
                dn = self.edits.rename(
                    session, steps, (current.dn, current.name), display_name, new_name
                )
                result = None
            if result is not None and not members:
                entry = self._after(result, dn)
                if entry is not None:
                    return self._record(entry, None)
            if not changes and not added and not removed and dn == current.dn and not members:
                return current
            return self._reread(session, dn, members)

    def delete(self, group_id: str, if_match: str | None) -> None:
        """Take the group's DN out of the groups nesting it and its sudoRole away, then
        delete it: all undone when the directory refuses a step (a stale ``If-Match``).

        The entry goes last, so a write the directory's death cuts short leaves the
        group in place, and Entra's next DELETE of it finishes the work. Its gidNumber
        is not handed out again: the counter only moves forward.
        """
        with self.directory.session() as session, Steps() as steps:
            record = self._records(session, [self._find(session, group_id, False)], False)[0]
            guard = version_guard(if_match, record.version)
            if self.resolver.by_dn:
                nesting = self.posix_groups.remove_dn_everywhere(session, record.dn)
                steps.done(
                    "the nesting",
                    lambda: [
                        self.posix_groups.add_value(session, parent, "member", record.dn)
                        for parent in nesting
                    ],
                )
            self.sudo.revoke(session, record.name, record.display_name)
            steps.done(
                "the sudoRole",
                lambda: self.sudo.grant(session, record.name, record.display_name),
            )
            writes.delete(
                session,
                record.dn,
                controls=guard,
                tolerate=(writes.NO_SUCH_OBJECT,),
                action=f"delete group {record.name}",
            )
