"""A stalled directory (SIGSTOP) under load: liveness stays instant, readiness says 503,
every request ends within its bound, and the server recovers (issue 7, finding 4)."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest

from app.config import LdapSettings
from app.ldap.connection import Directory
from app.ldap.sandbox import Sandbox
from app.main import create_app
from tests.api.helpers import PATCH_OP, USERS, user_body
from tests.api.live import live_server
from tests.conftest import TOKEN, make_settings
from tests.stopping import stopped

HEADERS = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/scim+json"}
IN_FLIGHT = 50


@dataclass
class Outcome:
    status: int
    seconds: float
    retry_after: str | None


@pytest.fixture
def stall_sandbox() -> Iterator[Sandbox]:
    with Sandbox() as server:
        yield server


def call(
    address: tuple[str, int], method: str, url: str, body: object = None, timeout: float = 60
) -> Outcome:
    conn = http.client.HTTPConnection(*address, timeout=timeout)
    started = time.monotonic()
    try:
        conn.request(method, url, body=None if body is None else json.dumps(body), headers=HEADERS)
        response = conn.getresponse()
        response.read()
        return Outcome(
            response.status, time.monotonic() - started, response.getheader("Retry-After")
        )
    finally:
        conn.close()


def load(address: tuple[str, int], user_id: str) -> list[tuple[str, str, object]]:
    requests: list[tuple[str, str, object]] = []
    for i in range(IN_FLIGHT):
        kind = i % 5
        if kind == 0:
            requests.append(("GET", f"{USERS}/{user_id}", None))
        elif kind == 1:
            requests.append(("GET", f"{USERS}?filter=userName+eq+%22x{i}%22", None))
        elif kind == 2:
            requests.append(("POST", USERS, user_body()))
        elif kind == 3:
            operation = {"op": "replace", "path": "title", "value": f"t{i}"}
            requests.append(
                ("PATCH", f"{USERS}/{user_id}", {"schemas": [PATCH_OP], "Operations": [operation]})
            )
        else:
            requests.append(("GET", f"{USERS}?startIndex=3&count=5", None))
    return requests


@pytest.mark.parametrize(
    ("receive_timeout", "request_timeout"),
    [(2, 4.0), (6, 2.5)],
    ids=["directory-timeout-first", "request-bound-first"],
)
def test_a_stalled_directory_under_load(
    stall_sandbox: Sandbox, receive_timeout: int, request_timeout: float
) -> None:
    settings = make_settings(stall_sandbox.directory, request_timeout=request_timeout)
    settings.ldap = LdapSettings(
        **{
            **stall_sandbox.directory.ldap_settings().model_dump(),
            "receive_timeout": receive_timeout,
            "pool_wait": 1.0,
            "probe_timeout": 1.0,
        }
    )
    bound = request_timeout + 0.5
    app = create_app(settings)
    with live_server(app) as address:
        created = call(address, "POST", USERS, user_body())
        assert created.status == 201
        conn = http.client.HTTPConnection(*address, timeout=10)
        conn.request("GET", f"{USERS}?count=1", headers=HEADERS)
        user_id = json.loads(conn.getresponse().read())["Resources"][0]["id"]
        conn.close()
        assert call(address, "GET", "/readyz").status == 200

        with stopped(stall_sandbox), ThreadPoolExecutor(max_workers=IN_FLIGHT) as threads:
            futures = [
                threads.submit(call, address, method, url, body)
                for method, url, body in load(address, user_id)
            ]
            time.sleep(0.3)
            health = [call(address, "GET", "/healthz", timeout=5) for _ in range(5)]
            ready = call(address, "GET", "/readyz", timeout=10)
            outcomes = [f.result() for f in futures]
            directory: Directory = app.state.directory
            released = time.monotonic() + 1.0
            while directory.in_use and time.monotonic() < released:
                time.sleep(0.05)
            held = directory.in_use

        assert held == 0, "directory calls outlived their requests"
        assert all(h.status == 200 and h.seconds < 1.0 for h in health), health
        assert ready.status == 503 and ready.seconds < settings.ldap.probe_timeout + 1.0, ready
        assert ready.retry_after is not None
        times = sorted(o.seconds for o in outcomes)
        print(
            f"healthz {max(h.seconds for h in health):.3f} s, readyz {ready.seconds:.2f} s, "
            f"requests {times[0]:.2f}-{times[-1]:.2f} s (bound {request_timeout} s)"
        )
        assert times[-1] < bound, times
        for outcome in outcomes:
            assert outcome.status == 503, outcomes
            assert outcome.retry_after is not None and outcome.retry_after.isdigit()

        recovered = time.monotonic() + 10
        while call(address, "GET", "/readyz").status != 200:
            assert time.monotonic() < recovered, "not ready again after SIGCONT"
            time.sleep(0.2)
        assert call(address, "GET", f"{USERS}/{user_id}").status == 200
        assert call(address, "POST", USERS, user_body()).status == 201
