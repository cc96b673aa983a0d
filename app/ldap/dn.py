"""Every DN the server builds, built here with escaped RDN values (RFC 4514)."""

from __future__ import annotations

import re

from ldap3.utils.dn import escape_rdn

_HEX = re.compile(r"\\([0-9A-Fa-f]{2})|\\(.)", re.S)


def escape_value(value: str) -> str:
    r"""An attribute value escaped for a DN (RFC 4514 §2.4).

    ldap3's ``escape_rdn`` leaves a NUL as a backslash before the raw byte,
    which directories refuse; RFC 4514 writes it ``\00``.
    """
    return str(escape_rdn(value)).replace("\\\x00", "\\00").replace("\x00", "\\00")


def child_dn(attribute: str, value: str, parent: str) -> str:
    """``<attribute>=<escaped value>,<parent>``."""
    return f"{attribute}={escape_value(value)},{parent}"


def rdn_of(attribute: str, value: str) -> str:
    """The escaped RDN ``<attribute>=<value>``, as a modrdn request takes it."""
    return f"{attribute}={escape_value(value)}"


def _split(text: str, separator: str) -> list[str]:
    """Split at every ``separator`` that is not escaped with a backslash."""
    parts, current, escaped = [], [], False
    for char in text:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            current.append(char)
            escaped = True
        elif char == separator:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def _unescape(value: str) -> bytes:
    out = bytearray()
    position = 0
    for match in _HEX.finditer(value):
        out += value[position : match.start()].encode("utf-8")
        out += bytes([int(match[1], 16)]) if match[1] else match[2].encode("utf-8")
        position = match.end()
    out += value[position:].encode("utf-8")
    return bytes(out)


def _normal(dn: str) -> list[tuple[tuple[str, str], ...]]:
    """Each RDN as sorted (attribute, value) pairs, case and escaping folded."""
    rdns = []
    for rdn in _split(dn, ","):
        pairs = []
        for ava in _split(rdn, "+"):
            attribute, _, value = ava.partition("=")
            text = _unescape(value.strip()).decode("utf-8", "replace")
            pairs.append((attribute.strip().lower(), text.lower()))
        rdns.append(tuple(sorted(pairs)))
    return rdns


def rdn_values(dn: str) -> list[tuple[str, str]]:
    """The attribute/value pairs of the first RDN, unescaped: what the entry itself must hold."""
    pairs = []
    for ava in _split(_split(dn, ",")[0], "+"):
        attribute, _, value = ava.partition("=")
        pairs.append((attribute.strip(), _unescape(value.lstrip()).decode("utf-8", "replace")))
    return pairs


def parent_of(dn: str) -> str:
    """The DN of the parent entry, keeping the original escaping of each RDN."""
    return ",".join(_split(dn, ",")[1:])


def same_dn(left: str, right: str) -> bool:
    """Compare two DNs ignoring case, escaping style and spaces around separators."""
    return _normal(left) == _normal(right)


def is_under(dn: str, ancestor: str) -> bool:
    """Whether ``dn`` is ``ancestor`` or below it."""
    inner, outer = _normal(dn), _normal(ancestor)
    return len(inner) >= len(outer) and inner[len(inner) - len(outer) :] == outer


def first_rdn(dn: str) -> str:
    """The RDN of ``dn`` as written, escapes included."""
    return _split(dn, ",")[0]


def dn_key(dn: str) -> tuple[tuple[tuple[str, str], ...], ...]:
    """A hashable form of ``dn``: two DNs ``same_dn`` finds equal have the same key."""
    return tuple(_normal(dn))
