"""The SCIM User values the directory stores, shared by the SCIM and directory layers.

Each stored value is a *slot*: one scalar (or a list of strings) addressed by
a canonical SCIM path such as ``name.givenName``, ``emails[type eq "work"].value``
or ``urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager``. The
mapping (configuration, app/config.py) says which LDAP attribute holds each
slot; the SCIM layer turns documents into slots and back (app/scim/storage.py).
Everything of a document no slot holds is kept as one JSON value, the
*unmapped* slot, when the configuration allows it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from app.schemas import (
    CORE_USER,
    ECMA2HOST_USER,
    ENTERPRISE_USER,
    POSIX_USER,
    Attribute,
    LdapAttributeInfo,
    UserSchemas,
    split_urn,
)

__all__ = ["CORE_USER", "ECMA2HOST_USER", "ENTERPRISE_USER", "POSIX_USER"]

Kind = Literal[
    "string", "integer", "boolean", "reference", "strings", "password", "document", "dateTime"
]
SlotValue = str | int | bool | tuple[str, ...]

_PATH = re.compile(
    r"^(?P<attr>[A-Za-z$-][\w$-]*)"
    r'(?:\[type eq "(?P<type>[^"\\]+)"\])?(?:\.(?P<sub>[A-Za-z$][\w$]*))?$'
)


@dataclass(frozen=True)
class Slot:
    """One stored value of a SCIM User, addressed (and compared) by its canonical path."""

    path: str
    schema: str = field(compare=False)
    attr: str = field(compare=False)
    sub: str | None = field(compare=False)
    type: str | None = field(compare=False)
    kind: Kind = field(default="string", compare=False)
    case_exact: bool = field(default=False, compare=False)

    @property
    def is_multi(self) -> bool:
        """Whether the slot is an element of a multi-valued complex attribute."""
        return self.type is not None


class UnknownPathError(ValueError):
    """A mapping path no schema defines."""


def _kind(schema: str, attribute: Attribute, sub: Attribute | None) -> tuple[Kind, bool]:
    target = sub or attribute
    if target.mutability == "writeOnly":
        return "password", True
    if schema == ENTERPRISE_USER and attribute.name == "manager":
        return "reference", True
    if target.type == "integer":
        return "integer", False
    if target.type == "boolean":
        return "boolean", False
    if target.type == "dateTime":
        return "dateTime", False
    if sub is None and attribute.multi_valued:
        return "strings", attribute.case_exact
    return "string", target.case_exact


def parse_slot(path: str, schemas: UserSchemas) -> Slot:
    """The slot a mapping path names, spelt as its schema spells it."""
    urn, rest = split_urn(path)
    schema = schemas.named(urn) if urn else schemas.named(CORE_USER)
    if schema is None:
        raise UnknownPathError(f"unknown schema in {path!r}")
    match = _PATH.match(rest)
    if match is None:
        raise UnknownPathError(f'{path!r} is not attr, attr.sub or attr[type eq "t"].sub')
    attribute = schema.attribute(match["attr"])
    if attribute is None:
        raise UnknownPathError(f"{schema.name} has no attribute {match['attr']!r} (in {path!r})")
    sub_name = match["sub"]
    element_type = match["type"]
    if schema.urn == ENTERPRISE_USER and attribute.name == "manager" and sub_name is None:
        sub_name = "value"
    sub = attribute.sub(sub_name) if sub_name else None
    if sub_name and sub is None:
        raise UnknownPathError(f"{attribute.name} has no sub-attribute {sub_name!r} (in {path!r})")
    if attribute.type == "complex" and sub is None:
        raise UnknownPathError(f"{path!r} names a complex attribute: map one of its sub-attributes")
    if element_type and not (attribute.multi_valued and attribute.type == "complex"):
        raise UnknownPathError(f"{path!r}: only multi-valued complex attributes have a type")
    if attribute.multi_valued and attribute.type == "complex" and not element_type:
        raise UnknownPathError(
            f'{path!r}: name the element, as in {attribute.name}[type eq "work"]'
        )
    kind, case_exact = _kind(schema.urn, attribute, sub)
    canonical = attribute.name
    if element_type:
        canonical += f'[type eq "{element_type.lower()}"]'
    if sub is not None and not (schema.urn == ENTERPRISE_USER and attribute.name == "manager"):
        canonical += f".{sub.name}"
    if schema.urn != CORE_USER:
        canonical = f"{schema.urn}:{canonical}"
    return Slot(
        canonical,
        schema.urn,
        attribute.name,
        sub.name if sub else None,
        element_type.lower() if element_type else None,
        kind,
        case_exact,
    )


_BUILT_IN = UserSchemas()

USER_NAME = parse_slot("userName", _BUILT_IN)
ACTIVE = parse_slot("active", _BUILT_IN)
EXTERNAL_ID = parse_slot("externalId", _BUILT_IN)
WORK_EMAIL = parse_slot('emails[type eq "work"].value', _BUILT_IN)
MANAGER = parse_slot(f"{ENTERPRISE_USER}:manager", _BUILT_IN)
UID_NUMBER = parse_slot(f"{POSIX_USER}:uidNumber", _BUILT_IN)
GID_NUMBER = parse_slot(f"{POSIX_USER}:gidNumber", _BUILT_IN)
HOME_DIRECTORY = parse_slot(f"{POSIX_USER}:homeDirectory", _BUILT_IN)
LOGIN_SHELL = parse_slot(f"{POSIX_USER}:loginShell", _BUILT_IN)
GECOS = parse_slot(f"{POSIX_USER}:gecos", _BUILT_IN)
SSH_KEYS = parse_slot(f"{POSIX_USER}:sshPublicKeys", _BUILT_IN)
PASSWORD = parse_slot("password", _BUILT_IN)
"""Write-only (RFC 7643 §4.1.1): set in the directory, never read back or answered."""
UNMAPPED = Slot("(unmapped)", CORE_USER, "(unmapped)", None, None, "document", True)
"""Everything of the document no other slot holds, as one JSON object."""
LOGIN = Slot(f"{ECMA2HOST_USER}:uid", ECMA2HOST_USER, "uid", None, None, "string", True)
"""A login name the client chose (ECMA2Host ``uid``): wins over the one derived from userName."""
ENTRY_DN = Slot(f"{ECMA2HOST_USER}:-dn-", ECMA2HOST_USER, "-dn-", None, None, "string", True)
"""The entry's DN as the client sent it (ECMA2Host ``-dn-``)."""

