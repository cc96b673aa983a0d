"""uidNumber allocation against a real slapd: counter, collisions, races, hash, exhaustion."""

from __future__ import annotations

import itertools
import multiprocessing
from collections import Counter as Calls
from collections.abc import Iterator
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from typing import Any

import pytest
from ldap3 import Connection
from scim2_models import InvalidValueException

from app.config import LdapSettings, PosixSettings
from app.ldap.connection import Directory, Session
from app.ldap.errors import DirectoryUnavailable
from app.ldap.ids import ATTEMPTS, WINDOW, Counter, IdAllocator, IdsExhausted
from app.ldap.sandbox import Sandbox
from tests.ldap.scratch import Scratch

UID_PATH = "urn:ietf:params:scim:schemas:extension:posix:2.0:User:uidNumber"

_blocks = itertools.count(70_000, 500)


def fresh_range(size: int = 100) -> tuple[int, int]:
    """Numbers no other test uses."""
    low = next(_blocks)
    assert size <= 500
    return low, low + size - 1


@pytest.fixture
def scratch(sandbox: Sandbox, ldap: Connection) -> Iterator[Scratch]:
    box = Scratch(ldap, sandbox.directory.base_dn, "ids")
    yield box
    box.remove()


def make(
    pool: Directory,
    scratch: Scratch,
    uid_range: tuple[int, int],
    kind: type[IdAllocator] = IdAllocator,
    **posix: Any,
) -> IdAllocator:
    settings = PosixSettings(uid_range=uid_range, id_pool_dn=scratch.child("counter"), **posix)
    return kind(pool, settings, pool.settings.base_dn)


def allocate(allocator: IdAllocator, count: int = 1, **request: Any) -> list[int]:
    arguments: dict[str, Any] = {"requested": None, "external_id": None, "user_name": "someone"}
    arguments.update(request)
    with allocator.directory.session() as session:
        return [allocator.uid_for(session, **arguments) for _ in range(count)]


def counter_value(scratch: Scratch) -> int | None:
    entry = scratch.read(scratch.child("counter"), "uidNumber")
    return None if entry is None else int(entry["uidNumber"][0])


# ---- allocate


def test_numbers_increase_and_stay_in_range(pool: Directory, scratch: Scratch) -> None:
    low, high = fresh_range(10)
    allocator = make(pool, scratch, (low, high))
    numbers = allocate(allocator, 5)
    assert numbers == list(range(low, low + 5))
    numbers += allocate(allocator, 5)
    assert numbers == list(range(low, high + 1))
    entry = scratch.read(scratch.child("counter"), "objectClass", "uidNumber", "cn")
    assert entry is not None
    assert "scimIdPool" in entry["objectClass"]
    assert entry["cn"] == ["counter"]
    assert entry["uidNumber"] == [str(high + 1)]


def test_round_trips_per_allocation(
    pool: Directory, scratch: Scratch, monkeypatch: pytest.MonkeyPatch
) -> None:
    allocator = make(pool, scratch, fresh_range())
    calls: Calls[str] = Calls()
    with pool.session() as session:
        for name in ("search", "add", "modify"):
            original = getattr(session.conn, name)

            def counted(*args: Any, _name: str = name, _call: Any = original, **kw: Any) -> Any:
                calls[_name] += 1
                return _call(*args, **kw)

            monkeypatch.setattr(session.conn, name, counted)

        def cost() -> dict[str, int]:
            calls.clear()
            allocator.uid_for(session, requested=None, external_id=None, user_name="x")
            return dict(calls)

        assert cost() == {"search": 2, "add": 1}
        assert cost() == {"search": 2, "modify": 1}
        assert cost() == {"search": 2, "modify": 1}


def test_numbers_taken_by_hand_are_skipped(pool: Directory, scratch: Scratch) -> None:
    low, high = fresh_range()
    scratch.account("hand0", low)
    scratch.account("hand1", low + 1)
    scratch.group("not-private", low + 2)
    allocator = make(pool, scratch, (low, high))
    assert allocate(allocator) == [low + 2]
    scratch.account("hand3", low + 3)
    assert allocate(allocator) == [low + 4]
    assert counter_value(scratch) == low + 5


def test_the_counter_never_names_a_taken_number(pool: Directory, scratch: Scratch) -> None:
    """The ``unique`` overlay refuses a counter value that an account holds."""
    low, high = fresh_range()
    scratch.account("hand1", low + 1)
    scratch.account("hand2", low + 2)
    allocator = make(pool, scratch, (low, high))
    assert allocate(allocator) == [low]
    assert counter_value(scratch) == low + 3
    assert allocate(allocator, 2) == [low + 3, low + 4]
    for offset in range(WINDOW):
        scratch.account(f"hand-w{offset}", low + 6 + offset)
    assert allocate(allocator) == [low + 5]
    assert counter_value(scratch) == low + 6 + WINDOW


