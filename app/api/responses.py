"""SCIM responses: ``application/scim+json`` bodies and error bodies (RFC 7644 §3.12)."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse
from scim2_models import SCIMException

from app.ldap.errors import RETRY_AFTER_SECONDS
from app.scim.resource import etag

SCIM_JSON = "application/scim+json"
ERROR_URN = "urn:ietf:params:scim:api:messages:2.0:Error"


class ScimResponse(JSONResponse):
    media_type = SCIM_JSON


def resource_response(
    body: dict[str, Any], version: str | None, status: int = 200, location: str | None = None
) -> ScimResponse:
    """A resource with its ``ETag`` (RFC 7644 §3.14) and, for a create, its ``Location``."""
    headers = {}
    if tag := etag(version):
        headers["ETag"] = tag
    if location:
        headers["Location"] = location
    return ScimResponse(body, status_code=status, headers=headers)


def error_body(status: int, detail: str, scim_type: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"schemas": [ERROR_URN], "status": str(status), "detail": detail}
    if scim_type:
        body["scimType"] = scim_type
    return body


def error_response(exc: SCIMException) -> ScimResponse:
    headers = {}
    if exc.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="scim"'
    if exc.status == 503:
        headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return ScimResponse(
        error_body(exc.status, exc.detail, exc.scim_type or None),
        status_code=exc.status,
        headers=headers,
    )
