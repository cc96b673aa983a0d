"""Incoming values made canonical against the schemas: names, types and shapes.

A *document* is a User as JSON with every name spelt as its schema spells it:
core attributes at the top, each extension's under its URN. Values are
coerced to their attribute's type (Entra sends integers as strings and
booleans as ``"True"``, ENTRA.md §2); a value of the wrong type for a known
attribute is 400 ``invalidValue``, naming the attribute and never echoing a
password. Names no schema knows are accepted and not stored (app/scim/unstored.py).
``""`` and ``null`` clear a value.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from scim2_models import InvalidValueException

from app.schemas import POSIX_USER, Attribute
from app.scim.sshkeys import validate_keys
from app.scim.unstored import UNSTORED

Document = dict[str, Any]

MAX_STRING = 4096
_UNENCODABLE = re.compile("[\x00\ud800-\udfff]")
"""NUL, and lone surrogates (JSON ``"\\ud800"``), which have no UTF-8 encoding."""
_ASCII_INTEGER = re.compile(r"-?[0-9]{1,19}")
"""An integer written in ASCII digits: ``int()`` would also read Arabic-Indic ``١٢٣``."""
_DECIMAL = re.compile(r"-?[0-9]{1,30}(\.[0-9]{1,30})?([eE][-+]?[0-9]{1,3})?")
POSIX_INTEGERS = (0, 2**31)
"""uidNumber and gidNumber: what every Linux host reads as an id."""
_INTEGERS = (-(2**63), 2**63)


def empty(value: Any) -> bool:
    """Whether a value clears what it is written to."""
    return value is None or value in ("", [], {})


class Coercion:
    """Coerces values for the attributes of one schema URN."""

    def __init__(self, urn: str) -> None:
        self.urn = urn

    def value(self, attribute: Attribute, value: Any, where: str) -> Any:
        """The canonical value, or None to clear it."""
        if empty(value):
            return None
        if attribute.multi_valued:
            return self.many(attribute, value, where)
        return self.one(attribute, value, where)

    def many(self, attribute: Attribute, value: Any, where: str) -> list[Any] | None:
        items = value if isinstance(value, list) else [value]
        if self.is_ssh_keys(attribute):
            return list(validate_keys(items)) or None
        out = [self.one(attribute, item, where) for item in items if not empty(item)]
        kept = [item for item in out if item is not None]
        return kept or None

    def one(self, attribute: Attribute, value: Any, where: str) -> Any:
        if empty(value):
            return None
        if attribute.type == "complex":
            return self.complex(attribute, value, where)
        return self.simple(attribute, value, where)

    def complex(self, attribute: Attribute, value: Any, where: str) -> dict[str, Any] | None:
        if not isinstance(value, dict):
            if attribute.name == "manager" and isinstance(value, str):
                return {"value": value}
            raise InvalidValueException(
                detail=f"{where} is a complex attribute: its value must be an object"
            )
        out: dict[str, Any] = {}
        for key, item in value.items():
            sub = attribute.sub(str(key))
            if sub is None:
                UNSTORED.note(f"{where}.{key}")
                continue
            if sub.mutability == "readOnly":
                continue
            coerced = self.simple(sub, item, f"{where}.{sub.name}") if not empty(item) else None
            if coerced is not None:
                out[sub.name] = coerced
        return out or None

    def simple(self, attribute: Attribute, value: Any, where: str) -> Any:
        if empty(value):
            return None
        kind = attribute.type
        if attribute.mutability == "writeOnly":
            return self._secret(value, where)
        if kind == "boolean":
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.strip().lower() in ("true", "false"):
                return value.strip().lower() == "true"
            raise InvalidValueException(detail=f"{where} must be true or false, not {value!r}")
        if kind == "integer":
            return self._integer(value, where)
        if kind == "decimal":
            if isinstance(value, bool):
                raise InvalidValueException(detail=f"{where} must be a number, not {value!r}")
            if isinstance(value, int | float):
                return value
            if isinstance(value, str) and _DECIMAL.fullmatch(value.strip()):
                return float(value.strip())
            raise InvalidValueException(detail=f"{where} must be a number, not {value!r}")
        text = self._text(value, where)
        if kind == "dateTime":
            try:
                datetime.fromisoformat(text)
            except ValueError:
                raise InvalidValueException(
                    detail=f"{where} must be an xsd:dateTime such as 2026-12-01T09:30:00Z"
                ) from None
        return text

    def _integer(self, value: Any, where: str) -> int:
        if isinstance(value, bool):
            raise InvalidValueException(detail=f"{where} must be an integer, not {value!r}")
        if isinstance(value, int):
            number = value
        elif isinstance(value, str) and _ASCII_INTEGER.fullmatch(value.strip()):
            number = int(value.strip())
        else:
            raise InvalidValueException(detail=f"{where} must be an integer, not {value!r}")
        low, high = POSIX_INTEGERS if self.urn == POSIX_USER else _INTEGERS
        if not low <= number < high:
            raise InvalidValueException(detail=f"{where} must be between {low} and {high - 1}")
        return number

    @staticmethod
    def _text(value: Any, where: str) -> str:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise InvalidValueException(detail=f"{where} must be a string")
        text = str(value)
        if len(text) > MAX_STRING:
            raise InvalidValueException(detail=f"{where} is longer than {MAX_STRING} characters")
        if _UNENCODABLE.search(text):
            raise InvalidValueException(
                detail=f"{where} must not contain NUL characters or lone surrogates"
            )
        return text

    @staticmethod
    def _secret(value: Any, where: str) -> str:
        if not isinstance(value, str) or _UNENCODABLE.search(value) or len(value) > MAX_STRING:
            raise InvalidValueException(
                detail=f"{where} must be a string without NUL or lone surrogates"
            )
        return value

    def is_ssh_keys(self, attribute: Attribute) -> bool:
        return self.urn == POSIX_USER and attribute.name == "sshPublicKeys"
