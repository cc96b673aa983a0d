"""The project's schema in both forms OpenLDAP loads: cn=config LDIF and slapd.conf.

The LDIF files under ``app/ldap/schema`` are the source; the ``.schema`` files
beside them, for servers configured with slapd.conf(5) (``include``), are
derived from them by ``slapd_conf_schema`` and kept in step by the tests.
"""

from __future__ import annotations

from importlib import resources

SCHEMAS = ("scim-ldap", "openssh-lpk")
_KEYWORDS = {"olcattributetypes": "attributetype", "olcobjectclasses": "objectclass"}


def schema_text(name: str, suffix: str) -> str:
    """A shipped schema file: ``name`` of ``SCHEMAS``, ``suffix`` ``ldif`` or ``schema``."""
    return resources.files("app.ldap").joinpath("schema", f"{name}.{suffix}").read_text("utf-8")


def slapd_conf_schema(ldif: str) -> str:
    """The slapd.conf form of a cn=config schema LDIF: its comments and definitions.

    Continuation lines start with white space in both forms (slapd.conf(5)).
    """
    comments: list[str] = []
    definitions: list[tuple[str, list[str]]] = []
    for line in ldif.splitlines():
        if line.startswith("#"):
            if not definitions:
                comments.append(line)
        elif line.startswith(" ") and definitions:
            definitions[-1][1].append(line.strip())
        elif ":" in line:
            key, _, value = line.partition(":")
            keyword = _KEYWORDS.get(key.strip().lower())
            if keyword:
                definitions.append((keyword, [value.strip()]))
    header = [
        c.replace("ldapadd -Y EXTERNAL -H ldapi:/// -f", "include").replace(".ldif", ".schema")
        for c in comments
    ]
    body = ["\n  ".join([f"{keyword} {parts[0]}", *parts[1:]]) for keyword, parts in definitions]
    return "\n".join([*header, "", *body]) + "\n"
