"""The SCIM User schemas the server speaks, as data (RFC 7643 §2, §4.1, §4.3, §7).

The core User and the enterprise extension are scim2-models' definitions of
RFC 7643 §4.1 and §4.3; the POSIX extension is ours; custom extensions
(``urn:ietf:params:scim:schemas:extension:<Name>:2.0:User``, the form Entra's
attribute editor accepts) and Microsoft's ECMA2Host namespace are declared by
the mapping and typed from the directory's schema. Every name is matched
case-insensitively (RFC 7643 §2.1).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol

from scim2_models import EnterpriseUser, Group, User

CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE_USER = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
POSIX_USER = "urn:ietf:params:scim:schemas:extension:posix:2.0:User"
ECMA2HOST_USER = "urn:ietf:params:scim:schemas:extension:ECMA2Host:2.0:User"

CUSTOM_EXTENSION = re.compile(r"^urn:ietf:params:scim:schemas:extension:[A-Za-z0-9_.-]+:2\.0:User$")
"""The URN form Entra's attribute editor accepts for a custom extension."""

ScimType = Literal[
    "string", "integer", "boolean", "decimal", "dateTime", "reference", "binary", "complex"
]


class LdapAttributeInfo(Protocol):
    """What the schema needs to know of a directory attribute (app/ldap/subschema.py has it)."""

    @property
    def name(self) -> str: ...

    @property
    def scim_type(self) -> str: ...

    @property
    def single_value(self) -> bool: ...

    @property
    def case_exact(self) -> bool: ...


@dataclass(frozen=True)
class Attribute:
    """One attribute definition (RFC 7643 §7)."""

    name: str
    type: ScimType = "string"
    multi_valued: bool = False
    description: str = ""
    required: bool = False
    case_exact: bool = False
    mutability: str = "readWrite"
    returned: str = "default"
    uniqueness: str = "none"
    canonical_values: tuple[str, ...] = ()
    reference_types: tuple[str, ...] = ()
    sub_attributes: tuple[Attribute, ...] = ()

    def sub(self, name: str) -> Attribute | None:
        lowered = name.lower()
        return next((s for s in self.sub_attributes if s.name.lower() == lowered), None)

    def document(self) -> dict[str, Any]:
        """The attribute as /Schemas announces it."""
        out: dict[str, Any] = {
            "name": self.name,
            "type": self.type,
            "multiValued": self.multi_valued,
            "description": self.description or self.name,
            "required": self.required,
            "mutability": self.mutability,
            "returned": self.returned,
            "uniqueness": self.uniqueness,
        }
        if self.type in ("string", "reference", "binary"):
            out["caseExact"] = self.case_exact
        if self.canonical_values:
            out["canonicalValues"] = list(self.canonical_values)
        if self.reference_types:
            out["referenceTypes"] = list(self.reference_types)
        if self.sub_attributes:
            out["subAttributes"] = [s.document() for s in self.sub_attributes]
        return out


@dataclass(frozen=True)
class Schema:
    """A schema: its URN, name and attributes."""

    urn: str
    name: str
    description: str
    attributes: tuple[Attribute, ...]
    extension: bool = True

    def attribute(self, name: str) -> Attribute | None:
        lowered = name.lower()
        return next((a for a in self.attributes if a.name.lower() == lowered), None)


def _from_definition(data: Mapping[str, Any]) -> Attribute:
    return Attribute(
        name=str(data["name"]),
        type=data.get("type", "string"),
        multi_valued=bool(data.get("multiValued", False)),
        description=" ".join(str(data.get("description") or "").split()),
        required=bool(data.get("required", False)),
        case_exact=bool(data.get("caseExact", False)),
        mutability=str(data.get("mutability", "readWrite")),
        returned=str(data.get("returned", "default")),
        uniqueness=str(data.get("uniqueness", "none")),
        canonical_values=tuple(str(v) for v in data.get("canonicalValues") or ()),
        reference_types=tuple(str(v) for v in data.get("referenceTypes") or ()),
        sub_attributes=tuple(_from_definition(s) for s in data.get("subAttributes") or ()),
    )


