"""Where each part of a User document is stored: its slots, and the unmapped rest.

``split`` takes a document apart into the slots the mapping stores in LDAP
attributes and one JSON object of everything else (the unmapped slot), so
that ``join`` gives back the document as it was written: every element of
``emails``, ``addresses`` and the others with its ``type``, ``primary`` and
``display``, in its order. Values in LDAP attributes win over the unmapped
rest, so a change made in the directory shows.

Microsoft's ECMA2Host namespace names LDAP attributes directly. A name the
mapping stores through another path (``mail``) is written there, and the
unmapped rest remembers that the client used the name (``{"mail": null}``)
so that the document answers it again from the directory; ``uid`` is the
login name, ``-dn-`` the entry's DN, ``userPassword`` the password, and
``objectClass`` must name the configured classes.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from typing import Any

from scim2_models import InvalidValueException

from app.attributes import (
    ACTIVE,
    ENTRY_DN,
    LOGIN,
    MANAGER,
    PASSWORD,
    UNMAPPED,
    USER_NAME,
    Catalog,
    Slot,
    SlotValue,
)
from app.schemas import CORE_USER, ECMA2HOST_USER, READ_ONLY
from app.scim.document import Document, empty
from app.scim.elements import DEFAULT_TYPE, default_element, hollow
from app.scim.unstored import UNSTORED

State = dict[Slot, SlotValue]

MAX_UNMAPPED = 64 * 1024
"""Largest unmapped rest kept for one user, in bytes of JSON."""


def _element_index(elements: list[Any], element_type: str) -> int | None:
    for index, element in enumerate(elements):
        if isinstance(element, dict) and str(element.get("type", "")).lower() == element_type:
            return index
    if element_type == DEFAULT_TYPE:
        return default_element(elements)
    return None


class Storage:
    """Splits documents into slots and joins them again, for one catalog."""

    def __init__(self, catalog: Catalog, object_classes: Iterable[str] = ()) -> None:
        self.catalog = catalog
        self.object_classes = {c.lower() for c in object_classes} | {"top"}

    # ---- document -> slots

    def split(self, document: Document, before: Document | None = None) -> State:
        """The slots of a document; what no slot holds goes into the unmapped one.

        ``before`` is the document a PATCH started from: an ECMA2Host name and
        the path the mapping stores it under hold one value, and the one the
        PATCH changed wins. Without it (POST, PUT) the ECMA2Host name wins.
        """
        rest = copy.deepcopy(document)
        state: State = {}
        aliases = self._ecma2host(rest, state, _ecma_section(before))
        for slot in self.catalog.by_slot:
            if slot == UNMAPPED:
                continue
            value = self._take(rest, slot)
            if value is not None and slot not in state:
                state[slot] = value
        password = rest.pop("password", None)
        if isinstance(password, str) and PASSWORD not in state:
            state[PASSWORD] = password
        if isinstance(rest.get("active"), bool):
            state[ACTIVE] = rest.pop("active")
        rest.pop("userName", None)
        for key in [*READ_ONLY, "schemas"]:
            rest.pop(key, None)
        if aliases:
            rest[ECMA2HOST_USER] = {**rest.get(ECMA2HOST_USER, {}), **dict.fromkeys(aliases)}
        self._trim_placeholders(rest, state)
        _prune(rest, hollow_elements=False)
        if rest and UNMAPPED not in self.catalog.by_slot:
            for name, value in rest.items():
                if isinstance(value, dict) and name.lower().startswith("urn:"):
                    for inner in value:
                        UNSTORED.note(f"{name}:{inner}")
                else:
                    UNSTORED.note(name)
        elif rest:
            text = json.dumps(rest, ensure_ascii=False, separators=(",", ":"))
            if len(text.encode()) > MAX_UNMAPPED:
                raise InvalidValueException(
                    detail=f"the attributes no directory attribute holds take more than "
                    f"{MAX_UNMAPPED} bytes"
                )
            state[UNMAPPED] = text
        if "userName" in document:
            state[USER_NAME] = str(document["userName"])
        return state

    def _trim_placeholders(self, doc: Document, state: State) -> None:
        """Drop trailing elements that hold only their type, where ``join`` appends them again.

        ``join`` appends the element of a mapped value missing from the document in
        the mapping's order, with the type spelt as the mapping spells it: a trailing
        run of such placeholders is dropped only as far as that gives the elements
        back as they were written. An element without type stays (as ``{}``): it
        is the one the work element's value goes back to.
        """
        for urn, container in [(CORE_USER, doc), *_extensions(doc)]:
            for key, value in container.items():
                if not isinstance(value, list):
                    continue
                ranks = self._join_order(urn, key, state)
                last = len(ranks)
                while value and isinstance(value[-1], dict) and set(value[-1]) == {"type"}:
                    element_type = str(value[-1]["type"])
                    rank = ranks.get(element_type)
                    if rank is not None:
                        if rank >= last:
                            break
                        last = rank
                    elif element_type.lower() in ranks:
                        break
                    value.pop()

    def _join_order(self, urn: str, attr: str, state: State) -> dict[str, int]:
        """The element types ``join`` appends to an attribute, by the order it appends them."""
        ranks: dict[str, int] = {}
        for slot in self.catalog.by_slot:
            if slot.type is not None and slot.schema == urn and slot.attr == attr and slot in state:
                ranks.setdefault(slot.type, len(ranks))
        return ranks

    def _ecma2host(self, rest: Document, state: State, before: dict[str, Any] | None) -> list[str]:
        """Take ECMA2Host's names with a meaning of their own; the aliases are returned."""
        section = rest.get(ECMA2HOST_USER)
        if not isinstance(section, dict):
            return []
        aliases = []
        for name in list(section):
            value = section[name]
            lowered = name.lower()
            aliased = lowered in ("uid", "-dn-") or self.catalog.slot_of_ldap(name) is not None
            if before is not None and aliased and before.get(name) == value:
                aliases.append(name)
                section.pop(name)
                continue
            if lowered == "uid":
                state[LOGIN] = _first(value)
                aliases.append(name)
            elif lowered == "-dn-":
                state[ENTRY_DN] = _first(value)
                aliases.append(name)
            elif lowered == "userpassword":
                state[PASSWORD] = _first(value)
            elif lowered == "objectclass":
                self._check_classes(value)
            else:
                slot = self.catalog.slot_of_ldap(name)
                if slot is None:
                    continue
                if slot.kind in ("strings",):
                    state[slot] = tuple(str(v) for v in _all(value))
                elif slot == MANAGER or slot.kind == "password":
                    continue
                else:
                    items = _all(value)
                    coerced = _scalar(slot, items[0]) if items else None
                    if coerced is not None:
                        state[slot] = coerced
                aliases.append(name)
            section.pop(name)
        return aliases

    def _check_classes(self, value: Any) -> None:
        names = [n for item in _all(value) for n in str(item).replace(",", " ").split()]
        foreign = [n for n in names if n.lower() not in self.object_classes]
        if foreign:
            raise InvalidValueException(
                detail=f"objectClass {', '.join(foreign)}: user entries get the configured "
                "users.object_classes only"
            )

    def _take(self, rest: Document, slot: Slot) -> SlotValue | None:
        """Remove the slot's value from the document and return it."""
        container = rest if slot.schema == CORE_USER else rest.get(slot.schema)
        if not isinstance(container, dict):
            return None
        if slot.type is not None:
            elements = container.get(slot.attr)
            if not isinstance(elements, list):
                return None
            index = _element_index(elements, slot.type)
            if index is None or not isinstance(elements[index], dict):
                return None
            value = elements[index].pop(str(slot.sub), None)
        elif slot.sub is not None:
            holder = container.get(slot.attr)
            if not isinstance(holder, dict):
                return None
            value = holder.pop(slot.sub, None)
            if slot == MANAGER:
                holder.pop("$ref", None)
                holder.pop("displayName", None)
        else:
            value = container.pop(slot.attr, None)
        if empty(value):
            return None
        if slot.kind == "strings":
            return tuple(str(v) for v in _all(value))
        return _scalar(slot, value)

    # ---- slots -> document

    def join(
        self, values: Mapping[Slot, SlotValue], *, login: str, dn: str, users_url: str
    ) -> Document:
        """The document of a user: the unmapped rest with the slots' values put back."""
        doc: Document = {}
        text = values.get(UNMAPPED)
        if isinstance(text, str):
            try:
                loaded = json.loads(text)
            except ValueError:
                loaded = {}
            if isinstance(loaded, dict):
                doc = loaded
        if USER_NAME in values:
            doc["userName"] = values[USER_NAME]
        if ACTIVE in values:
            doc["active"] = bool(values[ACTIVE])
        for slot, value in values.items():
            if slot in (USER_NAME, ACTIVE, UNMAPPED, PASSWORD, LOGIN, ENTRY_DN):
                continue
            self._put(doc, slot, value, users_url)
        self._answer_aliases(doc, values, login, dn)
        _prune(doc, hollow_elements=True)
        return doc

    def _put(self, doc: Document, slot: Slot, value: SlotValue, users_url: str) -> None:
        container = doc if slot.schema == CORE_USER else doc.setdefault(slot.schema, {})
        if slot == MANAGER:
            manager = container.setdefault("manager", {})
            manager.update({"value": value, "$ref": f"{users_url}/{value}"})
            return
        rendered: Any = list(value) if isinstance(value, tuple) else value
        if slot.type is not None:
            elements: list[Any] = container.setdefault(slot.attr, [])
            index = _element_index(elements, slot.type)
            if index is None:
                elements.append({"type": slot.type})
                index = len(elements) - 1
            elements[index][str(slot.sub)] = rendered
            return
        if slot.sub is not None:
            container.setdefault(slot.attr, {})[slot.sub] = rendered
            return
        container[slot.attr] = rendered

    def _answer_aliases(
        self, doc: Document, values: Mapping[Slot, SlotValue], login: str, dn: str
    ) -> None:
        section = doc.get(ECMA2HOST_USER)
        if not isinstance(section, dict):
            return
        ecma = self.catalog.schemas.named(ECMA2HOST_USER)
        for name in [n for n, v in section.items() if v is None]:
            lowered = name.lower()
            value: Any
            if lowered == "uid":
                value = login
            elif lowered == "-dn-":
                value = dn
            else:
                slot = self.catalog.slot_of_ldap(name)
                value = values.get(slot) if slot is not None else None
            if value is None or value == "":
                section.pop(name)
                continue
            value = list(value) if isinstance(value, tuple) else value
            definition = ecma.attribute(name) if ecma else None
            if definition is not None and definition.multi_valued and not isinstance(value, list):
                value = [value]
            section[name] = value


