"""The shared directory connection pool.

ldap3 is blocking, so each request borrows one bound connection for the time of
its operations, from threads off the event loop. A connection that fails at
the transport level is dropped and a fresh one is opened on the next borrow, so
the server reconnects by itself after the directory restarts.

Time is bounded at every step: a request waits at most ``pool_wait`` for a
free connection, and only ``max_waiting`` requests wait at once (the others
answer 503 at once); a request's own ``deadline`` (set by the HTTP layer)
shortens the wait, the connect and every reply, so no directory call outlives
the request that made it.
"""

from __future__ import annotations

import logging
import math
import queue
import select
import ssl
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any
from urllib.parse import urlsplit

from ldap3 import NONE, SIMPLE, SYNC, Connection, Server, Tls
from ldap3.core.exceptions import (
    LDAPCertificateError,
    LDAPCommunicationError,
    LDAPException,
    LDAPMaximumRetriesError,
    LDAPResponseTimeoutError,
)
from scim2_models import InvalidValueException

from app import audit, context, metrics
from app.config import LdapSettings
from app.ldap.dn import first_rdn
from app.ldap.errors import DirectoryUnavailable, raise_for_result

log = logging.getLogger(__name__)

Control = tuple[str, bool, bytes | None]
_TRANSPORT_ERRORS = (LDAPCommunicationError, LDAPResponseTimeoutError, LDAPMaximumRetriesError)

deadline: ContextVar[float | None] = ContextVar("deadline", default=None)
"""The ``time.monotonic()`` by which the current request must be answered, if any."""


def remaining() -> float | None:
    """Seconds left before the current request's deadline (None: no deadline)."""
    until = deadline.get()
    return None if until is None else until - time.monotonic()


def _within(seconds: float) -> float:
    """``seconds``, shortened to what is left of the request's time."""
    left = remaining()
    return seconds if left is None else max(min(seconds, left), 0.0)


_TLS_MARKERS = ("certificate verify failed", "certificate_verify_failed", "doesn't match any name")


def describe_failure(exc: BaseException) -> str:
    """What went wrong opening a connection, naming TLS certificate verification when it failed."""
    seen: list[BaseException] = []
    pending: list[Any] = [exc]
    while pending:
        item = pending.pop()
        if isinstance(item, BaseException) and all(item is not s for s in seen):
            seen.append(item)
            pending.extend([item.__cause__, item.__context__, *item.args])
        elif isinstance(item, list | tuple):
            pending.extend(item)
    for item in seen:
        text = str(item)
        if isinstance(item, ssl.SSLCertVerificationError | LDAPCertificateError) or any(
            marker in text.lower() for marker in _TLS_MARKERS
        ):
            reason = getattr(item, "verify_message", None) or text
            return f"TLS certificate verification failed ({reason})"
    return type(exc).__name__


class DirectoryConfigError(RuntimeError):
    """The directory answers but refuses the configured bind: an administrator must act."""


MAX_RDN_BYTES = 240
"""Longest RDN an entry is given. OpenLDAP's back-mdb keeps each RDN twice in
one index record bounded by its 511-byte key size, so it refuses an RDN of
more than 245 bytes with the catch-all result 80 (other), which would read
as an outage; the request is refused before it is sent."""


def _check_rdn(rdn: str, action: str) -> None:
    size = len(rdn.encode("utf-8"))
    if size > MAX_RDN_BYTES:
        raise InvalidValueException(
            detail=f"Cannot {action}: the entry name would be {size} bytes long; "
            f"the directory accepts at most {MAX_RDN_BYTES}"
        )


POST_READ_OID = "1.3.6.1.1.13.2"


def _new_entry_id(result: dict[str, Any]) -> str | None:
    """The entryUUID a post-read control (RFC 4527) returned with an add, if any."""
    control = (result.get("controls") or {}).get(POST_READ_OID) or {}
    values = (control.get("value") or {}).get("result", {}).get("entryUUID")
    value = values[0] if isinstance(values, list) and values else values
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    return str(value).lower() if value else None


