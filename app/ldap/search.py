"""SCIM filters (RFC 7644 §3.4.2.2) translated into one escaped LDAP filter.

The directory evaluates the whole filter; nothing is filtered in Python. Parts
that are decided without the directory (``meta.resourceType eq "User"``, the
``type`` of an element, an ``id`` that is not a UUID) fold into the constants
TRUE and FALSE, so the emitted filter only has real assertions.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import datetime

from ldap3.utils.conv import escape_filter_chars
from scim2_models import InvalidFilterException
from scim2_models.path import (
    AttrPath,
    CompareOperator,
    Comparison,
    FilterNode,
    FilterVisitor,
    LogicalExpr,
    LogicalOperator,
    Not,
    Present,
    ValuePath,
)

from app.attributes import ACTIVE, CORE_USER, ECMA2HOST_USER, LOGIN, USER_NAME, Slot
from app.ldap.adoption import login_term
from app.ldap.mapping import UserMapping, generalized_time

TRUE = "(&)"
FALSE = "(|)"

_META_TIMES = {"created": "createTimestamp", "lastmodified": "modifyTimestamp"}
_META_ALWAYS = frozenset({"", "resourcetype", "created", "lastmodified", "location", "version"})
_INTEGER = re.compile(r"-?[0-9]+")
_MAX_DIGITS = 19
_ORDERING = frozenset(
    {CompareOperator.gt, CompareOperator.ge, CompareOperator.lt, CompareOperator.le}
)


def and_filter(terms: list[str]) -> str:
    if FALSE in terms:
        return FALSE
    kept = list(dict.fromkeys(t for t in terms if t != TRUE))
    if not kept:
        return TRUE
    return kept[0] if len(kept) == 1 else "(&" + "".join(kept) + ")"


def or_filter(terms: list[str]) -> str:
    if TRUE in terms:
        return TRUE
    kept = list(dict.fromkeys(t for t in terms if t != FALSE))
    if not kept:
        return FALSE
    return kept[0] if len(kept) == 1 else "(|" + "".join(kept) + ")"


def not_filter(term: str) -> str:
    if term == TRUE:
        return FALSE
    if term == FALSE:
        return TRUE
    return f"(!{term})"


_SUBSTRING = frozenset({CompareOperator.co, CompareOperator.sw, CompareOperator.ew})


def compare(attr: str, op: CompareOperator, value: str) -> str:
    """One assertion; ``value`` is already escaped.

    An empty ``co``, ``sw`` or ``ew`` is satisfied by every value, so it asks
    for the attribute's presence: RFC 4511 §4.5.1.7.2 has no empty substring.
    """
    if op in _SUBSTRING and not value:
        return f"({attr}=*)"
    if op == CompareOperator.eq:
        return f"({attr}={value})"
    if op == CompareOperator.ne:
        return f"(!({attr}={value}))"
    if op == CompareOperator.co:
        return f"({attr}=*{value}*)"
    if op == CompareOperator.sw:
        return f"({attr}={value}*)"
    if op == CompareOperator.ew:
        return f"({attr}=*{value})"
    if op == CompareOperator.ge:
        return f"({attr}>={value})"
    if op == CompareOperator.le:
        return f"({attr}<={value})"
    if op == CompareOperator.gt:
        return f"(&({attr}>={value})(!({attr}={value})))"
    return f"(&({attr}<={value})(!({attr}={value})))"


def _hex(char: str) -> str:
    return "".join(f"\\{octet:02x}" for octet in char.encode("utf-8"))


def escape_value(value: str) -> str:
    """The RFC 4515 §3 form of an assertion value, which reaches the directory unchanged.

    Besides the characters RFC 4515 requires escaped, whitespace at either end
    is written as hex: ldap3 strips it from the text of an assertion before
    encoding, so ``EXT-1\\t`` would otherwise be sent as ``EXT-1``. What the
    directory then makes of spaces is its matching rule's business (RFC 4518
    §2.6.1), not the server's.
    """
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidFilterException(
            detail="the filter holds a value that is not valid UTF-8"
        ) from None
    escaped = str(escape_filter_chars(value, "utf-8"))
    core = escaped.strip()
    if core == escaped:
        return escaped
    start = len(escaped) - len(escaped.lstrip())
    end = start + len(core)
    lead, tail = escaped[:start], escaped[end:]
    return "".join(map(_hex, lead)) + core + "".join(map(_hex, tail))


def static(matches: bool, op: CompareOperator) -> str:
    return TRUE if matches != (op == CompareOperator.ne) else FALSE


def _type_test(element_type: str, present: bool, op: CompareOperator | None, value: object) -> str:
    """``type`` is not stored: each element's type is known, so the test folds to a constant."""
    if present:
        return TRUE
    if op not in (CompareOperator.eq, CompareOperator.ne):
        raise InvalidFilterException(detail="type supports eq and ne only")
    return static(str(value).lower() == element_type, op)


