"""Every SCIM route has the operation name the logs, metrics and audit trail give it."""

from __future__ import annotations

from app.api.operations import OPERATIONS
from app.config import Settings
from app.main import create_app


def test_every_scim_route_is_named() -> None:
    settings = Settings()
    document = create_app(settings, read_directory_schema=False).openapi()
    scim = {
        operation["operationId"]
        for path, operations in document["paths"].items()
        if path.startswith(settings.http.base_path)
        for operation in operations.values()
    }
    assert scim == set(OPERATIONS)
    resources = {name.split(".")[0] for name in OPERATIONS.values()}
    assert resources == {
        "Users",
        "Groups",
        "search",
        "ServiceProviderConfig",
        "ResourceTypes",
        "Schemas",
    }
