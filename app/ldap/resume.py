"""Finishing the writes that a crash interrupted (the marker of app/ldap/pending.py).

``finish`` completes what a marker says, step by idempotent step, and takes
the marker off last; ``take_back`` undoes a create that nobody retried;
``sweep`` does either for every marked entry under the base DN. The server
sweeps at start-up and every ``accounts.sweep_interval`` seconds; a request
that touches a marked entry finishes it first.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from ldap3 import MODIFY_ADD, MODIFY_DELETE, MODIFY_REPLACE
from scim2_models import SCIMException

from app.ldap import writes
from app.ldap.accounts import ACCOUNT_FILTER, LOCK_ATTRIBUTE, LOCKED
from app.ldap.connection import Control, Session
from app.ldap.dn import first_rdn, parent_of, same_dn
from app.ldap.groups import PosixGroups
from app.ldap.mapping import UserRecord
from app.ldap.pending import WRITER, Pending
from app.ldap.removal import AccountRemoval
from app.ldap.steps import Steps
from app.ldap.users import UserDirectory

log = logging.getLogger(__name__)


@dataclass
class Swept:
    """What one sweep did."""

    finished: int = 0
    taken_back: int = 0
    failed: int = 0


FOREIGN_SETTLE = 60.0
"""Seconds a marker of another server process may belong to a write still running there."""


class PendingWrites:
    """Puts the marker on, takes it off, and finishes what it names.

    A marker is finished only when its write cannot still be running: this
    process knows its own writes in flight; another process's marker is left
    alone for ``FOREIGN_SETTLE`` seconds (beyond any request's time bound).
    """

    def __init__(self, users: UserDirectory, groups: PosixGroups, removal: AccountRemoval) -> None:
        self.users = users
        self.mapping = users.mapping
        self.attribute = users.mapping.pending_attribute
        self.groups = groups
        self.removal = removal
        self._running: set[str] = set()
        self._lock = threading.Lock()

    @contextmanager
    def running(self, token: str) -> Iterator[None]:
        """The write whose markers carry ``token`` is in flight in this process meanwhile."""
        with self._lock:
            self._running.add(token)
        try:
            yield
        finally:
            with self._lock:
                self._running.discard(token)

    def busy(self, pending: Pending, now: datetime | None = None) -> bool:
        """Whether the write of ``pending`` may still be running, here or elsewhere."""
        if pending.writer == WRITER:
            with self._lock:
                return pending.token in self._running
        return pending.age(now) < FOREIGN_SETTLE

    @property
    def enabled(self) -> bool:
        return self.attribute is not None

    def attributes(self, pending: Pending) -> dict[str, list[str]]:
        """The marker as entry attributes (for an add or a replace)."""
        return {self.attribute: [pending.encode()]} if self.attribute else {}

    def mark(
        self, session: Session, dn: str, pending: Pending, controls: list[Control] | None = None
    ) -> None:
        """Put (or replace) the marker on the entry at ``dn``."""
        if self.attribute:
            session.modify(
                dn,
                {self.attribute: [(MODIFY_REPLACE, [pending.encode()])]},
                controls=controls,
                action=f"mark the write of {pending.login}",
            )

    def clear(
        self, session: Session, dn: str, pending: Pending, controls: list[Control] | None = None
    ) -> dict[str, Any]:
        """Take this marker off (another writer's marker stays); the modify's result."""
        assert self.attribute
        return session.modify(
            dn,
            {self.attribute: [(MODIFY_DELETE, [pending.encode()])]},
            controls=controls,
            tolerate=(writes.NO_SUCH_ATTRIBUTE,),
            action=f"finish the write of {pending.login}",
        )

    # ---- finishing

    def take_over(self, session: Session, record: UserRecord) -> UserRecord | None:
        """The record with its marker made this request's, or None when another got it first.

        One modify deletes the marker's exact value and adds it under a new
        token: of two requests finishing the same write, or a request and the
        write itself finishing at once, only one succeeds.
        """
        pending = record.pending
        assert pending is not None and self.attribute
        mine = replace(pending, writer=WRITER, token=secrets.token_hex(6))
        result = session.modify(
            record.dn,
            {
                self.attribute: [
                    (MODIFY_DELETE, [pending.encode()]),
                    (MODIFY_ADD, [mine.encode()]),
                ]
            },
            tolerate=(writes.NO_SUCH_ATTRIBUTE,),
            action=f"take over the unfinished write of {pending.login}",
        )
        if result["result"] == writes.NO_SUCH_ATTRIBUTE:
            return None
        return replace(record, pending=mine)

    def finish(self, session: Session, record: UserRecord) -> str | None:
        """Complete the write the record's marker names; the entry's DN after it (None: gone).

        The marker must be this request's (``take_over``).
        """
        pending = record.pending
        assert pending is not None
        log.warning(
            "finishing an interrupted %s of %s (started %s)", pending.op, record.dn, pending.at
        )
        if pending.op == "delete":
            with Steps() as steps:
                archived = self.removal.remove(session, steps, record)
            if archived:
                self.clear(session, archived, pending)
            return None
        dn = record.dn
        if not same_dn(dn, pending.dn):
            parent = parent_of(pending.dn)
            session.rename(
                dn,
                first_rdn(pending.dn),
                new_superior=None if same_dn(parent, parent_of(dn)) else parent,
                action=f"finish moving {record.login} to {pending.dn}",
            )
            dn = pending.dn
        renamed = pending.old_login and pending.old_login != pending.login
        if renamed and pending.private_gid is not None:
            self.groups.rename_private(
                session, str(pending.old_login), pending.login, pending.private_gid
            )
        old_login = pending.old_login or pending.login
        old_dn = pending.old_dn or dn
        self.groups.rename_account(session, (old_login, old_dn), (pending.login, dn))
        if pending.private_gid is not None:
            self.groups.ensure_private(session, pending.login, pending.private_gid)
        for group in pending.join:
            self.groups.add_member(session, group, pending.login)
        for group in pending.leave:
            self.groups.remove_member(session, group, pending.login)
        if pending.lock:
            session.modify(
                dn,
                {LOCK_ATTRIBUTE: [(MODIFY_REPLACE, [LOCKED])]},
                action=f"lock the disabled user {pending.login} again",
            )
        self.clear(session, dn, pending)
        return dn

    def take_back(self, session: Session, record: UserRecord) -> None:
        """Undo a create that never finished: the client was never told it succeeded."""
        log.warning("taking back the unfinished create of %s", record.dn)
        with Steps() as steps:
            self.removal.remove(session, steps, record, archive=False)

    def settle(self, session: Session, record: UserRecord) -> UserRecord | None:
        """The record with its interrupted write finished; None when that write deleted it.

        A write that may still be running is left to itself.
        """
        if record.pending is None or self.busy(record.pending):
            return record
        owned = self.take_over(session, record)
        if owned is None:
            return self.users.reread(session, record.dn)
        with self.running(owned.pending.token if owned.pending else ""):
            dn = self.finish(session, owned)
        return None if dn is None else self.users.reread(session, dn)

    def sweep(self, grace: float, settle: float) -> Swept:
        """Finish every marked entry older than ``settle`` s; take back creates past ``grace``.

        ``settle`` leaves alone a marker whose write may still be running.
        """
        swept = Swept()
        if not self.attribute:
            return swept
        now = datetime.now(UTC)
        with self.users.directory.session() as session:
            entries = session.search(
                self.users.base_dn,
                f"(&{ACCOUNT_FILTER}({self.attribute}=*))",
                self.mapping.read_attributes,
                action="find unfinished writes",
            )
            for entry in entries:
                record = self.mapping.record(entry)
                pending = record.pending
                if pending is None or pending.age(now) < settle or self.busy(pending, now):
                    continue
                if pending.op == "create" and pending.age(now) < grace:
                    continue
                try:
                    owned = self.take_over(session, record)
                    if owned is None:
                        continue
                    if pending.op == "create":
                        self.take_back(session, owned)
                        swept.taken_back += 1
                    else:
                        self.finish(session, owned)
                        swept.finished += 1
                except SCIMException as exc:
                    swept.failed += 1
                    log.error("could not finish the write of %s: %s", record.dn, exc.detail)
        return swept
