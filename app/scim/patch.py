"""Applying SCIM writes to a User document: PATCH (RFC 7644 §3.5.2) in both Entra dialects.

POST and PUT bodies go through the same code as a path-less ``add``, so a
value means the same thing whichever way it arrives. What Entra needs beyond
the RFC (ENTRA.md §2):

- ``op`` is case-insensitive; booleans may be strings;
- in a path-less ``add``/``replace`` the keys of ``value`` may be paths
  (``name.givenName``, ``urn:...:User:employeeNumber``);
- a filtered path with no matching element (``emails[type eq "work"].value``)
  creates the element with that ``type``; an element added with the ``type``
  of an existing one merges into it (types are unique per attribute);
- ``add`` on a single-valued attribute replaces it;
- ``""`` and ``null`` clear an attribute.

``primary`` is true for at most one element of an attribute (RFC 7643 §2.4):
the element last written with it wins.
"""

from __future__ import annotations

import copy
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
    FilterNode,
    Path,
    ValuePath,
)

from app.schemas import CORE_USER, ECMA2HOST_USER, READ_ONLY, Attribute, UserSchemas, split_urn
from app.scim.document import Coercion, Document, empty
from app.scim.elements import (
    DEFAULT_TYPE,
    ElementMatcher,
    covers,
    default_element,
    hollow,
    one_primary,
    pinned,
    same_type,
)
from app.scim.sshkeys import identity, unique_keys
from app.scim.unstored import UNSTORED

PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
_OPS = ("add", "replace", "remove")
MAX_PATH_LENGTH = 1000
"""Longest attribute path, filter included: Entra's longest, ``members[value eq "<id>"]``, is
under 80, and parsing cost grows with length."""
UNANNOUNCED = {
    "uid": "uid",
    "objectclass": "objectClass",
    "-dn-": "-dn-",
    "userpassword": "userPassword",
}
"""ECMA2Host names with a meaning of their own (ENTRA.md §4): the login name, the entry's
classes, its DN and an initial password. Accepted as Microsoft's connector sends them; not
announced in /Schemas, as they are no plain attributes (and ``-dn-`` is no name RFC 7643 §2.1
allows). Entra does not read /Schemas: its attribute list is the administrator's."""


