"""/Users (RFC 7644 §3.3-§3.6), and POST ``/.search`` (§3.4.3).

Users are the only resource type served, so a search from the root of the
SCIM base is a search of /Users.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from scim2_models import InvalidValueException

from app import context
from app.api.deps import BaseUrlDep, BodyDep, IfMatch, UsersDep
from app.api.responses import ScimResponse, resource_response
from app.scim.resource import split_list
from app.scim.users import UserService, Written

router = APIRouter(tags=["Users"])

SEARCH_REQUEST = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"


def _answer(written: Written, status: int = 200, location: str | None = None) -> ScimResponse:
    return resource_response(written.body, written.version, status, location)


@router.post("/Users", operation_id="createUser", status_code=201)
def create_user(users: UsersDep, body: BodyDep, base: BaseUrlDep) -> ScimResponse:
    written = users.create(body, f"{base}/Users")
    context.current().resource_id = written.body["id"]
    return _answer(written, 201, written.body["meta"]["location"])


@router.get("/Users", operation_id="listUsers")
def list_users(
    users: UsersDep,
    base: BaseUrlDep,
    filter_: Annotated[str | None, Query(alias="filter")] = None,
    start_index: Annotated[str | None, Query(alias="startIndex")] = None,
    count: Annotated[str | None, Query()] = None,
    attributes: Annotated[str | None, Query()] = None,
    excluded_attributes: Annotated[str | None, Query(alias="excludedAttributes")] = None,
    sort_by: Annotated[str | None, Query(alias="sortBy")] = None,
    sort_order: Annotated[str | None, Query(alias="sortOrder")] = None,
) -> ScimResponse:
    body: dict[str, Any] = users.search(
        f"{base}/Users",
        filter_text=filter_,
        start_index=start_index,
        count=count,
        attributes=split_list(attributes),
        excluded=split_list(excluded_attributes),
        sort_by=sort_by,
        sort_order=sort_order,
    )
    return ScimResponse(body)


def request_names(body: dict[str, Any], key: str) -> list[str] | None:
    value = body.get(key)
    if value is None or isinstance(value, str):
        return split_list(value)
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return split_list(",".join(value))
    raise InvalidValueException(detail=f"{key} must be a list of attribute paths")


def request_number(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise InvalidValueException(detail=f"{key} must be an integer, not {value!r}")
    return str(value)


def request_text(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise InvalidValueException(detail=f"{key} must be a string")
    return value


def search_request(body: Any) -> dict[str, Any]:
    """A SearchRequest body (RFC 7644 §3.4.3), checked."""
    if not isinstance(body, dict):
        raise InvalidValueException(detail="a SearchRequest must be a JSON object")
    schemas = body.get("schemas")
    if schemas is not None and (not isinstance(schemas, list) or SEARCH_REQUEST not in schemas):
        raise InvalidValueException(detail=f"schemas must contain {SEARCH_REQUEST}")
    return body


def _search(users: UserService, body: Any, users_url: str) -> ScimResponse:
    """A query sent as a SearchRequest (RFC 7644 §3.4.3), answered as the same GET."""
    body = search_request(body)
    result: dict[str, Any] = users.search(
        users_url,
        filter_text=request_text(body, "filter"),
        start_index=request_number(body, "startIndex"),
        count=request_number(body, "count"),
        attributes=request_names(body, "attributes"),
        excluded=request_names(body, "excludedAttributes"),
        sort_by=request_text(body, "sortBy"),
        sort_order=request_text(body, "sortOrder"),
    )
    return ScimResponse(result)


@router.post("/Users/.search", operation_id="searchUsers")
def search_users(users: UsersDep, body: BodyDep, base: BaseUrlDep) -> ScimResponse:
    return _search(users, body, f"{base}/Users")


@router.get("/Users/{user_id}", operation_id="getUser")
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


@router.put("/Users/{user_id}", operation_id="replaceUser")
def replace_user(
    user_id: str, users: UsersDep, body: BodyDep, base: BaseUrlDep, if_match: IfMatch = None
) -> ScimResponse:
    return _answer(users.replace(user_id, body, if_match, f"{base}/Users"))


@router.patch("/Users/{user_id}", operation_id="patchUser")
def patch_user(
    user_id: str, users: UsersDep, body: BodyDep, base: BaseUrlDep, if_match: IfMatch = None
) -> ScimResponse:
    return _answer(users.patch(user_id, body, if_match, f"{base}/Users"))


@router.delete("/Users/{user_id}", operation_id="deleteUser", status_code=204)
def delete_user(user_id: str, users: UsersDep, if_match: IfMatch = None) -> Response:
    users.delete(user_id, if_match)
    return Response(status_code=204)
