"""What /ServiceProviderConfig, /ResourceTypes and /Schemas announce (RFC 7643 §5-§7).

Only the attributes the server stores with the current mapping are announced,
so Entra's attribute editor offers nothing that would be silently dropped.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from app.attributes import (
    CORE_USER,
    ENTERPRISE_USER,
    MULTI_VALUED,
    POSIX_USER,
    UID_NUMBER,
    Slot,
)

SCHEMA_URN = "urn:ietf:params:scim:schemas:core:2.0:Schema"
RESOURCE_TYPE_URN = "urn:ietf:params:scim:schemas:core:2.0:ResourceType"
SPC_URN = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"

_DESCRIPTIONS = {
    "userName": "Unique identifier of the user, typically the Entra userPrincipalName; "
    "the Linux login name is derived from it.",
    "externalId": "Identifier of the user in the provisioning client.",
    "active": "Whether the account may log in.",
    "uidNumber": "POSIX user id number.",
    "gidNumber": "POSIX primary group id number.",
    "homeDirectory": "Home directory of the Linux account.",
    "loginShell": "Login shell of the Linux account.",
    "gecos": "GECOS field of the Linux account.",
}


def _attribute(
    name: str,
    *,
    kind: str = "string",
    multi: bool = False,
    required: bool = False,
    case_exact: bool = False,
    mutability: str = "readWrite",
    returned: str = "default",
    uniqueness: str = "none",
    sub: list[dict[str, Any]] | None = None,
    reference_types: list[str] | None = None,
) -> dict[str, Any]:
    attr: dict[str, Any] = {
        "name": name,
        "type": kind,
        "multiValued": multi,
        "description": _DESCRIPTIONS.get(name, name),
        "required": required,
        "mutability": mutability,
        "returned": returned,
        "uniqueness": uniqueness,
    }
    if kind in ("string", "reference"):
        attr["caseExact"] = case_exact
    if sub is not None:
        attr["subAttributes"] = sub
    if reference_types:
        attr["referenceTypes"] = reference_types
    return attr


def _slot_attribute(slot: Slot) -> dict[str, Any]:
    kind = {"integer": "integer", "boolean": "boolean"}.get(slot.kind, "string")
    name = slot.sub if slot.sub and slot.type is None else slot.attr
    return _attribute(name, kind=kind, case_exact=slot.case_exact, required=slot == UID_NUMBER)


def _schema(
    urn: str, name: str, description: str, attributes: list[dict[str, Any]], location: str
) -> dict[str, Any]:
    return {
        "schemas": [SCHEMA_URN],
        "id": urn,
        "name": name,
        "description": description,
        "attributes": attributes,
        "meta": {"resourceType": "Schema", "location": f"{location}/Schemas/{urn}"},
    }


def _core_attributes(slots: Iterable[Slot]) -> list[dict[str, Any]]:
    slots = [s for s in slots if s.schema == CORE_USER]
    out: list[dict[str, Any]] = [
        _attribute("userName", required=True, uniqueness="server"),
    ]
    complex_subs: dict[str, list[dict[str, Any]]] = {}
    multi_subs: dict[str, dict[str, dict[str, Any]]] = {}
    for slot in slots:
        if slot.attr in ("userName",):
            continue
        if slot.type is not None:
            subs = multi_subs.setdefault(slot.attr, {})
            subs.setdefault(str(slot.sub), _attribute(str(slot.sub)))
            subs.setdefault("type", _attribute("type"))
            continue
        if slot.sub is not None:
            complex_subs.setdefault(slot.attr, []).append(_slot_attribute(slot))
            continue
        out.append(_slot_attribute(slot))
    for attr, complex_sub in complex_subs.items():
        out.append(_attribute(attr, kind="complex", sub=complex_sub))
    for attr in MULTI_VALUED:
        if attr in multi_subs:
            subs = multi_subs[attr]
            types = sorted({s.type for s in slots if s.attr == attr and s.type})
            subs["type"]["canonicalValues"] = types
            out.append(_attribute(attr, kind="complex", multi=True, sub=list(subs.values())))
    return out


def _extension_attributes(urn: str, slots: Iterable[Slot]) -> list[dict[str, Any]]:
    out = []
    for slot in slots:
        if slot.schema != urn:
            continue
        if slot.attr == "manager":
            out.append(
                _attribute(
                    "manager",
                    kind="complex",
                    sub=[
                        _attribute("value", case_exact=True),
                        _attribute("$ref", kind="reference", reference_types=["User"]),
                        _attribute("displayName", mutability="readOnly"),
                    ],
                )
            )
        else:
            out.append(_slot_attribute(slot))
    return out


def schemas(stored: Iterable[Slot], location: str) -> list[dict[str, Any]]:
    """The schema documents for the slots that are stored."""
    slots = list(stored)
    return [
        _schema(CORE_USER, "User", "User Account", _core_attributes(slots), location),
        _schema(
            ENTERPRISE_USER,
            "EnterpriseUser",
            "Enterprise User",
            _extension_attributes(ENTERPRISE_USER, slots),
            location,
        ),
        _schema(
            POSIX_USER,
            "PosixUser",
            "POSIX account attributes of the Linux login",
            _extension_attributes(POSIX_USER, slots),
            location,
        ),
    ]


def resource_types(stored: Iterable[Slot], location: str) -> list[dict[str, Any]]:
    """The User resource type (RFC 7643 §6).

    The POSIX extension is required when uidNumber is stored: a Linux account
    cannot be created without it, and §6 has a required extension carry the
    attributes its schema declares required.
    """
    posix_required = UID_NUMBER in set(stored)
    return [
        {
            "schemas": [RESOURCE_TYPE_URN],
            "id": "User",
            "name": "User",
            "endpoint": "/Users",
            "description": "User Account",
            "schema": CORE_USER,
            "schemaExtensions": [
                {"schema": ENTERPRISE_USER, "required": False},
                {"schema": POSIX_USER, "required": posix_required},
            ],
            "meta": {"resourceType": "ResourceType", "location": f"{location}/ResourceTypes/User"},
        }
    ]


def service_provider_config(location: str, max_results: int) -> dict[str, Any]:
    return {
        "schemas": [SPC_URN],
        "patch": {"supported": True},
        "bulk": {"supported": False, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": True, "maxResults": max_results},
        "changePassword": {"supported": False},
        "sort": {"supported": False},
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