class DocumentWriter:
    """Applies operations to a copy of a User document."""

    def __init__(self, schemas: UserSchemas, document: Document) -> None:
        self.schemas = schemas
        self.doc: Document = copy.deepcopy(document)

    # ---- entry points

    def apply(self, op: str, path: str | None, value: Any) -> None:
        """Apply one PATCH operation (``op`` already lower-cased)."""
        if path is None or path == "":
            if op == "remove":
                raise NoTargetException(detail="remove needs a path")
            if not isinstance(value, dict):
                raise InvalidValueException(detail=f"{op} without a path needs an object value")
            for key, item in value.items():
                self._key(op, str(key), item, path_less=True)
            return
        self._key(op, path, value, path_less=False)

    def load(self, body: dict[str, Any]) -> None:
        """Fill the document from a POST or PUT body; read-only attributes are ignored."""
        for key, item in body.items():
            if key.lower() in ("schemas", *READ_ONLY):
                continue
            self._key("add", key, item, path_less=True)

    # ---- paths

    def _key(self, op: str, key: str, value: Any, *, path_less: bool) -> None:
        if len(key) > MAX_PATH_LENGTH:
            raise InvalidPathException(
                detail=f"an attribute path of {len(key)} characters; at most {MAX_PATH_LENGTH} "
                "are accepted"
            )
        urn, rest = split_urn(key)
        if urn is not None:
            schema = self.schemas.named(urn)
            if schema is None:
                UNSTORED.note(key)
                return
            if not rest:
                self._whole_schema(op, schema.urn, value)
                return
            if schema.urn == ECMA2HOST_USER:
                self._raw(op, rest, value, path_less=path_less)
                return
        if path_less and key.lower() == "schemas":
            return
        try:
            node = Path(key).ast
        except InvalidPathException:
            if path_less:
                UNSTORED.note(key)
                return
            raise InvalidPathException(detail=f"{key!r} is not a valid attribute path") from None
        if isinstance(node, ValuePath):
            self._target(
                op, node.attr_path.uri, node.attr_path.attr, node.sub_attr, value, node.val_filter
            )
        elif isinstance(node, AttrPath):
            self._target(op, node.uri, node.attr, node.sub_attr, value, None)
        else:
            raise InvalidPathException(detail=f"{key!r} is not an attribute path")

    def _whole_schema(self, op: str, urn: str, value: Any) -> None:
        """A whole schema as the path or key; ``schemas`` inside it is skipped."""
        if op == "remove":
            if urn == CORE_USER:
                raise MutabilityException(detail="userName is required and cannot be removed")
            self.doc.pop(urn, None)
            return
        if value is None:
            return
        if not isinstance(value, dict):
            raise InvalidValueException(detail=f"{urn} must be an object")
        for key, item in value.items():
            if str(key).lower() == "schemas":
                continue
            if urn == ECMA2HOST_USER:
                self._raw(op, str(key), item, path_less=True)
            else:
                self._key(op, f"{urn}:{key}", item, path_less=True)

    def _raw(self, op: str, name: str, value: Any, *, path_less: bool) -> None:
        """ECMA2Host: raw LDAP names (``-dn-`` too), one level, no filters (ENTRA.md §4)."""
        if name.lower() in UNANNOUNCED:
            self._unannounced(op, UNANNOUNCED[name.lower()], value)
            return
        attr_name, _, sub = name.partition(".")
        if sub or "[" in attr_name:
            if path_less:
                UNSTORED.note(f"{ECMA2HOST_USER}:{name}")
                return
            raise InvalidPathException(detail=f"{name!r}: ECMA2Host attributes have no parts")
        self._target(op, ECMA2HOST_USER, attr_name, None, value, None)

    def _unannounced(self, op: str, name: str, value: Any) -> None:
        section = self.doc.setdefault(ECMA2HOST_USER, {})
        items = value if isinstance(value, list) else [value]
        if op == "remove" or empty(value):
            section.pop(name, None)
        elif all(isinstance(i, str) and i and len(i) <= MAX_PATH_LENGTH for i in items):
            section[name] = value
        else:
            raise InvalidValueException(detail=f"{ECMA2HOST_USER}:{name} must be a string")
        if not section:
            self.doc.pop(ECMA2HOST_USER)

    def _target(
        self,
        op: str,
        uri: str | None,
        name: str,
        sub_name: str | None,
        value: Any,
        value_filter: FilterNode | None,
    ) -> None:
        urn = CORE_USER if uri is None else uri
        if urn.lower() == CORE_USER.lower() and name.lower() in READ_ONLY:
            raise MutabilityException(detail=f"{name} is read-only")
        if urn.lower() == CORE_USER.lower() and name.lower() == "schemas":
            return
        found = self.schemas.resolve(None if urn.lower() == CORE_USER.lower() else urn, name)
        if found is None:
            full = f"{name}.{sub_name}" if sub_name else name
            UNSTORED.note(full if urn.lower() == CORE_USER.lower() else f"{urn}:{full}")
            return
        schema, attribute = found
        if attribute.mutability == "readOnly":
            raise MutabilityException(detail=f"{attribute.name} is read-only")
        container = self.doc if schema.urn == CORE_USER else self.doc.setdefault(schema.urn, {})
        where = attribute.name if schema.urn == CORE_USER else f"{schema.urn}:{attribute.name}"
        coercion = Coercion(schema.urn)
        sub: Attribute | None = None
        if sub_name is not None:
            sub = attribute.sub(sub_name)
            if sub is None:
                UNSTORED.note(f"{where}.{sub_name}")
                return
            if sub.mutability == "readOnly":
                raise MutabilityException(detail=f"{where}.{sub.name} is read-only")
        if value_filter is not None:
            if not attribute.multi_valued:
                raise InvalidPathException(
                    detail=f"{attribute.name} is single-valued: a value filter needs a "
                    "multi-valued attribute"
                )
            self._filtered(op, container, attribute, sub, value, value_filter, coercion, where)
        elif sub is not None:
            self._sub(op, container, attribute, sub, value, coercion, where)
        else:
            self._whole(op, container, attribute, value, coercion, where)
        if schema.urn != CORE_USER and not self.doc.get(schema.urn):
            self.doc.pop(schema.urn, None)

    # ---- operations on one attribute

    def _whole(
        self,
        op: str,
        container: dict[str, Any],
        attribute: Attribute,
        value: Any,
        coercion: Coercion,
        where: str,
    ) -> None:
        name = attribute.name
        if op == "remove" and (value is None or not attribute.multi_valued):
            self._clear(container, attribute)
            return
        if not attribute.multi_valued:
            coerced = coercion.value(attribute, value, where)
            if coerced is None and attribute.required:
                raise InvalidValueException(
                    detail=f"{attribute.name} is required and cannot be empty"
                )
            if coerced is None:
                self._clear(container, attribute)
            elif (attribute.type == "complex" and op == "add") or attribute.type == "complex":
                merged = {**(container.get(name) or {}), **coerced}
                container[name] = merged
            else:
                container[name] = coerced
            return
        incoming = coercion.value(attribute, value, where) or []
        current = list(container.get(name) or [])
        written = incoming
        if op == "remove":
            result = self._without(attribute, coercion, current, incoming)
        elif op == "replace":
            result = incoming
            self._dedupe(attribute, coercion, result)
        else:
            result, written = self._added(attribute, coercion, current, incoming)
        self._store(container, attribute, result, touched=written)

    def _sub(
        self,
        op: str,
        container: dict[str, Any],
        attribute: Attribute,
        sub: Attribute,
        value: Any,
        coercion: Coercion,
        where: str,
    ) -> None:
        """``name.givenName``, or ``emails.value``: the work (or first untyped) element."""
        coerced = None if op == "remove" else coercion.simple(sub, value, f"{where}.{sub.name}")
        if not attribute.multi_valued:
            element = dict(container.get(attribute.name) or {})
            if coerced is None:
                element.pop(sub.name, None)
            else:
                element[sub.name] = coerced
            if element:
                container[attribute.name] = element
            else:
                container.pop(attribute.name, None)
            return
        elements = list(container.get(attribute.name) or [])
        index = default_element(elements)
        if index is None:
            if coerced is None:
                return
            elements.append({"type": DEFAULT_TYPE})
            index = len(elements) - 1
        element = dict(elements[index])
        if coerced is None:
            element.pop(sub.name, None)
        else:
            element[sub.name] = coerced
        elements[index] = element
        self._store(container, attribute, elements, touched=[element])

    def _filtered(
        self,
        op: str,
        container: dict[str, Any],
        attribute: Attribute,
        sub: Attribute | None,
        value: Any,
        value_filter: FilterNode,
        coercion: Coercion,
        where: str,
    ) -> None:
        elements = list(container.get(attribute.name) or [])
        matching = [i for i, e in enumerate(elements) if ElementMatcher(e).visit(value_filter)]
        if attribute.type != "complex":
            self._filtered_values(
                op, container, attribute, elements, matching, value, coercion, where
            )
            return
        if not matching:
            if op == "remove":
                return
            fixed = pinned(value_filter)
            if op == "replace" and "type" not in {k.lower() for k in fixed}:
                fixed = {}
            if not fixed:
                raise NoTargetException(detail=f"no {attribute.name} element matches the filter")
            element: dict[str, Any] = {}
            for name, pinned_value in fixed.items():
                pinned_sub = attribute.sub(name)
                if pinned_sub is None:
                    raise NoTargetException(detail=f"{attribute.name} has no sub-attribute {name}")
                element[pinned_sub.name] = coercion.simple(pinned_sub, pinned_value, where)
            elements.append(element)
            matching = [len(elements) - 1]
        touched = []
        for index in matching:
            element = dict(elements[index])
            if sub is not None:
                coerced = (
                    None if op == "remove" else coercion.simple(sub, value, f"{where}.{sub.name}")
                )
                if coerced is None:
                    element.pop(sub.name, None)
                else:
                    element[sub.name] = coerced
            elif op == "remove":
                element = {}
            else:
                given = coercion.complex(attribute, value, where) if not empty(value) else None
                if given is None and op == "replace":
                    element = {}
                elif given is not None:
                    element = {**element, **given}
            elements[index] = element
            touched.append(element)
        kept = [e for e in elements if e and not (hollow(e) and sub is not None)]
        self._store(container, attribute, kept, touched=touched)

    def _filtered_values(
        self,
        op: str,
        container: dict[str, Any],
        attribute: Attribute,
        values: list[Any],
        matching: list[int],
        value: Any,
        coercion: Coercion,
        where: str,
    ) -> None:
        """``sshPublicKeys[value sw "ssh-rsa"]``: the values matching the filter."""
        kept = [v for i, v in enumerate(values) if i not in matching]
        if op == "remove":
            self._store(container, attribute, kept, touched=[])
            return
        incoming = coercion.value(attribute, value, where) or []
        if op == "replace" and matching:
            result, written = self._added(attribute, coercion, kept, incoming)
        else:
            result, written = self._added(attribute, coercion, values, incoming)
        self._store(container, attribute, result, touched=written)

    # ---- multi-valued helpers

    def _added(
        self, attribute: Attribute, coercion: Coercion, current: list[Any], incoming: list[Any]
    ) -> tuple[list[Any], list[Any]]:
        """``add`` to a multi-valued attribute: new values appended, typed elements merged.

        Returns the values and the elements written (appended or merged into).
        """
        if coercion.is_ssh_keys(attribute):
            return list(unique_keys((*current, *incoming))), list(incoming)
        result = list(current)
        written: list[Any] = []
        for item in incoming:
            if isinstance(item, dict) and "type" in item:
                index = next(
                    (i for i, e in enumerate(result) if same_type(e, str(item["type"]))), None
                )
                if index is not None:
                    result[index] = {**result[index], **item}
                    written.append(result[index])
                    continue
            if item not in result:
                result.append(item)
                written.append(item)
        return result, written

    def _dedupe(self, attribute: Attribute, coercion: Coercion, values: list[Any]) -> None:
        if coercion.is_ssh_keys(attribute):
            values[:] = list(unique_keys(values))
            return
        unique: list[Any] = []
        for item in values:
            if item not in unique:
                unique.append(item)
        values[:] = unique

    def _without(
        self, attribute: Attribute, coercion: Coercion, current: list[Any], gone: list[Any]
    ) -> list[Any]:
        """``remove`` with a value: only the values given go (the legacy dialect)."""
        if coercion.is_ssh_keys(attribute):
            keys = {identity(v) for v in gone}
            return [v for v in current if identity(v) not in keys]
        if attribute.type != "complex":
            return [v for v in current if v not in gone]
        result = []
        for element in current:
            if any(covers(element, item) for item in gone):
                continue
            result.append(element)
        return result

    def _store(
        self,
        container: dict[str, Any],
        attribute: Attribute,
        values: list[Any],
        *,
        touched: list[Any],
    ) -> None:
        if attribute.type == "complex":
            one_primary(values, touched)
        if values:
            container[attribute.name] = values
        else:
            container.pop(attribute.name, None)

    def _clear(self, container: dict[str, Any], attribute: Attribute) -> None:
        if attribute.required:
            raise MutabilityException(detail=f"{attribute.name} is required and cannot be removed")
        container.pop(attribute.name, None)


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


def patched(schemas: UserSchemas, document: Document, body: Any) -> Document:
    """The document after applying a PatchOp message; nothing is applied if any op fails."""
    writer = DocumentWriter(schemas, document)
    for op, path, value in parse_patch(body):
        writer.apply(op, path, value)
    return writer.doc


def loaded(schemas: UserSchemas, body: Any) -> Document:
    """The document of a POST or PUT body."""
    if not isinstance(body, dict):
        raise InvalidSyntaxException(detail="a User must be a JSON object")
    declared = body.get("schemas")
    if declared is not None and (
        not isinstance(declared, list) or not any(str(s) == CORE_USER for s in declared)
    ):
        raise InvalidValueException(detail=f"schemas must contain {CORE_USER}")
    writer = DocumentWriter(schemas, {})
    writer.load(body)
    if empty(writer.doc.get("userName")):
        raise InvalidValueException(detail="userName is required")
    return writer.doc