class Session:
    """One borrowed connection; every operation checks its result in one place.

    Every operation is counted here (``metrics.LDAP_OPERATIONS``) and every
    change is written to the audit trail here (app/audit.py), so no write
    goes unrecorded.
    """

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def _send(
        self,
        kind: str,
        call: Callable[[], object],
        change: tuple[str, str, Iterable[str]] | None = None,
        new_dn: str | None = None,
    ) -> dict[str, Any]:
        """Run one operation; count it, audit it when it is a ``change``; its result."""
        started = time.monotonic()
        try:
            call()
        except _TRANSPORT_ERRORS:
            metrics.ldap_result(kind, None, time.monotonic() - started)
            if change is not None:
                audit.record(*change, None, new_dn=new_dn)
            raise
        result = dict(self.conn.result or {})
        code = int(result.get("result", 0))
        metrics.ldap_result(kind, code, time.monotonic() - started)
        if change is not None:
            work = context.current()
            if change[0] == audit.ADD and code == 0 and work.resource_id is None:
                work.resource_id = _new_entry_id(result)
            audit.record(*change, result, new_dn=new_dn)
        return result

    def search(
        self,
        base: str,
        ldap_filter: str,
        attributes: Sequence[str],
        *,
        scope: str = "SUBTREE",
        controls: Sequence[Control] | None = None,
        size_limit: int = 0,
        tolerate: tuple[int, ...] = (),
        action: str,
    ) -> list[dict[str, Any]]:
        """Search and return the entries (``dn`` and ``attributes``); no such base is empty.

        A size limit that is hit is not an error: ``limited`` tells it afterwards.
        """
        result = self._send(
            "search",
            lambda: self.conn.search(
                base,
                ldap_filter,
                search_scope=scope,
                attributes=list(attributes),
                controls=list(controls) if controls else None,
                size_limit=size_limit,
            ),
        )
        if result["result"] == 32:
            return []
        if result["result"] not in (4, *tolerate):
            raise_for_result(result, action)
        return [e for e in self.conn.response or [] if e.get("type") == "searchResEntry"]

    @property
    def limited(self) -> bool:
        """Whether the last search stopped at its size limit."""
        return bool(self.conn.result.get("result") == 4)

    @staticmethod
    def _check(result: dict[str, Any], tolerate: Collection[int], action: str) -> dict[str, Any]:
        if int(result.get("result", 0)) not in tolerate:
            raise_for_result(result, action)
        return result

    def add(
        self,
        dn: str,
        attributes: dict[str, Any],
        *,
        controls: Sequence[Control] | None = None,
        tolerate: Collection[int] = (),
        action: str,
    ) -> dict[str, Any]:
        """Add an entry; a result code in ``tolerate`` is returned rather than raised."""
        _check_rdn(first_rdn(dn), action)
        result = self._send(
            "add",
            lambda: self.conn.add(
                dn, attributes=attributes, controls=list(controls) if controls else None
            ),
            (audit.ADD, dn, attributes),
        )
        return self._check(result, tolerate, action)

    def modify(
        self,
        dn: str,
        changes: dict[str, Any],
        *,
        controls: Sequence[Control] | None = None,
        tolerate: Collection[int] = (),
        action: str,
    ) -> dict[str, Any]:
        result = self._send(
            "modify",
            lambda: self.conn.modify(dn, changes, controls=list(controls) if controls else None),
            (audit.MODIFY, dn, changes),
        )
        return self._check(result, tolerate, action)

    def rename(
        self,
        dn: str,
        new_rdn: str,
        *,
        new_superior: str | None = None,
        controls: Sequence[Control] | None = None,
        tolerate: Collection[int] = (),
        action: str,
    ) -> dict[str, Any]:
        _check_rdn(new_rdn, action)
        parent = new_superior if new_superior is not None else dn.partition(",")[2]
        result = self._send(
            "modrdn",
            lambda: self.conn.modify_dn(
                dn,
                new_rdn,
                delete_old_dn=True,
                new_superior=new_superior,
                controls=list(controls) if controls else None,
            ),
            (audit.MODRDN, dn, _rdn_attributes(new_rdn)),
            new_dn=f"{new_rdn},{parent}" if parent else new_rdn,
        )
        return self._check(result, tolerate, action)

    def set_password(self, dn: str, plaintext: str, *, action: str) -> None:
        """LDAP Password Modify (RFC 3062); the directory hashes by its own policy."""
        result = self._send(
            "extended",
            lambda: self.conn.extend.standard.modify_password(user=dn, new_password=plaintext),
            (audit.PASSWORD, dn, ["userPassword"]),
        )
        raise_for_result(result, action)

    def delete(
        self,
        dn: str,
        *,
        controls: Sequence[Control] | None = None,
        tolerate: Collection[int] = (),
        action: str,
    ) -> dict[str, Any]:
        result = self._send(
            "delete",
            lambda: self.conn.delete(dn, controls=list(controls) if controls else None),
            (audit.DELETE, dn, ()),
        )
        return self._check(result, tolerate, action)


