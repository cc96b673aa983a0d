"""/Users (RFC 7644 §3.3-§3.6)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from app.api.deps import BaseUrlDep, BodyDep, IfMatch, UsersDep
from app.api.responses import ScimResponse
from app.scim.resource import etag, split_list
from app.scim.users import Written

router = APIRouter(prefix="/Users", tags=["Users"])

_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/scim+json": {"schema": {"type": "object"}},
            "application/json": {"schema": {"type": "object"}},
        },
    }
}


def _answer(written: Written, status: int = 200, location: str | None = None) -> ScimResponse:
    headers = {}
    if tag := etag(written.version):
        headers["ETag"] = tag
    if location:
        headers["Location"] = location
    return ScimResponse(written.body, status_code=status, headers=headers)


@router.post("", operation_id="createUser", status_code=201, openapi_extra=_BODY)
def create_user(users: UsersDep, body: BodyDep, base: BaseUrlDep) -> ScimResponse:
    written = users.create(body, f"{base}/Users")
    return _answer(written, 201, written.body["meta"]["location"])


@router.get("", operation_id="listUsers")
def list_users(
    users: UsersDep,
    base: BaseUrlDep,
    filter_: Annotated[str | None, Query(alias="filter")] = None,
    start_index: Annotated[str | None, Query(alias="startIndex")] = None,
    count: Annotated[str | None, Query()] = None,
    attributes: Annotated[str | None, Query()] = None,
    excluded_attributes: Annotated[str | None, Query(alias="excludedAttributes")] = None,
) -> ScimResponse:
    body: dict[str, Any] = users.search(
        f"{base}/Users",
        filter_text=filter_,
        start_index=start_index,
        count=count,
        attributes=split_list(attributes),
        excluded=split_list(excluded_attributes),
    )
    return ScimResponse(body)


@router.get("/{user_id}", operation_id="getUser")
def get_user(
    user_id: str,
    users: UsersDep,
    base: BaseUrlDep,
    attributes: Annotated[str | None, Query()] = None,
    excluded_attributes: Annotated[str | None, Query(alias="excludedAttributes")] = None,
) -> ScimResponse:
    written = users.get(
        user_id, f"{base}/Users", split_list(attributes), split_list(excluded_attributes)
    )
    return _answer(written)


@router.put("/{user_id}", operation_id="replaceUser", openapi_extra=_BODY)
def replace_user(
    user_id: str, users: UsersDep, body: BodyDep, base: BaseUrlDep, if_match: IfMatch = None
) -> ScimResponse:
    return _answer(users.replace(user_id, body, if_match, f"{base}/Users"))


@router.patch("/{user_id}", operation_id="patchUser", openapi_extra=_BODY)
def patch_user(
    user_id: str, users: UsersDep, body: BodyDep, base: BaseUrlDep, if_match: IfMatch = None
) -> ScimResponse:
    return _answer(users.patch(user_id, body, if_match, f"{base}/Users"))


@router.delete("/{user_id}", operation_id="deleteUser", status_code=204)
def delete_user(user_id: str, users: UsersDep, if_match: IfMatch = None) -> Response:
    users.delete(user_id, if_match)
    return Response(status_code=204)
