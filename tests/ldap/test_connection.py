"""The shared connection pool across a directory outage: 503 while down, recovery after."""

import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from ldap3 import Connection

from app.ldap.sandbox import Sandbox
from app.main import create_app
from tests.conftest import TOKEN, make_settings

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
        directory.url, directory.bind_dn, directory.bind_password, auto_bind=True
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