def test_the_last_number_of_the_range_moves_the_counter_past_it(
    pool: Directory, scratch: Scratch
) -> None:
    low, high = fresh_range(2)
    allocator = make(pool, scratch, (low, high))
    assert allocate(allocator, 2) == [low, high]
    assert counter_value(scratch) == high + 1
    with pytest.raises(IdsExhausted):
        allocate(allocator)


def test_a_run_longer_than_the_window_is_skipped_in_one_claim(
    pool: Directory, scratch: Scratch
) -> None:
    low, high = fresh_range()
    for offset in range(WINDOW + 5):
        scratch.account(f"hand{offset}", low + offset)
    allocator = make(pool, scratch, (low, high))
    assert allocate(allocator) == [low + WINDOW + 5]


def test_private_groups_block_their_gid(pool: Directory, scratch: Scratch) -> None:
    low, high = fresh_range()
    scratch.group("someone-private", low)
    allocator = make(pool, scratch, (low, high), gid_strategy="private-group")
    assert allocate(allocator) == [low + 1]


def test_numbers_are_never_reused(pool: Directory, scratch: Scratch, ldap: Connection) -> None:
    low, high = fresh_range()
    allocator = make(pool, scratch, (low, high))
    [first] = allocate(allocator)
    account = scratch.account("leaver", first)
    assert ldap.delete(account), ldap.result
    assert allocate(allocator) == [first + 1]


def test_a_counter_entry_without_a_number_starts_at_the_low_end(
    pool: Directory, scratch: Scratch, ldap: Connection
) -> None:
    low, high = fresh_range()
    assert ldap.add(scratch.child("counter"), ["scimIdPool"], {"cn": "counter"}), ldap.result
    assert allocate(make(pool, scratch, (low, high)), 2) == [low, low + 1]
    assert counter_value(scratch) == low + 2


def test_requested_number_wins_and_leaves_the_counter_alone(
    pool: Directory, scratch: Scratch
) -> None:
    allocator = make(pool, scratch, fresh_range())
    assert allocate(allocator, requested=4321) == [4321]
    assert counter_value(scratch) is None


def test_a_counter_below_a_raised_range_jumps_to_it(pool: Directory, scratch: Scratch) -> None:
    low, high = fresh_range(500)
    assert allocate(make(pool, scratch, (low, low + 99))) == [low]
    assert allocate(make(pool, scratch, (low + 300, high))) == [low + 300]
    assert counter_value(scratch) == low + 301


# ---- concurrency


def test_a_concurrent_claim_between_read_and_write_is_retried(
    pool: Directory, scratch: Scratch
) -> None:
    low, high = fresh_range()
    other = make(pool, scratch, (low, high))
    taken_by_other: list[int] = []

    class Interleaved(IdAllocator):
        reads = 0

        def _read_counter(self, session: Session) -> Counter:
            counter = super()._read_counter(session)
            self.reads += 1
            if self.reads == 1:
                taken_by_other.extend(allocate(other))
            return counter

    assert allocate(other) == [low]
    allocator = make(pool, scratch, (low, high), Interleaved)
    assert allocate(allocator) == [low + 2]
    assert taken_by_other == [low + 1]
    assert isinstance(allocator, Interleaved)
    assert allocator.reads == 2


def test_two_servers_creating_the_counter_at_once(pool: Directory, scratch: Scratch) -> None:
    low, high = fresh_range()

    class Stale(IdAllocator):
        reads = 0

        def _read_counter(self, session: Session) -> Counter:
            self.reads += 1
            if self.reads == 1:
                return Counter(exists=False, value=None)
            return super()._read_counter(session)

    assert allocate(make(pool, scratch, (low, high))) == [low]
    late = make(pool, scratch, (low, high), Stale)
    assert allocate(late) == [low + 1]
    assert isinstance(late, Stale)
    assert late.reads == 2


def test_endless_contention_gives_up_with_503(
    pool: Directory, scratch: Scratch, ldap: Connection
) -> None:
    low, high = fresh_range(500)
    other = make(pool, scratch, (low, high))
    allocate(other)

    class Starved(IdAllocator):
        reads = 0

        def _read_counter(self, session: Session) -> Counter:
            counter = super()._read_counter(session)
            self.reads += 1
            allocate(other)
            return counter

    starved = make(pool, scratch, (low, high), Starved)
    with pytest.raises(DirectoryUnavailable) as caught:
        allocate(starved)
    assert caught.value.status == 503
    assert isinstance(starved, Starved)
    assert starved.reads == ATTEMPTS


