"""Elements of multi-valued attributes: matching value filters, and what PATCH keeps of them.

RFC 7644 §3.5.2 addresses elements by value filters (``emails[type eq "work"]``);
RFC 7643 §2.4 allows ``primary`` on one element of an attribute only.
"""

from __future__ import annotations

from typing import Any

from scim2_models import InvalidPathException
from scim2_models.path import (
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

_HOLLOW = frozenset({"type", "primary"})
"""Sub-attributes that alone do not make an element worth keeping."""


class ElementMatcher(FilterVisitor[bool]):
    """Evaluate a value filter (``type eq "work"``) on one element of a multi-valued attribute."""

    def __init__(self, element: Any) -> None:
        if isinstance(element, dict):
            self.element = {str(k).lower(): v for k, v in element.items()}
        else:
            self.element = {"value": element}

    def visit_comparison(self, node: Comparison) -> bool:
        actual = self.element.get(node.attr_path.attr.lower())
        expected = node.value
        if actual is None:
            return node.op == CompareOperator.ne
        if isinstance(actual, bool) or isinstance(expected, bool):
            left, right = str(actual).lower(), str(expected).lower()
        else:
            left, right = str(actual).lower(), str(expected).lower()
        results = {
            CompareOperator.eq: left == right,
            CompareOperator.ne: left != right,
            CompareOperator.co: right in left,
            CompareOperator.sw: left.startswith(right),
            CompareOperator.ew: left.endswith(right),
            CompareOperator.gt: left > right,
            CompareOperator.ge: left >= right,
            CompareOperator.lt: left < right,
            CompareOperator.le: left <= right,
        }
        return results[node.op]

    def visit_present(self, node: Present) -> bool:
        return self.element.get(node.attr_path.attr.lower()) not in (None, "")

    def visit_not(self, node: Not) -> bool:
        return not self.visit(node.expr)

    def visit_logical_expr(self, node: LogicalExpr) -> bool:
        results = (self.visit(t) for t in node.terms)
        return all(results) if node.op == LogicalOperator.and_ else any(results)

    def visit_value_path(self, node: ValuePath) -> bool:
        raise InvalidPathException(detail="value filters cannot be nested")


def pinned(node: FilterNode) -> dict[str, Any]:
    """The sub-attribute values a filter pins with ``eq`` (``type eq "work"``, alone or in an
    ``and``): an element a write creates when none matches has them."""
    if isinstance(node, Comparison):
        if node.op == CompareOperator.eq and node.value is not None:
            return {node.attr_path.attr: node.value}
        return {}
    if isinstance(node, LogicalExpr) and node.op == LogicalOperator.and_:
        values: dict[str, Any] = {}
        for term in node.terms:
            found = pinned(term)
            if not found:
                return {}
            values.update(found)
        return values
    return {}


def same_type(element: Any, element_type: str) -> bool:
    return isinstance(element, dict) and str(element.get("type", "")).lower() == (
        element_type.lower()
    )


def hollow(element: Any) -> bool:
    """An element left with nothing but its type and primary flag."""
    return isinstance(element, dict) and all(k in _HOLLOW for k in element)


DEFAULT_TYPE = "work"
"""The type given to an element addressed without one (Entra always sends a type)."""


def default_element(elements: list[Any]) -> int | None:
    """The element an unfiltered ``emails.value`` means: the work one, else the first untyped."""
    for index, element in enumerate(elements):
        if same_type(element, DEFAULT_TYPE):
            return index
    for index, element in enumerate(elements):
        if isinstance(element, dict) and "type" not in element:
            return index
    return None


def covers(element: Any, item: Any) -> bool:
    """Whether a removal value names an element: every sub-attribute it gives matches."""
    if not isinstance(element, dict) or not isinstance(item, dict):
        return bool(element == item)
    return all(str(element.get(k, "")).lower() == str(v).lower() for k, v in item.items())


def one_primary(elements: list[Any], touched: list[Any]) -> None:
    flagged = [i for i, e in enumerate(elements) if isinstance(e, dict) and e.get("primary")]
    if len(flagged) < 2:
        return
    winners = [i for i in flagged if any(elements[i] is t for t in touched)]
    keep = winners[-1] if winners else flagged[0]
    for index in flagged:
        if index != keep:
            elements[index] = {**elements[index], "primary": False}
