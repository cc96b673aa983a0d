"""What the server logs: the configured level, and an access log without query strings."""

from __future__ import annotations

import http.client
import logging
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.ldap.sandbox import Sandbox
from app.main import create_app
from tests.api.helpers import USERS, assert_error
from tests.api.live import live_server
from tests.conftest import TOKEN, make_settings


@pytest.fixture
def app_logger() -> Iterator[logging.Logger]:
    logger = logging.getLogger("app")
    level = logger.level
    yield logger
    logger.setLevel(level)


@pytest.mark.parametrize("level", ["debug", "info", "warning", "error"])
def test_log_level_applies_to_the_app_loggers(
    sandbox: Sandbox, app_logger: logging.Logger, level: str
) -> None:
    settings = make_settings(sandbox.directory)
    settings.log_level = level
    create_app(settings)
    wanted = getattr(logging, level.upper())
    for name in ("app", "app.ldap.connection", "app.api.guard", "app.access"):
        logger = logging.getLogger(name)
        assert logger.getEffectiveLevel() == wanted, name


def test_debug_messages_are_emitted_at_debug(
    sandbox: Sandbox, app_logger: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(sandbox.directory)
    settings.log_level = "debug"
    create_app(settings)
    with caplog.at_level(logging.NOTSET):
        logging.getLogger("app.ldap.connection").debug("a debug line")
    assert "a debug line" in caplog.text


def test_the_access_log_has_no_query_string(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "s3cret-token-in-a-url"
    with caplog.at_level(logging.INFO, logger="app.access"):
        client.get(USERS, params={"filter": f'userName eq "{secret}"', "access_token": secret})
        client.get(f"/healthz?password={secret}")
    lines = [r.getMessage() for r in caplog.records if r.name == "app.access"]
    assert any(f'"GET {USERS} HTTP/1.1" 200' in line for line in lines), lines
    assert any('"GET /healthz HTTP/1.1" 200' in line for line in lines), lines
    assert all(secret not in line and "?" not in line for line in lines), lines
    assert secret not in caplog.text


def _boom() -> None:
    raise RuntimeError("a bug")


@pytest.fixture
def buggy_app(sandbox: Sandbox) -> FastAPI:
    app = create_app(make_settings(sandbox.directory))
    app.add_api_route("/boom", _boom)
    return app


def test_an_unexpected_error_is_a_scim_500_on_a_kept_connection(
    buggy_app: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    with TestClient(buggy_app, raise_server_exceptions=False) as client:
        response = client.get("/boom")
    body = assert_error(response, 500)
    assert body["detail"] == "Internal server error"
    assert "a bug" not in response.text
    assert "RuntimeError" in caplog.text
    with live_server(buggy_app) as address:
        conn = http.client.HTTPConnection(*address, timeout=10)
        try:
            conn.request("GET", "/boom", headers={"Authorization": f"Bearer {TOKEN}"})
            first = conn.getresponse()
            first.read()
            sock = conn.sock
            assert first.status == 500
            conn.request("GET", "/healthz")
            second = conn.getresponse()
            second.read()
            assert second.status == 200
            assert conn.sock is sock
        finally:
            conn.close()
