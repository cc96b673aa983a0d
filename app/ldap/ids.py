"""uidNumber and gidNumber allocation, decided in the directory.

``NumberPool`` is the counter below; ``IdAllocator`` hands out the uidNumbers
of accounts with it (``posix.uid_range``, counter ``posix.id_pool_dn``, attribute
``uidNumber``), ``GidAllocator`` the gidNumbers of SCIM groups
(``groups.gid_range``, counter ``groups.id_pool_dn``, attribute ``gidNumber``).
What follows describes uidNumbers; gidNumbers work alike, with their own
collision search (any posixGroup or account gidNumber under the base).

Several server processes (workers, replicas behind a load balancer) may create
users at the same moment, so the next number cannot live in memory. It lives
in a counter entry (object class ``scimIdPool``, ``posix.id_pool_dn``) whose
``uidNumber`` is the next number to hand out. A server claims numbers with a
compare-and-swap: one modify that deletes the value it read and adds the next
one. LDAP applies a modify atomically (RFC 4511 section 4.6), and deleting a
value that is no longer there fails with ``noSuchAttribute``, so when two
servers read the same value only one of them wins; the other reads again.
Within one process allocations from one counter take turns, so only other
processes compete for it: without that, every request thread of every process would race
each round and an unlucky one could lose round after round.

The counter only moves forward: numbers of deleted accounts are never handed
out again, so files a deleted account owned never pass to a new one.

Numbers taken by entries made by hand are skipped: before claiming, the
allocator looks up a window of candidates under the base DN (accounts, and
groups too when every user gets a private group whose gidNumber is the
uidNumber) and claims the first free one, moving the counter to the next free
one: the counter always names a number no account holds, which the ``unique``
overlay on uidNumber requires of it (it checks the counter's new value too).
Under that overlay a claim built on a stale read can also fail with
constraintViolation; it is retried like any lost claim.

Cost in the common case: 1 base read of the counter, 1 search of a window of
candidates, 1 modify. The first allocation ever adds the counter entry
instead of modifying it.

Multi-provider directories (OpenLDAP syncrepl with ``olcMultiProvider``, 389-ds
multi-supplier) break the compare-and-swap when two servers write through
different providers: each provider checks the deleted value against its own
copy of the counter, both accept, and replication then settles the counter on
the later write (the entryCSN orders them), which both wrote alike. Both
servers hold the same number. On two OpenLDAP 2.5 providers
(tests/ldap/test_replication.py) half to nearly all of 60 simultaneous pairs
of allocations got the same uidNumber, and the counter ended equal on both
providers, so nothing in the directory shows it. The ``unique`` overlay does
not stop it: it checks the provider's own copy only, so it refuses the second
account only when the first has already replicated, and replication adds the
other provider's account whatever the overlay says: after convergence both
providers held the two accounts with one uidNumber. The claim entries of
``app.ldap.numbers`` have the same limit: a provider refuses a second add of
one DN only when the first was made through it or has replicated to it.

So with ``posix.providers`` each provider gets a slice of ``uid_range`` and a
counter of its own (``cn=scim-ldap-ids-<low>`` by default), and a number is
always allocated from the counter of the provider the session is connected to
(the URL of the connection, matched against ``posix.providers``). A counter is
therefore only ever written through one provider, where the compare-and-swap
is atomic as above; the slices are disjoint, so two providers never hand out
the same number; replication only ever copies a counter from its one writer.
A server that fails over to another provider allocates from that provider's
slice; the dead provider's counter stays as it was until it is back, and what
it had not replicated before it stopped comes back with it. The cost is one
slice per provider (each must be wide enough on its own), and every URL the
server may connect to must be listed, which start-up checks. The alternative,
one designated allocation provider, would stop every create while that one
provider is down, which is what replication is there to avoid.

The collision check is not atomic against another add between the check and
the user's add (a client-sent number, an account made by hand); the ``unique``
overlay on uidNumber (``unique_uid_numbers``) closes that gap in the directory.
A create that fails after its number was claimed gives it back (``release``).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any
from urllib.parse import urlsplit

from ldap3 import MODIFY_ADD, MODIFY_DELETE
from scim2_models import (
    InvalidValueException,
    NotFoundException,
    SCIMException,
    UniquenessException,
)

from app import context, metrics
from app.attributes import GID_NUMBER, UID_NUMBER, Slot, SlotValue
from app.config import GroupSettings, PosixSettings
from app.ldap import writes
from app.ldap.accounts import ACCOUNT_FILTER, HIDDEN_CLASS
from app.ldap.connection import Directory, Session
from app.ldap.dn import rdn_values
from app.ldap.errors import DirectoryFailure, DirectoryUnavailable

log = logging.getLogger(__name__)

UID_NUMBER_PATH = UID_NUMBER.path
POOL_CLASS = "scimIdPool"
WINDOW = 16
"""Candidates checked per collision search."""
ATTEMPTS = 32
"""Compare-and-swap attempts before giving up. An attempt fails only when another
writer claimed a number in the meantime, so giving up means 32 other allocations
finished during this one: the directory is overloaded, not merely contended."""


class IdsExhausted(SCIMException):
    """No number of the configured range is left.

    Answered as 500, not 503: 503 with Retry-After tells the client the
    condition is temporary and a retry will succeed, but no retry can succeed
    until an administrator widens ``posix.uid_range``.
    """

    status = 500
    _default_detail = "No uidNumber is left to hand out"


@dataclass(frozen=True, slots=True)
class Slice:
    """Numbers one counter hands out, where the counter lives, and its provider (if any)."""

    low: int
    high: int
    pool_dn: str
    provider: str | None = None


Endpoint = tuple[str, str, int]


def endpoint(url: str) -> Endpoint:
    """Scheme, host (lower-cased) and port of an LDAP URL, the default port filled in."""
    parts = urlsplit(url)
    secure = parts.scheme.lower() == "ldaps"
    host = (parts.hostname or "127.0.0.1").lower()
    return ("ldaps" if secure else "ldap", host, parts.port or (636 if secure else 389))


def session_endpoint(session: Session) -> Endpoint:
    """The server a session's connection is open to."""
    server = session.conn.server
    return ("ldaps" if server.ssl else "ldap", str(server.host).lower(), int(server.port))


