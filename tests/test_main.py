"""The app factory and the OpenAPI document kept in openapi/."""

import json
from pathlib import Path

from app.config import Settings
from app.main import create_app

OPENAPI = Path(__file__).resolve().parent.parent / "openapi" / "openapi.json"


def test_openapi_document_matches_the_app() -> None:
    generated = create_app(Settings()).openapi()
    stored = json.loads(OPENAPI.read_text(encoding="utf-8"))
    assert generated == stored, (
        "openapi/openapi.json is out of date: run "
        "`.venv/bin/python -m app openapi --output openapi/openapi.json`"
    )


def test_every_operation_has_a_stable_id() -> None:
    document = create_app(Settings()).openapi()
    ids = [
        operation["operationId"]
        for path in document["paths"].values()
        for operation in path.values()
    ]
    assert len(ids) == len(set(ids))
    assert {"createUser", "getUser", "listUsers", "patchUser", "replaceUser", "deleteUser"} <= set(
        ids
    )
