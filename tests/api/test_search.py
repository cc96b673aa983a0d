"""POST /Users/.search and POST /.search (RFC 7644 §3.4.3)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.helpers import LIST_RESPONSE, USERS, assert_error, delete_quietly, new_user

SEARCH_REQUEST = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
ROOT_SEARCH = USERS.removesuffix("/Users") + "/.search"


@pytest.mark.parametrize("url", [f"{USERS}/.search", ROOT_SEARCH], ids=["users", "root"])
def test_search_request(client: TestClient, url: str) -> None:
    user = new_user(client, displayName="Searched")
    try:
        response = client.post(
            url,
            json={
                "schemas": [SEARCH_REQUEST],
                "filter": f'userName eq "{user["userName"]}"',
                "attributes": ["displayName"],
                "startIndex": 1,
                "count": 10,
            },
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["schemas"] == [LIST_RESPONSE]
        assert body["totalResults"] == 1
        assert body["Resources"] == [
            {
                "schemas": [user["schemas"][0]],
                "id": user["id"],
                "displayName": "Searched",
            }
        ]
    finally:
        delete_quietly(client, user["id"])


def test_search_excluded_attributes(client: TestClient) -> None:
    user = new_user(client, displayName="Hidden")
    try:
        response = client.post(
            f"{USERS}/.search",
            json={
                "schemas": [SEARCH_REQUEST],
                "filter": f'id eq "{user["id"]}"',
                "excludedAttributes": ["displayName"],
            },
        )
        assert response.status_code == 200, response.text
        (found,) = response.json()["Resources"]
        assert "displayName" not in found
        assert found["userName"] == user["userName"]
    finally:
        delete_quietly(client, user["id"])


@pytest.mark.parametrize(
    "body",
    [
        ["not", "an", "object"],
        {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"]},
        {"schemas": [SEARCH_REQUEST], "count": "ten"},
        {"schemas": [SEARCH_REQUEST], "startIndex": True},
        {"schemas": [SEARCH_REQUEST], "filter": 3},
        {"schemas": [SEARCH_REQUEST], "attributes": [1]},
    ],
)
def test_invalid_search_request(client: TestClient, body: Any) -> None:
    assert_error(client.post(f"{USERS}/.search", json=body), 400, "invalidValue")


def test_invalid_filter(client: TestClient) -> None:
    response = client.post(
        f"{USERS}/.search", json={"schemas": [SEARCH_REQUEST], "filter": "userName eq"}
    )
    assert_error(response, 400, "invalidFilter")
