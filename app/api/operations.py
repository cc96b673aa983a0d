"""The names the logs, metrics and audit trail give a request: ``Users.patch``, its resource id."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app import context

OPERATIONS = {
    "createUser": "Users.create",
    "listUsers": "Users.list",
    "searchUsers": "Users.search",
    "getUser": "Users.get",
    "replaceUser": "Users.replace",
    "patchUser": "Users.patch",
    "deleteUser": "Users.delete",
    "createGroup": "Groups.create",
    "listGroups": "Groups.list",
    "searchGroups": "Groups.search",
    "getGroup": "Groups.get",
    "replaceGroup": "Groups.replace",
    "patchGroup": "Groups.patch",
    "deleteGroup": "Groups.delete",
    "search": "search",
    "getServiceProviderConfig": "ServiceProviderConfig.get",
    "listResourceTypes": "ResourceTypes.list",
    "getResourceType": "ResourceTypes.get",
    "listSchemas": "Schemas.list",
    "getSchema": "Schemas.get",
}
"""SCIM operation names, by route operation id; another route is named by its operation id."""

RESOURCE_PARAMS = ("user_id", "group_id")


def describe(scope: Mapping[str, Any]) -> tuple[str, str | None]:
    """The operation name and resource id of the route the router matched, if any."""
    route = scope.get("route")
    if route is None:
        return context.NONE, None
    operation_id = getattr(route, "operation_id", None) or getattr(route, "name", None)
    params = scope.get("path_params") or {}
    resource = next((params[p] for p in RESOURCE_PARAMS if p in params), None)
    name = OPERATIONS.get(operation_id or "", operation_id or context.NONE)
    return name, resource if isinstance(resource, str) else None
