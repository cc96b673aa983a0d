"""What /ServiceProviderConfig, /ResourceTypes and /Schemas announce (RFC 7643 §5-§7).

Only the attributes the server stores with the current mapping are announced,
so Entra's attribute editor offers nothing that would be silently dropped.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from app.attributes import UID_NUMBER, UNMAPPED, Catalog, Slot
from app.schemas import (
    CORE_GROUP,
    CORE_USER,
    GROUP,
    POSIX_GROUP,
    POSIX_GROUP_SCHEMA,
    POSIX_USER,
    Attribute,
    Schema,
)

SCHEMA_URN = "urn:ietf:params:scim:schemas:core:2.0:Schema"
RESOURCE_TYPE_URN = "urn:ietf:params:scim:schemas:core:2.0:ResourceType"
SPC_URN = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"

_USER_NAME = (
    "Unique identifier of the user, typically the Entra userPrincipalName; the Linux login "
    "name is derived from it."
)


_BY_RULE = frozenset({"userName", "active", "password"})
"""Core attributes the directory layer always stores, whatever the mapping: the login's user
name, the account's state (the disable profile) and its password (userPassword)."""


def _stored_only(schema: Schema, slots: list[Slot]) -> tuple[Attribute, ...]:
    """The attributes (and sub-attributes) a mapped slot holds, when nothing else is kept."""
    kept = []
    for defined in schema.attributes:
        mine = [s for s in slots if s.schema == schema.urn and s.attr == defined.name]
        if not mine and not (schema.urn == CORE_USER and defined.name in _BY_RULE):
            continue
        if not defined.sub_attributes:
            kept.append(defined)
            continue
        subs = {s.sub for s in mine} | ({"type"} if any(s.type for s in mine) else set())
        if defined.name == "manager":
            subs |= {"$ref", "displayName"}
        kept.append(
            replace(
                defined,
                sub_attributes=tuple(a for a in defined.sub_attributes if a.name in subs),
            )
        )
    return tuple(kept)


def _announced(schema: Schema, catalog: Catalog) -> tuple[Attribute, ...]:
    attributes = (
        schema.attributes if UNMAPPED in catalog.by_slot else _stored_only(schema, catalog.stored())
    )
    out = []
    for defined in attributes:
        announced = defined
        if schema.urn == CORE_USER and defined.name == "userName":
            announced = replace(defined, description=_USER_NAME)
        if schema.urn == CORE_USER and defined.name == "password":
            announced = replace(defined, returned="never")
        out.append(announced)
    return tuple(out)


def _document(schema: Schema, attributes: tuple[Attribute, ...], location: str) -> dict[str, Any]:
    return {
        "schemas": [SCHEMA_URN],
        "id": schema.urn,
        "name": schema.name,
        "description": schema.description,
        "attributes": [a.document() for a in attributes],
        "meta": {"resourceType": "Schema", "location": f"{location}/Schemas/{schema.urn}"},
    }


def schemas(catalog: Catalog, location: str, *, groups: bool = False) -> list[dict[str, Any]]:
    """The schema documents (RFC 7643 §7) of the User resource type.

    With the unmapped attribute configured every attribute of every schema is
    kept, so all are announced; without it only those the mapping stores are,
    so Entra's attribute editor offers nothing that would be dropped.
    Extension attributes carry the type and multiplicity of the LDAP attribute
    that holds them (from the directory's schema).
    """
    out = []
    for schema in catalog.schemas.schemas:
        attributes = _announced(schema, catalog)
        if schema.extension and not attributes:
            continue
        out.append(_document(schema, attributes, location))
    if groups:
        out += [_document(s, s.attributes, location) for s in (GROUP, POSIX_GROUP_SCHEMA)]
    return out


def resource_types(
    catalog: Catalog, location: str, *, groups: bool = False
) -> list[dict[str, Any]]:
    """The User (and Group) resource types (RFC 7643 §6), with every extension they carry."""
    announced = {s["id"] for s in schemas(catalog, location)}
    posix_required = UID_NUMBER in catalog.by_slot
    extensions = [
        {"schema": s.urn, "required": s.urn == POSIX_USER and posix_required}
        for s in catalog.schemas.extensions
        if s.urn in announced
    ]
    types = [
        {
            "schemas": [RESOURCE_TYPE_URN],
            "id": "User",
            "name": "User",
            "endpoint": "/Users",
            "description": "User Account",
            "schema": CORE_USER,
            "schemaExtensions": extensions,
            "meta": {"resourceType": "ResourceType", "location": f"{location}/ResourceTypes/User"},
        }
    ]
    if groups:
        types.append(
            {
                "schemas": [RESOURCE_TYPE_URN],
                "id": "Group",
                "name": "Group",
                "endpoint": "/Groups",
                "description": "POSIX group",
                "schema": CORE_GROUP,
                "schemaExtensions": [{"schema": POSIX_GROUP, "required": True}],
                "meta": {
                    "resourceType": "ResourceType",
                    "location": f"{location}/ResourceTypes/Group",
                },
            }
        )
    return types


def service_provider_config(location: str, max_results: int) -> dict[str, Any]:
    return {
        "schemas": [SPC_URN],
        "patch": {"supported": True},
        "bulk": {"supported": False, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": True, "maxResults": max_results},
        "changePassword": {"supported": False},
        "sort": {"supported": True},
        "etag": {"supported": True},
        "authenticationSchemes": [
            {
                "type": "oauthbearertoken",
                "name": "Bearer token",
                "description": "A static bearer token (Entra's Secret Token)",
                "primary": True,
            }
        ],
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": f"{location}/ServiceProviderConfig",
        },
    }
