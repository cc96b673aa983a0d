"""The order of a user search: ``sortBy`` and ``sortOrder`` (RFC 7644 §3.4.2.3).

``sortBy`` names an attribute path as a filter does, and sorts by the LDAP
attribute the filter would test:

* ``userName`` sorts by the login (the RDN attribute), case-insensitively. The
  userName as sent is kept (``users.user_name_attribute``) only when it differs
  from the login, so no one directory attribute holds the userName of every
  entry; the login is made from it (the lower-cased part before the ``@``), so
  the order is the userName's up to the domain and the characters the login
  rewrites. It is also the order of a listing without ``sortBy``.
* ``id`` sorts by ``entryUUID``, ``meta.created`` and ``meta.lastModified`` by
  ``createTimestamp`` and ``modifyTimestamp``.
* An element path of a multi-valued attribute (``emails``, ``emails.value``,
  ``emails[type eq "work"].value``) sorts by its work element when that is
  stored, else by the first stored element the path selects. ``primary`` is
  not stored in the directory, so RFC 7644's "primary value" cannot be used.
  A value filter selects elements by ``type`` only.

The ordering rule comes from the directory schema (``AttributeType.sort_rule``);
an attribute without one cannot be sorted on. Without the schema, integers
sort with ``integerOrderingMatch`` and strings with ``caseIgnoreOrderingMatch``.

The directory (RFC 2891 with slapo-sssvlv) and the Python paths of pages.py
order alike, as measured against slapd:

* values compare in their normalized form: for the caseIgnore and caseExact
  rules NFKC, insignificant spaces removed, case folded where the equality
  rule ignores case (whatever the ordering rule named); telephone numbers
  without spaces and hyphens; integers by value (9 before 10);
* an entry with several values sorts by its least value, in both orders;
* entries without the attribute come last in ascending order and first in
  descending order (reverseOrder reverses the whole key, absence included);
* ties break by the login, ascending in both orders, so pages are stable.

Errors are ``invalidValue`` (RFC 7644 §3.12): ``sortBy`` is a query
parameter, not a filter, and RFC 7644 names no error type for it; the detail
names the path.
"""

from __future__ import annotations

import unicodedata
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from scim2_models import InvalidFilterException, InvalidValueException, SCIMException
from scim2_models.path import AttrPath, Path, ValuePath

from app.attributes import CORE_USER, Kind, Slot
from app.ldap.controls import SortKey
from app.ldap.mapping import UserMapping, parse_generalized_time
from app.ldap.search import LdapFilterBuilder

if TYPE_CHECKING:
    from app.ldap.subschema import Subschema

ASCENDING = "ascending"
DESCENDING = "descending"
CASE_IGNORE = "caseIgnoreOrderingMatch"
_META_TIMES = {"created": "createTimestamp", "lastmodified": "modifyTimestamp"}
_FALLBACK_RULES: dict[Kind, str] = {
    "string": CASE_IGNORE,
    "strings": CASE_IGNORE,
    "integer": "integerOrderingMatch",
    "dateTime": "generalizedTimeOrderingMatch",
}
_EPOCH = datetime.min.replace(tzinfo=UTC)

Normal = Callable[[str], Any]


def fold(value: str) -> str:
    """A value as a caseIgnore rule normalizes it: NFKC, insignificant spaces dropped, folded."""
    return " ".join(unicodedata.normalize("NFKC", value).split()).lower()


