"""The SCIM User attributes the server stores, shared by the SCIM and directory layers.

Each storable value is a *slot*: one scalar addressed by a canonical SCIM path
such as ``name.givenName``, ``emails[type eq "work"].value`` or
``urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager``. The
SCIM layer turns JSON bodies and PATCH paths into slots; the directory layer
maps slots onto LDAP attributes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE_USER = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
POSIX_USER = "urn:ietf:params:scim:schemas:extension:posix:2.0:User"
ECMA2HOST_USER = "urn:ietf:params:scim:schemas:extension:ECMA2Host:2.0:User"
EXTENSIONS = (ENTERPRISE_USER, POSIX_USER)

Kind = Literal["string", "integer", "boolean", "reference", "strings", "password"]
SlotValue = str | int | bool | tuple[str, ...]

_PATH = re.compile(
    r"^(?:(?P<urn>urn:[^\s\[\]]+:User):)?(?P<attr>[A-Za-z]+)"
    r'(?:\[type eq "(?P<type>[a-z]+)"\])?(?:\.(?P<sub>[A-Za-z]+))?$'
)


@dataclass(frozen=True)
class Slot:
    """One scalar of a SCIM User, addressed by its canonical path."""

    path: str
    schema: str
    attr: str
    sub: str | None
    type: str | None
    kind: Kind = "string"
    case_exact: bool = False

    @property
    def is_multi(self) -> bool:
        """Whether the slot is an element of a multi-valued attribute."""
        return self.type is not None


def _slot(path: str, kind: Kind = "string", case_exact: bool = False) -> Slot:
    match = _PATH.match(path)
    if match is None:
        raise ValueError(f"not a slot path: {path}")
    schema = match["urn"] or CORE_USER
    sub = match["sub"]
    if schema == ENTERPRISE_USER and match["attr"] == "manager":
        sub = "value"
    return Slot(path, schema, match["attr"], sub, match["type"], kind, case_exact)


USER_NAME = _slot("userName")
ACTIVE = _slot("active", "boolean")
EXTERNAL_ID = _slot("externalId", case_exact=True)
WORK_EMAIL = _slot('emails[type eq "work"].value')
MANAGER = _slot(f"{ENTERPRISE_USER}:manager", "reference", case_exact=True)
UID_NUMBER = _slot(f"{POSIX_USER}:uidNumber", "integer")
GID_NUMBER = _slot(f"{POSIX_USER}:gidNumber", "integer")
HOME_DIRECTORY = _slot(f"{POSIX_USER}:homeDirectory", case_exact=True)
LOGIN_SHELL = _slot(f"{POSIX_USER}:loginShell", case_exact=True)
GECOS = _slot(f"{POSIX_USER}:gecos")
SSH_KEYS = _slot(f"{POSIX_USER}:sshPublicKeys", "strings", case_exact=True)
PASSWORD = _slot("password", "password", case_exact=True)
"""Write-only (RFC 7643 §4.1.1): set in the directory, never read back or answered."""

SLOTS: tuple[Slot, ...] = (
    USER_NAME,
    ACTIVE,
    EXTERNAL_ID,
    _slot("displayName"),
    _slot("name.givenName"),
    _slot("name.familyName"),
    _slot("name.formatted"),
    _slot("title"),
    _slot("preferredLanguage"),
    WORK_EMAIL,
    _slot('phoneNumbers[type eq "work"].value'),
    _slot('phoneNumbers[type eq "mobile"].value'),
    _slot('phoneNumbers[type eq "fax"].value'),
    _slot('addresses[type eq "work"].streetAddress'),
    _slot('addresses[type eq "work"].locality'),
    _slot('addresses[type eq "work"].region'),
    _slot('addresses[type eq "work"].postalCode'),
    _slot('addresses[type eq "work"].country'),
    _slot(f"{ENTERPRISE_USER}:employeeNumber"),
    _slot(f"{ENTERPRISE_USER}:department"),
    MANAGER,
    UID_NUMBER,
    GID_NUMBER,
    HOME_DIRECTORY,
    LOGIN_SHELL,
    GECOS,
    SSH_KEYS,
    PASSWORD,
)
BY_PATH: dict[str, Slot] = {slot.path: slot for slot in SLOTS}

MULTI_VALUED: dict[str, tuple[str, ...]] = {
    "emails": ("value", "type", "primary", "display"),
    "phoneNumbers": ("value", "type", "primary", "display"),
    "addresses": (
        "type",
        "primary",
        "formatted",
        "streetAddress",
        "locality",
        "region",
        "postalCode",
        "country",
    ),
}
"""Multi-valued complex attributes: their sub-attributes, stored or not."""

UNTYPED_DEFAULT = "work"
"""The type given to an element sent without one (Entra always sends a type)."""

READ_ONLY = frozenset({"id", "meta", "groups"})
"""Attributes a client may not write (RFC 7643 §4.1, ``groups`` is readOnly)."""

ECMA2HOST_ALIASES: dict[str, str] = {
    "uidnumber": UID_NUMBER.path,
    "gidnumber": GID_NUMBER.path,
    "homedirectory": HOME_DIRECTORY.path,
    "loginshell": LOGIN_SHELL.path,
    "gecos": f"{POSIX_USER}:gecos",
    "givenname": "name.givenName",
    "sn": "name.familyName",
    "mail": 'emails[type eq "work"].value',
    "displayname": "displayName",
    "title": "title",
    "employeenumber": f"{ENTERPRISE_USER}:employeeNumber",
}
"""Raw LDAP attribute names Microsoft's ECMA2Host connector sends, and the slot each fills.

Other ECMA2Host attributes (``uid``, ``cn``, ``objectClass``, ``userPassword``,
``-dn-``) are derived by this server and ignored when sent.
"""


def slots_of(attr: str, schema: str = CORE_USER) -> tuple[Slot, ...]:
    """The slots under a top-level attribute, matched case-insensitively."""
    lowered = attr.lower()
    return tuple(s for s in SLOTS if s.schema == schema and s.attr.lower() == lowered)
