"""POST ``/.search`` from the root of the SCIM base: every resource type (RFC 7644 §3.4.3).

Users come first, then groups, each in its own order; ``startIndex`` and
``count`` page through the two as one list. A filter that names what one
resource type does not have (``userName`` for groups) selects none of that
type; a filter neither type can answer is 400 ``invalidFilter``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from scim2_models import InvalidFilterException

from app.api.deps import BaseUrlDep, BodyDep, UsersDep
from app.api.groups import GroupsDep
from app.api.responses import ScimResponse
from app.api.users import request_names, request_number, request_text, search_request
from app.scim.users import LIST_RESPONSE

router = APIRouter(tags=["Search"])


@router.post("/.search", operation_id="search")
def search_all(users: UsersDep, groups: GroupsDep, body: BodyDep, base: BaseUrlDep) -> ScimResponse:
    query = search_request(body)
    filter_text = request_text(query, "filter")
    attributes = request_names(query, "attributes")
    excluded = request_names(query, "excludedAttributes")
    start = max(int(request_number(query, "startIndex") or 1), 1)
    count_text = request_number(query, "count")
    wanted = None if count_text is None else max(int(count_text), 0)
    problems: list[InvalidFilterException] = []

    def users_page(first: int, size: str | None) -> dict[str, Any]:
        try:
            return users.search(
                f"{base}/Users",
                filter_text=filter_text,
                start_index=str(first),
                count=size,
                attributes=attributes,
                excluded=excluded,
                sort_by=request_text(query, "sortBy"),
                sort_order=request_text(query, "sortOrder"),
            )
        except InvalidFilterException as problem:
            problems.append(problem)
            return {"totalResults": 0, "Resources": []}

    def groups_page(first: int, size: str | None) -> dict[str, Any]:
        try:
            return groups.search(
                base,
                filter_text=filter_text,
                start_index=str(first),
                count=size,
                attributes=attributes,
                excluded=excluded,
            )
        except InvalidFilterException as problem:
            problems.append(problem)
            return {"totalResults": 0, "Resources": []}

    first_users = users_page(start, count_text)
    users_total = int(first_users["totalResults"])
    resources: list[Any] = list(first_users["Resources"])
    room = None if wanted is None else wanted - len(resources)
    group_start = max(start - users_total, 1)
    found_groups = groups_page(group_start, None if room is None else str(max(room, 0)))
    if room is None or room > 0:
        resources += found_groups["Resources"]
    if len(problems) == 2:
        raise problems[0]
    return ScimResponse(
        {
            "schemas": [LIST_RESPONSE],
            "totalResults": users_total + int(found_groups["totalResults"]),
            "itemsPerPage": len(resources),
            "startIndex": start,
            "Resources": resources,
        }
    )
