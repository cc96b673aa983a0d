"""The Linux login name (``uid``) derived from a SCIM userName."""

from __future__ import annotations

import re

from scim2_models import InvalidValueException

POSIX_NAME = re.compile(r"^[a-z_][a-z0-9_-]*\$?$")
MAX_LENGTH = 32


def is_posix_name(name: str) -> bool:
    """Whether ``name`` is a portable login name (``useradd``'s default rule)."""
    return len(name) <= MAX_LENGTH and POSIX_NAME.match(name) is not None


def login_for(user_name: str) -> str:
    """The userName itself when it is a valid POSIX name, else the lower-cased part before ``@``.

    Raises 400 ``invalidValue`` naming the userName when neither is a valid name.
    """
    if is_posix_name(user_name):
        return user_name
    local = user_name.split("@", 1)[0].lower()
    if is_posix_name(local):
        return local
    raise InvalidValueException(
        detail=f"userName {user_name!r} does not yield a valid Linux login name: the part "
        f"before '@' must match [a-z_][a-z0-9_-]*[$]? and be at most {MAX_LENGTH} characters"
    )
