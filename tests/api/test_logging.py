"""What the server logs: the level, the format, request ids, the reason for a refusal, no secret."""

from __future__ import annotations

import http.client
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient

from app.ldap.sandbox import Sandbox
from app.logs import FIELDS, JsonFormatter, TextFormatter
from app.main import create_app
from tests.api.helpers import CORE, SCIM_JSON, USERS, assert_error, delete_quietly, user_body
from tests.api.live import _free_port, live_server
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


def access_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    """The access lines as the JSON format writes them."""
    formatter = JsonFormatter()
    return [json.loads(formatter.format(r)) for r in caplog.records if r.name == "app.access"]


def test_the_client_request_id_is_echoed_and_logged(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="app.access"):
        response = client.get(USERS, headers={"X-Request-Id": "entra-7f3c.1"})
    assert response.headers["x-request-id"] == "entra-7f3c.1"
    [line] = access_lines(caplog)
    assert line["request_id"] == "entra-7f3c.1"


@pytest.mark.parametrize(
    "sent", [None, "", "two words", 'quote"d', "x" * 65, "new\\nline", "tab\there", "é".encode()]
)
def test_a_missing_or_unsafe_request_id_is_replaced(
    client: TestClient, caplog: pytest.LogCaptureFixture, sent: str | bytes | None
) -> None:
    headers = {} if sent is None else {"X-Request-Id": sent}
    with caplog.at_level(logging.INFO, logger="app.access"):
        first = client.get("/healthz", headers=headers)
        second = client.get("/healthz", headers=headers)
    ids = [first.headers["x-request-id"], second.headers["x-request-id"]]
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids), ids
    assert ids[0] != ids[1]
    assert [line["request_id"] for line in access_lines(caplog)] == ids


def test_the_access_line_is_one_json_object_with_every_field(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="app.access"):
        created = client.post(USERS, json=user_body(), headers={"X-Request-Id": "json-line"})
    assert created.status_code == 201, created.text
    [line] = access_lines(caplog)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line.pop("time"))
    assert 0 < line.pop("duration_ms") < 20_000
    assert re.fullmatch(r"testclient:\d+", line.pop("client"))
    token = line.pop("token")
    assert isinstance(token, str) and token and TOKEN not in token
    assert line == {
        "level": "info",
        "logger": "app.access",
        "message": line["message"],
        "request_id": "json-line",
        "method": "POST",
        "path": USERS,
        "status": 201,
        "operation": "Users.create",
        "resource_id": created.json()["id"],
    }
    assert f'"POST {USERS} HTTP/1.1" 201' in line["message"]
    delete_quietly(client, created.json()["id"])


def test_every_refusal_logs_the_reason_the_client_got(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    taken = client.post(USERS, json=user_body())
    assert taken.status_code == 201
    user_name = taken.json()["userName"]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="app.access"):
        answers = [
            client.post(USERS, json=user_body(user_name)),
            client.post(USERS, json={"schemas": [CORE]}),
            client.post(USERS, content=b"{not json", headers={"Content-Type": SCIM_JSON}),
            client.get(f"{USERS}/no-such-user"),
            client.get(USERS, headers={"Authorization": "Bearer not-the-right-token"}),
            client.get("/nowhere"),
        ]
    lines = access_lines(caplog)
    assert [line["status"] for line in lines] == [409, 400, 400, 404, 401, 404]
    for answer, line in zip(answers, lines, strict=True):
        body = answer.json()
        assert line["detail"] == body["detail"], line
        assert line.get("scim_type") == body.get("scimType"), line
    assert lines[0]["scim_type"] == "uniqueness"
    assert [line["operation"] for line in lines] == [
        "Users.create",
        "Users.create",
        "Users.create",
        "Users.get",
        "Users.list",
        "-",
    ]
    delete_quietly(client, taken.json()["id"])


