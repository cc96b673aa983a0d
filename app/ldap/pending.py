"""Multi-step writes that did not finish: the marker each leaves until it is complete.

The invariant: an account entry without a ``scimPending`` value is complete —
its container, login, group memberships, private group and lock agree with its
attributes. A write of several LDAP operations (a create with its groups, a
rename, a move, a delete) puts the marker on the entry in its first operation,
atomically with it, and takes it off in its last. When the directory dies
between two steps, or the server is killed, the marker stays and says what was
meant: the next request that touches the entry, or the sweep, finishes it
(``UserChanges.resume``). Each step is idempotent, so finishing twice, or
beside the request that was interrupted, converges to the same entry.

A create that never finished is the exception: the client was never told it
succeeded and will send it again (Entra retries failed creates in its next
cycle), with the password the entry never got. A retried create completes it;
the sweep takes back one that nobody retried within ``accounts.pending_grace``
seconds, so the retry makes a fresh, complete account.

The marker holds logins, DNs and group names, never a password.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

Operation = Literal["create", "update", "delete"]

WRITER = f"{socket.gethostname()}/{os.getpid()}/{secrets.token_hex(4)}"
"""This server process, as it signs the markers it writes."""


@dataclass(frozen=True)
class Pending:
    """What an unfinished write still has to do, as stored in the marker."""

    op: Operation
    login: str
    """The login the account has when the write is complete."""
    dn: str
    """The entry's DN when the write is complete."""
    old_login: str | None = None
    """The login group memberships and the private group still name, when renaming."""
    old_dn: str | None = None
    """The DN the ``member`` values of groups still name, when the entry moves."""
    join: tuple[str, ...] = ()
    """Groups (cn) the account joins."""
    leave: tuple[str, ...] = ()
    """Groups (cn) the account leaves."""
    private_gid: int | None = None
    """The gidNumber of the private group the account has (private-group strategy)."""
    lock: bool = False
    """Whether the account must end locked (a disabled account after a password change)."""
    at: str = field(default_factory=lambda: datetime.now(UTC).strftime("%Y%m%d%H%M%SZ"))
    writer: str = WRITER
    """The server process that began the write."""
    token: str = field(default_factory=lambda: secrets.token_hex(6))
    """This write among the writer's."""

    def encode(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    @property
    def started(self) -> datetime:
        return datetime.strptime(self.at, "%Y%m%d%H%M%SZ").replace(tzinfo=UTC)

    def age(self, now: datetime | None = None) -> float:
        """Seconds since the write began."""
        return ((now or datetime.now(UTC)) - self.started).total_seconds()

    @classmethod
    def decode(cls, value: object) -> Pending | None:
        """The marker's value parsed; None for a damaged or foreign value."""
        try:
            raw: Any = json.loads(str(value))
            if not isinstance(raw, dict) or raw.get("op") not in ("create", "update", "delete"):
                return None
            return cls(
                op=raw["op"],
                login=str(raw["login"]),
                dn=str(raw["dn"]),
                old_login=None if raw.get("old_login") is None else str(raw["old_login"]),
                old_dn=None if raw.get("old_dn") is None else str(raw["old_dn"]),
                join=tuple(str(g) for g in raw.get("join") or ()),
                leave=tuple(str(g) for g in raw.get("leave") or ()),
                private_gid=None if raw.get("private_gid") is None else int(raw["private_gid"]),
                lock=bool(raw.get("lock", False)),
                at=str(raw.get("at") or "19700101000000Z"),
                writer=str(raw.get("writer") or ""),
                token=str(raw.get("token") or ""),
            )
        except (TypeError, ValueError, KeyError):
            return None
