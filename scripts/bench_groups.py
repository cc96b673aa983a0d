"""Benchmark: SCIM requests on big groups next to the raw LDAP operations they become.

Starts a throwaway slapd, checks it has the group indexes (preflight), loads
users with raw LDAP adds (a few connections in parallel), and for each group
size makes a group with ``POST /Groups`` and gives it its members with raw
modifies of 5,000 ``memberUid`` and ``member`` values each (no SCIM bulk path).
The app runs in this process (FastAPI TestClient), so the LDAP operations of
each request are counted (the ``Session`` methods, as tests/ldap/test_round_trips.py
does), with the member values the searches brought back.

Timed at each size, as medians, side by side with the raw ldap3 ceiling of the
same run:

- PATCH add one member — raw: one modify adding its memberUid and member values;
- PATCH remove one member (the legacy ``Remove`` with a value list) — raw: one
  modify deleting them;
- PATCH ``replace`` of members with the same list plus one — raw: one read of the
  member values and one modify adding the new ones;
- GET ``excludedAttributes=members`` — raw: one base read of the group's attributes;
- GET with members — raw: one base read with the member values (SCIM also
  resolves them to ids, one search per 200).

Adding one member must not read the membership: the script fails when that
PATCH reads any member value or costs more operations than at the smallest size.

A PATCH carries at most 10,000 members (app/scim/groups.py); ``replace`` above
that answers 400 and is timed with the limit lifted here (marked ``*``).

Usage: ``.venv/bin/python scripts/bench_groups.py [--sizes 100,5000,50000] [--repeats N]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from benchlib import TOKEN
from fastapi import FastAPI
from fastapi.testclient import TestClient
from ldap3 import BASE, MODIFY_ADD, MODIFY_DELETE, Connection
from pydantic import SecretStr

import app.scim.groups as scim_groups
from app.config import AuthSettings, HttpSettings, Settings
from app.ldap.connection import Session
from app.ldap.groupentries import READ
from app.ldap.preflight import GROUP_INDEXES
from app.ldap.sandbox import Sandbox, SandboxDirectory
from app.main import create_app

GROUPS = "/scim/v2/Groups"
CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
MEMBER_ATTRIBUTES = ("memberUid", "member")
LOADERS = 8
CHUNK = 5_000
"""Member values per raw modify when the group is filled."""


@dataclass(frozen=True)
class Person:
    login: str
    dn: str
    id: str


@dataclass
class Counted:
    """LDAP operations of the app's sessions, and the member values searches returned."""

    calls: Counter[str] = field(default_factory=Counter)
    values: int = 0

    def clear(self) -> None:
        self.calls.clear()
        self.values = 0

    def summary(self) -> str:
        ops = " ".join(f"{k}={v}" for k, v in sorted(self.calls.items()))
        return f"{ops} values={self.values}"


@contextmanager
def counting() -> Iterator[Counted]:
    """Count every ``Session`` operation (and member values read) while in the block."""
    counted = Counted()
    originals = {name: getattr(Session, name) for name in ("search", "add", "modify", "rename")}
    originals["delete"] = Session.delete

    def wrap(name: str, original: Any) -> Any:
        def wrapper(self: Session, *args: Any, **kwargs: Any) -> Any:
            counted.calls[name] += 1
            result = original(self, *args, **kwargs)
            if name == "search":
                for entry in result:
                    attributes = entry.get("attributes", {})
                    for attribute in MEMBER_ATTRIBUTES:
                        counted.values += len(attributes.get(attribute, []) or [])
            return result

        return wrapper

    for name, original in originals.items():
        setattr(Session, name, wrap(name, original))
    try:
        yield counted
    finally:
        for name, original in originals.items():
            setattr(Session, name, original)


def connect(directory: SandboxDirectory) -> Connection:
    return Connection(directory.url, directory.bind_dn, directory.bind_password, auto_bind=True)