def _ecma_section(document: Document | None) -> dict[str, Any] | None:
    if document is None:
        return None
    section = document.get(ECMA2HOST_USER)
    return section if isinstance(section, dict) else {}


def _all(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _first(value: Any) -> str:
    items = _all(value)
    return str(items[0]) if items else ""


def _scalar(slot: Slot, value: Any) -> SlotValue | None:
    if slot.kind == "integer" and isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    if slot.kind == "string" and isinstance(value, bool | int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return str(value)
    if isinstance(value, list) and value:
        return _scalar(slot, value[0])
    return None


def _prune(doc: Document, *, hollow_elements: bool) -> None:
    """Drop what writing left empty: empty objects and extensions, and with
    ``hollow_elements`` the elements left empty or with only a type and primary flag
    (a stored document keeps those, as the place its mapped value goes back to)."""
    for key in list(doc):
        value = doc[key]
        if isinstance(value, dict):
            _prune(value, hollow_elements=hollow_elements)
            if not value:
                doc.pop(key)
        elif isinstance(value, list):
            kept = [
                e
                for e in value
                if not (isinstance(e, dict) and hollow_elements and (not e or hollow(e)))
            ]
            if kept:
                doc[key] = kept
            else:
                doc.pop(key)


def _extensions(doc: Document) -> list[tuple[str, dict[str, Any]]]:
    return [(k, v) for k, v in doc.items() if k.startswith("urn:") and isinstance(v, dict)]