def _allocate_in_process(
    ldap_settings: LdapSettings, posix: PosixSettings, count: int, go: Event, out: Queue[Any]
) -> None:
    directory = Directory(ldap_settings)
    allocator = IdAllocator(directory, posix, ldap_settings.base_dn)
    try:
        go.wait(30)
        numbers = []
        for _ in range(count):
            with directory.session() as session:
                numbers.append(
                    allocator.uid_for(session, requested=None, external_id=None, user_name="p")
                )
        out.put(numbers)
    except Exception as exc:
        out.put(repr(exc))
    finally:
        directory.close()


def test_two_processes_never_get_the_same_number(sandbox: Sandbox, scratch: Scratch) -> None:
    low, high = fresh_range(100)
    posix = PosixSettings(uid_range=(low, high), id_pool_dn=scratch.child("counter"))
    context = multiprocessing.get_context("spawn")
    go = context.Event()
    out: Queue[Any] = context.Queue()
    settings = sandbox.directory.admin_settings()
    workers = [
        context.Process(target=_allocate_in_process, args=(settings, posix, 25, go, out))
        for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    go.set()
    results = [out.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)
    assert all(isinstance(r, list) for r in results), results
    numbers = [n for result in results for n in result]
    assert len(numbers) == 50
    assert sorted(numbers) == list(range(low, low + 50))
    assert all(result == sorted(result) for result in results)
    assert counter_value(scratch) == low + 50


# ---- exhaustion


def test_exhausted_range_is_a_clear_500(pool: Directory, scratch: Scratch) -> None:
    low, high = fresh_range(2)
    allocator = make(pool, scratch, (low, high))
    assert allocate(allocator, 2) == [low, high]
    with pytest.raises(IdsExhausted) as caught:
        allocate(allocator)
    assert caught.value.status == 500
    assert f"{low}-{high}" in caught.value.detail
    assert counter_value(scratch) == high + 1


def test_a_range_full_of_hand_made_accounts_is_exhausted(pool: Directory, scratch: Scratch) -> None:
    low, high = fresh_range(2)
    scratch.account("full0", low)
    scratch.account("full1", high)
    with pytest.raises(IdsExhausted):
        allocate(make(pool, scratch, (low, high)))
    assert counter_value(scratch) is None


# ---- hash


def test_hash_is_deterministic_and_in_range(pool: Directory, scratch: Scratch) -> None:
    low, high = fresh_range(500)
    first = make(pool, scratch, (low, high), uid_strategy="hash")
    second = make(pool, scratch, (low, high), uid_strategy="hash")
    [number] = allocate(first, external_id="00u1abcd", user_name="alice")
    assert low <= number <= high
    assert allocate(second, external_id="00u1abcd", user_name="bob") == [number]
    assert counter_value(scratch) is None


def test_hash_falls_back_to_the_user_name(pool: Directory, scratch: Scratch) -> None:
    uid_range = fresh_range(500)
    by_external = make(pool, scratch, uid_range, uid_strategy="hash")
    by_name = make(pool, scratch, uid_range, uid_strategy="hash", hash_source="userName")
    without_external = allocate(by_external, user_name="Alice@Example.com")
    assert allocate(by_name, external_id="00u1", user_name="alice@example.com") == without_external


def test_hash_probes_past_taken_numbers_and_wraps(pool: Directory, scratch: Scratch) -> None:
    low, high = fresh_range(5)
    allocator = make(pool, scratch, (low, high), uid_strategy="hash")
    [home] = allocate(allocator, external_id="probe")
    scratch.account("probe-home", home)
    following = low + (home - low + 1) % 5
    assert allocate(allocator, external_id="probe") == [following]
    for offset in range(1, 4):
        scratch.account(f"probe{offset}", low + (home - low + offset) % 5)
    last = low + (home - low + 4) % 5
    assert allocate(allocator, external_id="probe") == [last]
    scratch.account("probe4", last)
    with pytest.raises(IdsExhausted) as caught:
        allocate(allocator, external_id="probe")
    assert f"{low}-{high}" in caught.value.detail


# ---- attribute


def test_attribute_strategy_requires_the_number(pool: Directory, scratch: Scratch) -> None:
    allocator = make(pool, scratch, fresh_range(), uid_strategy="attribute")
    with pytest.raises(InvalidValueException) as caught:
        allocate(allocator)
    assert caught.value.status == 400
    assert UID_PATH in caught.value.detail
    assert allocate(allocator, requested=2345) == [2345]
    assert counter_value(scratch) is None