def slices(posix: PosixSettings, base_dn: str) -> dict[Endpoint, Slice]:
    """The slice of each provider of ``posix.providers``, by its endpoint."""
    return {
        endpoint(provider.url): Slice(
            provider.uid_range[0],
            provider.uid_range[1],
            provider.id_pool_dn or f"cn=scim-ldap-ids-{provider.uid_range[0]},{base_dn}",
            provider.url,
        )
        for provider in posix.providers
    }


@dataclass(frozen=True, slots=True)
class Counter:
    """What the counter entry held when read."""

    exists: bool
    value: int | None


def _ints(values: Any) -> list[int]:
    items = values if isinstance(values, list) else [values]
    numbers = []
    for item in items:
        text = item.decode("ascii") if isinstance(item, bytes) else str(item)
        try:
            numbers.append(int(text))
        except ValueError:
            continue
    return numbers


def _classes(entry: dict[str, Any]) -> set[str]:
    values = entry["attributes"].get("objectClass") or []
    return {str(v).lower() for v in (values if isinstance(values, list) else [values])}


class NumberPool:
    """Numbers of one attribute handed out by a compare-and-swap counter (module docstring).

    What differs between pools: the attribute the counter holds and the entries
    carry (``uidNumber``, ``gidNumber``), the range and the counter's DN (one, or
    one per provider), and what counts as taken (``taken``).
    """

    def __init__(
        self,
        directory: Directory,
        *,
        attribute: str,
        single: Slice,
        slices: Mapping[Endpoint, Slice] | None = None,
        range_setting: str,
    ) -> None:
        self.directory = directory
        self.attribute = attribute
        self.single = single
        self.pool_dn = single.pool_dn
        self.slices = dict(slices or {})
        self.range_setting = range_setting
        unlisted = [u for u in directory.settings.urls if endpoint(u) not in self.slices]
        if self.slices and unlisted:
            raise ValueError(
                f"posix.providers has no slice for {', '.join(unlisted)} of ldap.urls: every "
                f"provider the server may connect to needs its own slice of {range_setting}"
            )
        self._turns = {s.pool_dn: threading.Lock() for s in (self.single, *self.slices.values())}

    def slice_for(self, session: Session) -> Slice:
        """The slice this session allocates from: its provider's, or the only one."""
        if not self.slices:
            return self.single
        found = self.slices.get(session_endpoint(session))
        if found is None:
            _scheme, host, port = session_endpoint(session)
            raise DirectoryFailure(
                detail=f"The directory server {host}:{port} has no slice in posix.providers"
            )
        return found

    def allocate(self, session: Session) -> int:
        """The next free number of the session's slice, claimed in the directory."""
        part = self.slice_for(session)
        with self._turns[part.pool_dn], context.acting_as("allocate"):
            return self._allocate(session, part)

    def taken(self, session: Session, numbers: Sequence[int]) -> set[int]:
        """Which of ``numbers`` an entry already holds, so the pool never hands them out."""
        raise NotImplementedError

    # ---- allocate

    def _allocate(self, session: Session, part: Slice) -> int:
        low, high = part.low, part.high
        name = self.attribute
        for _attempt in range(ATTEMPTS):
            counter = self._read_counter(session)
            start = low if counter.value is None else max(counter.value, low)
            free = self._free(session, iter(range(start, high + 1)), 2)
            if not free:
                where = (
                    f"the slice of {part.provider} in posix.providers"
                    if part.provider
                    else self.range_setting
                )
                raise IdsExhausted(
                    detail=f"No {name} is left in {where} {low}-{high} (the counter "
                    f"at {part.pool_dn} is at {start}): widen the range, or send {name}"
                )
            number, following = free[0], (free[1] if len(free) > 1 else high + 1)
            if self._claim(session, counter, following):
                return number
            metrics.ALLOCATION_RETRIES.labels(name).inc()
            log.debug("the %s counter moved under us; reading it again", name)
        log.warning("gave up allocating a %s after %d conflicting attempts", name, ATTEMPTS)
        raise DirectoryUnavailable(
            detail=f"Other servers kept allocating {name}s at the same time; retry later"
        )

    def release(self, session: Session, number: int) -> None:
        """Give back a number whose entry was not made, if no one allocated after it.

        The counter moves back from ``number + 1`` to ``number`` with the same
        compare-and-swap as a claim; when another allocation came in between,
        the number stays unused. A number whose entry was in fact made (its
        answer lost) is skipped by the next allocation's collision search.
        """
        with context.acting_as("allocate"):
            code = writes.modify(
                session,
                self.slice_for(session).pool_dn,
                {self.attribute: [(MODIFY_DELETE, [str(number + 1)]), (MODIFY_ADD, [str(number)])]},
                tolerate=(
                    writes.NO_SUCH_ATTRIBUTE,
                    writes.CONSTRAINT_VIOLATION,
                    writes.NO_SUCH_OBJECT,
                ),
                action=f"give back an unused {self.attribute}",
            )
        if code != writes.SUCCESS:
            log.info("%s %d stays unused: another allocation followed it", self.attribute, number)

    def _read_counter(self, session: Session) -> Counter:
        entries = session.search(
            self.slice_for(session).pool_dn,
            "(objectClass=*)",
            [self.attribute],
            scope="BASE",
            action=f"read the {self.attribute} counter",
        )
        if not entries:
            return Counter(exists=False, value=None)
        values = _ints(entries[0]["attributes"].get(self.attribute) or [])
        return Counter(exists=True, value=values[0] if values else None)

    def _claim(self, session: Session, counter: Counter, following: int) -> bool:
        """Move the counter from what was read to ``following``; False if another writer won."""
        pool_dn = self.slice_for(session).pool_dn
        if not counter.exists:
            return self._create_counter(session, following)
        lost: tuple[int, ...]
        if counter.value is None:
            changes = [(MODIFY_ADD, [str(following)])]
            lost = (writes.CONSTRAINT_VIOLATION, writes.ATTRIBUTE_OR_VALUE_EXISTS)
        else:
            changes = [(MODIFY_DELETE, [str(counter.value)]), (MODIFY_ADD, [str(following)])]
            lost = (writes.NO_SUCH_ATTRIBUTE, writes.CONSTRAINT_VIOLATION)
        code = writes.modify(
            session,
            pool_dn,
            {self.attribute: changes},
            tolerate=(*lost, writes.NO_SUCH_OBJECT),
            action=f"advance the {self.attribute} counter",
        )
        return code == writes.SUCCESS

    def _create_counter(self, session: Session, following: int) -> bool:
        pool_dn = self.slice_for(session).pool_dn
        attributes: dict[str, Any] = {"objectClass": ["top", POOL_CLASS]}
        for attribute, value in rdn_values(pool_dn):
            attributes[attribute] = value
        attributes[self.attribute] = str(following)
        try:
            code = writes.add(
                session,
                pool_dn,
                attributes,
                tolerate=(writes.ENTRY_ALREADY_EXISTS,),
                action=f"create the {self.attribute} counter {pool_dn}",
            )
        except (NotFoundException, InvalidValueException) as exc:
            raise DirectoryFailure(
                detail=f"Cannot create the {self.attribute} counter {pool_dn}: {exc.detail}; "
                "the counter must be a cn= entry below an existing entry (posix.id_pool_dn, "
                f"groups.id_pool_dn), and the directory must have the {POOL_CLASS} object "
                "class (schema scim-ldap.ldif)"
            ) from None
        return code == writes.SUCCESS

    # ---- collisions

    def _free(self, session: Session, candidates: Iterator[int], wanted: int) -> list[int]:
        """The first ``wanted`` candidates no entry holds (fewer when they run out)."""
        free: list[int] = []
        while window := list(islice(candidates, WINDOW)):
            taken = self.taken(session, window)
            free += [n for n in window if n not in taken][: wanted - len(free)]
            if len(free) == wanted:
                break
        return free


