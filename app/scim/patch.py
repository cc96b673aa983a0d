"""Applying SCIM writes to a user's slots: PATCH (RFC 7644 §3.5.2) in both Entra dialects.

POST and PUT bodies go through the same code as a path-less ``add``, so a
value means the same thing whichever way it arrives. What Entra needs beyond
the RFC (ENTRA.md §2):

- ``op`` is case-insensitive; booleans may be strings;
- in a path-less ``add``/``replace`` the keys of ``value`` may be paths
  (``name.givenName``, ``urn:...:User:employeeNumber``);
- a filtered path with no matching element (``emails[type eq "work"].value``)
  creates the element with that ``type``; ops aimed at one element merge;
- ``add`` on a single-valued attribute replaces it;
- ``""`` and ``null`` clear an attribute.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from scim2_models import (
    InvalidPathException,
    InvalidSyntaxException,
    InvalidValueException,
    MutabilityException,
    NoTargetException,
)
from scim2_models.path import (
    AttrPath,
    CompareOperator,
    Comparison,
    FilterNode,
    FilterVisitor,
    LogicalExpr,
    LogicalOperator,
    Not,
    Path,
    Present,
    ValuePath,
)

from app.attributes import (
    CORE_USER,
    ECMA2HOST_ALIASES,
    ECMA2HOST_USER,
    EXTENSIONS,
    MULTI_VALUED,
    READ_ONLY,
    UNTYPED_DEFAULT,
    USER_NAME,
    Slot,
    SlotValue,
    slots_of,
)
from app.scim.sshkeys import identity, unique_keys
from app.scim.unstored import UNSTORED
from app.scim.values import coerce

log = logging.getLogger(__name__)

PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
State = dict[Slot, SlotValue]
_SCHEMAS = (CORE_USER, *EXTENSIONS, ECMA2HOST_USER)
_OPS = ("add", "replace", "remove")
MAX_PATH_LENGTH = 1000
"""Longest attribute path, filter included: Entra's longest, ``members[value eq "<id>"]``, is
under 80, and parsing cost grows with length."""
_EXTENSION_PREFIX = "urn:ietf:params:scim:schemas:extension:"


def _schema_named(uri: str) -> str | None:
    return next((s for s in _SCHEMAS if s.lower() == uri.lower()), None)


def _unknown_extension(path: str) -> bool:
    """Whether a path is in an extension this server does not store.

    Entra lets an administrator map attributes onto any
    ``urn:ietf:params:scim:schemas:extension:<Name>:2.0:User`` namespace; the
    values of one the server does not know are accepted and not stored, as for
    unstored core attributes, rather than failing every user.
    """
    lowered = path.lower()
    return lowered.startswith(_EXTENSION_PREFIX) and not any(
        lowered == s.lower() or lowered.startswith(s.lower() + ":") for s in _SCHEMAS
    )


def _multi_named(attr: str) -> str | None:
    return next((m for m in MULTI_VALUED if m.lower() == attr.lower()), None)


class _ElementMatcher(FilterVisitor[bool]):
    """Evaluate a value filter (``type eq "work"``) on one element of a multi-valued attribute."""

    def __init__(self, element: dict[str, Any]) -> None:
        self.element = {k.lower(): v for k, v in element.items()}

    def visit_comparison(self, node: Comparison) -> bool:
        actual = self.element.get(node.attr_path.attr.lower())
        expected = node.value
        if actual is None:
            return node.op == CompareOperator.ne
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


def _type_in(node: FilterNode) -> str | None:
    """The element type a filter pins with ``type eq "x"`` (alone or inside an ``and``)."""
    if isinstance(node, Comparison):
        if node.attr_path.attr.lower() == "type" and node.op == CompareOperator.eq:
            return str(node.value).lower()
        return None
    if isinstance(node, LogicalExpr) and node.op == LogicalOperator.and_:
        return next((t for term in node.terms if (t := _type_in(term))), None)
    return None


class UserWriter:
    """Applies operations to a copy of a user's slots."""

    def __init__(self, state: State) -> None:
        self.state: State = dict(state)

    # ---- entry points

    def apply(self, op: str, path: str | None, value: Any) -> None:
        """Apply one PATCH operation (``op`` already lower-cased)."""
        if path is None or path == "":
            if op == "remove":
                raise NoTargetException(detail="remove needs a path")
            if not isinstance(value, dict):
                raise InvalidValueException(detail=f"{op} without a path needs an object value")
            for key, item in value.items():
                self._apply_key(op, str(key), item, path_less=True)
            return
        self._apply_key(op, path, value, path_less=False)

    def load(self, body: dict[str, Any]) -> None:
        """Fill the slots from a POST or PUT body; read-only attributes are ignored."""
        for key, item in body.items():
            if key.lower() in ("schemas", *READ_ONLY):
                continue
            self._apply_key("add", key, item, path_less=True)

    # ---- paths

    def _apply_key(self, op: str, key: str, value: Any, *, path_less: bool) -> None:
        schema = _schema_named(key)
        if schema is not None:
            self._apply_extension(op, schema, value)
            return
        if key.lower().startswith(ECMA2HOST_USER.lower() + ":"):
            self._apply_ecma2host(op, key[len(ECMA2HOST_USER) + 1 :], value)
            return
        if path_less and key.lower() == "schemas":
            return
        if _unknown_extension(key):
            UNSTORED.note(key)
            return
        if len(key) > MAX_PATH_LENGTH:
            raise InvalidPathException(
                detail=f"an attribute path of {len(key)} characters; at most {MAX_PATH_LENGTH} "
                "are accepted"
            )
        try:
            node = Path(key).ast
        except InvalidPathException:
            if path_less:
                UNSTORED.note(key)
                return
            raise InvalidPathException(detail=f"{key!r} is not a valid attribute path") from None
        if isinstance(node, ValuePath):
            self._apply_value_path(op, node, value)
        elif isinstance(node, AttrPath):
            self._apply_attr_path(op, node, value)
        else:
            raise InvalidPathException(detail=f"{key!r} is not an attribute path")

    def _apply_extension(self, op: str, schema: str, value: Any) -> None:
        """A whole schema as the path or key.

        Removing the core one cannot drop the required userName; a ``schemas``
        member inside the object, which some clients copy from the resource,
        names no attribute and is skipped like the top-level one.
        """
        if op == "remove":
            for slot in [s for s in self.state if s.schema == schema]:
                self._set(op, slot, None)
            return
        if value is None:
            return
        if not isinstance(value, dict):
            raise InvalidValueException(detail=f"{schema} must be an object")
        for key, item in value.items():
            if str(key).lower() == "schemas":
                continue
            if schema == ECMA2HOST_USER:
                self._apply_ecma2host(op, str(key), item)
            else:
                self._apply_key(op, f"{schema}:{key}", item, path_less=True)

    def _apply_ecma2host(self, op: str, name: str, value: Any) -> None:
        """Microsoft's ECMA2Host namespace: raw LDAP attribute names (ENTRA.md §4)."""
        target = ECMA2HOST_ALIASES.get(name.lower())
        if target is None:
            UNSTORED.note(f"{ECMA2HOST_USER}:{name}")
            return
        self._apply_key(op, target, value, path_less=True)

    def _apply_attr_path(self, op: str, node: AttrPath, value: Any) -> None:
        schema = CORE_USER if node.uri is None else _schema_named(node.uri)
        if schema is None:
            UNSTORED.note(f"{node.uri}:{node.attr}")
            return
        if schema == ECMA2HOST_USER:
            self._apply_ecma2host(op, node.attr, value)
            return
        name = node.attr
        if schema == CORE_USER and name.lower() in READ_ONLY:
            raise MutabilityException(detail=f"{name} is read-only")
        if schema == CORE_USER and name.lower() == "schemas":
            return
        slots = slots_of(name, schema)
        if not slots:
            self._unstored(schema, name, node.sub_attr)
            return
        multi = _multi_named(name) if schema == CORE_USER else None
        if multi is not None:
            self._apply_multi(op, multi, node.sub_attr, value)
            return
        sub = node.sub_attr
        if slots[0].sub is not None and slots[0].attr != "manager" and sub is None:
            self._apply_complex(op, slots, value)
            return
        if slots[0].attr == "manager":
            if sub is not None and sub.lower() != "value":
                self._unstored(schema, name, sub)
                return
            self._set(op, slots[0], value)
            return
        targets = [s for s in slots if (s.sub or "").lower() == (sub or "").lower()]
        if not targets:
            self._unstored(schema, name, sub)
            return
        self._set(op, targets[0], value)

    def _apply_complex(self, op: str, slots: Iterable[Slot], value: Any) -> None:
        """Single-valued complex (``name``); sub-attributes merge (RFC 7644 §3.5.2.3)."""
        by_sub = {(s.sub or "").lower(): s for s in slots}
        if op == "remove" or value is None:
            for slot in by_sub.values():
                self.state.pop(slot, None)
            return
        if not isinstance(value, dict):
            raise InvalidValueException(detail="a complex attribute needs an object value")
        for key, item in value.items():
            target = by_sub.get(str(key).lower())
            if target is not None:
                self._set(op, target, item)

    def _apply_multi(self, op: str, attr: str, sub: str | None, value: Any) -> None:
        """``emails``, ``phoneNumbers``, ``addresses`` addressed without a filter."""
        slots = slots_of(attr)
        if sub is not None:
            element = [
                s
                for s in slots
                if s.type == UNTYPED_DEFAULT and (s.sub or "").lower() == sub.lower()
            ]
            if element:
                self._set(op, element[0], value)
            return
        if op == "remove":
            for slot in slots:
                self.state.pop(slot, None)
            return
        items = value if isinstance(value, list) else [value]
        if op == "replace":
            for slot in slots:
                self.state.pop(slot, None)
        for item in items:
            if item is None:
                continue
            if not isinstance(item, dict):
                raise InvalidValueException(detail=f"each {attr} element must be an object")
            element_type = str(item.get("type") or UNTYPED_DEFAULT).lower()
            self._fill_element(op, attr, element_type, item)

    def _fill_element(self, op: str, attr: str, element_type: str, item: dict[str, Any]) -> None:
        by_sub = {(s.sub or "").lower(): s for s in slots_of(attr) if s.type == element_type}
        if not by_sub:
            UNSTORED.note(f'{attr}[type eq "{element_type}"]')
            return
        for key, sub_value in item.items():
            slot = by_sub.get(str(key).lower())
            if slot is not None:
                self._set(op, slot, sub_value)

    def _apply_value_path(self, op: str, node: ValuePath, value: Any) -> None:
        schema = _schema_named(node.attr_path.uri) if node.attr_path.uri else CORE_USER
        simple = [s for s in slots_of(node.attr_path.attr, schema or "") if s.kind == "strings"]
        if simple:
            self._apply_values_filter(op, simple[0], node, value)
            return
        attr = (
            _multi_named(node.attr_path.attr) if node.attr_path.uri in (None, CORE_USER) else None
        )
        if attr is None:
            if node.attr_path.attr.lower() in READ_ONLY:
                raise MutabilityException(detail=f"{node.attr_path.attr} is read-only")
            if slots_of(node.attr_path.attr, schema or ""):
                raise InvalidPathException(
                    detail=f"{node.attr_path.attr} is single-valued: a value filter needs a "
                    "multi-valued attribute"
                )
            UNSTORED.note(node.attr_path.attr)
            return
        types = sorted({s.type for s in slots_of(attr) if s.type})
        matches = [
            t
            for t in types
            if self._element_exists(attr, t)
            and _ElementMatcher(self._element(attr, t)).visit(node.val_filter)
        ]
        if not matches:
            if op == "remove":
                return
            wanted = _type_in(node.val_filter)
            if wanted is None:
                raise NoTargetException(detail=f"no {attr} element matches {node.val_filter}")
            if wanted not in types:
                UNSTORED.note(f'{attr}[type eq "{wanted}"]')
                return
            matches = [wanted]
        for element_type in matches:
            slots = [s for s in slots_of(attr) if s.type == element_type]
            if node.sub_attr is not None:
                target = [s for s in slots if (s.sub or "").lower() == node.sub_attr.lower()]
                if target:
                    self._set(op, target[0], value)
            elif op == "remove":
                for slot in slots:
                    self.state.pop(slot, None)
            elif isinstance(value, dict):
                self._fill_element(op, attr, element_type, value)
            elif value is not None:
                raise InvalidValueException(detail=f"{attr} element value must be an object")

    def _element_exists(self, attr: str, element_type: str) -> bool:
        return any(s.attr == attr and s.type == element_type for s in self.state)

    def _element(self, attr: str, element_type: str) -> dict[str, Any]:
        element: dict[str, Any] = {"type": element_type}
        for slot, slot_value in self.state.items():
            if slot.attr == attr and slot.type == element_type and slot.sub:
                element[slot.sub] = slot_value
        return element

    # ---- values

    def _set(self, op: str, slot: Slot, value: Any) -> None:
        if slot.kind == "strings":
            self._set_values(op, slot, value)
            return
        if op == "remove":
            if slot == USER_NAME:
                raise MutabilityException(detail="userName is required and cannot be removed")
            self.state.pop(slot, None)
            return
        coerced = coerce(slot, value)
        if coerced is None:
            if slot == USER_NAME:
                raise InvalidValueException(detail="userName is required and cannot be empty")
            self.state.pop(slot, None)
        else:
            self.state[slot] = coerced

    def _set_values(self, op: str, slot: Slot, value: Any) -> None:
        """A multi-valued string attribute: add appends, remove drops the values given."""
        current = tuple(self._values(slot))
        if op == "remove" and value is None:
            self.state.pop(slot, None)
            return
        given = coerce(slot, value)
        incoming = given if isinstance(given, tuple) else ()
        if op == "replace":
            result = incoming
        elif op == "add":
            result = unique_keys((*current, *incoming))
        else:
            gone = {identity(v) for v in incoming}
            result = tuple(v for v in current if identity(v) not in gone)
        if result:
            self.state[slot] = result
        else:
            self.state.pop(slot, None)

    def _values(self, slot: Slot) -> tuple[str, ...]:
        current = self.state.get(slot)
        return current if isinstance(current, tuple) else ()

    def _apply_values_filter(self, op: str, slot: Slot, node: ValuePath, value: Any) -> None:
        """``sshPublicKeys[value sw "ssh-rsa"]``: the values matching the filter."""
        current = self._values(slot)
        matching = [v for v in current if _ElementMatcher({"value": v}).visit(node.val_filter)]
        if op == "remove":
            kept = tuple(v for v in current if v not in matching)
        elif op == "replace" and matching:
            replacement = coerce(slot, value)
            added = replacement if isinstance(replacement, tuple) else ()
            kept = unique_keys((*(v for v in current if v not in matching), *added))
        else:
            self._set_values("add", slot, value)
            return
        if kept:
            self.state[slot] = kept
        else:
            self.state.pop(slot, None)

    @staticmethod
    def _unstored(schema: str, name: str, sub: str | None) -> None:
        full = f"{name}.{sub}" if sub else name
        UNSTORED.note(full if schema == CORE_USER else f"{schema}:{full}")


