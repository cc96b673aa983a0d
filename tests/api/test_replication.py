"""Two server processes on two OpenLDAP providers in multi-provider replication.

Both processes list both providers in ``ldap.urls`` and the same ``posix.providers``
slices; process A lists provider 1 first and process B provider 2, so creates go
through both providers at once.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter as Tally
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from ldap3 import SUBTREE

from tests.api.helpers import CORE, POSIX, unique
from tests.conftest import TOKEN
from tests.servers import serving

if TYPE_CHECKING:
    from tests.ldap.replicas import Replicas

pytest_plugins = ["tests.ldap.replicas"]

CREATES = 200
WORKERS = 40
SLICE = 5000
LOGIN_GROUP = "linux-login"
_ranges = iter(range(100_000, 500_000, 2 * SLICE))


@dataclass
class Outcome:
    """One create: which server took it, when it ended, what it answered."""

    server: int
    login: str
    started: float
    ended: float
    status: int
    body: dict[str, Any]


@contextmanager
def servers(pair: Replicas) -> Iterator[tuple[list[httpx.Client], tuple[int, int, int]]]:
    """Two ``python -m app serve`` processes, A preferring provider 1 and B provider 2.

    Yields a client per server and the slices' bounds (low of 1, low of 2, high).
    """
    low = next(_ranges)
    with pair.connection(0) as conn:
        group = f"cn={LOGIN_GROUP},{pair.directory.groups_dn}"
        conn.add(group, ["posixGroup"], {"cn": LOGIN_GROUP, "gidNumber": "9000"})
    pair.wait_converged()
    directory = pair.directory
    providers = [
        {
            "url": url,
            "uid_range": [start, start + SLICE - 1],
            "id_pool_dn": f"cn=ids-{start},{directory.counters_dn}",
        }
        for url, start in ((pair.urls[0], low), (pair.urls[1], low + SLICE))
    ]
    base = {
        "SCIM_LDAP_LDAP__BIND_DN": directory.bind_dn,
        "SCIM_LDAP_LDAP__BIND_PASSWORD": directory.bind_password,
        "SCIM_LDAP_LDAP__BASE_DN": directory.base_dn,
        "SCIM_LDAP_LDAP__CONNECT_TIMEOUT": "2",
        "SCIM_LDAP_LDAP__RECEIVE_TIMEOUT": "5",
        "SCIM_LDAP_AUTH__TOKENS": json.dumps([TOKEN]),
        "SCIM_LDAP_POSIX__UID_RANGE": json.dumps([low, low + 2 * SLICE - 1]),
        "SCIM_LDAP_POSIX__PROVIDERS": json.dumps(providers),
        "SCIM_LDAP_POSIX__GID_STRATEGY": "private-group",
        "SCIM_LDAP_ACCOUNTS__DISABLE": json.dumps(["lock", "expire", "hide", "remove-group"]),
        "SCIM_LDAP_ACCOUNTS__LOGIN_GROUP": LOGIN_GROUP,
        "SCIM_LDAP_LOG_LEVEL": "warning",
    }
    environments = [
        {**base, "SCIM_LDAP_LDAP__URLS": json.dumps(urls)} for urls in (pair.urls, pair.urls[::-1])
    ]
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with serving(environments) as servers:
        clients = [
            httpx.Client(base_url=f"{url}/scim/v2", headers=headers, timeout=60) for url in servers
        ]
        try:
            yield clients, (low, low + SLICE, low + 2 * SLICE - 1)
        finally:
            for client in clients:
                client.close()


def load(
    clients: list[httpx.Client],
    prefix: str,
    count: int = CREATES,
    after: Callable[[int], None] | None = None,
) -> list[Outcome]:
    """``count`` creates without uidNumber, alternating between the servers.

    ``after`` is called with the number of creates finished so far, after each.
    """
    done = 0
    lock = threading.Lock()

    def create(index: int) -> Outcome:
        nonlocal done
        login = f"{prefix}{index}"
        body = {"schemas": [CORE, POSIX], "userName": login, POSIX: {}}
        started = time.monotonic()
        try:
            response = clients[index % 2].post("/Users", json=body)
            status, answer = response.status_code, response.json()
        except httpx.TransportError as exc:
            status, answer = 0, {"detail": type(exc).__name__}
        outcome = Outcome(index % 2, login, started, time.monotonic(), status, answer)
        with lock:
            done += 1
            finished = done
        if after is not None:
            after(finished)
        return outcome

    with ThreadPoolExecutor(max_workers=WORKERS) as threads:
        return list(threads.map(create, range(count)))


def stored(pair: Replicas, index: int, prefix: str) -> dict[str, dict[str, Any]]:
    """Every user and group whose name starts with ``prefix`` on provider ``index``, by DN."""
    with pair.connection(index) as conn:
        conn.search(
            pair.directory.base_dn,
            f"(|(uid={prefix}*)(cn={prefix}*)(cn={LOGIN_GROUP}))",
            SUBTREE,
            attributes=[
                "objectClass",
                "uid",
                "uidNumber",
                "gidNumber",
                "homeDirectory",
                "memberUid",
                "entryUUID",
                "scimPending",
            ],
            paged_size=500,
        )
        return {
            str(e["dn"]).lower(): {
                name: sorted(value) if isinstance(value, list) else value
                for name, value in e["attributes"].items()
            }
            for e in conn.response or []
            if e.get("type") == "searchResEntry"
        }


def divergence(pair: Replicas, prefix: str) -> list[str]:
    """The DNs whose entries differ between the providers, each with both versions."""
    views = [stored(pair, index, prefix) for index in (0, 1)]
    return [
        f"{dn}: {views[0].get(dn)} / {views[1].get(dn)}"
        for dn in sorted(set(views[0]) | set(views[1]))
        if views[0].get(dn) != views[1].get(dn)
    ]


def problems(pair: Replicas, prefix: str, created: list[Outcome]) -> list[str]:
    """What is wrong on either provider: a created account missing or partial, a duplicate."""
    found: list[str] = []
    for index in (0, 1):
        found += [
            f"provider {index + 1}: {problem}"
            for problem in _problems(stored(pair, index, prefix), pair.directory.base_dn, created)
        ]
    return found


def _problems(view: dict[str, dict[str, Any]], base: str, created: list[Outcome]) -> list[str]:
    found: list[str] = []
    users = {dn: a for dn, a in view.items() if "posixAccount" in a.get("objectClass", [])}
    groups = {dn: a for dn, a in view.items() if "posixGroup" in a.get("objectClass", [])}
    uid_numbers = Tally(a["uidNumber"] for a in users.values())
    gid_numbers = Tally(a["gidNumber"] for a in groups.values())
    logins = Tally(str(a["uid"][0]).lower() for a in users.values())
    found += [f"uidNumber {n} held {c} times" for n, c in uid_numbers.items() if c > 1]
    found += [f"gidNumber {n} held {c} times" for n, c in gid_numbers.items() if c > 1]
    found += [f"login {n} held {c} times" for n, c in logins.items() if c > 1]
    members = set(view.get(f"cn={LOGIN_GROUP},ou=groups,{base}".lower(), {}).get("memberUid", []))
    for outcome in created:
        user = view.get(f"uid={outcome.login},ou=people,{base}".lower())
        group = view.get(f"cn={outcome.login},ou=groups,{base}".lower())
        number = outcome.body[POSIX]["uidNumber"]
        if user is None or user["entryUUID"] != outcome.body["id"]:
            found.append(f"{outcome.login} (201) is missing")
            continue
        if user["uidNumber"] != number or user["gidNumber"] != number:
            found.append(f"{outcome.login} holds {user['uidNumber']}/{user['gidNumber']}")
        if group is None or group["gidNumber"] != number:
            found.append(f"{outcome.login} has no private group {number}")
        if outcome.login not in members:
            found.append(f"{outcome.login} is not in {LOGIN_GROUP}")
    return found


def leftovers(pair: Replicas, prefix: str, failed: list[Outcome]) -> tuple[list[str], list[str]]:
    """Of the failed creates: accounts made whole (ghosts) and accounts made in part."""
    base = pair.directory.base_dn
    view = stored(pair, 0, prefix)
    members = set(view.get(f"cn={LOGIN_GROUP},ou=groups,{base}".lower(), {}).get("memberUid", []))
    whole: list[str] = []
    part: list[str] = []
    for outcome in failed:
        user = view.get(f"uid={outcome.login},ou=people,{base}".lower())
        group = view.get(f"cn={outcome.login},ou=groups,{base}".lower())
        if user is None and group is None:
            continue
        if user is not None and group is not None and outcome.login in members:
            whole.append(outcome.login)
        else:
            has = [
                name
                for name, present in (
                    ("account", user is not None),
                    ("marked pending", bool(user and user.get("scimPending"))),
                    ("private group", group is not None),
                    (LOGIN_GROUP, outcome.login in members),
                )
                if present
            ]
            part.append(f"{outcome.login} ({', '.join(has)})")
    return whole, part


def test_concurrent_creates_through_two_providers_never_share_a_number(
    replicas: Replicas,
) -> None:
    prefix = unique("rp")
    with servers(replicas) as (clients, (first, second, high)):
        started = time.monotonic()
        outcomes = load(clients, prefix)
        elapsed = time.monotonic() - started
    statuses = Tally(o.status for o in outcomes)
    convergence = replicas.wait_converged()
    created = [o for o in outcomes if o.status == 201]
    numbers = [o.body[POSIX]["uidNumber"] for o in created]
    through = Tally("provider 1" if n < second else "provider 2" for n in numbers)
    print(
        f"\n{CREATES} creates through two servers and two providers in {elapsed:.2f} s: "
        f"{dict(statuses)}, {dict(through)}; converged {convergence:.3f} s after the last"
    )
    assert statuses == {201: CREATES}, [o.body for o in outcomes if o.status != 201]
    assert through["provider 1"] > 0 and through["provider 2"] > 0
    assert all(first <= n <= high for n in numbers)
    assert problems(replicas, prefix, created) == []
    assert divergence(replicas, prefix) == []


def test_a_provider_killed_under_load_fails_over_and_loses_nothing(
    replicas: Replicas,
) -> None:
    prefix = unique("rk")
    killed: list[float] = []
    victim = replicas.providers[0]

    def kill_midway(finished: int) -> None:
        if finished == CREATES // 3 and not killed:
            victim.kill_server()
            killed.append(time.monotonic())

    try:
        with servers(replicas) as (clients, (_first, second, _high)):
            outcomes = load(clients, prefix, after=kill_midway)
            assert killed, "the provider was not killed"
            victim.start_server()
            restarted = time.monotonic()
            convergence = replicas.wait_converged(timeout=60)
            converged_after = time.monotonic() - restarted
            after = load(clients, f"{prefix}x", count=20)
            failed = [o for o in outcomes if o.status != 201]
            ghosts, half = leftovers(replicas, prefix, failed)
            retried = [
                clients[o.server].post(
                    "/Users", json={"schemas": [CORE, POSIX], "userName": o.login, POSIX: {}}
                )
                for o in failed
            ]
            replicas.wait_converged()
            _, half_after_retry = leftovers(replicas, prefix, failed)
            diverged = divergence(replicas, prefix)
    finally:
        if not victim.running:
            victim.start_server()
    kill = killed[0]
    statuses = Tally(o.status for o in outcomes)
    in_flight = [o for o in outcomes if o.started < kill < o.ended]
    moved = [
        o
        for o in outcomes
        if o.server == 0 and o.status == 201 and o.body[POSIX]["uidNumber"] >= second
    ]
    failover = min(o.ended for o in moved) - kill if moved else float("nan")
    created = [o for o in outcomes if o.status == 201]
    print(
        f"\nprovider 1 killed after {CREATES // 3} of {CREATES} creates: {dict(statuses)}; "
        f"{len(in_flight)} in flight at the kill answered "
        f"{dict(Tally(o.status for o in in_flight))}; server A's first create through "
        f"provider 2 ended {failover:.3f} s after the kill; provider 1 back and converged in "
        f"{converged_after:.2f} s (wait {convergence:.2f} s); of the {len(failed)} failed "
        f"creates {len(ghosts)} were made whole and {len(half)} in part {half}; retried they "
        f"answered {dict(Tally(r.status_code for r in retried))}, leaving "
        f"{len(half_after_retry)} partial; 20 creates after recovery answered "
        f"{dict(Tally(o.status for o in after))}"
    )
    assert set(statuses) <= {201, 503}, [o.body for o in outcomes if o.status not in (201, 503)]
    assert moved, "server A never created a user through provider 2"
    assert failover < 5.0
    assert problems(replicas, prefix, created) == []
    assert Tally(o.status for o in after) == {201: 20}
    assert problems(replicas, f"{prefix}x", after) == []
    healed = [
        Outcome(o.server, o.login, 0.0, 0.0, r.status_code, r.json())
        for o, r in zip(failed, retried, strict=True)
        if r.status_code == 201
    ]
    assert problems(replicas, prefix, created + healed) == []
    answered = {o.login.lower() for o in created + healed}
    assert [d for d in diverged if d.split(",")[0].split("=")[1] in answered] == []
    assert [p for p in half if "marked pending" not in p] == []
    assert half_after_retry == []
    if diverged:
        pytest.xfail(
            f"the providers still differ after converging on {diverged}: a write of a create "
            "in flight at the kill, made on the killed provider, never reached the other "
            "(delta-syncrepl takes changes from the accesslog, which the crash left without it)"
        )