class IdAllocator(NumberPool):
    """Hands out uidNumbers by the configured strategy (``posix.uid_strategy``)."""

    def __init__(self, directory: Directory, posix: PosixSettings, base_dn: str) -> None:
        self.posix = posix
        self.base_dn = base_dn
        pool_dn = posix.id_pool_dn or f"cn=scim-ldap-ids,{base_dn}"
        super().__init__(
            directory,
            attribute="uidNumber",
            single=Slice(*posix.uid_range, pool_dn),
            slices=slices(posix, base_dn),
            range_setting="posix.uid_range",
        )

    def uid_for(
        self,
        session: Session,
        *,
        requested: int | None,
        external_id: str | None,
        user_name: str,
    ) -> int:
        """The uidNumber of a new account.

        A number the request carries wins under every strategy (the caller
        validates it); ``attribute`` requires one.
        """
        if requested is not None:
            return requested
        strategy = self.posix.uid_strategy
        if strategy == "attribute":
            raise InvalidValueException(
                detail=f"{UID_NUMBER_PATH} is required: this server takes uidNumbers from the "
                "request"
            )
        if strategy == "hash":
            return self._hashed(session, self._hash_source(external_id, user_name))
        return self.allocate(session)

    def release(self, session: Session, number: int) -> None:
        """``NumberPool.release`` under the allocate strategy (the others keep no counter)."""
        if self.posix.uid_strategy == "allocate":
            super().release(session, number)

    # ---- hash

    def _hash_source(self, external_id: str | None, user_name: str) -> str:
        """externalId verbatim (it is case-exact), else userName lower-cased (it is not).

        RFC 7643 section 3.1 (externalId caseExact) and 4.1.1 (userName caseExact false).
        """
        if self.posix.hash_source == "externalId" and external_id:
            return f"externalId:{external_id}"
        return f"userName:{user_name.lower()}"

    def _hashed(self, session: Session, source: str) -> int:
        """The number the source hashes to, or the next free one after it (wrapping)."""
        low, high = self.posix.uid_range
        size = high - low + 1
        digest = hashlib.sha256(source.encode("utf-8")).digest()
        home = int.from_bytes(digest[:8], "big") % size
        probes = (low + (home + step) % size for step in range(size))
        free = self._free(session, probes, 1)
        if not free:
            raise IdsExhausted(
                detail=f"Every uidNumber of posix.uid_range {low}-{high} is taken: widen the "
                "range, or send uidNumber"
            )
        return free[0]

    def check(
        self,
        session: Session,
        values: Mapping[Slot, SlotValue],
        current: Mapping[Slot, SlotValue] | None,
    ) -> None:
        """Refuse system ids and a uidNumber another account already has.

        Only numbers the request sets or changes (against ``current``) are
        checked, so an existing entry made by hand with a low id stays editable.
        """
        for slot, minimum in (
            (UID_NUMBER, self.posix.min_uid_number),
            (GID_NUMBER, self.posix.min_gid_number),
        ):
            value = values.get(slot)
            if not isinstance(value, int) or (current is not None and current.get(slot) == value):
                continue
            if value < minimum:
                raise InvalidValueException(
                    detail=f"{slot.path} {value} is below {minimum}: system ids are refused"
                )
            if slot == UID_NUMBER and value in self.taken(session, [value]):
                raise UniquenessException(
                    detail=f"{slot.path} {value} already belongs to another account"
                )

    def taken(self, session: Session, numbers: Sequence[int]) -> set[int]:
        """Which of ``numbers`` an account (or, with private groups, a group) already has."""
        private = self.posix.gid_strategy == "private-group"
        accounts = f"(&{ACCOUNT_FILTER}{_any_of('uidNumber', numbers)})"
        groups = f"(&(objectClass=posixGroup){_any_of('gidNumber', numbers)})"
        entries = session.search(
            self.base_dn,
            f"(|{accounts}{groups})" if private else accounts,
            ["objectClass", "uidNumber", "gidNumber"],
            action="check which uidNumbers are in use",
        )
        wanted = set(numbers)
        found: set[int] = set()
        for entry in entries:
            classes = _classes(entry)
            attributes = entry["attributes"]
            if "posixaccount" in classes or HIDDEN_CLASS.lower() in classes:
                found.update(_ints(attributes.get("uidNumber") or []))
            if private and "posixgroup" in classes:
                found.update(_ints(attributes.get("gidNumber") or []))
        return found & wanted


