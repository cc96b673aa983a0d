"""Start-up warnings for attributes the server searches on that the directory does not index.

OpenLDAP keeps its indexes in ``cn=config`` (``olcDbIndex`` of the database
whose ``olcSuffix`` holds the users). Without read access there, the server
says which indexes it could not verify instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from scim2_models import SCIMException

from app.ldap.connection import Session
from app.ldap.dn import is_under


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


def index_warnings(session: Session, users_dn: str, needed: Mapping[str, str]) -> list[str]:
    """Warnings naming each needed index the database holding ``users_dn`` lacks."""
    wanted = ", ".join(f"{a} {k}" for a, k in needed.items())
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
        attributes = database["attributes"]
        suffixes = attributes.get("olcSuffix") or []
        if any(is_under(users_dn, str(suffix)) for suffix in suffixes):
            gaps = missing(parse_indexes(attributes.get("olcDbIndex") or []), needed)
            return [f"the directory does not index {gap}: add olcDbIndex: {gap}" for gap in gaps]
    return [f"cannot read cn=config to verify indexes; make sure these exist: {wanted}"]
