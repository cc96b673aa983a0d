"""Hostile requests are answered on a connection that stays open (issue 7, finding 1).

A 500 makes uvicorn drop the keep-alive connection; every request here must be
answered with a 4xx on the same socket.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from urllib.parse import urlencode

import pytest

from app.ldap.sandbox import Sandbox
from app.main import create_app
from tests.api.helpers import USERS
from tests.api.live import live_server
from tests.conftest import TOKEN, make_settings

HEADERS = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/scim+json"}
NESTED = b'{"userName": "a", "x": ' + b"[" * 1000 + b"]" * 1000 + b"}"
HOSTILE: list[tuple[str, str, bytes | None, dict[str, str]]] = [
    ("GET", f"{USERS}?" + urlencode({"filter": 'userName sw " "'}), None, {}),
    ("GET", f"{USERS}?" + urlencode({"filter": 'title co ""'}), None, {}),
    ("GET", f"{USERS}?" + urlencode({"filter": 'title ew "\\n"'}), None, {}),
    ("GET", f"{USERS}?startIndex={2**31}", None, {}),
    ("GET", f"{USERS}?startIndex={2**64}&count={2**64}", None, {}),
    ("POST", f"{USERS}/.search", json.dumps({"startIndex": 2**63}).encode(), {}),
    ("POST", USERS, NESTED, {}),
    ("POST", USERS, b'{"userName": "a", "x": ' + b"1" * 5000 + b"}", {}),
    ("POST", USERS, b'{"userName": "a", "x": 1e400}', {}),
    ("POST", USERS, b'{"userName": "a", "title": NaN}', {}),
    ("POST", USERS, b'{"userName": "a", "userName": "b"}', {}),
    ("POST", USERS, b'{"userName": "a"}', {"Content-Type": "text/plain"}),
    ("GET", f"{USERS}?" + urlencode({"filter": " or ".join(["title pr"] * 300)}), None, {}),
]


@pytest.fixture(scope="module")
def address(sandbox: Sandbox) -> Iterator[tuple[str, int]]:
    with live_server(create_app(make_settings(sandbox.directory))) as served:
        yield served


def test_hostile_requests_keep_the_connection(address: tuple[str, int]) -> None:
    conn = http.client.HTTPConnection(*address, timeout=10)
    try:
        conn.request("GET", "/healthz")
        conn.getresponse().read()
        sock = conn.sock
        for method, url, body, headers in HOSTILE:
            conn.request(method, url, body=body, headers={**HEADERS, **headers})
            response = conn.getresponse()
            response.read()
            assert response.status < 500, (method, url, response.status)
            assert response.getheader("connection") != "close", (method, url)
            assert conn.sock is sock, (method, url)
    finally:
        conn.close()