def _rdn_attributes(rdn: str) -> list[str]:
    """The attribute names of an RDN (``uid=a+uidNumber=5``: uid, uidNumber)."""
    return [part.partition("=")[0].strip() for part in rdn.split("+") if "=" in part]


def _is_alive(conn: Connection) -> bool:
    """Whether an idle connection can still be used.

    An idle LDAP connection has nothing to read; a readable socket means the
    server closed it (a restart) or sent a Notice of Disconnection.
    """
    sock = conn.socket
    if conn.closed or sock is None:
        return False
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return False
    return not readable


def _set_timeout(conn: Connection, seconds: float) -> None:
    """Bound every reply on ``conn`` to ``seconds`` (at least a millisecond)."""
    sock = conn.socket
    if sock is not None:
        try:
            sock.settimeout(max(seconds, 0.001))
        except OSError:
            log.debug("cannot set the timeout of a closed socket")


class Directory:
    """A bounded pool of bound connections to the first reachable configured server."""

    def __init__(self, settings: LdapSettings) -> None:
        self.settings = settings
        self._idle: queue.LifoQueue[Connection] = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(settings.pool_size)
        self._waiting = 0
        self._in_use = 0
        self._waiting_lock = threading.Lock()
        self._closed = False
        self.last_problem = ""
        """Why the last attempt to open a connection failed ("" after a success)."""

    def _server(self, url: str, connect_timeout: float) -> Server:
        parts = urlsplit(url)
        use_ssl = parts.scheme == "ldaps"
        tls = None
        if use_ssl or self.settings.start_tls:
            tls = Tls(
                validate=ssl.CERT_REQUIRED,
                ca_certs_file=str(self.settings.ca_file) if self.settings.ca_file else None,
            )
        return Server(
            parts.hostname or "127.0.0.1",
            port=parts.port or (636 if use_ssl else 389),
            use_ssl=use_ssl,
            tls=tls,
            get_info=NONE,
            connect_timeout=connect_timeout,
        )

    def _connect(self, timeout: float | None = None) -> Connection:
        """A new bound connection to the first configured server that answers.

        ``timeout`` caps the connect and each reply (default: the configured
        timeouts), and the request's deadline caps both.
        """
        connect_timeout = _within(min(self.settings.connect_timeout, timeout or math.inf))
        receive_timeout = _within(min(self.settings.receive_timeout, timeout or math.inf))
        if connect_timeout <= 0:
            raise DirectoryUnavailable(detail="The request ran out of time; retry later")
        problems = []
        for url in self.settings.urls:
            server = self._server(url, connect_timeout)
            conn = Connection(
                server,
                user=self.settings.bind_dn or None,
                password=self.settings.bind_password.get_secret_value() or None,
                authentication=SIMPLE if self.settings.bind_dn else None,
                client_strategy=SYNC,
                auto_bind=False,
                raise_exceptions=False,
                receive_timeout=max(math.ceil(receive_timeout), 1),
                check_names=False,
                auto_escape=False,
                return_empty_attributes=False,
            )
            try:
                conn.open()
                _set_timeout(conn, receive_timeout)
                if self.settings.start_tls and not server.ssl:
                    conn.start_tls()
                if not conn.bind():
                    code = conn.result.get("result")
                    conn.unbind()
                    if code in (49, 48, 50, 53):
                        raise DirectoryConfigError(
                            f"the directory at {server.host}:{server.port} refused the bind "
                            f"as {self.settings.bind_dn!r} (LDAP code {code})"
                        )
                    raise_for_result(conn.result, "bind to the directory")
                self.last_problem = ""
                metrics.REACHABLE.set(1)
                return conn
            except LDAPException as exc:
                problem = describe_failure(exc)
                problems.append(f"{server.host}:{server.port}: {problem}")
                log.warning("cannot reach %s:%s: %s", server.host, server.port, problem)
        self.last_problem = "; ".join(problems)
        metrics.REACHABLE.set(0)
        log.warning("no directory server reachable (%s)", self.last_problem)
        raise DirectoryUnavailable()

    def check(self) -> str:
        """Open one connection now: a wrong bind fails start-up, an outage only warns.

        Returns why the directory cannot be reached ("" when it can).
        """
        try:
            with self.session():
                pass
        except DirectoryUnavailable:
            log.warning(
                "the directory is not reachable yet (%s); requests answer 503 until it is",
                self.last_problem or "no answer",
            )
            return self.last_problem or "no answer"
        return ""

    def ping(self, timeout: float) -> None:
        """One round trip to the directory on a connection of its own, within ``timeout``.

        Opens, binds and reads the root DSE (RFC 4512 §5.1), so a directory that
        accepts connections but does not answer (stopped, stalled) fails here;
        raises DirectoryUnavailable or DirectoryConfigError.
        """
        conn = self._connect(timeout)
        try:
            Session(conn).search(
                "", "(objectClass=*)", ["1.1"], scope="BASE", action="read the root DSE"
            )
        except _TRANSPORT_ERRORS:
            metrics.REACHABLE.set(0)
            raise DirectoryUnavailable() from None
        finally:
            self._discard(conn)

    @contextmanager
    def session(self, *, dedicated: bool = False) -> Iterator[Session]:
        """Borrow a connection; transport failures drop it and answer 503.

        A ``dedicated`` connection is opened for this session and closed after
        it: OpenLDAP's sssvlv overlay keeps the sorted list of every virtual
        list view search until the connection ends, so VLV searches must not
        run on pooled connections.
        """
        left = remaining()
        if left is not None and left <= 0:
            raise DirectoryUnavailable(detail="The request ran out of time; retry later")
        self._acquire()
        with self._waiting_lock:
            self._in_use += 1
        try:
            conn = self._connect() if dedicated else self._borrow()
            _set_timeout(conn, _within(self.settings.receive_timeout))
            try:
                yield Session(conn)
            except _TRANSPORT_ERRORS as exc:
                log.warning("directory connection lost: %s", type(exc).__name__)
                metrics.REACHABLE.set(0)
                self._discard(conn)
                raise DirectoryUnavailable() from None
            except DirectoryUnavailable:
                self._discard(conn)
                raise
            except BaseException:
                self._release(conn, dedicated)
                raise
            self._release(conn, dedicated)
        finally:
            with self._waiting_lock:
                self._in_use -= 1
            self._slots.release()

    @property
    def in_use(self) -> int:
        """Sessions holding a connection slot right now."""
        return self._in_use

    @property
    def waiting(self) -> int:
        """Sessions waiting for a connection slot right now."""
        return self._waiting

    def _acquire(self) -> None:
        """Take a connection slot, waiting boundedly and only if few others already wait."""
        if self._slots.acquire(blocking=False):
            return
        with self._waiting_lock:
            if self._waiting >= self.settings.max_waiting:
                raise DirectoryUnavailable(
                    detail="Too many requests are waiting for the directory; retry later"
                )
            self._waiting += 1
        try:
            wait = _within(self.settings.pool_wait)
            if not (wait > 0 and self._slots.acquire(timeout=wait)):
                raise DirectoryUnavailable(detail="All directory connections are busy; retry later")
        finally:
            with self._waiting_lock:
                self._waiting -= 1

    def _borrow(self) -> Connection:
        while True:
            try:
                conn = self._idle.get_nowait()
            except queue.Empty:
                return self._connect()
            if _is_alive(conn):
                return conn
            self._discard(conn)

    def _release(self, conn: Connection, dedicated: bool) -> None:
        if dedicated or conn.closed or self._closed:
            self._discard(conn)
        else:
            self._idle.put(conn)

    @staticmethod
    def _discard(conn: Connection) -> None:
        try:
            conn.unbind()
        except LDAPException:
            log.debug("ignoring error while closing a broken connection")

    def close(self) -> None:
        self._closed = True
        while True:
            try:
                self._discard(self._idle.get_nowait())
            except queue.Empty:
                return
