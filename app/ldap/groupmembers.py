"""The members of SCIM groups: ids resolved to entries, member values resolved to ids.

A member is a user (an account of the users' mapping) or a SCIM group
(``scimGroup``, nesting). Writes name members by id (entryUUID); the group
entry lists users by login (``memberUid``) and by DN (``member``), groups by
DN only, as ``groups.membership`` says. Every resolution is one search per
``CHUNK`` ids or values, on indexed equality (entryUUID, the RDN attributes),
never a read per member.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ldap3.utils.ciDict import CaseInsensitiveDict
from ldap3.utils.conv import escape_filter_chars
from scim2_models import InvalidValueException

from app.config import GroupMembership
from app.ldap.accounts import HIDDEN_CLASS
from app.ldap.connection import Session
from app.ldap.dn import dn_key, is_under, rdn_values
from app.ldap.logins import assertion_value, values_of
from app.ldap.mapping import UserMapping

GROUP_CLASS = "scimGroup"
CHUNK = 200
"""Terms of one resolution search."""
_ACCOUNT_CLASSES = frozenset({"posixaccount", HIDDEN_CLASS.lower()})

MemberKind = Literal["User", "Group"]


@dataclass(frozen=True)
class Member:
    """A member of a group as SCIM shows it."""

    id: str
    """entryUUID of the user or group."""
    kind: MemberKind
    display: str | None
    """user: userName (the login when none is kept); group: displayName."""


@dataclass(frozen=True)
class Target:
    """A member id resolved to its entry: what a group entry lists it by."""

    member: Member
    dn: str
    login: str | None
    """The login of a user (its RDN value), None for a group."""


def canonical_id(value: str) -> str | None:
    """The canonical form of an entryUUID, None when ``value`` is not one."""
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        return None


def _chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


def _values(attributes: Mapping[str, Any], name: str | None) -> list[Any]:
    """An attribute's values in a search entry, whatever the case of its name.

    ldap3's entries are case-insensitive already: looked up as they are, not
    copied per lookup (several lookups per member of a big group).
    """
    if not isinstance(attributes, CaseInsensitiveDict):
        return values_of(attributes, name)
    found = attributes.get(name) if name else None
    if found is None or found == []:
        return []
    return list(found) if isinstance(found, list) else [found]


def _first(attributes: Mapping[str, Any], name: str | None) -> str | None:
    found = _values(attributes, name)
    return str(found[0]) if found else None


class MemberResolver:
    """Turns member ids into entries and the values groups hold back into members."""

    def __init__(
        self, mapping: UserMapping, base_dn: str, groups_dn: str, membership: GroupMembership
    ) -> None:
        self.mapping = mapping
        self.base_dn = base_dn
        self.groups_dn = groups_dn
        self.membership = membership
        self.by_login = membership != "rfc2307bis"
        """Whether groups list users in memberUid."""
        self.by_dn = membership != "rfc2307"
        """Whether groups list members in member (the only place nested groups are)."""
        self.attributes = [
            "entryUUID",
            "objectClass",
            "displayName",
            mapping.rdn,
            *([mapping.user_name_attribute] if mapping.user_name_attribute else []),
        ]
        self._containers: tuple[str, str] | None = None
        self._keys: list[Any] = []

    # ---- entries to members

    def _target(self, entry: Mapping[str, Any], key: Any = None) -> Target | None:
        """The member an entry is, None when it is neither a SCIM user nor a SCIM group.

        ``key`` is the entry's ``dn_key`` when the caller has it already.
        """
        dn = str(entry["dn"])
        attributes = entry["attributes"]
        member_id = canonical_id(_first(attributes, "entryUUID") or "")
        if member_id is None:
            return None
        classes = {str(c).lower() for c in _values(attributes, "objectClass")}
        if GROUP_CLASS.lower() in classes:
            display = _first(attributes, "displayName")
            return Target(Member(member_id, "Group", display), dn, None)
        if not classes & _ACCOUNT_CLASSES or not self._is_user_dn(dn, key):
            return None
        login = self._login_of(dn) or _first(attributes, self.mapping.rdn)
        display = _first(attributes, self.mapping.user_name_attribute) or login
        return Target(Member(member_id, "User", display), dn, login)

    def _is_user_dn(self, dn: str, key: Any = None) -> bool:
        inner = key if key is not None else _key(dn)
        if not isinstance(inner, tuple):
            return any(is_under(dn, c) for c in self._user_containers())
        for outer in self._container_keys():
            if len(inner) >= len(outer) and inner[len(inner) - len(outer) :] == outer:
                return True
        return False

    def _user_containers(self) -> tuple[str, str]:
        return (self.mapping.container, self.mapping.disabled_container)

    def _container_keys(self) -> list[Any]:
        """``dn_key`` of the user containers, worked out once per container value."""
        containers = self._user_containers()
        if self._containers != containers:
            self._containers = containers
            self._keys = [_key(c) for c in containers]
        return self._keys

    def _login_of(self, dn: str) -> str | None:
        for attribute, value in rdn_values(dn):
            if attribute.lower() == self.mapping.rdn.lower():
                return value
        return None

    # ---- ids to targets

    def targets(self, session: Session, ids: Iterable[str]) -> tuple[dict[str, Target], list[str]]:
        """The entries of ``ids`` by canonical id, and the ids that name no member.

        A group id under ``membership = rfc2307`` is refused (400): memberUid
        cannot hold a group.
        """
        wanted: dict[str, str] = {}
        unknown: list[str] = []
        for value in ids:
            canonical = canonical_id(value)
            if canonical is None:
                unknown.append(value)
            else:
                wanted.setdefault(canonical, value)
        found: dict[str, Target] = {}
        for chunk in _chunks(list(wanted)):
            terms = "".join(f"(entryUUID={c})" for c in chunk)
            entries = session.search(
                self.base_dn,
                f"(|{terms})",
                self.attributes,
                action="find the members by id",
            )
            for entry in entries:
                target = self._target(entry)
                if target is not None:
                    found[target.member.id] = target
        unknown += [value for canonical, value in wanted.items() if canonical not in found]
        nested = [t for t in found.values() if t.member.kind == "Group"]
        if nested and not self.by_dn:
            raise InvalidValueException(
                detail="groups cannot be members here: groups.membership 'rfc2307' lists "
                "members by login (memberUid) only; "
                f"{', '.join(t.member.id for t in nested)} are groups"
            )
        return found, unknown

    def values(self, targets: Iterable[Target]) -> dict[str, list[str]]:
        """The ``memberUid`` and ``member`` values that list ``targets``."""
        values: dict[str, list[str]] = {"memberUid": [], "member": []}
        for target in targets:
            if self.by_login and target.login is not None:
                values["memberUid"].append(target.login)
            if self.by_dn:
                values["member"].append(target.dn)
        return {name: found for name, found in values.items() if found}

    # ---- group entries to members

    @property
    def value_attributes(self) -> list[str]:
        """What a group entry is read with to know its members."""
        return ["member"] if self.by_dn else ["memberUid"]

    def members(self, session: Session, groups: Sequence[Mapping[str, Any]]) -> list[list[Member]]:
        """The members of each group entry (read with ``value_attributes``), in one pass.

        Values that name no SCIM user or group (an entry made by hand, one
        deleted meanwhile) are left out.
        """
        if self.by_dn:
            return self._by_dn(session, groups)
        return self._by_login(session, groups)

    def _by_dn(self, session: Session, groups: Sequence[Mapping[str, Any]]) -> list[list[Member]]:
        listed = [[str(v) for v in _values(g["attributes"], "member")] for g in groups]
        terms: dict[str, None] = {}
        for dn in (dn for values in listed for dn in values):
            try:
                pairs = rdn_values(dn)
            except (ValueError, IndexError):
                continue
            term = "".join(f"({a}={assertion_value(v)})" for a, v in pairs)
            terms[term if len(pairs) == 1 else f"(&{term})"] = None
        resolved: dict[Any, Member] = {}
        exact: dict[str, Member] = {}
        for chunk in _chunks(list(terms)):
            entries = session.search(
                self.base_dn, f"(|{''.join(chunk)})", self.attributes, action="read the members"
            )
            for entry in entries:
                key = _key(str(entry["dn"]))
                target = self._target(entry, key)
                if target is not None:
                    resolved[key] = target.member
                    exact[target.dn] = target.member
        # a value is mostly the DN as the directory returns it: parsed only when it is not
        return [
            [m for m in (exact.get(dn) or resolved.get(_key(dn)) for dn in values) if m is not None]
            for values in listed
        ]

    def _by_login(
        self, session: Session, groups: Sequence[Mapping[str, Any]]
    ) -> list[list[Member]]:
        listed = [[str(v) for v in _values(g["attributes"], "memberUid")] for g in groups]
        logins = list(dict.fromkeys(login for values in listed for login in values))
        resolved: dict[str, Member] = {}
        for chunk in _chunks(logins):
            terms = "".join(f"({self.mapping.rdn}={assertion_value(v)})" for v in chunk)
            entries = session.search(
                self.mapping.search_base,
                f"(&{self.mapping.search_filter}(|{terms}))",
                self.attributes,
                action="read the members",
            )
            for entry in entries:
                target = self._target(entry)
                if target is not None and target.login is not None:
                    resolved[target.login] = target.member
        return [[resolved[v] for v in values if v in resolved] for values in listed]

    def groups_of(self, session: Session, user_dn: str, login: str) -> list[Member]:
        """The SCIM groups listing a user (directly), in one search."""
        terms = []
        if self.by_dn:
            terms.append(f"(member={escape_filter_chars(user_dn)})")
        if self.by_login:
            terms.append(f"(memberUid={assertion_value(login)})")
        entries = session.search(
            self.groups_dn,
            f"(&(objectClass={GROUP_CLASS})(|{''.join(terms)}))",
            ["entryUUID", "objectClass", "displayName"],
            action=f"find the groups of {login}",
        )
        found = [self._target(entry) for entry in entries]
        return sorted(
            (t.member for t in found if t is not None), key=lambda m: (m.display or "").lower()
        )


def pick(found: Mapping[str, Target], ids: Sequence[str]) -> list[Target]:
    """The targets of ``ids`` (any form of each id) that ``found`` holds, each once, in order."""
    picked: dict[str, Target] = {}
    for value in ids:
        canonical = canonical_id(value)
        if canonical is not None and canonical in found:
            picked.setdefault(canonical, found[canonical])
    return list(picked.values())


def _key(dn: str) -> Any:
    try:
        return dn_key(dn)
    except (ValueError, IndexError):
        return dn
