"""The app factory and the OpenAPI document kept in openapi/."""

import json
import re
from pathlib import Path

from fastapi.testclient import TestClient

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


def _operations() -> dict[str, dict[str, object]]:
    document = create_app(Settings()).openapi()
    return {
        str(operation["operationId"]): operation
        for path in document["paths"].values()
        for operation in path.values()
    }


def test_the_document_lists_the_statuses_answered() -> None:
    operations = _operations()
    expected = {
        "createUser": {"201", "400", "401", "409", "413", "415", "503"},
        "replaceUser": {"200", "400", "401", "404", "409", "412", "413", "415", "503"},
        "patchUser": {"200", "400", "401", "404", "412", "413", "415", "503"},
        "deleteUser": {"204", "401", "404", "412", "503"},
        "listUsers": {"200", "400", "401", "503"},
        "getUser": {"200", "401", "404", "503"},
        "readiness": {"200", "503"},
    }
    for operation_id, statuses in expected.items():
        responses = operations[operation_id]["responses"]
        assert isinstance(responses, dict)
        assert statuses <= set(responses), operation_id
        assert "422" not in responses, operation_id


NOT_SCIM = ("health", "readiness", "issueToken", "metrics")
"""Operations outside the SCIM base: health answers JSON, the token endpoint RFC 6749 §5.1's."""


def test_scim_bodies_are_application_scim_json_with_schemas() -> None:
    operations = _operations()
    for operation_id, schema in [
        ("createUser", "User"),
        ("replaceUser", "User"),
        ("patchUser", "PatchOp"),
        ("searchUsers", "SearchRequest"),
    ]:
        body = operations[operation_id]["requestBody"]
        assert isinstance(body, dict)
        content = body["content"]
        assert set(content) == {"application/scim+json", "application/json"}
        assert content["application/scim+json"]["schema"] == {
            "$ref": f"#/components/schemas/{schema}"
        }
    for operation in operations.values():
        responses = operation["responses"]
        assert isinstance(responses, dict)
        for status, response in responses.items():
            if operation["operationId"] not in NOT_SCIM and "content" in response:
                assert set(response["content"]) == {"application/scim+json"}, (
                    operation["operationId"],
                    status,
                )


def test_docs_load_swagger_ui_from_this_server() -> None:
    """/docs works offline: every script and style it names is served here, none from a CDN."""
    client = TestClient(create_app(Settings(), read_directory_schema=False))
    page = client.get("/docs")
    assert page.status_code == 200
    assert "text/html" in page.headers["content-type"]
    urls = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page.text)
    urls += re.findall(r"""url: ?["']([^"']+)["']""", page.text)
    assert {"/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css"} <= set(urls)
    assert "/openapi.json" in urls
    assert not [url for url in urls if "//" in url], urls
    assert "cdn" not in page.text.lower()
    script = client.get("/docs/assets/swagger-ui-bundle.js")
    assert script.status_code == 200
    assert "javascript" in script.headers["content-type"]
    assert "SwaggerUIBundle" in script.text
    assert "text/css" in client.get("/docs/assets/swagger-ui.css").headers["content-type"]
    assert client.get("/openapi.json").json()["info"]["title"] == "scim-ldap"
    assert client.get("/redoc").status_code == 404
