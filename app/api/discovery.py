"""/ServiceProviderConfig, /ResourceTypes and /Schemas (RFC 7644 §4)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from scim2_models import NotFoundException

from app.api.deps import BaseUrlDep, SettingsDep, UsersDep
from app.api.responses import ScimResponse
from app.scim import discovery
from app.scim.users import LIST_RESPONSE

router = APIRouter(tags=["Discovery"])


def _list(resources: list[dict[str, object]]) -> dict[str, object]:
    return {
        "schemas": [LIST_RESPONSE],
        "totalResults": len(resources),
        "itemsPerPage": len(resources),
        "startIndex": 1,
        "Resources": resources,
    }


def _one(items: list[dict[str, Any]], wanted: str, kind: str) -> ScimResponse:
    """The document whose id is ``wanted`` (RFC 7644 §4), or 404."""
    for item in items:
        if item["id"] == wanted:
            return ScimResponse(item)
    raise NotFoundException(detail=f"{kind} {wanted} not found")


@router.get("/ServiceProviderConfig", operation_id="getServiceProviderConfig")
def service_provider_config(settings: SettingsDep, base: BaseUrlDep) -> ScimResponse:
    return ScimResponse(discovery.service_provider_config(base, settings.http.max_page_size))


@router.get("/ResourceTypes", operation_id="listResourceTypes")
def resource_types(users: UsersDep, base: BaseUrlDep) -> ScimResponse:
    return ScimResponse(_list(discovery.resource_types(users.catalog, base, groups=True)))


@router.get("/ResourceTypes/{name}", operation_id="getResourceType")
def resource_type(name: str, users: UsersDep, base: BaseUrlDep) -> ScimResponse:
    return _one(discovery.resource_types(users.catalog, base, groups=True), name, "ResourceType")


@router.get("/Schemas", operation_id="listSchemas")
def schemas(users: UsersDep, base: BaseUrlDep) -> ScimResponse:
    return ScimResponse(_list(discovery.schemas(users.catalog, base, groups=True)))


@router.get("/Schemas/{urn}", operation_id="getSchema")
def schema(urn: str, users: UsersDep, base: BaseUrlDep) -> ScimResponse:
    return _one(discovery.schemas(users.catalog, base, groups=True), urn, "Schema")