def _any_of(attribute: str, numbers: Iterable[int]) -> str:
    terms = "".join(f"({attribute}={int(n)})" for n in numbers)
    return f"(|{terms})"


class GidAllocator(NumberPool):
    """Hands out the gidNumbers of SCIM groups from ``groups.gid_range``.

    Its counter (``groups.id_pool_dn``) holds ``gidNumber``. A number is taken
    when any posixGroup or account under the base DN has it as gidNumber, so a
    new group never shares the number of a group made by hand, of a private
    group or of an account's primary group. Multi-provider slices
    (``posix.providers``) cover uidNumbers only: this counter must be written
    through one provider.
    """

    def __init__(self, directory: Directory, groups: GroupSettings, base_dn: str) -> None:
        self.base_dn = base_dn
        pool_dn = groups.id_pool_dn or f"cn=scim-ldap-gids,{base_dn}"
        super().__init__(
            directory,
            attribute="gidNumber",
            single=Slice(*groups.gid_range, pool_dn),
            range_setting="groups.gid_range",
        )

    def taken(self, session: Session, numbers: Sequence[int]) -> set[int]:
        """Which of ``numbers`` a posixGroup or an account holds as gidNumber."""
        entries = session.search(
            self.base_dn,
            f"(&(|(objectClass=posixGroup){ACCOUNT_FILTER}){_any_of('gidNumber', numbers)})",
            ["gidNumber"],
            action="check which gidNumbers are in use",
        )
        found: set[int] = set()
        for entry in entries:
            found.update(_ints(entry["attributes"].get("gidNumber") or []))
        return found & set(numbers)
