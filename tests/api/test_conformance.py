"""The server against scim2-tester's conformance checks (RFC 7643, RFC 7644).

scim2-tester with its default settings against the server with its default
settings: every check it runs must pass, no result may be ERROR or CRITICAL,
nothing is excluded or filtered here. It fills every attribute /Schemas
announces with generated values and expects each back exactly as sent, so
this is also a round trip of the whole announced schema, ECMA2Host included.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any, cast

import httpx
import pytest
from fastapi.testclient import TestClient
from scim2_client import BaseSyncSCIMClient
from scim2_client.client import RawResponse
from scim2_tester import CheckResult, Status, check_server

from app.ldap.sandbox import Sandbox
from app.main import create_app
from tests.conftest import TOKEN, make_settings

FAILING = frozenset({Status.ERROR, Status.CRITICAL})


class StarletteSCIMClient(BaseSyncSCIMClient):
    """scim2-client's synchronous client sending its requests through a Starlette TestClient.

    scim2-client's own network engine is built on httpx2; the TestClient is an
    ``httpx.Client`` bound to the app, so only the transport differs.
    """

    def __init__(self, client: httpx.Client, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.client = client

    def _stays_under_base_url(self, endpoint: str) -> bool:
        base = self.client.base_url
        try:
            url = self.client.build_request("GET", endpoint).url
        except httpx.InvalidURL:
            return False
        same_origin = (url.scheme, url.host, url.port) == (base.scheme, base.host, base.port)
        return same_origin and url.raw_path.startswith(base.raw_path)

    def _parse_json(self, response: RawResponse) -> Any:
        return cast(httpx.Response, response).json()

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return self.client.request(method, url, **kwargs)


@pytest.fixture(scope="module")
def scim(sandbox: Sandbox) -> Iterator[StarletteSCIMClient]:
    settings = make_settings(sandbox.directory)
    app = create_app(settings)
    base = f"http://testserver{settings.http.base_path}"
    with TestClient(app, base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        yield StarletteSCIMClient(http)


def _describe(result: CheckResult) -> str:
    scope = f"[{result.resource_type}] " if result.resource_type else ""
    return f"{scope}{result.title}: {result.status.name}: {result.reason}"


def test_scim2_tester_reports_no_failure(scim: StarletteSCIMClient) -> None:
    results = check_server(scim)

    counts = Counter((r.title, r.status.name) for r in results)
    failures = [_describe(r) for r in results if r.status in FAILING]
    assert results, "scim2-tester ran no check"
    assert not failures, f"{len(failures)} failing checks ({dict(counts)}):\n" + "\n".join(failures)
