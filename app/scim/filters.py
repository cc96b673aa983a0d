"""SCIM filter text (RFC 7644 §3.4.2.2) read into a filter tree, within bounds.

A filter is bounded in length and in number of comparisons before it is
parsed, so a megabyte of ``or`` terms costs a regular expression scan and a
400, not seconds of parsing, translating and evaluating.
"""

from __future__ import annotations

import re

from scim2_models import InvalidFilterException
from scim2_models.path import FilterNode, ScimFilter

_UNQUOTED = re.compile(r"^\s*([A-Za-z][\w.:-]*)\s+(eq|ne|co|sw|ew)\s+([^\s\"()\[\]]+)\s*$", re.I)
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)
_OPERATOR = re.compile(r"\b(?:eq|ne|co|sw|ew|gt|ge|lt|le|pr)\b", re.I)


def count_terms(text: str) -> int:
    """The number of comparisons and presence tests in a filter, outside string values."""
    return len(_OPERATOR.findall(_STRING.sub('""', text)))


def check_bounds(text: str, max_length: int, max_terms: int) -> None:
    """Refuse a filter longer than ``max_length`` characters or with more than ``max_terms``."""
    if len(text) > max_length:
        raise InvalidFilterException(
            detail=f"The filter is {len(text)} characters long; at most {max_length} are accepted"
        )
    terms = count_terms(text)
    if terms > max_terms:
        raise InvalidFilterException(
            detail=f"The filter has {terms} comparisons; at most {max_terms} are accepted"
        )


def parse_filter(text: str, max_length: int, max_terms: int) -> FilterNode:
    """Parse a filter within its bounds.

    Older Entra examples compare with an unquoted value (``userName eq alice``);
    a single comparison of that form is read as if the value were quoted.
    """
    check_bounds(text, max_length, max_terms)
    try:
        return ScimFilter(text).ast
    except InvalidFilterException:
        match = _UNQUOTED.match(text)
        if (
            match is None
            or match.group(3).lower() in ("true", "false", "null")
            or (match.group(3).lstrip("-").replace(".", "", 1).isdigit())
        ):
            raise
        attribute, op, value = match.groups()
        return ScimFilter(f"{attribute} {op} {ScimFilter.quote(value)}").ast
