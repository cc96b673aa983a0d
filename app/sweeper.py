"""The background sweep that finishes interrupted writes (app/ldap/resume.py).

It runs once when the server starts and then every ``accounts.sweep_interval``
seconds, on a thread of its own so that no request waits for it. A marker
younger than twice the request bound may belong to a write still running,
and is left for the next round.
"""

from __future__ import annotations

import logging
import threading

from scim2_models import SCIMException

from app import context
from app.config import Settings
from app.ldap.changes import UserChanges

log = logging.getLogger(__name__)


class Sweeper:
    """Runs ``UserChanges.sweep`` at start-up and on a schedule until stopped."""

    def __init__(self, changes: UserChanges, settings: Settings) -> None:
        self.changes = changes
        self.interval = settings.accounts.sweep_interval
        self.grace = settings.accounts.pending_grace
        self.settle = 2 * settings.http.request_timeout
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="scim-ldap-sweep", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def once(self) -> int:
        """One sweep; the number of writes finished or taken back (0 when it failed).

        A failure never ends the schedule: the next round tries again.
        """
        try:
            with context.opened(context.RequestContext(given_operation="sweep")):
                done = self.changes.sweep(self.grace, self.settle)
        except SCIMException as exc:
            log.warning("the sweep of unfinished writes could not run: %s", exc.detail)
            return 0
        except Exception as exc:
            log.error("the sweep of unfinished writes failed: %s", type(exc).__name__)
            return 0
        if done:
            log.info("the sweep finished or took back %d interrupted writes", done)
        return done

    def _run(self) -> None:
        self.once()
        while self.interval and not self._stop.wait(self.interval):
            self.once()