class LdapFilterBuilder(FilterVisitor[str]):
    """Emit an LDAP filter for a SCIM filter over Users.

    ``element`` is set while translating the inner filter of a value path:
    it names the multi-valued attribute and the element type the inner
    attribute names refer to.
    """

    def __init__(self, mapping: UserMapping, element: tuple[str, str] | None = None) -> None:
        self.mapping = mapping
        self.catalog = mapping.catalog
        self.element = element

    def build(self, node: FilterNode) -> str:
        return self.visit(node)

    def visit_logical_expr(self, node: LogicalExpr) -> str:
        terms = [self.visit(term) for term in node.terms]
        return and_filter(terms) if node.op == LogicalOperator.and_ else or_filter(terms)

    def visit_not(self, node: Not) -> str:
        return not_filter(self.visit(node.expr))

    def visit_present(self, node: Present) -> str:
        """``id`` and ``meta`` are on every user (RFC 7643 §3.1), so ``pr`` on them is TRUE."""
        path = node.attr_path
        if self.element is None and path.uri is None:
            name, sub = path.attr.lower(), (path.sub_attr or "").lower()
            if name == "id" or (name == "meta" and sub in _META_ALWAYS):
                return TRUE
        return self._resolve(path, lambda attr, slot: f"({attr}=*)", present=True)

    def visit_comparison(self, node: Comparison) -> str:
        path = node.attr_path
        name = path.attr.lower()
        if self.element is None and path.uri is None and name == "id":
            return id_comparison(node)
        if self.element is None and path.uri is None and name == "meta":
            return self._meta(node)

        def emit(attr: str, slot: Slot) -> str:
            return self._slot_comparison(attr, slot, node)

        return self._resolve(path, emit, op=node.op, value=node.value)

    def visit_value_path(self, node: ValuePath) -> str:
        path = node.attr_path
        if self.element is not None:
            raise InvalidFilterException(detail="value filters cannot be nested")
        attr = self._canonical_multi(path)
        slots = list(self.catalog.slots_of(attr))
        types = sorted({s.type for s in slots if s.type})
        branches = []
        for element_type in types:
            inner = LdapFilterBuilder(self.mapping, (attr, element_type)).visit(node.val_filter)
            branches.append(and_filter([self._exists(slots, element_type), inner]))
        return or_filter(branches)

    def attributes_of(self, path: AttrPath) -> list[tuple[str, Slot]]:
        """The LDAP attributes, with their slots, that a comparison on ``path`` would test."""
        found: list[tuple[str, Slot]] = []

        def collect(attr: str, slot: Slot) -> str:
            found.append((attr, slot))
            return TRUE

        self._resolve(path, collect)
        return found

    def element_types(self, path: AttrPath, val_filter: FilterNode) -> tuple[str, list[str]]:
        """The multi-valued attribute's name and the element types ``path[val_filter]`` selects.

        Only a filter deciding on the ``type`` alone (which is not stored) selects;
        one testing stored values raises ``InvalidFilterException``.
        """
        attr = self._canonical_multi(path)
        selected = []
        for element_type in sorted({s.type for s in self.catalog.slots_of(attr) if s.type}):
            inner = LdapFilterBuilder(self.mapping, (attr, element_type)).visit(val_filter)
            if inner not in (TRUE, FALSE):
                raise InvalidFilterException(
                    detail=f"{path.attr}[...] selects elements by their type only"
                )
            if inner == TRUE:
                selected.append(element_type)
        return attr, selected

    def _canonical_multi(self, path: AttrPath) -> str:
        if path.uri not in (None, CORE_USER) or path.sub_attr:
            raise InvalidFilterException(detail=f"{path} is not a multi-valued attribute")
        found = self.catalog.schemas.resolve(None, path.attr)
        if found is None or not found[1].multi_valued or found[1].type != "complex":
            raise InvalidFilterException(
                detail=f"{path.attr} is not a multi-valued attribute this server stores"
            )
        return found[1].name

    def _resolve(
        self,
        path: AttrPath,
        emit: Callable[[str, Slot], str],
        *,
        present: bool = False,
        op: CompareOperator | None = None,
        value: object = None,
    ) -> str:
        """Translate an assertion on a path into an OR over the slots it designates."""
        if self.element is None:
            raw = self._ecma2host(path, emit)
            if raw is not None:
                return raw
        if self.element is not None:
            multi, element_type = self.element
            if path.attr.lower() == "type":
                return _type_test(element_type, present, op, value)
            found = self.catalog.schemas.resolve(None, multi)
            if found is None or found[1].sub(path.attr) is None:
                raise InvalidFilterException(detail=f"{multi} has no sub-attribute {path.attr}")
            slots = [
                s
                for s in self.catalog.slots_of(multi)
                if s.type == element_type and (s.sub or "").lower() == path.attr.lower()
            ]
            return self._emit_all(slots, emit, f"{multi}.{path.attr}")
        slots = self._top_slots(path)
        sub = (path.sub_attr or "").lower()
        if slots[0].is_multi:
            if sub == "type":
                return or_filter(
                    [
                        and_filter([self._exists(slots, t), _type_test(t, present, op, value)])
                        for t in sorted({s.type for s in slots if s.type})
                    ]
                )
            if not sub and not present:
                sub = "value"
            slots = [s for s in slots if not sub or (s.sub or "").lower() == sub]
        elif slots[0].sub is not None and slots[0].attr != "manager":
            if not sub and not present:
                raise InvalidFilterException(detail=f"{path.attr} needs a sub-attribute")
            slots = [s for s in slots if not sub or (s.sub or "").lower() == sub]
        elif sub and not (slots[0].attr == "manager" and sub == "value"):
            raise InvalidFilterException(detail=f"{path.attr} has no sub-attribute {sub}")
        return self._emit_all(slots, emit, str(path))

    def _ecma2host(self, path: AttrPath, emit: Callable[[str, Slot], str]) -> str | None:
        """An ECMA2Host name is the LDAP attribute of that name (ENTRA.md §4).

        Microsoft's LDAP tutorial matches users on ``mail`` under this namespace,
        and an administrator who keeps its mappings keeps that matching filter:
        ``...:ECMA2Host:2.0:User:mail eq "<upn>"`` tests the ``mail`` attribute,
        whichever SCIM path the mapping stores it under, and ``uid`` the login (the
        RDN). None when the path is not an ECMA2Host attribute this server offers.
        """
        if path.uri is None or path.uri.lower() != ECMA2HOST_USER.lower() or path.sub_attr:
            return None
        if self.catalog.schemas.named(ECMA2HOST_USER) is None:
            return None
        if path.attr.lower() == LOGIN.attr:
            return emit(self.mapping.rdn, LOGIN)
        if self.catalog.schemas.resolve(ECMA2HOST_USER, path.attr) is None:
            return None
        own = self.catalog.slots_of(path.attr, ECMA2HOST_USER)
        slot = own[0] if own else self.catalog.slot_of_ldap(path.attr)
        attr = self.mapping.attribute_of(slot) if slot is not None else None
        if slot is None or attr is None or slot in (USER_NAME, ACTIVE):
            return None
        return emit(attr, slot)

    def _top_slots(self, path: AttrPath) -> list[Slot]:
        schema = CORE_USER
        if path.uri is not None:
            named = self.catalog.schemas.named(path.uri)
            if named is None:
                raise InvalidFilterException(detail=f"unknown schema {path.uri}")
            schema = named.urn
        slots = list(self.catalog.slots_of(path.attr, schema))
        if not slots:
            raise InvalidFilterException(
                detail=f"{path.attr} is not an attribute this server can filter on"
            )
        return slots

    def _exists(self, slots: list[Slot], element_type: str) -> str:
        return or_filter(
            [
                f"({a}=*)"
                for s in slots
                if s.type == element_type
                if (a := self.mapping.attribute_of(s))
            ]
        )

    def _emit_all(self, slots: list[Slot], emit: Callable[[str, Slot], str], name: str) -> str:
        if not slots:
            raise InvalidFilterException(detail=f"{name} is not stored by this server")
        terms = []
        for slot in slots:
            attr = self.mapping.attribute_of(slot)
            if attr is None:
                raise InvalidFilterException(detail=f"{slot.path} is not stored by this server")
            terms.append(emit(attr, slot))
        return or_filter(terms)

    def _slot_comparison(self, attr: str, slot: Slot, node: Comparison) -> str:
        """One comparison on a stored slot.

        No stored string is empty (``""`` clears an attribute), so ``eq ""``
        is FALSE and ``ne ""`` TRUE; sent to the directory, an empty assertion
        value would be invalid and evaluate to Undefined (RFC 4511 §4.5.1.7),
        which ``not`` does not turn into a match.

        Ordering (``gt``, ``ge``, ``lt``, ``le``) is refused on strings with
        ``invalidFilter`` (RFC 7644 §3.12): most directory attributes behind them
        (``title``, ``mail``, ``uid``) have no ORDERING rule, and slapd would
        answer an empty result instead of the lexicographic comparison asked.
        """
        op, value = node.op, node.value
        if slot == ACTIVE:
            return self._active(attr, op, value)
        if slot.kind == "reference":
            raise InvalidFilterException(detail=f"{slot.path} cannot be filtered on")
        if slot.kind == "strings" and op not in (CompareOperator.eq, CompareOperator.ne):
            raise InvalidFilterException(detail=f"{slot.path} supports eq, ne and pr only")
        if value is None:
            raise InvalidFilterException(detail=f"{node.attr_path} cannot be compared with null")
        if slot.kind == "integer":
            number = integer_assertion(slot.path, op, value)
            orderable = self.mapping.orderable
            if op in _ORDERING and orderable is not None and attr.lower() not in orderable:
                raise InvalidFilterException(
                    detail=f"{slot.path} does not support {op.value}: the directory attribute "
                    f"{attr} has no ORDERING rule"
                )
            return compare(attr, op, number)
        value = string_assertion(slot.path, op, value)
        if value == "" and op in (CompareOperator.eq, CompareOperator.ne):
            return static(False, op)
        escaped = escape_value(value)
        if slot == USER_NAME and self.mapping.user_name_attribute:
            kept = self.mapping.user_name_attribute
            positive = compare(kept, _positive(op), escaped)
            fallback = f"(&(!({kept}=*)){compare(attr, _positive(op), escaped)})"
            adopted = login_term(self.mapping, value) if op == CompareOperator.eq else None
            either = f"(|{positive}{fallback}{adopted or ''})"
            return not_filter(either) if op == CompareOperator.ne else either
        return compare(attr, op, escaped)

    @staticmethod
    def _active(attr: str, op: CompareOperator, value: object) -> str:
        if isinstance(value, str) and value.lower() in ("true", "false"):
            value = value.lower() == "true"
        if not isinstance(value, bool) or op not in (CompareOperator.eq, CompareOperator.ne):
            raise InvalidFilterException(detail="active compares with eq/ne and true/false only")
        wanted = value if op == CompareOperator.eq else not value
        return f"(!({attr}=FALSE))" if wanted else f"({attr}=FALSE)"

    @staticmethod
    def _meta(node: Comparison) -> str:
        return meta_comparison(node, "User")