def parse_patch(body: Any) -> list[tuple[str, str | None, Any]]:
    """Validate a PatchOp message and return its operations as ``(op, path, value)``."""
    if not isinstance(body, dict):
        raise InvalidSyntaxException(detail="a PatchOp message must be a JSON object")
    schemas = body.get("schemas")
    if not isinstance(schemas, list) or PATCH_OP not in schemas:
        raise InvalidSyntaxException(detail=f"schemas must contain {PATCH_OP}")
    operations = body.get("Operations", body.get("operations"))
    if not isinstance(operations, list) or not operations:
        raise InvalidSyntaxException(detail="Operations must be a non-empty list")
    parsed = []
    for index, operation in enumerate(operations):
        if not isinstance(operation, dict):
            raise InvalidSyntaxException(detail=f"Operations[{index}] must be an object")
        op = str(operation.get("op", "")).lower()
        if op not in _OPS:
            raise InvalidSyntaxException(
                detail=f"Operations[{index}].op must be add, replace or remove"
            )
        path = operation.get("path")
        if path is not None and not isinstance(path, str):
            raise InvalidPathException(detail=f"Operations[{index}].path must be a string")
        if op != "remove" and "value" not in operation:
            raise InvalidValueException(detail=f"Operations[{index}] ({op}) needs a value")
        parsed.append((op, path, operation.get("value")))
    return parsed


def patched(state: State, body: Any) -> State:
    """The slots after applying a PatchOp message; nothing is applied if any op fails."""
    writer = UserWriter(state)
    for op, path, value in parse_patch(body):
        writer.apply(op, path, value)
    return writer.state


def loaded(body: Any) -> State:
    """The slots of a POST or PUT body."""
    if not isinstance(body, dict):
        raise InvalidSyntaxException(detail="a User must be a JSON object")
    schemas = body.get("schemas")
    if schemas is not None and (
        not isinstance(schemas, list) or not any(str(s) == CORE_USER for s in schemas)
    ):
        raise InvalidValueException(detail=f"schemas must contain {CORE_USER}")
    writer = UserWriter({})
    writer.load(body)
    if USER_NAME not in writer.state:
        raise InvalidValueException(detail="userName is required")
    return writer.state
