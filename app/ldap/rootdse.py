"""What a directory announces in its root DSE (RFC 4512 §5.1), read anonymously."""

from __future__ import annotations

from ldap3 import BASE, Connection, Server
from ldap3.core.exceptions import LDAPException

START_TLS = "1.3.6.1.4.1.1466.20037"
"""The StartTLS extended operation (RFC 4511 §4.14)."""


def offers_start_tls(url: str, timeout: float = 3.0) -> bool | None:
    """Whether the directory at ``url`` announces StartTLS; None when it cannot be asked."""
    try:
        conn = Connection(
            Server(url, connect_timeout=timeout), auto_bind=True, receive_timeout=int(timeout)
        )
    except LDAPException:
        return None
    try:
        if not conn.search("", "(objectClass=*)", BASE, attributes=["supportedExtension"]):
            return None
        values = conn.entries[0].entry_attributes_as_dict.get("supportedExtension", [])
        return START_TLS in {str(v) for v in values}
    except LDAPException:
        return None
    finally:
        conn.unbind()
