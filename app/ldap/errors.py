"""LDAP result codes turned into SCIM errors, in one place.

The tree of errors the directory layer raises (all ``SCIMException``)::

    SCIMException
    ├── NotFoundException            32 noSuchObject
    ├── UniquenessException          68 entryAlreadyExists, 20 attributeOrValueExists
    │   └── ValueNotUnique           19 from the unique overlay (slapo-unique)
    ├── PreconditionFailedException  122 assertionFailed (If-Match, RFC 4528)
    ├── ConflictException (409)      66 notAllowedOnNonLeaf (entries made below it by hand)
    ├── InvalidValueException        schema violations (17, 18, 19, 21, 34, 64, 65, 67, 69)
    ├── DirectoryUnavailable (503)   server down, busy, unavailable, timeouts
    └── DirectoryFailure (500)       anything else; the detail never carries internals
"""

from __future__ import annotations

import logging
from typing import Any

from scim2_models import (
    ConflictException,
    InvalidValueException,
    NotFoundException,
    PreconditionFailedException,
    SCIMException,
    UniquenessException,
)

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 30


class DirectoryUnavailable(SCIMException):
    """The directory cannot be reached (HTTP 503, with ``Retry-After``)."""

    status = 503
    _default_detail = "The directory is unavailable; retry later"


class ValueNotUnique(UniquenessException):
    """The ``unique`` overlay refused a value another entry holds (constraintViolation)."""


class DirectoryFailure(SCIMException):
    """The directory refused an operation for a reason the client cannot fix."""

    status = 500
    _default_detail = "The directory refused the operation"


_UNAVAILABLE = {3, 11, 51, 52, 80, 81, 85, 91}
_SCHEMA = {17, 18, 19, 21, 34, 64, 65, 67, 69}


def raise_for_result(result: dict[str, Any], action: str) -> None:
    """Raise the SCIM error matching an LDAP result, if it is not a success.

    ``action`` completes the detail, e.g. ``"create user alice"``. The LDAP
    diagnostic message is included only for schema violations, where it names
    the offending attribute and is what an administrator needs.
    """
    code = int(result.get("result", 0))
    if code == 0:
        return
    message = str(result.get("message") or result.get("description") or "").strip()
    if code == 32:
        raise NotFoundException(detail=f"Cannot {action}: no such entry")
    if code in (68, 20):
        raise UniquenessException(detail=f"Cannot {action}: the entry already exists")
    if code == 19 and "unique" in message.lower():
        raise ValueNotUnique(
            detail=f"Cannot {action}: another entry already holds a value the directory keeps "
            "unique"
        )
    if code == 122:
        raise PreconditionFailedException(
            detail=f"Cannot {action}: the resource changed since the version given in If-Match"
        )
    if code == 66:
        raise ConflictException(
            detail=f"Cannot {action}: the directory holds entries below it that this server "
            "did not make; move or delete them first"
        )
    if code in _SCHEMA:
        detail = f"Cannot {action}: the directory rejected the value"
        raise InvalidValueException(detail=f"{detail} ({message})" if message else detail)
    if code in _UNAVAILABLE:
        log.warning("directory unavailable during %s: code %s %s", action, code, message)
        raise DirectoryUnavailable()
    log.error("directory refused %s: code %s %s", action, code, message)
    raise DirectoryFailure(detail=f"Cannot {action}: the directory refused it (LDAP code {code})")
