"""The requests README.md shows work as shown."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from ldap3 import Connection

from tests.api.helpers import POSIX, USERS, delete_quietly, entry, new_user

README = Path(__file__).resolve().parents[2] / "README.md"


def curl_bodies() -> list[dict[str, Any]]:
    """The JSON bodies of the ``curl ... -d '...'`` examples."""
    text = README.read_text(encoding="utf-8")
    return [json.loads(body) for body in re.findall(r"-d '(\{.*?\})'", text, re.DOTALL)]


def test_the_ssh_key_example_stores_the_key(client: TestClient, ldap: Connection) -> None:
    [body] = [b for b in curl_bodies() if "sshPublicKeys" in json.dumps(b)]
    [operation] = body["Operations"]
    created = new_user(client, active=True)
    try:
        response = client.patch(
            f"{USERS}/{created['id']}",
            content=json.dumps(body),
            headers={"Content-Type": "application/scim+json"},
        )
        assert response.status_code == 200, response.text
        assert response.json()[POSIX]["sshPublicKeys"] == operation["value"]
        stored = entry(ldap, created["id"])
        assert stored is not None
        assert stored["sshPublicKey"] == operation["value"]
    finally:
        delete_quietly(client, created["id"])
