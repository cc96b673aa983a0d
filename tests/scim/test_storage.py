"""Documents taken apart into slots and the unmapped rest, and put back, without a directory."""

from __future__ import annotations

import json
from typing import Any

from app.attributes import UNMAPPED, WORK_EMAIL, Catalog
from app.config import UserSettings
from app.scim.storage import Storage

STORAGE = Storage(Catalog(UserSettings().attribute_map(), unmapped_attribute="scimUnmapped"))


def round_trip(document: dict[str, Any]) -> dict[str, Any]:
    state = STORAGE.split(document)
    return STORAGE.join(state, login="pat", dn="uid=pat,ou=people", users_url="/Users")


def test_elements_keep_their_order_flags_and_unmapped_neighbours() -> None:
    document = {
        "userName": "pat@example.com",
        "emails": [
            {"type": "home", "value": "h@example.com"},
            {"type": "work", "value": "w@example.com", "primary": True, "display": "Work"},
        ],
        "nickName": "Pat",
    }
    state = STORAGE.split(document)
    assert state[WORK_EMAIL] == "w@example.com"
    rest = json.loads(str(state[UNMAPPED]))
    assert "w@example.com" not in json.dumps(rest)
    assert round_trip(document) == document


def test_a_typical_user_stores_no_rest() -> None:
    document = {"userName": "pat@example.com", "emails": [{"type": "work", "value": "w@x"}]}
    assert UNMAPPED not in STORAGE.split(document)
    assert round_trip(document) == document


def test_a_value_changed_in_the_directory_wins() -> None:
    state = STORAGE.split(
        {"userName": "p", "emails": [{"type": "work", "value": "old@x", "primary": True}]}
    )
    state[WORK_EMAIL] = "new@x"
    joined = STORAGE.join(state, login="p", dn="uid=p", users_url="/Users")
    assert joined["emails"] == [{"type": "work", "value": "new@x", "primary": True}]
