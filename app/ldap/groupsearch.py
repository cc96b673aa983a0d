"""SCIM filters over Groups (RFC 7644 §3.4.2.2) translated into one escaped LDAP filter.

The attributes a group filter may name are the few a group entry holds:
``displayName``, ``externalId``, ``id``, ``meta.created``/``meta.lastModified``
and the POSIX ``gidNumber``. Members are not filterable: Entra never filters
on them, and answering from the directory would mean one filter per member.
"""

from __future__ import annotations

from scim2_models import InvalidFilterException
from scim2_models.path import (
    AttrPath,
    CompareOperator,
    Comparison,
    FilterVisitor,
    LogicalExpr,
    LogicalOperator,
    Not,
    Present,
    ValuePath,
)

from app.ldap.search import (
    TRUE,
    and_filter,
    compare,
    escape_value,
    id_comparison,
    integer_assertion,
    meta_comparison,
    not_filter,
    or_filter,
    static,
    string_assertion,
)

GROUP_POSIX = "urn:ietf:params:scim:schemas:extension:posix:2.0:Group"
_STRINGS = {"displayname": "displayName", "externalid": "scimExternalId"}


class GroupFilterBuilder(FilterVisitor[str]):
    """Emit the LDAP filter of a SCIM filter over Groups."""

    def visit_logical_expr(self, node: LogicalExpr) -> str:
        terms = [self.visit(term) for term in node.terms]
        return and_filter(terms) if node.op == LogicalOperator.and_ else or_filter(terms)

    def visit_not(self, node: Not) -> str:
        return not_filter(self.visit(node.expr))

    def visit_value_path(self, node: ValuePath) -> str:
        raise InvalidFilterException(detail=f"{node.attr_path} cannot be filtered on")

    def visit_present(self, node: Present) -> str:
        name, sub = self._name(node.attr_path)
        if name in ("id", "meta"):
            return TRUE
        if name == "gidnumber":
            return "(gidNumber=*)"
        if name in _STRINGS and not sub:
            return f"({_STRINGS[name]}=*)"
        raise InvalidFilterException(detail=f"{node.attr_path} cannot be filtered on")

    def visit_comparison(self, node: Comparison) -> str:
        name, sub = self._name(node.attr_path)
        op, value = node.op, node.value
        if name == "id":
            return id_comparison(node)
        if name == "meta":
            return meta_comparison(node, "Group")
        if name == "gidnumber":
            return compare("gidNumber", op, integer_assertion("gidNumber", op, value))
        if name not in _STRINGS or sub:
            raise InvalidFilterException(detail=f"{node.attr_path} cannot be filtered on")
        value = string_assertion(str(node.attr_path), op, value)
        if value == "" and op in (CompareOperator.eq, CompareOperator.ne):
            return static(False, op)
        return compare(_STRINGS[name], op, escape_value(value))

    @staticmethod
    def _name(path: AttrPath) -> tuple[str, str]:
        if path.uri is not None and path.uri.lower() == GROUP_POSIX.lower():
            if path.attr.lower() != "gidnumber":
                raise InvalidFilterException(detail=f"{path} cannot be filtered on")
            return "gidnumber", ""
        if path.uri is not None and path.uri.lower() != (
            "urn:ietf:params:scim:schemas:core:2.0:group"
        ):
            raise InvalidFilterException(detail=f"unknown schema {path.uri}")
        return path.attr.lower(), (path.sub_attr or "").lower()