SPECIAL = (USER_NAME, ACTIVE, PASSWORD, UNMAPPED, LOGIN, ENTRY_DN)
"""Slots the directory layer stores by rule rather than through the mapping."""

ECMA2HOST_DERIVED = frozenset({"uid", "objectclass", "userpassword", "-dn-"})
"""ECMA2Host names with a meaning of their own rather than a plain attribute (ENTRA.md §4)."""


class Catalog:
    """The slots of one configuration: the mapping's, ECMA2Host's, and the unmapped one."""

    def __init__(
        self,
        attribute_map: Mapping[str, str],
        *,
        ldap: Mapping[str, LdapAttributeInfo] | None = None,
        ecma2host: Iterable[str] = (),
        unmapped_attribute: str | None = None,
        reserved: Iterable[str] = (),
    ) -> None:
        """``attribute_map``: SCIM path -> LDAP attribute; ``ecma2host``: the LDAP names of
        Microsoft's namespace; ``reserved``: LDAP attributes the server owns (markers, the
        disable profile's), never exposed as raw ECMA2Host attributes; nor are the server's own
        ``scim*`` attributes, configured or not."""
        info = {k.lower(): v for k, v in (ldap or {}).items()}
        custom = {
            p: a
            for p, a in attribute_map.items()
            if (split_urn(p)[0] or CORE_USER).lower() not in _KNOWN_URNS
        }
        owned = {r.lower() for r in reserved}
        ecma = [n for n in ecma2host if n.lower() not in owned and not n.lower().startswith("scim")]
        self.schemas = UserSchemas.build(custom, info, ecma)
        self.mapped: dict[Slot, str] = {
            parse_slot(path, self.schemas): attribute for path, attribute in attribute_map.items()
        }
        """The slots the mapping names (not ECMA2Host's own, not the unmapped one)."""
        self.by_slot: dict[Slot, str] = dict(self.mapped)
        self._by_ldap: dict[str, Slot] = {}
        for slot, attribute in self.by_slot.items():
            self._by_ldap.setdefault(attribute.lower(), slot)
        for name in ecma:
            if name.lower() in ECMA2HOST_DERIVED or name.lower() in self._by_ldap:
                continue
            slot = parse_slot(f"{ECMA2HOST_USER}:{name}", self.schemas)
            self.by_slot[slot] = name
        if unmapped_attribute:
            self.by_slot[UNMAPPED] = unmapped_attribute
        self.ecma2host = bool(ecma)

    def slot_of_ldap(self, attribute: str) -> Slot | None:
        """The slot (not ECMA2Host's own) an LDAP attribute holds, if the mapping has one."""
        return self._by_ldap.get(attribute.lower())

    def slots_of(self, attr: str, schema: str = CORE_USER) -> tuple[Slot, ...]:
        """The mapped slots under a top-level attribute, matched case-insensitively."""
        lowered = attr.lower()
        return tuple(
            s
            for s in (USER_NAME, ACTIVE, *self.by_slot)
            if s.schema.lower() == schema.lower() and s.attr.lower() == lowered
        )

    def by_path(self, path: str) -> Slot | None:
        lowered = path.lower()
        return next((s for s in self.by_slot if s.path.lower() == lowered), None)

    def stored(self) -> list[Slot]:
        return [s for s in self.by_slot if s != UNMAPPED]


_KNOWN_URNS = frozenset(u.lower() for u in (CORE_USER, ENTERPRISE_USER, POSIX_USER, ECMA2HOST_USER))
