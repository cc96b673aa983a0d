"""uidNumber allocation, decided in the directory.

Several server processes (workers, replicas behind a load balancer) may create
users at the same moment, so the next number cannot live in memory. It lives
in a counter entry (object class ``scimIdPool``, ``posix.id_pool_dn``) whose
``uidNumber`` is the next number to hand out. A server claims numbers with a
compare-and-swap: one modify that deletes the value it read and adds the next
one. LDAP applies a modify atomically (RFC 4511 section 4.6), and deleting a
value that is no longer there fails with ``noSuchAttribute``, so when two
servers read the same value only one of them wins; the other reads again.
Within one process allocations take turns, so only other processes compete for
the counter: without that, every request thread of every process would race
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

All servers must write to the same directory server (or the same provider of
a replicated setup): two providers of a multi-provider setup can each accept
the same compare-and-swap before replication reconciles them.

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

from ldap3 import MODIFY_ADD, MODIFY_DELETE
from scim2_models import (
    InvalidValueException,
    NotFoundException,
    SCIMException,
    UniquenessException,
)

from app.attributes import GID_NUMBER, UID_NUMBER, Slot, SlotValue
from app.config import PosixSettings
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


class IdAllocator:
    """Hands out uidNumbers by the configured strategy (``posix.uid_strategy``)."""

    def __init__(self, directory: Directory, posix: PosixSettings, base_dn: str) -> None:
        self.directory = directory
        self.posix = posix
        self.base_dn = base_dn
        self.pool_dn = posix.id_pool_dn or f"cn=scim-ldap-ids,{base_dn}"
        self._turn = threading.Lock()

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
        with self._turn:
            return self._allocate(session)

    # ---- allocate

    def _allocate(self, session: Session) -> int:
        low, high = self.posix.uid_range
        for _attempt in range(ATTEMPTS):
            counter = self._read_counter(session)
            start = low if counter.value is None else max(counter.value, low)
            free = self._free(session, iter(range(start, high + 1)), 2)
            if not free:
                raise IdsExhausted(
                    detail=f"No uidNumber is left in posix.uid_range {low}-{high} (the counter "
                    f"at {self.pool_dn} is at {start}): widen the range, or send uidNumber"
                )
            number, following = free[0], (free[1] if len(free) > 1 else high + 1)
            if self._claim(session, counter, following):
                return number
            log.debug("the uidNumber counter moved under us; reading it again")
        log.warning("gave up allocating a uidNumber after %d conflicting attempts", ATTEMPTS)
        raise DirectoryUnavailable(
            detail="Other servers kept allocating uidNumbers at the same time; retry later"
        )

    def release(self, session: Session, number: int) -> None:
        """Give back a number whose account was not made, if no one allocated after it.

        The counter moves back from ``number + 1`` to ``number`` with the same
        compare-and-swap as a claim; when another allocation came in between,
        the number stays unused. A number whose account was in fact made (its
        answer lost) is skipped by the next allocation's collision search.
        """
        if self.posix.uid_strategy != "allocate":
            return
        code = writes.modify(
            session,
            self.pool_dn,
            {"uidNumber": [(MODIFY_DELETE, [str(number + 1)]), (MODIFY_ADD, [str(number)])]},
            tolerate=(writes.NO_SUCH_ATTRIBUTE, writes.CONSTRAINT_VIOLATION, writes.NO_SUCH_OBJECT),
            action="give back an unused uidNumber",
        )
        if code != writes.SUCCESS:
            log.info("uidNumber %d stays unused: another allocation followed it", number)

    def _read_counter(self, session: Session) -> Counter:
        entries = session.search(
            self.pool_dn,
            "(objectClass=*)",
            ["uidNumber"],
            scope="BASE",
            action="read the uidNumber counter",
        )
        if not entries:
            return Counter(exists=False, value=None)
        values = _ints(entries[0]["attributes"].get("uidNumber") or [])
        return Counter(exists=True, value=values[0] if values else None)

    def _claim(self, session: Session, counter: Counter, following: int) -> bool:
        """Move the counter from what was read to ``following``; False if another writer won."""
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
            self.pool_dn,
            {"uidNumber": changes},
            tolerate=(*lost, writes.NO_SUCH_OBJECT),
            action="advance the uidNumber counter",
        )
        return code == writes.SUCCESS

    def _create_counter(self, session: Session, following: int) -> bool:
        attributes: dict[str, Any] = {"objectClass": ["top", POOL_CLASS]}
        for attribute, value in rdn_values(self.pool_dn):
            attributes[attribute] = value
        attributes["uidNumber"] = str(following)
        try:
            code = writes.add(
                session,
                self.pool_dn,
                attributes,
                tolerate=(writes.ENTRY_ALREADY_EXISTS,),
                action=f"create the uidNumber counter {self.pool_dn}",
            )
        except (NotFoundException, InvalidValueException) as exc:
            raise DirectoryFailure(
                detail=f"Cannot create the uidNumber counter {self.pool_dn}: {exc.detail}; "
                "posix.id_pool_dn must be a cn= entry below an existing entry, and the "
                f"directory must have the {POOL_CLASS} object class (schema scim-ldap.ldif)"
            ) from None
        return code == writes.SUCCESS

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

    # ---- collisions

    def _free(self, session: Session, candidates: Iterator[int], wanted: int) -> list[int]:
        """The first ``wanted`` candidates no account holds (fewer when they run out)."""
        free: list[int] = []
        while window := list(islice(candidates, WINDOW)):
            taken = self.taken(session, window)
            free += [n for n in window if n not in taken][: wanted - len(free)]
            if len(free) == wanted:
                break
        return free

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
