"""Start-up checks of the directory against the configured mapping.

- Schema: every attribute and object class the mapping writes must be known to
  the directory (its subschema subentry, RFC 4512 §4.2), or writes would fail.
- Indexes: every attribute the server searches on should be indexed.
  OpenLDAP keeps its indexes in ``cn=config`` (``olcDbIndex`` of the database
  whose ``olcSuffix`` holds the users); without read access there, the
  warning lists what could not be verified.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from scim2_models import SCIMException

from app.ldap.connection import Session
from app.ldap.dn import is_under

LOAD_SCHEMA = (
    "load app/ldap/schema/scim-ldap.ldif into a cn=config server (ldapadd -Y EXTERNAL -H "
    "ldapi:/// -f app/ldap/schema/scim-ldap.ldif), or include app/ldap/schema/scim-ldap.schema "
    "in the slapd.conf of a server configured by file and restart it"
)


GROUP_INDEXES = {
    "objectClass": "eq",
    "entryUUID": "eq",
    "cn": "eq",
    "displayName": "eq",
    "scimExternalId": "eq",
    "gidNumber": "eq",
    "member": "eq",
    "memberUid": "eq",
}
"""What SCIM group reads and writes search on: ids, names and displayNames taken, gidNumbers
taken, and the groups naming an account (by DN or login) on every rename and removal."""


def parse_indexes(values: Iterable[str]) -> dict[str, set[str]]:
    """``["uid,cn eq,sub", "objectClass eq"]`` -> ``{"uid": {"eq", "sub"}, ...}`` (lower-cased).

    An attribute listed without index types gets the database default, which
    always includes equality.
    """
    indexed: dict[str, set[str]] = {}
    for value in values:
        names, _, kinds = value.strip().partition(" ")
        types = {k.strip().lower() for k in kinds.split(",") if k.strip()} or {"eq"}
        for name in names.split(","):
            indexed.setdefault(name.strip().lower(), set()).update(types)
    return indexed


def missing(indexed: Mapping[str, set[str]], needed: Mapping[str, str]) -> list[str]:
    """The ``attribute type`` pairs of ``needed`` that ``indexed`` lacks."""
    return [
        f"{attribute} {kind}"
        for attribute, kind in needed.items()
        if kind not in indexed.get(attribute.lower(), set())
    ]


def _database_of(session: Session, users_dn: str) -> dict[str, Any] | None:
    """The cn=config entry of the database holding ``users_dn``; None when unreadable."""
    try:
        databases = session.search(
            "cn=config",
            "(olcSuffix=*)",
            ["olcSuffix", "olcDbIndex"],
            scope="LEVEL",
            action="read the directory configuration",
        )
    except SCIMException:
        databases = []
    for database in databases:
        suffixes = database["attributes"].get("olcSuffix") or []
        if any(is_under(users_dn, str(suffix)) for suffix in suffixes):
            return database
    return None


def index_warnings(session: Session, users_dn: str, needed: Mapping[str, str]) -> list[str]:
    """Warnings naming each needed index the database holding ``users_dn`` lacks."""
    database = _database_of(session, users_dn)
    if database is None:
        wanted = ", ".join(f"{a} {k}" for a, k in needed.items())
        return [f"cannot read cn=config to verify indexes; make sure these exist: {wanted}"]
    gaps = missing(parse_indexes(database["attributes"].get("olcDbIndex") or []), needed)
    return [f"the directory does not index {gap}: add olcDbIndex: {gap}" for gap in gaps]


_NAMES = re.compile(r"NAME\s+(?:'([^']+)'|\(([^)]*)\))", re.IGNORECASE)


def schema_names(definitions: Iterable[str]) -> set[str]:
    """The lower-cased names of ``attributeTypes``/``objectClasses`` definitions."""
    names: set[str] = set()
    for definition in definitions:
        match = _NAMES.search(definition)
        if match is None:
            continue
        if match.group(1):
            names.add(match.group(1).lower())
        else:
            names.update(n.strip("' ").lower() for n in match.group(2).split() if n.strip("' "))
    return names


def schema_warnings(
    session: Session, attributes: Mapping[str, str], object_classes: Iterable[str]
) -> list[str]:
    """Warnings for mapped attributes (``{attribute: its use}``) and classes not in the schema."""
    try:
        found = session.search(
            "cn=Subschema",
            "(objectClass=subschema)",
            ["attributeTypes", "objectClasses"],
            scope="BASE",
            action="read the directory schema",
        )
    except SCIMException:
        found = []
    if not found:
        return ["cannot read the directory schema (cn=Subschema) to verify the mapping"]
    schema = found[0]["attributes"]
    known_attributes = schema_names(schema.get("attributeTypes") or [])
    known_classes = schema_names(schema.get("objectClasses") or [])
    warnings = [
        f"the directory schema has no attribute {name} (used for {use}); {LOAD_SCHEMA}, or change "
        "the mapping"
        for name, use in attributes.items()
        if name.lower() not in known_attributes
    ]
    warnings += [
        f"the directory schema has no object class {name}; {LOAD_SCHEMA}, or change "
        "users.object_classes or accounts.disable"
        for name in object_classes
        if name.lower() not in known_classes
    ]
    return warnings