def _library_schema(
    model: type[User[Any]] | type[EnterpriseUser] | type[Group], urn: str
) -> Schema:
    dumped = model.to_schema().model_dump(by_alias=True, exclude_none=True, mode="json")
    attributes = tuple(_from_definition(a) for a in dumped["attributes"])
    return Schema(urn, str(dumped["name"]), str(dumped.get("description") or ""), attributes)


def _core() -> Schema:
    """RFC 7643 §4.1, with the common ``externalId`` (§3.1) and Entra's needs.

    ``externalId`` is listed so that it is typed and announced like the others;
    ``password`` is write-only (``returned: never``).
    """
    library = _library_schema(User, CORE_USER)
    external_id = Attribute(
        "externalId",
        description="Identifier of the user in the provisioning client.",
        case_exact=True,
    )
    attributes = (*library.attributes, external_id)
    return Schema(CORE_USER, "User", "User Account", attributes, extension=False)


EXAMPLE_KEY = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEnFc2vFLfBeibYaT3lVUcbAjFs+ePRf8qvY+jNfWGkm example"
)
"""The form of an authorized_keys line: its 32 bytes are SHA-256 of a phrase, not a public key
anyone derived from a private one."""

_POSIX = Schema(
    POSIX_USER,
    "PosixUser",
    "POSIX account attributes of the Linux login",
    (
        Attribute(
            "uidNumber",
            "integer",
            required=True,
            description="POSIX user id number; allocated by the server when a new user comes "
            "without one, and kept when a replacement omits it.",
        ),
        Attribute("gidNumber", "integer", description="POSIX primary group id number."),
        Attribute(
            "homeDirectory", description="Home directory of the Linux account.", case_exact=True
        ),
        Attribute("loginShell", description="Login shell of the Linux account.", case_exact=True),
        Attribute("gecos", description="GECOS field of the Linux account."),
        Attribute(
            "sshPublicKeys",
            multi_valued=True,
            description="OpenSSH public keys (authorized_keys lines) of the Linux account. "
            "The canonical value shows the form only: its key is a hash, for which no "
            "private key exists.",
            case_exact=True,
            canonical_values=(EXAMPLE_KEY,),
        ),
    ),
)

CORE = _core()
ENTERPRISE = _library_schema(EnterpriseUser, ENTERPRISE_USER)
ENTERPRISE = Schema(ENTERPRISE_USER, "EnterpriseUser", "Enterprise User", ENTERPRISE.attributes)
POSIX = _POSIX
BUILT_IN: tuple[Schema, ...] = (CORE, ENTERPRISE, POSIX)

CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
POSIX_GROUP = "urn:ietf:params:scim:schemas:extension:posix:2.0:Group"


def _group_schemas() -> tuple[Schema, Schema]:
    """RFC 7643 §4.2 (scim2-models), ``display`` read-only; and our POSIX extension of groups."""
    library = _library_schema(Group, CORE_GROUP)
    attributes = []
    for defined in library.attributes:
        if defined.name == "displayName":
            attributes.append(replace(defined, required=True, uniqueness="server"))
        elif defined.name == "members":
            subs = tuple(
                replace(s, mutability="readOnly") if s.name == "display" else s
                for s in defined.sub_attributes
            )
            attributes.append(replace(defined, sub_attributes=subs))
        else:
            attributes.append(defined)
    attributes.append(
        Attribute(
            "externalId",
            description="Identifier of the group in the provisioning client.",
            case_exact=True,
        )
    )
    core = Schema(CORE_GROUP, "Group", "Group", tuple(attributes), extension=False)
    posix = Schema(
        POSIX_GROUP,
        "PosixGroup",
        "POSIX attributes of the Linux group",
        (
            Attribute(
                "gidNumber",
                "integer",
                required=True,
                description="POSIX group id number; allocated by the server when a new group "
                "comes without one, and kept when a replacement omits it.",
            ),
        ),
    )
    return core, posix


GROUP, POSIX_GROUP_SCHEMA = _group_schemas()

READ_ONLY = frozenset({"id", "meta", "groups"})
"""Core attributes a client may not write (RFC 7643 §3.1, §4.1.2)."""


