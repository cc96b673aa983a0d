"""Several LDAP operations applied as one change: all of them, or none.

LDAP has no multi-operation transaction that OpenLDAP and 389-ds both offer,
so each step that succeeded registers its inverse; when a later step fails,
the inverses run in reverse order and the original error is raised. A SCIM
request is therefore never half-applied (RFC 7644 §3.5.2: a PATCH is atomic).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from types import TracebackType
from typing import Self

log = logging.getLogger(__name__)


class Steps:
    """Collects the undo of each applied step; used as a context manager."""

    def __init__(self) -> None:
        self._undo: list[tuple[str, Callable[[], object]]] = []

    def done(self, what: str, undo: Callable[[], object]) -> None:
        """Record that a step happened and how to take it back."""
        self._undo.append((what, undo))

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        if error is None:
            return
        for what, undo in reversed(self._undo):
            try:
                undo()
            except Exception:
                log.error("could not undo %s after a failed change", what)
