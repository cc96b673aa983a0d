"""How many LDAP operations each SCIM operation costs (pooled connections, no manager).

These numbers are part of the product's performance contract: a change that
adds a round trip to a hot path shows up here.
"""

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.ldap.connection import Session
from app.ldap.sandbox import Sandbox
from app.main import create_app
from tests.conftest import TOKEN, make_settings

POSIX = "urn:ietf:params:scim:schemas:extension:posix:2.0:User"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    calls: Counter[str] = Counter()
    for name in ("search", "add", "modify", "rename", "delete"):
        original = getattr(Session, name)

        def wrapper(
            self: Session, *args: Any, _name: str = name, _f: Any = original, **kwargs: Any
        ) -> Any:
            calls[_name] += 1
            return _f(self, *args, **kwargs)

        monkeypatch.setattr(Session, name, wrapper)
    return calls


@pytest.fixture
def client(sandbox: Sandbox) -> Iterator[TestClient]:
    app = create_app(make_settings(sandbox.directory, max_page_size=5))
    with TestClient(app, headers={"Authorization": f"Bearer {TOKEN}"}) as test_client:
        yield test_client


def cost(calls: Counter[str], action: Any) -> dict[str, int]:
    calls.clear()
    action()
    return dict(calls)


def test_operations(client: TestClient, counted: Counter[str]) -> None:
    warm = client.post("/scim/v2/Users", json={"userName": "trips0@example.com"})
    assert warm.status_code == 201, "the first create also makes sure the default group exists"
    client.delete(f"/scim/v2/Users/{warm.json()['id']}")
    assert cost(counted, lambda: client.post("/scim/v2/Users", json={"userName": "trips1"})) == {
        "search": 4,
        "modify": 2,
        "add": 2,
    }, "logins taken, homes taken, allocation (counter read, collision search, compare-and-swap), "
    "the uidNumber claim, the add with the marker, the marker off"
    body = {"userName": "trips@example.com", "active": True, POSIX: {"uidNumber": 45001}}
    created: dict[str, Any] = {}

    def create() -> None:
        response = client.post("/scim/v2/Users", json=body)
        assert response.status_code == 201
        created.update(response.json())

    assert cost(counted, create) == {"search": 3, "add": 2, "modify": 1}, (
        "logins taken, uidNumber check, homes taken, the uidNumber claim, the add with the "
        "marker, the marker off"
    )
    user = f"/scim/v2/Users/{created['id']}"
    assert cost(counted, lambda: client.get(user)) == {"search": 2}, "the user, its groups"
    lean = lambda: client.get(user, params={"excludedAttributes": "groups"})  # noqa: E731
    assert cost(counted, lean) == {"search": 1}
    probe = {"filter": 'userName eq "trips@example.com"'}
    assert cost(counted, lambda: client.get("/scim/v2/Users", params=probe)) == {"search": 1}
    patch = {
        "schemas": [PATCH_OP],
        "Operations": [{"op": "Replace", "path": "active", "value": "False"}],
    }
    assert cost(counted, lambda: client.patch(user, json=patch)) == {"search": 1, "modify": 1}
    rename = {
        "schemas": [PATCH_OP],
        "Operations": [{"op": "replace", "path": "userName", "value": "trips2@example.com"}],
    }
    assert cost(counted, lambda: client.patch(user, json=rename)) == {
        "search": 3,
        "rename": 1,
        "modify": 2,
    }, "read, logins taken, modify with the marker, modrdn, groups naming the old login, marker off"
    listing = {"count": "5", "startIndex": "1"}
    assert cost(counted, lambda: client.get("/scim/v2/Users", params=listing))["search"] <= 2
    assert cost(counted, lambda: client.delete(user)) == {
        "search": 3,
        "modify": 1,
        "delete": 3,
    }, (
        "find, the marker, memberships to drop, delete, the uidNumber claim given back: "
        "it names the userName before the rename, so the first try fails and a search for "
        "another holder of the number comes before the second"
    )