def split_urn(path: str) -> tuple[str | None, str]:
    """``urn:...:User:attr.sub`` -> (``urn:...:User``, ``attr.sub``); a core path has no URN.

    Every User schema URN ends in ``:User`` (RFC 7643 §8.7.1), so the attribute
    starts after the first ``:User:``; the bare URN names the whole schema.
    """
    if not path.lower().startswith("urn:"):
        return None, path
    lowered = path.lower()
    if lowered.endswith(":user"):
        return path, ""
    cut = lowered.find(":user:")
    if cut == -1:
        return path, ""
    return path[: cut + 5], path[cut + 6 :]


_LDAP_TYPES: dict[str, ScimType] = {
    "integer": "integer",
    "boolean": "boolean",
    "dateTime": "dateTime",
    "binary": "binary",
}


def _ldap_attribute(name: str, info: LdapAttributeInfo | None) -> Attribute:
    kind: ScimType = "string"
    multi = False
    case_exact = False
    if info is not None:
        kind = _LDAP_TYPES.get(info.scim_type, "string")
        multi = not info.single_value
        case_exact = info.case_exact
    return Attribute(name, kind, multi_valued=multi, description=name, case_exact=case_exact)


def _ecma2host_attribute(name: str, info: LdapAttributeInfo | None) -> Attribute:
    """An ECMA2Host attribute: one value, as Microsoft's connector offers them to Entra."""
    return replace(_ldap_attribute(name, info), multi_valued=False)


@dataclass
class UserSchemas:
    """The schemas of the User resource type: built-ins, custom extensions and ECMA2Host."""

    schemas: list[Schema] = field(default_factory=lambda: list(BUILT_IN))

    @classmethod
    def build(
        cls,
        custom: Mapping[str, str],
        ldap: Mapping[str, LdapAttributeInfo],
        ecma2host: Sequence[str] = (),
    ) -> UserSchemas:
        """Built-ins, plus the custom extension attributes the mapping declares.

        ``custom`` maps ``urn:...:User:attr`` to the LDAP attribute it is stored
        in; its type and multiplicity are those of that attribute in ``ldap``
        (lower-cased names), a string otherwise. ``ecma2host`` lists the LDAP
        attributes Microsoft's namespace exposes, with their raw names.
        """
        extensions: dict[str, list[Attribute]] = {}
        names: dict[str, str] = {}
        for path, ldap_name in custom.items():
            urn, attr = split_urn(path)
            if urn is None:
                continue
            key = urn.lower()
            names.setdefault(key, urn)
            extensions.setdefault(key, []).append(
                _ldap_attribute(attr, ldap.get(ldap_name.lower()))
            )
        built = cls()
        for key, attributes in extensions.items():
            urn = names[key]
            name = urn.split(":")[-3]
            built.schemas.append(Schema(urn, name, f"{name} attributes", tuple(attributes)))
        if ecma2host:
            attributes = [
                _ecma2host_attribute(n, ldap.get(n.lower()))
                for n in ecma2host
                if n.lower() not in ("uid", "objectclass", "-dn-", "userpassword")
                and not n.lower().startswith("scim")
            ]
            built.schemas.append(
                Schema(
                    ECMA2HOST_USER,
                    "ECMA2Host",
                    "The directory's attributes under their LDAP names, as Microsoft's "
                    "LDAP connector exposes them",
                    tuple(attributes),
                )
            )
        return built

    @property
    def extensions(self) -> list[Schema]:
        return [s for s in self.schemas if s.extension]

    def named(self, urn: str) -> Schema | None:
        lowered = urn.lower()
        return next((s for s in self.schemas if s.urn.lower() == lowered), None)

    def resolve(self, urn: str | None, name: str) -> tuple[Schema, Attribute] | None:
        """The schema and definition of a top-level attribute (core when ``urn`` is None)."""
        schema = CORE if urn is None else self.named(urn)
        if schema is None:
            return None
        attribute = schema.attribute(name)
        return (schema, attribute) if attribute is not None else None

    def urns(self) -> list[str]:
        return [s.urn for s in self.schemas]


def extension_urns(paths: Iterable[str]) -> set[str]:
    """The custom extension URNs named by mapping paths."""
    found = set()
    for path in paths:
        urn, _attr = split_urn(path)
        if urn is not None and CUSTOM_EXTENSION.match(urn):
            found.add(urn)
    return found
