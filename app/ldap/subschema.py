"""The directory's schema, read from its subschema subentry (RFC 4512 §4.2) and queried.

Definitions (RFC 4512 §4.1.1, §4.1.2) are parsed by ldap3's own parser
(``ldap3.protocol.rfc4512``), one at a time so that one malformed definition
is skipped instead of losing the whole schema. Before parsing, white space
inside quoted strings is masked: ldap3 splits a definition on its keywords
without regard to quotes, so a ``DESC`` such as ``'... SUP ...'`` or one ending
in ``SINGLE-VALUE`` would otherwise change the parsed definition.

An attribute type's syntax and matching rules are resolved through its ``SUP``
chain (RFC 4512 §4.1.2: a subtype inherits what it does not specify), so
``cn``, which only says ``SUP name``, has the Directory String syntax and the
``caseIgnoreMatch`` equality of ``name``.

``AttributeType.sort_rule`` names the ordering rule of an RFC 2891 sort key.
OpenLDAP's sssvlv overlay refuses a key without a rule when the attribute
type has no ``ORDERING`` ("No ordering rule", inappropriateMatching), and
accepts any known matching rule otherwise: it compares the attribute's
*normalized* values with that rule's match function. Equality rules compare
by length first (``Bob`` before ``alice``, ``3`` before ``-5``), so naming the
equality rule is accepted but does not sort; ``caseIgnoreOrderingMatch`` and
``caseExactOrderingMatch`` order the normalized values byte by byte, which is
case-insensitive for an attribute whose equality ignores case (its values are
normalized to lower case) and case-exact otherwise. Hence the IA5 and
telephone number rules, which have no ordering rule of their own, sort with
those.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from ldap3.core.exceptions import LDAPSchemaError
from ldap3.protocol.rfc4512 import AttributeTypeInfo, ObjectClassInfo
from scim2_models import SCIMException

from app.ldap.connection import Session
from app.ldap.errors import DirectoryFailure, DirectoryUnavailable

log = logging.getLogger(__name__)

ScimType = Literal["string", "integer", "boolean", "binary", "dateTime"]
ClassKind = Literal["STRUCTURAL", "AUXILIARY", "ABSTRACT"]

DEFAULT_SUBSCHEMA_DN = "cn=Subschema"

_SYNTAX = "1.3.6.1.4.1.1466.115.121.1."
_SCIM_TYPES: dict[str, ScimType] = {
    f"{_SYNTAX}27": "integer",
    f"{_SYNTAX}7": "boolean",
    f"{_SYNTAX}24": "dateTime",
    **{
        f"{_SYNTAX}{number}": "binary"
        for number in (
            4,  # Audio
            5,  # Binary
            8,  # Certificate
            9,  # Certificate List
            10,  # Certificate Pair
            23,  # Fax
            28,  # JPEG
            40,  # Octet String
            49,  # Supported Algorithm
        )
    },
}

_RULE_OIDS = {
    "2.5.13.2": "caseignorematch",
    "2.5.13.3": "caseignoreorderingmatch",
    "2.5.13.4": "caseignoresubstringsmatch",
    "2.5.13.5": "caseexactmatch",
    "2.5.13.8": "numericstringmatch",
    "2.5.13.11": "caseignorelistmatch",
    "2.5.13.14": "integermatch",
    "2.5.13.17": "octetstringmatch",
    "2.5.13.20": "telephonenumbermatch",
    "2.5.13.27": "generalizedtimematch",
    "1.3.6.1.4.1.1466.109.114.1": "caseexactia5match",
    "1.3.6.1.4.1.1466.109.114.2": "caseignoreia5match",
    "1.3.6.1.1.16.2": "uuidmatch",
}
"""Lower-cased names of the matching rules below, for schemas that name them by OID."""

_CASE_IGNORING = {"telephonenumbermatch"}
"""Equality rules that ignore case without a ``caseIgnore`` name (RFC 4517 §4.2.29)."""

_ORDERING_OF = {
    "caseignorematch": "caseIgnoreOrderingMatch",
    "caseexactmatch": "caseExactOrderingMatch",
    "integermatch": "integerOrderingMatch",
    "numericstringmatch": "numericStringOrderingMatch",
    "caseignoreia5match": "caseIgnoreOrderingMatch",
    "caseexactia5match": "caseExactOrderingMatch",
    "telephonenumbermatch": "caseIgnoreOrderingMatch",
    "generalizedtimematch": "generalizedTimeOrderingMatch",
    "octetstringmatch": "octetStringOrderingMatch",
    "uuidmatch": "UUIDOrderingMatch",
}
"""The ordering rule sorting like each equality rule (measured against slapd's sssvlv)."""

_KINDS: dict[str, ClassKind] = {
    "STRUCTURAL": "STRUCTURAL",
    "AUXILIARY": "AUXILIARY",
    "ABSTRACT": "ABSTRACT",
}

_QUOTED = re.compile(r"'[^']*'")


def _rule_name(rule: str | None) -> str | None:
    """A matching rule's lower-cased name, whether the schema gives its name or its OID."""
    if rule is None:
        return None
    return _RULE_OIDS.get(rule.strip(), rule.strip().lower())


@dataclass(frozen=True)
class AttributeType:
    """An attribute type (RFC 4512 §4.1.2), its syntax and rules resolved through ``SUP``."""

    name: str
    names: tuple[str, ...]
    oid: str
    syntax: str | None
    single_value: bool
    equality: str | None
    ordering: str | None
    substring: str | None
    user_modifiable: bool

    @property
    def scim_type(self) -> ScimType:
        """The SCIM type (RFC 7643 §2.3) holding the values of this syntax."""
        return _SCIM_TYPES.get(self.syntax or "", "string")

    @property
    def case_exact(self) -> bool:
        """Whether the directory compares values case-exactly (RFC 7643 ``caseExact``)."""
        rule = _rule_name(self.equality)
        return rule is None or not (rule.startswith("caseignore") or rule in _CASE_IGNORING)

    @property
    def sort_rule(self) -> str | None:
        """The ordering rule to name in an RFC 2891 sort key; None when values cannot be sorted."""
        if self.ordering is not None:
            return self.ordering
        rule = _rule_name(self.equality)
        return None if rule is None else _ORDERING_OF.get(rule)


@dataclass(frozen=True)
class ObjectClass:
    """An object class (RFC 4512 §4.1.1); ``must`` and ``may`` are its own, as spelled."""

    name: str
    names: tuple[str, ...]
    oid: str
    kind: ClassKind
    superiors: tuple[str, ...]
    must: tuple[str, ...]
    may: tuple[str, ...]


@dataclass(frozen=True)
class _Declared:
    """An attribute type as its definition states it, before inheritance."""

    names: tuple[str, ...]
    oid: str
    superior: str | None
    syntax: str | None
    single_value: bool
    equality: str | None
    ordering: str | None
    substring: str | None
    user_modifiable: bool


def _shield(definition: str) -> str:
    """``definition`` with the white space inside its quoted strings masked (see module doc)."""
    return _QUOTED.sub(lambda m: re.sub(r"\s", "_", m.group(0)), definition.strip())


def _parsed(parser: Any, definition: str) -> Any | None:
    """The single ldap3 ``*Info`` of one definition; None (logged) when it is malformed."""
    text = _shield(definition)
    try:
        found = list(parser.from_definition([text]).values()) if text else []
    except (LDAPSchemaError, IndexError, ValueError) as exc:
        log.warning("ignoring a malformed schema definition %r: %s", definition, exc)
        return None
    if len(found) != 1 or not found[0].oid:
        log.warning("ignoring a malformed schema definition %r", definition)
        return None
    return found[0]


def _first(value: Any) -> str | None:
    """The first element of one of ldap3's OID lists (or its string), None when empty."""
    if value is None:
        return None
    if isinstance(value, str):
        return value.strip() or None
    items = [str(v).strip() for v in value if str(v).strip()]
    return items[0] if items else None


def _strings(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,) if value else ()
    return tuple(str(v) for v in value if str(v))


def _texts(value: Any) -> list[str]:
    """Attribute values from an ldap3 response, which may be one value or a list, str or bytes."""
    values = value if isinstance(value, list | tuple) else [] if value is None else [value]
    return [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in values]


def _declared(info: Any) -> _Declared:
    names = _strings(info.name) or (str(info.oid),)
    usage = info.usage
    operational = usage is not None and usage != "USER_APPLICATION"
    return _Declared(
        names=names,
        oid=str(info.oid),
        superior=_first(info.superior),
        syntax=_first(info.syntax),
        single_value=bool(info.single_value),
        equality=_first(info.equality),
        ordering=_first(info.ordering),
        # ldap3 parses SUBSTR into ``substr``; its ``substring`` attribute stays None.
        substring=_first(getattr(info, "substr", None) or info.substring),
        user_modifiable=not (info.no_user_modification or operational),
    )


def _object_class(info: Any) -> ObjectClass:
    names = _strings(info.name) or (str(info.oid),)
    return ObjectClass(
        name=names[0],
        names=names,
        oid=str(info.oid),
        kind=_KINDS.get(str(info.kind or "").upper(), "STRUCTURAL"),
        superiors=_strings(info.superior),
        must=_strings(info.must_contain),
        may=_strings(info.may_contain),
    )


def _key(name: str) -> str:
    """The lookup key of a name or OID: lower-cased, without attribute options (``;binary``)."""
    return name.partition(";")[0].strip().lower()


class Subschema:
    """The attribute types and object classes of a directory, looked up by any name or OID."""

    def __init__(self, attributes: list[AttributeType], classes: list[ObjectClass]) -> None:
        self._attributes: dict[str, AttributeType] = {}
        for attribute in attributes:
            for name in (*attribute.names, attribute.oid):
                self._attributes.setdefault(_key(name), attribute)
        self._classes: dict[str, ObjectClass] = {}
        for object_class in classes:
            for name in (*object_class.names, object_class.oid):
                self._classes.setdefault(_key(name), object_class)

    @classmethod
    def parse(cls, attribute_types: Iterable[str], object_classes: Iterable[str]) -> Subschema:
        """The schema of ``attributeTypes`` and ``objectClasses`` values (RFC 4512 §4.1)."""
        declared = [_declared(i) for d in attribute_types if (i := _parsed(AttributeTypeInfo, d))]
        by_name: dict[str, _Declared] = {}
        for item in declared:
            for name in (*item.names, item.oid):
                by_name.setdefault(_key(name), item)
        classes = [_object_class(i) for d in object_classes if (i := _parsed(ObjectClassInfo, d))]
        return cls([_resolved(item, by_name) for item in declared], classes)

    @classmethod
    def read(cls, session: Session) -> Subschema:
        """The schema of the subentry the root DSE names (RFC 4512 §5.1), else ``cn=Subschema``.

        Raises ``DirectoryFailure`` when the schema cannot be read, and lets
        ``DirectoryUnavailable`` through when the directory cannot be reached.
        """
        dn = _subschema_dn(session)
        try:
            found = session.search(
                dn,
                "(objectClass=subschema)",
                ["attributeTypes", "objectClasses"],
                scope="BASE",
                action="read the directory schema",
            )
        except DirectoryUnavailable:
            raise
        except SCIMException as exc:
            raise DirectoryFailure(
                detail=f"Cannot read the directory schema at {dn}: {exc.detail}"
            ) from exc
        attributes = found[0]["attributes"] if found else {}
        types = _texts(attributes.get("attributeTypes"))
        if not types:
            raise DirectoryFailure(
                detail=f"Cannot read the directory schema: {dn} holds no attributeTypes the "
                "server's bind DN may read (is read access to the subschema subentry granted?)"
            )
        return cls.parse(types, _texts(attributes.get("objectClasses")))

    def attribute(self, name: str) -> AttributeType | None:
        """The attribute type of any of its names or its OID, case-insensitively."""
        return self._attributes.get(_key(name))

    def object_class(self, name: str) -> ObjectClass | None:
        """The object class of any of its names or its OID, case-insensitively."""
        return self._classes.get(_key(name))

    def _lineage(self, classes: Iterable[str]) -> Iterator[ObjectClass]:
        """Each known class of ``classes`` in order, each followed by its superiors, once."""
        seen: set[str] = set()
        pending = [c for c in classes][::-1]
        while pending:
            object_class = self.object_class(pending.pop())
            if object_class is None or object_class.oid in seen:
                continue
            seen.add(object_class.oid)
            yield object_class
            pending.extend(reversed(object_class.superiors))

    def attributes_of(self, classes: Iterable[str]) -> list[AttributeType]:
        """The attribute types entries of ``classes`` must, then may, hold (superiors included).

        Classes come in the order given, each followed by its superiors; within
        a class, attributes in the order of its definition. Unknown classes and
        attributes are left out.
        """
        lineage = list(self._lineage(classes))
        names = [n for c in lineage for n in c.must] + [n for c in lineage for n in c.may]
        found: dict[str, AttributeType] = {}
        for name in names:
            attribute = self.attribute(name)
            if attribute is not None:
                found.setdefault(attribute.oid, attribute)
        return list(found.values())

    def required_by(self, classes: Iterable[str]) -> set[str]:
        """The lower-cased primary names of the attributes ``classes`` must hold (inherited too)."""
        required: set[str] = set()
        for object_class in self._lineage(classes):
            for name in object_class.must:
                attribute = self.attribute(name)
                required.add(_key(attribute.name if attribute else name))
        return required


def _resolved(item: _Declared, by_name: dict[str, _Declared]) -> AttributeType:
    """``item`` with what it does not state taken from its ``SUP`` chain (RFC 4512 §4.1.2)."""
    chain = [item]
    superior = by_name.get(_key(item.superior)) if item.superior else None
    while superior is not None and all(superior.oid != seen.oid for seen in chain):
        chain.append(superior)
        superior = by_name.get(_key(superior.superior)) if superior.superior else None
    return AttributeType(
        name=item.names[0],
        names=item.names,
        oid=item.oid,
        syntax=next((t.syntax for t in chain if t.syntax), None),
        single_value=item.single_value,
        equality=next((t.equality for t in chain if t.equality), None),
        ordering=next((t.ordering for t in chain if t.ordering), None),
        substring=next((t.substring for t in chain if t.substring), None),
        user_modifiable=item.user_modifiable,
    )


def _subschema_dn(session: Session) -> str:
    """The root DSE's ``subschemaSubentry``, or ``cn=Subschema`` when it names none."""
    try:
        found = session.search(
            "",
            "(objectClass=*)",
            ["subschemaSubentry"],
            scope="BASE",
            action="read the root DSE",
        )
    except DirectoryUnavailable:
        raise
    except SCIMException:
        return DEFAULT_SUBSCHEMA_DN
    values = _texts(found[0]["attributes"].get("subschemaSubentry")) if found else []
    return values[0] if values and values[0].strip() else DEFAULT_SUBSCHEMA_DN
