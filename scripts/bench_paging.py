"""Benchmark: the cost of a SCIM page at the start and near the end of a large directory.

Starts a throwaway slapd, loads N users (default 20,000) with raw LDAP adds, runs
``python -m app serve`` against it, and times, side by side with the raw LDAP
ceiling measured in the same run:

- the first page (startIndex=1, count=100) and a page near the end
  (startIndex=N-99), via HTTP and via the same sorted VLV search in ldap3;
- Entra's probe (``userName eq "<x>"``), via HTTP and as a plain LDAP search.

Prints medians (ms) and ratios. Usage: ``.venv/bin/python scripts/bench_paging.py [N] [repeats]``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from benchlib import median_ms, served
from ldap3 import Connection

from app.ldap.controls import SortKey, read_vlv_response, sort_control, vlv_control
from app.ldap.mapping import OPERATIONAL
from app.ldap.sandbox import Sandbox, SandboxDirectory

PAGE = 100
ATTRIBUTES = [
    "uid",
    "cn",
    "sn",
    "givenName",
    "displayName",
    "mail",
    "scimUserName",
    "scimActive",
    "scimExternalId",
    "uidNumber",
    "gidNumber",
    "homeDirectory",
    "loginShell",
    "objectClass",
    *OPERATIONAL,
]


def load(directory: SandboxDirectory, count: int) -> None:
    conn = Connection(directory.url, directory.bind_dn, directory.bind_password, auto_bind=True)
    for n in range(count):
        login = f"user{n:06d}"
        conn.add(
            f"uid={login},{directory.users_dn}",
            ["inetOrgPerson", "posixAccount", "shadowAccount", "scimUser"],
            {
                "uid": login,
                "cn": f"User {n}",
                "sn": f"Number{n}",
                "givenName": "User",
                "displayName": f"User {n}",
                "mail": f"{login}@example.com",
                "scimUserName": f"{login}@Example.com",
                "scimExternalId": f"ext-{n}",
                "scimActive": "TRUE",
                "uidNumber": str(100000 + n),
                "gidNumber": "10000",
                "homeDirectory": f"/home/{login}",
                "loginShell": "/bin/bash",
            },
        )
        if conn.result["result"] != 0:
            raise RuntimeError(f"load failed at {login}: {conn.result}")
    conn.unbind()


def raw_vlv(directory: SandboxDirectory, start: int) -> int:
    conn = Connection(directory.url, directory.bind_dn, directory.bind_password, auto_bind=True)
    conn.search(
        directory.users_dn,
        "(objectClass=posixAccount)",
        attributes=ATTRIBUTES,
        controls=[
            sort_control([SortKey("uid", "caseIgnoreOrderingMatch")]),
            vlv_control(start, 0, PAGE - 1),
        ],
    )
    result = read_vlv_response(conn.result)
    conn.unbind()
    assert result is not None
    return len(conn.response or [])


def main() -> int:
    total = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 15
    with Sandbox() as sandbox:
        directory = sandbox.directory
        began = time.perf_counter()
        load(directory, total)
        print(f"loaded {total} users in {time.perf_counter() - began:.1f} s")
        with served(directory) as http:
            last = total - PAGE + 1

            def page(start: int) -> Callable[[], object]:
                def get() -> object:
                    body = http.get("/Users", params={"startIndex": start, "count": PAGE}).json()
                    assert body["totalResults"] == total and len(body["Resources"]) == PAGE
                    return body

                return get

            probe_name = f"user{total // 2:06d}@example.com"

            def probe() -> object:
                body = http.get("/Users", params={"filter": f'userName eq "{probe_name}"'}).json()
                assert body["totalResults"] == 1
                return body

            raw = Connection(
                directory.url, directory.bind_dn, directory.bind_password, auto_bind=True
            )

            def raw_probe() -> object:
                raw.search(
                    directory.users_dn,
                    f"(&(objectClass=posixAccount)(scimUserName={probe_name}))",
                    attributes=ATTRIBUTES,
                )
                return raw.response

            rows = [
                (
                    "first page (1..100)",
                    median_ms(page(1), repeats),
                    median_ms(lambda: raw_vlv(directory, 1), repeats),
                ),
                (
                    f"last page ({last}..{total})",
                    median_ms(page(last), repeats),
                    median_ms(lambda: raw_vlv(directory, last), repeats),
                ),
                ("probe userName eq", median_ms(probe, repeats), median_ms(raw_probe, repeats)),
            ]
            raw.unbind()
    print(f"\n{total} users, page size {PAGE}, median of {repeats} runs")
    print(f"{'operation':<28}{'SCIM ms':>10}{'raw LDAP ms':>14}{'SCIM/raw':>10}")
    for name, scim, ldap in rows:
        print(f"{name:<28}{scim:>10.1f}{ldap:>14.1f}{scim / ldap:>10.2f}")
    print(
        f"\nlast page / first page: SCIM {rows[1][1] / rows[0][1]:.2f}, "
        f"raw LDAP {rows[1][2] / rows[0][2]:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
