"""The OpenAPI document: the statuses each operation really answers, SCIM media types,
and the request bodies (RFC 7644 §3.1, §3.3-§3.6, §3.12).

Routes read bodies themselves (to accept both JSON media types and to refuse
what JSON leaves undefined), so FastAPI cannot infer their schemas; they are
described here, once, by operation id.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from app.api.responses import SCIM_JSON

_STATUS = {
    200: "OK",
    201: "Created; Location names the new resource",
    204: "No content",
    400: "Invalid request: invalidSyntax, invalidValue, invalidFilter, invalidPath, ...",
    401: "Missing or wrong bearer token",
    404: "No such resource",
    409: "uniqueness: a resource with this userName, uidNumber, displayName or gidNumber exists",
    412: "If-Match names a version that is no longer current",
    413: "The request body is over http.max_body_bytes",
    415: "The request body is not application/scim+json or application/json",
    500: "The directory refused the operation for a reason the client cannot fix",
    503: "The directory is unavailable or slow; retry after Retry-After seconds",
}

_DIRECTORY = (500, 503)
_WRITE = (400, 401, 404, 409, 412, 413, 415, *_DIRECTORY)
Spec = tuple[int, str | None, str | None, tuple[int, ...]]
"""Success status, schema of the answer, schema of the request body, failure statuses."""

_OPERATIONS: dict[str, Spec] = {
    "createUser": (201, "User", "User", (400, 401, 409, 413, 415, *_DIRECTORY)),
    "listUsers": (200, "ListResponse", None, (400, 401, *_DIRECTORY)),
    "searchUsers": (200, "ListResponse", "SearchRequest", (400, 401, 413, 415, *_DIRECTORY)),
    "search": (200, "ListResponse", "SearchRequest", (400, 401, 413, 415, *_DIRECTORY)),
    "getUser": (200, "User", None, (400, 401, 404, *_DIRECTORY)),
    "replaceUser": (200, "User", "User", _WRITE),
    "patchUser": (200, "User", "PatchOp", _WRITE),
    "deleteUser": (204, None, None, (401, 404, 412, *_DIRECTORY)),
    "createGroup": (201, "Group", "Group", (400, 401, 409, 413, 415, *_DIRECTORY)),
    "listGroups": (200, "ListResponse", None, (400, 401, *_DIRECTORY)),
    "searchGroups": (200, "ListResponse", "SearchRequest", (400, 401, 413, 415, *_DIRECTORY)),
    "getGroup": (200, "Group", None, (400, 401, 404, *_DIRECTORY)),
    "replaceGroup": (200, "Group", "Group", _WRITE),
    "patchGroup": (204, None, "PatchOp", _WRITE),
    "deleteGroup": (204, None, None, (401, 404, 412, *_DIRECTORY)),
    "getServiceProviderConfig": (200, "Resource", None, (401,)),
    "listResourceTypes": (200, "ListResponse", None, (401,)),
    "getResourceType": (200, "Resource", None, (401, 404)),
    "listSchemas": (200, "ListResponse", None, (401,)),
    "getSchema": (200, "Resource", None, (401, 404)),
}

_REF = "#/components/schemas/"
_STRINGS = {"type": "array", "items": {"type": "string"}}
SCHEMAS: dict[str, dict[str, Any]] = {
    "Error": {
        "type": "object",
        "required": ["schemas", "status"],
        "properties": {
            "schemas": {
                "type": "array",
                "items": {"const": "urn:ietf:params:scim:api:messages:2.0:Error"},
            },
            "status": {"type": "string", "examples": ["404"]},
            "scimType": {"type": "string", "examples": ["uniqueness"]},
            "detail": {"type": "string"},
        },
    },
    "Resource": {
        "type": "object",
        "properties": {"schemas": _STRINGS, "id": {"type": "string"}},
        "additionalProperties": True,
    },
    "User": {
        "type": "object",
        "description": "A SCIM User (RFC 7643 §4.1) with the enterprise (§4.3) and posix "
        "extensions; attributes the server does not store are accepted and ignored.",
        "required": ["userName"],
        "properties": {
            "schemas": _STRINGS,
            "id": {"type": "string", "readOnly": True},
            "externalId": {"type": "string"},
            "userName": {"type": "string"},
            "displayName": {"type": "string"},
            "active": {"type": ["boolean", "string"]},
            "name": {"type": "object", "additionalProperties": True},
            "emails": {"type": "array", "items": {"type": "object"}},
            "meta": {"type": "object", "readOnly": True},
        },
        "additionalProperties": True,
    },
    "Group": {
        "type": "object",
        "description": "A SCIM Group (RFC 7643 §4.2), a POSIX group on Linux, with the posix "
        "extension's gidNumber; members are user or group ids.",
        "required": ["displayName"],
        "properties": {
            "schemas": _STRINGS,
            "id": {"type": "string", "readOnly": True},
            "externalId": {"type": "string"},
            "displayName": {"type": "string"},
            "members": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["value"],
                    "properties": {"value": {"type": "string"}, "$ref": {}, "type": {}},
                },
            },
            "meta": {"type": "object", "readOnly": True},
        },
        "additionalProperties": True,
    },
    "ListResponse": {
        "type": "object",
        "required": ["schemas", "totalResults", "Resources"],
        "properties": {
            "schemas": _STRINGS,
            "totalResults": {"type": "integer"},
            "itemsPerPage": {"type": "integer"},
            "startIndex": {"type": "integer"},
            "Resources": {"type": "array", "items": {"$ref": f"{_REF}Resource"}},
        },
    },
    "PatchOp": {
        "type": "object",
        "required": ["Operations"],
        "properties": {
            "schemas": _STRINGS,
            "Operations": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["op"],
                    "properties": {
                        "op": {"type": "string", "examples": ["add", "replace", "remove"]},
                        "path": {"type": "string"},
                        "value": {},
                    },
                },
            },
        },
    },
    "SearchRequest": {
        "type": "object",
        "properties": {
            "schemas": _STRINGS,
            "filter": {"type": "string"},
            "startIndex": {"type": "integer"},
            "count": {"type": "integer"},
            "attributes": _STRINGS,
            "excludedAttributes": _STRINGS,
        },
    },
}


def _scim(schema: str) -> dict[str, Any]:
    return {SCIM_JSON: {"schema": {"$ref": f"{_REF}{schema}"}}}


def _describe(
    operation: dict[str, Any], spec: tuple[int, str | None, str | None, tuple[int, ...]]
) -> None:
    success, answer, body, failures = spec
    responses: dict[str, Any] = {str(success): {"description": _STATUS[success]}}
    if answer:
        responses[str(success)]["content"] = _scim(answer)
    for status in failures:
        responses[str(status)] = {"description": _STATUS[status], "content": _scim("Error")}
    operation["responses"] = responses
    if body:
        operation["requestBody"] = {
            "required": True,
            "content": {
                SCIM_JSON: {"schema": {"$ref": f"{_REF}{body}"}},
                "application/json": {"schema": {"$ref": f"{_REF}{body}"}},
            },
        }
    operation["parameters"] = [
        p for p in operation.get("parameters", []) if p.get("name") != "authorization"
    ]
    operation["security"] = [{"bearer": []}]


def _drop_validation_errors(operation: dict[str, Any]) -> None:
    operation.get("responses", {}).pop("422", None)


def generator(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """The ``app.openapi`` function: FastAPI's document, corrected as described above."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        document = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        for path in document["paths"].values():
            for operation in path.values():
                spec = _OPERATIONS.get(operation.get("operationId", ""))
                if spec is not None:
                    _describe(operation, spec)
                _drop_validation_errors(operation)
        components = document.setdefault("components", {})
        schemas = components.setdefault("schemas", {})
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
        schemas.update(SCHEMAS)
        components["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        app.openapi_schema = document
        return document

    return openapi
