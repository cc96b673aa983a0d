"""The Linux login name (``uid``) derived from a SCIM userName."""

from __future__ import annotations

import re

from scim2_models import InvalidValueException


class LoginRule:
    """The userName itself when it is a valid login name, else the lower-cased part before ``@``.

    Valid means matching the configured pattern (by default shadow-utils'
    ``[a-z_][a-z0-9_-]*[$]?`` with dots allowed, as in ``alice.smith``) within
    the configured length.
    """

    def __init__(self, pattern: str, max_length: int) -> None:
        self.pattern = re.compile(pattern)
        self.max_length = max_length

    def is_valid(self, name: str) -> bool:
        return len(name) <= self.max_length and self.pattern.fullmatch(name) is not None

    def login_for(self, user_name: str) -> str:
        """Raises 400 ``invalidValue`` naming the userName when no valid login follows."""
        if self.is_valid(user_name):
            return user_name
        local = user_name.split("@", 1)[0].lower()
        if self.is_valid(local):
            return local
        raise InvalidValueException(
            detail=f"userName {user_name!r} does not yield a valid Linux login name: the part "
            f"before '@' must match {self.pattern.pattern} and be at most {self.max_length} "
            "characters"
        )
