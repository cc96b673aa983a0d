"""Attributes accepted and not stored: counted, and named once in the log.

A SCIM server must not refuse a user for an attribute it does not know (an
Entra mapping, a typo, another vendor's extension): such attributes, in any
schema and any letter case, are accepted and left out. Each name is logged
once at info, never its value, and counted (for the metrics). Names are cut
to ``MAX_NAME`` characters and at most ``MAX_NAMES`` distinct ones are kept,
so hostile names cannot grow the log or the memory without bound.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter

log = logging.getLogger(__name__)

MAX_NAME = 120
MAX_NAMES = 1000
OTHER = "(other)"


class Unstored:
    """The names of attributes accepted and not stored, with how often each came."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def note(self, name: str) -> None:
        shown = name if len(name) <= MAX_NAME else name[:MAX_NAME] + "…"
        with self._lock:
            if shown not in self.counts and len(self.counts) >= MAX_NAMES:
                shown = OTHER
            first = shown not in self.counts
            self.counts[shown] += 1
        if first:
            log.info("accepted and not stored: %r (named once)", shown)


UNSTORED = Unstored()
"""This process's tally."""
