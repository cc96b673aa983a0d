"""Every DN the server builds, built here with escaped RDN values (RFC 4514)."""

from __future__ import annotations

from ldap3.utils.dn import escape_rdn, parse_dn


def child_dn(attribute: str, value: str, parent: str) -> str:
    """``<attribute>=<escaped value>,<parent>``."""
    return f"{attribute}={escape_rdn(value)},{parent}"


def rdn_of(attribute: str, value: str) -> str:
    """The escaped RDN ``<attribute>=<value>``, as a modrdn request takes it."""
    return f"{attribute}={escape_rdn(value)}"


def parent_of(dn: str) -> str:
    """The DN of the parent entry, keeping the original escaping of each RDN."""
    parts = parse_dn(dn, escape=False, strip=False)
    return ",".join(f"{attr}={value}" for attr, value, _sep in parts[1:])


def _normal(dn: str) -> list[tuple[str, str]]:
    return [(a.lower(), v.lower()) for a, v, _s in parse_dn(dn, escape=False, strip=True)]


def same_dn(left: str, right: str) -> bool:
    """Compare two DNs ignoring case and spaces around separators."""
    return _normal(left) == _normal(right)


def is_under(dn: str, ancestor: str) -> bool:
    """Whether ``dn`` is ``ancestor`` or below it."""
    inner, outer = _normal(dn), _normal(ancestor)
    return len(inner) >= len(outer) and inner[len(inner) - len(outer) :] == outer
