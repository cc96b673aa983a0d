"""Public URLs behind a reverse proxy, and request bodies."""

from fastapi.testclient import TestClient

from app.ldap.sandbox import Sandbox
from app.main import create_app
from tests.conftest import TOKEN, make_settings

POSIX = "urn:ietf:params:scim:schemas:extension:posix:2.0:User"


def _create(client: TestClient, name: str, number: int, **headers: str) -> tuple[str, str]:
    response = client.post(
        "/scim/v2/Users",
        json={"userName": name, POSIX: {"uidNumber": number}},
        headers=headers,
    )
    assert response.status_code == 201, response.text
    client.delete(f"/scim/v2/Users/{response.json()['id']}")
    return response.headers["Location"], response.json()["meta"]["location"]


def test_forwarded_headers_from_a_trusted_proxy(sandbox: Sandbox) -> None:
    app = create_app(
        make_settings(sandbox.directory, trusted_proxies=["testclient", "127.0.0.0/8"])
    )
    with TestClient(app, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        location, meta = _create(
            client,
            "proxied1",
            30001,
            **{"X-Forwarded-Proto": "https", "X-Forwarded-Host": "scim.example.com"},
        )
    assert location == meta
    assert location.startswith("https://scim.example.com/scim/v2/Users/")


def test_forwarded_headers_from_anyone_else_are_ignored(sandbox: Sandbox) -> None:
    app = create_app(make_settings(sandbox.directory, trusted_proxies=["10.1.2.3"]))
    with TestClient(app, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        location, _meta = _create(
            client,
            "proxied2",
            30002,
            **{"X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example"},
        )
    assert location.startswith("http://testserver/scim/v2/Users/")


def test_configured_public_url_wins(sandbox: Sandbox) -> None:
    app = create_app(
        make_settings(
            sandbox.directory,
            public_base_url="https://id.example.org/scim/v2",
            trusted_proxies=["*"],
        )
    )
    with TestClient(app, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        location, meta = _create(client, "proxied3", 30003, **{"X-Forwarded-Host": "other.example"})
        config = client.get("/scim/v2/ServiceProviderConfig").json()
    assert location == meta
    assert location.startswith("https://id.example.org/scim/v2/Users/")
    assert config["meta"]["location"] == "https://id.example.org/scim/v2/ServiceProviderConfig"
