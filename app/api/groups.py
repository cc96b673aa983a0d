"""/Groups (RFC 7644 §3.3-§3.6), as Entra's group provisioning calls it (ENTRA.md §3)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from app import context
from app.api.deps import BaseUrlDep, BodyDep, IfMatch
from app.api.responses import ScimResponse, resource_response
from app.api.users import request_names, request_number, request_text, search_request
from app.scim.groups import GroupService
from app.scim.resource import split_list

router = APIRouter(tags=["Groups"])


def get_groups(request: Request) -> GroupService:
    service: GroupService = request.app.state.groups
    return service


GroupsDep = Annotated[GroupService, Depends(get_groups)]


@router.post("/Groups", operation_id="createGroup", status_code=201)
def create_group(groups: GroupsDep, body: BodyDep, base: BaseUrlDep) -> ScimResponse:
    created, version = groups.create(body, base)
    context.current().resource_id = created["id"]
    return resource_response(created, version, 201, created["meta"]["location"])


@router.get("/Groups", operation_id="listGroups")
def list_groups(
    groups: GroupsDep,
    base: BaseUrlDep,
    filter_: Annotated[str | None, Query(alias="filter")] = None,
    start_index: Annotated[str | None, Query(alias="startIndex")] = None,
    count: Annotated[str | None, Query()] = None,
    attributes: Annotated[str | None, Query()] = None,
    excluded_attributes: Annotated[str | None, Query(alias="excludedAttributes")] = None,
) -> ScimResponse:
    return ScimResponse(
        groups.search(
            base,
            filter_text=filter_,
            start_index=start_index,
            count=count,
            attributes=split_list(attributes),
            excluded=split_list(excluded_attributes),
        )
    )


@router.get("/Groups/{group_id}", operation_id="getGroup")
def get_group(
    group_id: str,
    groups: GroupsDep,
    base: BaseUrlDep,
    attributes: Annotated[str | None, Query()] = None,
    excluded_attributes: Annotated[str | None, Query(alias="excludedAttributes")] = None,
) -> ScimResponse:
    body, version = groups.get(
        group_id, base, split_list(attributes), split_list(excluded_attributes)
    )
    return resource_response(body, version)


@router.put("/Groups/{group_id}", operation_id="replaceGroup")
def replace_group(
    group_id: str, groups: GroupsDep, body: BodyDep, base: BaseUrlDep, if_match: IfMatch = None
) -> ScimResponse:
    replaced, version = groups.replace(group_id, body, if_match, base)
    return resource_response(replaced, version)


@router.patch("/Groups/{group_id}", operation_id="patchGroup", status_code=204)
def patch_group(
    group_id: str, groups: GroupsDep, body: BodyDep, if_match: IfMatch = None
) -> Response:
    groups.patch(group_id, body, if_match)
    return Response(status_code=204)


@router.delete("/Groups/{group_id}", operation_id="deleteGroup", status_code=204)
def delete_group(group_id: str, groups: GroupsDep, if_match: IfMatch = None) -> Response:
    groups.delete(group_id, if_match)
    return Response(status_code=204)


@router.post("/Groups/.search", operation_id="searchGroups")
def search_groups(groups: GroupsDep, body: BodyDep, base: BaseUrlDep) -> ScimResponse:
    query = search_request(body)
    return ScimResponse(
        groups.search(
            base,
            filter_text=request_text(query, "filter"),
            start_index=request_number(query, "startIndex"),
            count=request_number(query, "count"),
            attributes=request_names(query, "attributes"),
            excluded=request_names(query, "excludedAttributes"),
        )
    )