def id_comparison(node: Comparison) -> str:
    """``id eq``/``ne``: the entryUUID; an id that is no UUID names no resource."""
    if node.op not in (CompareOperator.eq, CompareOperator.ne):
        raise InvalidFilterException(detail="id supports eq and ne only")
    try:
        parsed = str(uuid.UUID(str(node.value)))
    except ValueError:
        return static(False, node.op)
    return compare("entryUUID", node.op, escape_value(parsed))


def integer_assertion(name: str, op: CompareOperator, value: object) -> str:
    """The assertion value of a comparison on an integer attribute, in canonical digits."""
    if isinstance(value, bool) or not _INTEGER.fullmatch(str(value).strip()):
        raise InvalidFilterException(detail=f"{name} compares with integers only")
    if len(str(value).strip().lstrip("-")) > _MAX_DIGITS:
        raise InvalidFilterException(
            detail=f"{name} compares with integers of at most {_MAX_DIGITS} digits"
        )
    if op in (CompareOperator.co, CompareOperator.sw, CompareOperator.ew):
        raise InvalidFilterException(detail=f"{name} does not support {op.value}")
    return str(int(str(value).strip()))


def string_assertion(name: str, op: CompareOperator, value: object) -> str:
    """The value of a comparison on a string attribute; ordering is refused (see
    ``LdapFilterBuilder._slot_comparison``)."""
    if not isinstance(value, str):
        raise InvalidFilterException(detail=f"{name} compares with strings only")
    if op in _ORDERING:
        raise InvalidFilterException(
            detail=f"{name} does not support {op.value}: strings compare with "
            "eq, ne, co, sw, ew and pr only"
        )
    return value