def test_the_text_format_writes_the_same_fields(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("app.access")
    with caplog.at_level(logging.INFO, logger="app.access"):
        logger.info(
            "a line", extra={FIELDS: {"status": 400, "detail": 'bad "x" value', "token": "-"}}
        )
    [record] = [r for r in caplog.records if r.name == "app.access"]
    text = TextFormatter().format(record)
    assert text.endswith('INFO app.access a line status=400 detail="bad \\"x\\" value" token=-')


def test_the_served_process_logs_json_and_audits_on_stdout_without_secrets(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """``serve`` as run in production: uvicorn's lines, the app's and the access log are
    JSON on stderr, the audit trail is on stdout, and no secret is in either."""
    directory = sandbox.directory
    password = "Served-pass-w0rd!"
    config = tmp_path / "scim-ldap.toml"
    ldap = directory.ldap_settings()
    config.write_text(
        "\n".join(
            [
                'log_format = "json"',
                "[ldap]",
                f"urls = {json.dumps(ldap.urls)}",
                f"bind_dn = {json.dumps(ldap.bind_dn)}",
                f"bind_password = {json.dumps(directory.bind_password)}",
                f"base_dn = {json.dumps(ldap.base_dn)}",
                f"users_dn = {json.dumps(ldap.users_dn)}",
                f"start_tls = {json.dumps(ldap.start_tls)}",
                *([f"ca_file = {json.dumps(str(ldap.ca_file))}"] if ldap.ca_file else []),
                "[auth]",
                f"tokens = [{json.dumps(TOKEN)}]",
                "[audit]",
                'sink = "stdout"',
            ]
        ),
        encoding="utf-8",
    )
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCIM_LDAP_")}
    stdout, stderr = tmp_path / "stdout", tmp_path / "stderr"
    with stdout.open("wb") as out_file, stderr.open("wb") as err_file:
        server = subprocess.Popen(
            [sys.executable, "-m", "app", "serve", "--config", str(config), "--port", str(port)],
            stdout=out_file,
            stderr=err_file,
            env=env,
        )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{base}/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert server.poll() is None and time.monotonic() < deadline, "no server"
                time.sleep(0.1)
        auth = {"Authorization": f"Bearer {TOKEN}", "X-Request-Id": "served-1"}
        created = httpx.post(
            f"{base}{USERS}",
            json=user_body(password=password),
            headers=auth,
            timeout=10,
        )
        assert created.status_code == 201, created.text
        gone = httpx.delete(f"{base}{USERS}/{created.json()['id']}", headers=auth, timeout=10)
        assert gone.status_code == 204
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    out, err = stdout.read_bytes(), stderr.read_bytes()
    logs = [json.loads(line) for line in err.decode().splitlines() if line.strip()]
    trail = [json.loads(line) for line in out.decode().splitlines() if line.strip()]
    assert any(
        line["logger"] == "uvicorn.error" and "Uvicorn running" in line["message"] for line in logs
    ), logs
    access = [line for line in logs if line["logger"] == "app.access"]
    assert [(a["method"], a["status"], a["request_id"]) for a in access][-2:] == [
        ("POST", 201, "served-1"),
        ("DELETE", 204, "served-1"),
    ]
    assert {line["ldap_operation"] for line in trail} >= {"add", "passwordModify", "delete"}
    assert all(line["request_id"] in ("served-1", None) for line in trail), trail
    for secret in (TOKEN, password, directory.bind_password):
        assert secret not in out.decode()
        assert secret not in err.decode()


def test_an_unready_probe_logs_why(sandbox: Sandbox, caplog: pytest.LogCaptureFixture) -> None:
    settings = make_settings(sandbox.directory)
    settings.ldap.urls = ["ldap://127.0.0.1:9"]
    app = create_app(settings, read_directory_schema=False)
    with TestClient(app) as client:
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="app.access"):
            assert client.get("/readyz").status_code == 503
    [line] = access_lines(caplog)
    assert (line["operation"], line["status"], line["detail"]) == (
        "readiness",
        503,
        "directory unavailable",
    )
    assert line["level"] == "warning"


def _oauth_refusal() -> JSONResponse:
    return JSONResponse(
        {"error": "invalid_client", "error_description": "the client is not known"},
        status_code=401,
    )


def test_an_oauth_refusal_logs_its_error(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    """A token endpoint answers RFC 6749 §5.2 errors; the access line names them too."""
    app = create_app(make_settings(sandbox.directory))
    app.add_api_route("/refuse", _oauth_refusal, methods=["POST"])
    with TestClient(app) as client:
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="app.access"):
            assert client.post("/refuse").status_code == 401
    [line] = access_lines(caplog)
    assert (line["error"], line["detail"]) == ("invalid_client", "the client is not known")
    assert "scim_type" not in line
