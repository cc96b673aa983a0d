"""Dependencies shared by the routes: settings, the user service, auth, body and URLs."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Header, Request

from app.api.requests import json_body, scim_base_url
from app.auth import BearerAuth
from app.config import Settings
from app.scim.users import UserService


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_users(request: Request) -> UserService:
    service: UserService = request.app.state.users
    return service


def require_token(request: Request, authorization: Annotated[str | None, Header()] = None) -> None:
    """401 unless a valid bearer token came; ``request.state.token_name`` names it (never the
    secret), for the logs, the metrics and the audit trail."""
    auth: BearerAuth = request.app.state.auth
    request.state.token_name = auth.check(authorization)


async def read_body(request: Request) -> Any:
    settings: Settings = request.app.state.settings
    return await json_body(request, settings.http.max_body_bytes)


def base_url(request: Request) -> str:
    settings: Settings = request.app.state.settings
    return scim_base_url(request, settings.http)


SettingsDep = Annotated[Settings, Depends(get_settings)]
UsersDep = Annotated[UserService, Depends(get_users)]
BodyDep = Annotated[Any, Depends(read_body)]
BaseUrlDep = Annotated[str, Depends(base_url)]
IfMatch = Annotated[str | None, Header(alias="If-Match")]
