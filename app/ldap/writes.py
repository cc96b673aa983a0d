"""Writes for which some LDAP failures are answers rather than errors.

Compare-and-swap and idempotent membership changes learn what happened from
the result code: ``noSuchAttribute`` means another writer moved a counter
first, ``attributeOrValueExists`` that a member is already there. These
helpers return the code when it is one the caller expects and raise the usual
SCIM error (``raise_for_result``) for any other failure.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from app.ldap.connection import Control, Session

SUCCESS = 0
NO_SUCH_ATTRIBUTE = 16
CONSTRAINT_VIOLATION = 19
ATTRIBUTE_OR_VALUE_EXISTS = 20
NO_SUCH_OBJECT = 32
ENTRY_ALREADY_EXISTS = 68
ASSERTION_FAILED = 122


def add(
    session: Session,
    dn: str,
    attributes: dict[str, Any],
    *,
    tolerate: Collection[int] = (),
    action: str,
) -> int:
    """Add an entry; the result code (0 or one of ``tolerate``)."""
    return int(session.add(dn, attributes, tolerate=tolerate, action=action)["result"])


def modify(
    session: Session,
    dn: str,
    changes: dict[str, Any],
    *,
    tolerate: Collection[int] = (),
    controls: Sequence[Control] | None = None,
    action: str,
) -> int:
    """Modify an entry; the result code (0 or one of ``tolerate``)."""
    result = session.modify(dn, changes, controls=controls, tolerate=tolerate, action=action)
    return int(result["result"])


def rename(
    session: Session,
    dn: str,
    new_rdn: str,
    *,
    tolerate: Collection[int] = (),
    controls: Sequence[Control] | None = None,
    action: str,
) -> int:
    """Rename an entry in place (the old RDN value is removed); the result code."""
    result = session.rename(dn, new_rdn, controls=controls, tolerate=tolerate, action=action)
    return int(result["result"])


def delete(
    session: Session,
    dn: str,
    *,
    tolerate: Collection[int] = (),
    controls: Sequence[Control] | None = None,
    action: str,
) -> int:
    """Delete an entry; the result code (0 or one of ``tolerate``)."""
    return int(session.delete(dn, controls=controls, tolerate=tolerate, action=action)["result"])
