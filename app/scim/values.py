"""Coercion of incoming JSON values to the type of the slot they fill.

Error details name the attribute and never echo a password.

Entra sends integers as numbers or strings and booleans as ``true`` or
``"True"``/``"False"`` (ENTRA.md §2); the enterprise ``manager`` arrives as
``{"value": "<id>"}`` (sub-attribute names in any case, RFC 7643 §2.1) or as a
bare id. ``""`` and ``null`` clear a value.
"""

from __future__ import annotations

import re
from typing import Any

from scim2_models import InvalidValueException

from app.attributes import Slot, SlotValue
from app.scim.sshkeys import validate_keys

MAX_STRING = 4096
_UNENCODABLE = re.compile("[\x00\ud800-\udfff]")
"""NUL, and lone surrogates (JSON ``"\\ud800"``), which have no UTF-8 encoding."""
_ASCII_INTEGER = re.compile(r"-?[0-9]{1,19}")
"""An integer written in ASCII digits: ``int()`` would also read Arabic-Indic ``١٢٣``."""


def coerce(slot: Slot, value: Any) -> SlotValue | None:
    """The value to store in ``slot``, or None to clear it."""
    if value is None or value in ("", []):
        return None
    if slot.kind == "strings":
        return validate_keys(value)
    if slot.kind == "password":
        if not isinstance(value, str) or _UNENCODABLE.search(value) or len(value) > MAX_STRING:
            raise InvalidValueException(
                detail="password must be a string without NUL or lone surrogates"
            )
        return value
    if slot.kind == "reference":
        if isinstance(value, dict):
            by_name = {str(k).lower(): v for k, v in value.items()}
            return coerce(slot, by_name.get("value"))
        if isinstance(value, str):
            return value
        raise InvalidValueException(detail=f'{slot.path} must be an id or {{"value": id}}')
    if slot.kind == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        raise InvalidValueException(detail=f"{slot.path} must be true or false, not {value!r}")
    if slot.kind == "integer":
        if isinstance(value, bool):
            raise InvalidValueException(detail=f"{slot.path} must be an integer, not {value!r}")
        if isinstance(value, int):
            number = value
        elif isinstance(value, str) and _ASCII_INTEGER.fullmatch(value.strip()):
            number = int(value.strip())
        else:
            raise InvalidValueException(detail=f"{slot.path} must be an integer, not {value!r}")
        if not 0 <= number < 2**31:
            raise InvalidValueException(detail=f"{slot.path} must be between 0 and 2147483647")
        return number
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise InvalidValueException(detail=f"{slot.path} must be a string")
    text = str(value)
    if len(text) > MAX_STRING:
        raise InvalidValueException(detail=f"{slot.path} is longer than {MAX_STRING} characters")
    if _UNENCODABLE.search(text):
        raise InvalidValueException(
            detail=f"{slot.path} must not contain NUL characters or lone surrogates"
        )
    return text