def _exact(value: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", value).split())


def _telephone(value: str) -> str:
    return fold(value.replace(" ", "").replace("-", ""))


def _numeric(value: str) -> str:
    return value.replace(" ", "")


def _integer(value: str) -> int:
    try:
        return int(value.strip())
    except ValueError:
        return 0


def _uuid(value: str) -> bytes:
    try:
        return uuid.UUID(value.strip()).bytes
    except ValueError:
        return value.encode("utf-8")


def _time(value: str) -> datetime:
    return parse_generalized_time(value.strip()) or _EPOCH


def _raw(value: str) -> str:
    return value


def _normal(rule: str, equality: str | None) -> Normal:
    """How the directory normalizes values compared by ``rule`` (an ordering rule)."""
    lowered = rule.lower()
    if lowered == "integerorderingmatch":
        return _integer
    if lowered == "uuidorderingmatch":
        return _uuid
    if lowered == "generalizedtimeorderingmatch":
        return _time
    name = (equality or "").lower()
    if name in ("telephonenumbermatch", "2.5.13.20"):
        return _telephone
    if name in ("numericstringmatch", "2.5.13.8"):
        return _numeric
    if name.startswith("caseignore") or name in ("2.5.13.2", "1.3.6.1.4.1.1466.109.114.2"):
        return fold
    if name.startswith("caseexact") or name in ("2.5.13.5", "1.3.6.1.4.1.1466.109.114.1"):
        return _exact
    if not name and lowered == CASE_IGNORE.lower():
        return fold
    return _raw


@dataclass(frozen=True)
class Order:
    """How to sort the entries of a search: by one attribute, then by the login."""

    attribute: str
    rule: str
    descending: bool = False
    normal: Normal = field(default=fold, compare=False)

    def keys(self, rdn: str) -> list[SortKey]:
        """The RFC 2891 sort keys: this order's, then the login's for ties."""
        first = SortKey(self.attribute, self.rule, self.descending)
        if self.attribute.lower() == rdn.lower():
            return [first]
        return [first, SortKey(rdn, CASE_IGNORE)]

    def sort(self, entries: Sequence[Mapping[str, Any]], rdn: str) -> list[Mapping[str, Any]]:
        """ldap3 search entries in the order the directory would give them."""
        by_login = sorted(entries, key=lambda e: _least(_values(e, rdn), fold, ""))

        def key(entry: Mapping[str, Any]) -> tuple[int, Any]:
            values = _values(entry, self.attribute)
            if not values:
                return (1, 0)
            return (0, _least(values, self.normal, None))

        return sorted(by_login, key=key, reverse=self.descending)


def by_login(mapping: UserMapping) -> Order:
    """The order of a listing without ``sortBy``: the login, case-insensitively."""
    return Order(mapping.rdn, CASE_IGNORE)


def _values(entry: Mapping[str, Any], attribute: str) -> list[str]:
    attributes: Mapping[str, Any] = entry["attributes"]
    lowered = attribute.lower()
    for name, value in attributes.items():
        if name.lower() == lowered:
            found = value if isinstance(value, list) else [value]
            return [str(v) for v in found if v is not None and str(v) != ""]
    return []


def _least(values: Sequence[str], normal: Normal, default: Any) -> Any:
    return min((normal(v) for v in values), default=default)


def _descending(sort_order: str | None) -> bool:
    if sort_order is None or not sort_order.strip():
        return False
    lowered = sort_order.strip().lower()
    if lowered not in (ASCENDING, DESCENDING):
        raise InvalidValueException(
            detail=f"sortOrder must be {ASCENDING} or {DESCENDING}, not {sort_order!r}"
        )
    return lowered == DESCENDING


def order_of(mapping: UserMapping, sort_by: str | None, sort_order: str | None) -> Order | None:
    """The order ``sortBy``/``sortOrder`` ask for; None without ``sortBy`` (``sortOrder``
    alone is ignored, RFC 7644 §3.4.2.3)."""
    if sort_by is None or not sort_by.strip():
        return None
    text = sort_by.strip()
    descending = _descending(sort_order)
    try:
        node = Path(text).ast
    except SCIMException:
        raise InvalidValueException(detail=f"sortBy {text!r} is not an attribute path") from None
    if node is None:
        raise InvalidValueException(detail=f"sortBy {text!r} is not an attribute path")
    try:
        attribute, kind = _attribute(mapping, node)
    except InvalidFilterException as problem:
        raise InvalidValueException(detail=f"sortBy {text}: {problem.detail}") from None
    order = attribute_order(mapping.schema, attribute, kind, descending=descending)
    if order is None:
        raise InvalidValueException(
            detail=f"sortBy {text}: the directory attribute {attribute} has no ordering rule, "
            "so it cannot be sorted on"
        )
    return order


def _attribute(mapping: UserMapping, node: Any) -> tuple[str, Kind]:
    """The LDAP attribute a sortBy path sorts by, and the kind of its values."""
    if isinstance(node, AttrPath) and node.uri in (None, CORE_USER):
        name, sub = node.attr.lower(), (node.sub_attr or "").lower()
        if name == "id" and not sub:
            return "entryUUID", "string"
        if name == "meta":
            if sub not in _META_TIMES:
                raise InvalidFilterException(detail=f"meta.{node.sub_attr} cannot be sorted on")
            return _META_TIMES[sub], "dateTime"
    builder = LdapFilterBuilder(mapping)
    if isinstance(node, ValuePath):
        multi, types = builder.element_types(node.attr_path, node.val_filter)
        inner = AttrPath(attr=node.sub_attr or "value")
        found: list[tuple[str, Slot]] = []
        for element_type in types:
            try:
                found.extend(LdapFilterBuilder(mapping, (multi, element_type)).attributes_of(inner))
            except InvalidFilterException:
                continue
        if not found:
            raise InvalidFilterException(detail="no stored element is selected")
    elif isinstance(node, AttrPath):
        found = builder.attributes_of(node)
    else:
        raise InvalidFilterException(detail="not an attribute path")
    attribute, slot = next(((a, s) for a, s in found if s.type == "work"), found[0])
    if slot.kind in ("password", "document"):
        raise InvalidFilterException(detail=f"{slot.path} cannot be sorted on")
    return attribute, slot.kind


def attribute_order(
    schema: Subschema | None, attribute: str, kind: Kind = "string", *, descending: bool = False
) -> Order | None:
    """The order by ``attribute`` with its ordering rule from the directory schema (by
    ``kind`` without one); None when the attribute has no ordering rule."""
    found = schema.attribute(attribute) if schema is not None else None
    if found is not None:
        rule, equality = found.sort_rule, found.equality
    else:
        equality = None
        rule = _FALLBACK_RULES.get(kind)
        if attribute.lower() == "entryuuid":
            rule = "UUIDOrderingMatch"
    if rule is None:
        return None
    return Order(attribute, rule, descending, _normal(rule, equality))
