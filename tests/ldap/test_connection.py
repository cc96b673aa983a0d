"""The shared connection pool across a directory outage: 503 while down, recovery after."""

import socket
import ssl
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import trustme
from fastapi.testclient import TestClient
from ldap3 import Connection

from app.config import LdapSettings
from app.ldap.connection import Directory, deadline
from app.ldap.errors import DirectoryUnavailable
from app.ldap.sandbox import Sandbox
from app.main import create_app
from tests.conftest import TOKEN, make_settings
from tests.stopping import stopped
from tests.test_cli import run

POSIX = "urn:ietf:params:scim:schemas:extension:posix:2.0:User"


@pytest.fixture
def outage_sandbox() -> Iterator[Sandbox]:
    with Sandbox() as server:
        yield server


def user(name: str, number: int) -> dict[str, object]:
    return {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": name,
        POSIX: {"uidNumber": number},
    }


def test_outage_answers_503_and_recovers(outage_sandbox: Sandbox) -> None:
    app = create_app(make_settings(outage_sandbox.directory))
    with TestClient(app, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        created = client.post("/scim/v2/Users", json=user("before", 20001))
        assert created.status_code == 201
        user_id = created.json()["id"]
        assert client.get(f"/scim/v2/Users/{user_id}").status_code == 200

        outage_sandbox.stop_server()
        down = [
            client.get(f"/scim/v2/Users/{user_id}"),
            client.get("/scim/v2/Users", params={"filter": 'userName eq "before"'}),
            client.post("/scim/v2/Users", json=user("during", 20002)),
            client.patch(
                f"/scim/v2/Users/{user_id}",
                json={
                    "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                    "Operations": [{"op": "replace", "path": "displayName", "value": "x"}],
                },
            ),
            client.delete(f"/scim/v2/Users/{user_id}"),
        ]
        for response in down:
            assert response.status_code == 503, response.text
            assert response.headers["Retry-After"].isdigit()
            assert response.headers["content-type"].startswith("application/scim+json")
            assert response.json()["status"] == "503"
        assert client.get("/readyz").status_code == 503
        assert client.get("/healthz").status_code == 200

        outage_sandbox.start_server()
        again = client.get(f"/scim/v2/Users/{user_id}")
        assert again.status_code == 200, again.text
        assert "displayName" not in again.json()
        assert client.get("/readyz").status_code == 200
        probe = client.get("/scim/v2/Users", params={"filter": 'userName eq "during"'})
        assert probe.json()["totalResults"] == 0
        assert client.post("/scim/v2/Users", json=user("during", 20002)).status_code == 201

    directory = outage_sandbox.directory
    with Connection(
        directory.url, directory.admin_dn, directory.admin_password, auto_bind=True
    ) as conn:
        conn.search(directory.users_dn, "(objectClass=posixAccount)", attributes=["uid"])
        assert sorted(str(e.uid) for e in conn.entries) == ["before", "during"]


def test_unreachable_directory_at_start_is_503_not_a_crash() -> None:
    with Sandbox() as server:
        settings = make_settings(server.directory)
        server.stop_server()
        app = create_app(settings)
        with TestClient(app, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
            response = client.get(f"/scim/v2/Users/{uuid.uuid4()}")
            assert response.status_code == 503
            server.start_server()
            assert client.get(f"/scim/v2/Users/{uuid.uuid4()}").status_code == 404


def test_a_restart_between_requests_is_invisible(outage_sandbox: Sandbox) -> None:
    """Pooled connections the restart closed are dropped before use, not answered with 503."""
    app = create_app(make_settings(outage_sandbox.directory))
    with TestClient(app, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        created = client.post("/scim/v2/Users", json=user("steady", 20003))
        assert created.status_code == 201
        outage_sandbox.stop_server()
        outage_sandbox.start_server()
        again = client.get(f"/scim/v2/Users/{created.json()['id']}")
        assert again.status_code == 200, again.text


# ---- time and waiting bounds (issue 7, finding 4)


def settings_of(sandbox: Sandbox, **changes: object) -> LdapSettings:
    return LdapSettings(**{**sandbox.directory.ldap_settings().model_dump(), **changes})


def timed_search(directory: Directory) -> float:
    started = time.monotonic()
    with pytest.raises(DirectoryUnavailable), directory.session() as session:
        session.search("", "(objectClass=*)", ["1.1"], scope="BASE", action="read")
    return time.monotonic() - started


def test_a_stalled_directory_fails_within_one_receive_timeout(outage_sandbox: Sandbox) -> None:
    """Pooled and new connections alike: one receive timeout, not a connect plus a reply."""
    directory = Directory(settings_of(outage_sandbox, receive_timeout=1))
    try:
        with directory.session():
            pass
        with stopped(outage_sandbox):
            assert timed_search(directory) < 1.5
            assert timed_search(directory) < 1.5
        with directory.session() as session:
            assert session.search("", "(objectClass=*)", ["1.1"], scope="BASE", action="read")
    finally:
        directory.close()


def test_the_request_deadline_shortens_directory_waits(outage_sandbox: Sandbox) -> None:
    directory = Directory(settings_of(outage_sandbox, receive_timeout=10))
    try:
        with stopped(outage_sandbox):
            token = deadline.set(time.monotonic() + 0.5)
            try:
                assert timed_search(directory) < 1.0
            finally:
                deadline.reset(token)
    finally:
        directory.close()


def test_waiting_for_a_connection_is_bounded(sandbox: Sandbox) -> None:
    directory = Directory(settings_of(sandbox, pool_size=1, pool_wait=0.5, max_waiting=1))
    try:
        with directory.session(), ThreadPoolExecutor(max_workers=1) as thread:
            waiting = thread.submit(timed_search, directory)
            time.sleep(0.1)
            started = time.monotonic()
            busy = pytest.raises(DirectoryUnavailable, match="Too many requests")
            with busy, directory.session():
                pass
            assert time.monotonic() - started < 0.05
            assert 0.4 < waiting.result() < 1.0
    finally:
        directory.close()


def test_ping_is_a_round_trip(outage_sandbox: Sandbox) -> None:
    directory = Directory(settings_of(outage_sandbox))
    try:
        directory.ping(1.0)
        with stopped(outage_sandbox):
            started = time.monotonic()
            with pytest.raises(DirectoryUnavailable):
                directory.ping(1.0)
            assert time.monotonic() - started < 1.5
        outage_sandbox.stop_server()
        with pytest.raises(DirectoryUnavailable):
            directory.ping(1.0)
    finally:
        directory.close()


# ---- TLS verification failures are named (issue 7, finding 7)


@pytest.fixture
def tls_listener() -> Iterator[int]:
    """A TLS endpoint whose certificate no trusted CA issued."""
    ca = trustme.CA()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            try:
                with context.wrap_socket(client, server_side=True):
                    pass
            except (ssl.SSLError, OSError):
                client.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        listener.close()


def test_a_certificate_verification_failure_is_named(
    tls_listener: int, caplog: pytest.LogCaptureFixture
) -> None:
    directory = Directory(LdapSettings(urls=[f"ldaps://127.0.0.1:{tls_listener}"]))
    try:
        problem = directory.check()
    finally:
        directory.close()
    assert "TLS certificate verification failed" in problem
    assert "TLS certificate verification failed" in caplog.text


def test_check_names_a_certificate_verification_failure(tls_listener: int) -> None:
    url = f"ldaps://127.0.0.1:{tls_listener}"
    result = run("check", env={"SCIM_LDAP_LDAP__URLS": f'["{url}"]'})
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"error: {url}: TLS certificate verification failed" in result.stdout
    assert "set ldap.ca_file to the CA bundle that signed it" in result.stdout
    assert "Traceback" not in result.stderr