def load(directory: SandboxDirectory, count: int) -> list[Person]:
    """``count`` SCIM users added with raw LDAP adds, with their entryUUIDs."""

    def add_range(numbers: range) -> None:
        conn = connect(directory)
        for n in numbers:
            login = f"member{n:06d}"
            conn.add(
                f"uid={login},{directory.users_dn}",
                ["inetOrgPerson", "posixAccount", "shadowAccount", "scimUser"],
                {
                    "uid": login,
                    "cn": f"Member {n}",
                    "sn": f"Number{n}",
                    "scimUserName": f"{login}@example.com",
                    "scimActive": "TRUE",
                    "uidNumber": str(200000 + n),
                    "gidNumber": "10000",
                    "homeDirectory": f"/home/{login}",
                },
            )
            if conn.result["result"] != 0:
                raise RuntimeError(f"load failed at {login}: {conn.result}")
        conn.unbind()

    step = -(-count // LOADERS)
    with ThreadPoolExecutor(LOADERS) as pool:
        ranges = [range(s, min(s + step, count)) for s in range(0, count, step)]
        for future in [pool.submit(add_range, r) for r in ranges]:
            future.result()
    conn = connect(directory)
    entries = conn.extend.standard.paged_search(
        directory.users_dn,
        "(&(objectClass=scimUser)(uid=member*))",
        attributes=["uid", "entryUUID"],
        paged_size=1000,
        generator=True,
    )
    people = [
        Person(str(e["attributes"]["uid"][0]), str(e["dn"]), str(e["attributes"]["entryUUID"]))
        for e in entries
        if e.get("type") == "searchResEntry"
    ]
    conn.unbind()
    people.sort(key=lambda p: p.login)
    assert len(people) == count, (len(people), count)
    return people


def values_of(people: Sequence[Person]) -> dict[str, list[str]]:
    return {"memberUid": [p.login for p in people], "member": [p.dn for p in people]}


def fill(conn: Connection, dn: str, people: Sequence[Person]) -> None:
    """Give the group ``people`` as members with raw modifies of ``CHUNK`` values each."""
    for start in range(0, len(people), CHUNK):
        chunk = values_of(people[start : start + CHUNK])
        conn.modify(dn, {name: [(MODIFY_ADD, values)] for name, values in chunk.items()})
        if conn.result["result"] != 0:
            raise RuntimeError(f"filling the group failed: {conn.result}")


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return (time.perf_counter() - start) * 1000


@dataclass
class Row:
    size: int
    operation: str
    scim_ms: float
    raw_ms: float
    runs: int
    ops: str

    @property
    def ratio(self) -> float:
        return self.scim_ms / self.raw_ms if self.raw_ms else float("inf")


class Bench:
    def __init__(
        self, client: TestClient, directory: SandboxDirectory, repeats: int, counted: Counted
    ) -> None:
        self.client = client
        self.counted = counted
        self.directory = directory
        self.repeats = repeats
        self.raw = connect(directory)
        self.rows: list[Row] = []
        self.add_ops: dict[int, tuple[int, int]] = {}
        """Per size: LDAP operations and member values read by one PATCH add."""

    def runs(self, size: int, heavy: bool = False) -> int:
        """Fewer runs of what costs O(size) at large sizes, so the script stays in minutes."""
        if heavy and size >= 20_000:
            return max(3, self.repeats // 3)
        return self.repeats

    def group(self, people: Sequence[Person], name: str) -> tuple[str, str]:
        response = self.client.post(GROUPS, json={"schemas": [CORE_GROUP], "displayName": name})
        assert response.status_code == 201, response.text
        body = response.json()
        self.raw.search(self.directory.base_dn, f"(entryUUID={body['id']})", attributes=["1.1"])
        dn = str(self.raw.entries[0].entry_dn)
        fill(self.raw, dn, people)
        return str(body["id"]), dn

    def patch(self, group_id: str, *operations: dict[str, Any]) -> None:
        response = self.client.patch(
            f"{GROUPS}/{group_id}", json={"schemas": [PATCH_OP], "Operations": list(operations)}
        )
        assert response.status_code == 204, response.text[:500]

    def raw_modify(self, dn: str, kind: str, person: Person) -> None:
        changes = {name: [(kind, values)] for name, values in values_of([person]).items()}
        self.raw.modify(dn, changes)
        assert self.raw.result["result"] == 0, self.raw.result

    def raw_read(self, dn: str, members: bool) -> int:
        attributes = [*READ, *MEMBER_ATTRIBUTES] if members else READ
        self.raw.search(dn, "(objectClass=*)", BASE, attributes=attributes)
        assert len(self.raw.response or []) == 1
        return len(self.raw.response or [])

    def compare(
        self,
        size: int,
        name: str,
        runs: int,
        scim: Callable[[], object],
        raw: Callable[[], object],
        restore: Callable[[], object] = lambda: None,
        prepare: Callable[[], object] = lambda: None,
    ) -> Counted:
        """Time ``scim`` and ``raw`` ``runs`` times (after one warm-up each), in turns.

        ``prepare`` runs before each, ``restore`` after each, untimed. Returns the
        operations counted for the first (warm-up) SCIM request.
        """
        scim_times: list[float] = []
        raw_times: list[float] = []
        first = Counted()
        for run in range(runs + 1):
            prepare()
            self.counted.clear()
            took = timed(scim)
            if run == 0:
                first = Counted(Counter(self.counted.calls), self.counted.values)
            restore()
            prepare()
            raw_took = timed(raw)
            restore()
            if run:
                scim_times.append(took)
                raw_times.append(raw_took)
        self.row(size, name, scim_times, raw_times, first.summary())
        return first

    def measure(self, size: int, members: Sequence[Person], outsider: Person) -> None:
        group_id, dn = self.group(members, f"Bench {size}")
        add_op = {"op": "add", "path": "members", "value": [{"value": outsider.id}]}
        remove_op = {"op": "Remove", "path": "members", "value": [{"value": outsider.id}]}
        raw_add = partial(self.raw_modify, dn, MODIFY_ADD, outsider)
        raw_remove = partial(self.raw_modify, dn, MODIFY_DELETE, outsider)

        added = self.compare(
            size,
            "PATCH add 1 member",
            self.runs(size),
            partial(self.patch, group_id, add_op),
            raw_add,
            restore=raw_remove,
        )
        self.add_ops[size] = (sum(added.calls.values()), added.values)
        self.compare(
            size,
            "PATCH Remove 1 (legacy)",
            self.runs(size),
            partial(self.patch, group_id, remove_op),
            raw_remove,
            prepare=raw_add,
        )

        wanted = [{"value": p.id} for p in [*members, outsider]]
        replace_op = {"op": "replace", "path": "members", "value": wanted}
        limit = scim_groups.MAX_MEMBERS_PER_REQUEST
        lifted = len(wanted) > limit

        def raw_replace() -> None:
            self.raw_read(dn, members=True)
            raw_add()

        if lifted:
            scim_groups.MAX_MEMBERS_PER_REQUEST = len(wanted)
        try:
            self.compare(
                size,
                "PATCH replace (+1)" + ("*" if lifted else ""),
                self.runs(size, heavy=True),
                partial(self.patch, group_id, replace_op),
                raw_replace,
                restore=raw_remove,
            )
        finally:
            scim_groups.MAX_MEMBERS_PER_REQUEST = limit

        def get(members_read: bool) -> None:
            params = {} if members_read else {"excludedAttributes": "members"}
            response = self.client.get(f"{GROUPS}/{group_id}", params=params)
            assert response.status_code == 200, response.text[:500]
            shown = response.json().get("members")
            assert (len(shown) if shown is not None else None) == (size if members_read else None)

        self.compare(
            size,
            "GET excluded members",
            self.runs(size),
            partial(get, False),
            partial(self.raw_read, dn, False),
        )
        self.compare(
            size,
            "GET with members",
            self.runs(size, heavy=True),
            partial(get, True),
            partial(self.raw_read, dn, True),
        )
        response = self.client.delete(f"{GROUPS}/{group_id}")
        assert response.status_code == 204, response.text

    def row(self, size: int, name: str, scim: list[float], raw: list[float], ops: str) -> None:
        row = Row(size, name, statistics.median(scim), statistics.median(raw), len(scim), ops)
        self.rows.append(row)
        print(
            f"  {size:>7} {name:<24} {row.scim_ms:>9.1f} ms  raw {row.raw_ms:>8.1f} ms  {ops}",
            flush=True,
        )


def print_table(rows: Sequence[Row]) -> None:
    print()
    header = f"{'members':>8}  {'operation':<24}{'runs':>5}{'SCIM ms':>10}{'raw ms':>9}"
    print(f"{header}{'SCIM/raw':>10}  LDAP ops per SCIM request")
    for row in rows:
        print(
            f"{row.size:>8}  {row.operation:<24}{row.runs:>5}{row.scim_ms:>10.1f}"
            f"{row.raw_ms:>9.1f}{row.ratio:>10.1f}  {row.ops}"
        )
    if any(row.operation.endswith("*") for row in rows):
        limit = scim_groups.MAX_MEMBERS_PER_REQUEST
        print(f"* over the {limit:,} members a PATCH operation may carry (400 as served)")
    print("values = memberUid/member values the request's searches read back")


def preflight(app: FastAPI, directory: SandboxDirectory) -> None:
    """What big groups need of the directory: the group indexes, and its size limits.

    ``olcSizeLimit`` bounds the entries of a search, not the values of an
    attribute; the member resolution searches ``CHUNK`` entries at a time.
    """
    warnings = app.state.groups.groups.preflight_warnings()
    if warnings:
        raise SystemExit("the directory lacks what groups need: " + "; ".join(warnings))
    conn = connect(directory)
    conn.search("cn=config", "(olcSizeLimit=*)", attributes=["olcSizeLimit"])
    limits = {str(e.entry_dn): [str(v) for v in e.olcSizeLimit.values] for e in conn.entries}
    conn.search("cn=config", "(olcLimits=*)", attributes=["olcLimits"])
    limits.update({str(e.entry_dn): [str(v) for v in e.olcLimits.values] for e in conn.entries})
    conn.unbind()
    print(f"preflight: group indexes {', '.join(sorted(GROUP_INDEXES))} present; limits {limits}")


def check_add_is_constant(add_ops: dict[int, tuple[int, int]]) -> None:
    """Adding one member reads no member value and costs what it costs at the smallest size."""
    smallest = add_ops[min(add_ops)]
    for size, (ops, values) in add_ops.items():
        assert values == 0, f"PATCH add on {size} members read {values} member values"
        assert ops == smallest[0], f"PATCH add on {size} members took {ops} LDAP operations"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--sizes",
        default="100,5000,50000",
        help="comma-separated group sizes (default 100,5000,50000)",
    )
    parser.add_argument("--repeats", type=int, default=15, help="runs per median (default 15)")
    args = parser.parse_args(argv)
    sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()})
    with Sandbox() as sandbox:
        directory = sandbox.directory
        began = time.perf_counter()
        people = load(directory, max(sizes) + 1)
        print(f"loaded {len(people)} users in {time.perf_counter() - began:.1f} s", flush=True)
        settings = Settings(
            ldap=directory.ldap_settings(),
            auth=AuthSettings(tokens=[SecretStr(TOKEN)]),
            http=HttpSettings(max_body_bytes=64 << 20, request_timeout=600),
            log_level="warning",
        )
        app = create_app(settings)
        preflight(app, directory)
        with (
            TestClient(app, headers={"Authorization": f"Bearer {TOKEN}"}) as client,
            counting() as counted,
        ):
            bench = Bench(client, directory, args.repeats, counted)
            for size in sizes:
                began = time.perf_counter()
                bench.measure(size, people[:size], people[-1])
                print(f"  {size} members done in {time.perf_counter() - began:.1f} s", flush=True)
            bench.raw.unbind()
    print_table(bench.rows)
    check_add_is_constant(bench.add_ops)
    print("PATCH add of one member reads no member value at any size")
    return 0


if __name__ == "__main__":
    sys.exit(main())