def meta_comparison(node: Comparison, resource_type: str) -> str:
    """``meta.resourceType`` (decided here) and ``meta.created``/``lastModified`` (timestamps)."""
    sub = (node.attr_path.sub_attr or "").lower()
    if sub == "resourcetype":
        if node.op not in (CompareOperator.eq, CompareOperator.ne):
            raise InvalidFilterException(detail="meta.resourceType supports eq and ne only")
        return static(str(node.value).lower() == resource_type.lower(), node.op)
    attr = _META_TIMES.get(sub)
    if attr is None:
        raise InvalidFilterException(detail=f"meta.{sub} cannot be filtered on")
    if node.op in (CompareOperator.co, CompareOperator.sw, CompareOperator.ew):
        raise InvalidFilterException(detail=f"meta.{sub} does not support {node.op.value}")
    try:
        moment = datetime.fromisoformat(str(node.value).replace("Z", "+00:00"))
    except ValueError:
        raise InvalidFilterException(
            detail=f"meta.{sub} compares with an xsd:dateTime such as 2026-01-31T12:00:00Z"
        ) from None
    if moment.tzinfo is None:
        raise InvalidFilterException(detail=f"meta.{sub} needs a time zone in the date-time")
    return compare(attr, node.op, generalized_time(moment))


def _positive(op: CompareOperator) -> CompareOperator:
    return CompareOperator.eq if op == CompareOperator.ne else op


def translate(mapping: UserMapping, node: FilterNode) -> str:
    """The LDAP filter for a parsed SCIM filter (may be TRUE or FALSE)."""
    return LdapFilterBuilder(mapping).build(node)
