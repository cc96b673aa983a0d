"""Benchmark: Entra-shaped request throughput next to the raw LDAP operations they become.

Each worker repeats one provisioning cycle for a new user: the matching probe
(``GET /Users?filter=userName eq``), ``POST``, ``PATCH`` (legacy dialect),
``GET /Users/{id}`` and ``DELETE``. The raw LDAP ceiling runs the same cycle as
ldap3 operations (search, add, search + modify, search, search + delete) with
one connection per worker, in the same run.

Prints requests per second and the median latency per request, with ratios.
Usage: ``.venv/bin/python scripts/bench_requests.py [cycles per worker] [workers]``.
"""

from __future__ import annotations

import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
from benchlib import served
from ldap3 import MODIFY_REPLACE, Connection

from app.ldap.sandbox import Sandbox, SandboxDirectory

POSIX = "urn:ietf:params:scim:schemas:extension:posix:2.0:User"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
REQUESTS_PER_CYCLE = 5
_numbers = iter(range(200_000, 10**9))
_lock = threading.Lock()


def next_number() -> int:
    with _lock:
        return next(_numbers)


def scim_cycle(client: httpx.Client, latencies: list[float]) -> None:
    name = f"bench.{uuid.uuid4().hex[:12]}@example.com"

    def timed(call: Callable[[], httpx.Response], expected: int) -> httpx.Response:
        start = time.perf_counter()
        response = call()
        latencies.append((time.perf_counter() - start) * 1000)
        if response.status_code != expected:
            raise RuntimeError(f"{response.status_code}: {response.text}")
        return response

    timed(lambda: client.get("/Users", params={"filter": f'userName eq "{name}"'}), 200)
    body = {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": name,
        "active": True,
        "displayName": "Bench User",
        "name": {"givenName": "Bench", "familyName": "User"},
        "emails": [{"primary": True, "type": "work", "value": name}],
        POSIX: {"uidNumber": next_number()},
    }
    user_id = timed(lambda: client.post("/Users", json=body), 201).json()["id"]
    patch = {
        "schemas": [PATCH_OP],
        "Operations": [
            {"op": "Replace", "path": "displayName", "value": "Renamed"},
            {"op": "Replace", "path": "active", "value": "False"},
        ],
    }
    timed(lambda: client.patch(f"/Users/{user_id}", json=patch), 200)
    timed(lambda: client.get(f"/Users/{user_id}"), 200)
    timed(lambda: client.delete(f"/Users/{user_id}"), 204)


def raw_cycle(conn: Connection, directory: SandboxDirectory, latencies: list[float]) -> None:
    login = f"bench{uuid.uuid4().hex[:12]}"
    dn = f"uid={login},{directory.users_dn}"

    def timed(call: Callable[[], object]) -> None:
        start = time.perf_counter()
        call()
        latencies.append((time.perf_counter() - start) * 1000)

    def search(ldap_filter: str) -> None:
        conn.search(directory.users_dn, ldap_filter, attributes=["*", "+"])

    timed(lambda: search(f"(&(objectClass=posixAccount)(scimUserName={login}@example.com))"))
    attributes = {
        "uid": login,
        "cn": "Bench User",
        "sn": "User",
        "givenName": "Bench",
        "displayName": "Bench User",
        "mail": f"{login}@example.com",
        "scimUserName": f"{login}@example.com",
        "scimActive": "TRUE",
        "uidNumber": str(next_number()),
        "gidNumber": "10000",
        "homeDirectory": f"/home/{login}",
        "loginShell": "/bin/bash",
    }
    classes = ["inetOrgPerson", "posixAccount", "shadowAccount", "scimUser"]
    timed(lambda: conn.add(dn, classes, attributes))

    def modify() -> None:
        search(f"(uid={login})")
        conn.modify(
            dn,
            {
                "displayName": [(MODIFY_REPLACE, ["Renamed"])],
                "scimActive": [(MODIFY_REPLACE, ["FALSE"])],
            },
        )

    timed(modify)
    timed(lambda: search(f"(uid={login})"))

    def delete() -> None:
        search(f"(uid={login})")
        conn.delete(dn)

    timed(delete)


def run(workers: int, cycles: int, cycle: Callable[[list[float]], None]) -> tuple[float, float]:
    latencies: list[float] = []
    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        futures = [
            pool.submit(lambda: [cycle(latencies) for _ in range(cycles)]) for _ in range(workers)
        ]
        for future in futures:
            future.result()
    elapsed = time.perf_counter() - start
    return workers * cycles * REQUESTS_PER_CYCLE / elapsed, statistics.median(latencies)


def main() -> int:
    cycles = int(sys.argv[1]) if len(sys.argv) > 1 else 40
    workers = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    with Sandbox() as sandbox:
        directory = sandbox.directory
        with served(directory, workers) as client:
            scim_rate, scim_latency = run(
                workers, cycles, lambda latencies: scim_cycle(client, latencies)
            )
        local = threading.local()

        def raw(latencies: list[float]) -> None:
            if not hasattr(local, "conn"):
                local.conn = Connection(
                    directory.url, directory.bind_dn, directory.bind_password, auto_bind=True
                )
            raw_cycle(local.conn, directory, latencies)

        raw_rate, raw_latency = run(workers, cycles, raw)
    total = workers * cycles * REQUESTS_PER_CYCLE
    print(f"{total} requests, {workers} concurrent workers")
    print(f"{'':<10}{'req/s':>10}{'median ms':>12}")
    print(f"{'SCIM':<10}{scim_rate:>10.1f}{scim_latency:>12.2f}")
    print(f"{'raw LDAP':<10}{raw_rate:>10.1f}{raw_latency:>12.2f}")
    print(
        f"SCIM/raw throughput ratio {scim_rate / raw_rate:.2f}, "
        f"latency ratio {scim_latency / raw_latency:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
