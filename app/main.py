"""The application factory: settings in, a FastAPI app with its directory pool out."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, Depends, FastAPI
from fastapi_offline import FastAPIOffline

from app import audit, metrics
from app.api import discovery, errors, groups, health, oauth, openapi, search, users
from app.api import metrics as metrics_route
from app.api.deps import require_token
from app.api.guard import RequestGuard
from app.auth import BearerAuth
from app.config import Settings
from app.ldap.changes import UserChanges
from app.ldap.connection import Directory
from app.ldap.groupentries import GroupDirectory
from app.ldap.mapping import MappingError, UserMapping, read_schema, schema_problems
from app.ldap.users import UserDirectory
from app.scim.groups import GroupService
from app.scim.users import UserService
from app.sweeper import Sweeper
from app.version import VERSION

DOCS_ASSETS = "/docs/assets"
"""Where the Swagger UI of ``/docs`` loads its script and style from: this server, no CDN."""


def create_app(settings: Settings, *, read_directory_schema: bool = True) -> FastAPI:
    """Build the app; the directory pool opens in the lifespan and closes with it.

    The directory's schema is read once here: it types custom mappings and
    the ECMA2Host namespace, and a mapping it cannot hold stops the start
    (``MappingError``).

    The app's loggers (``app.*``) log at ``settings.log_level``. ``/docs`` serves
    Swagger UI from files shipped in a package, so a host without internet access
    (or a browser that blocks third-party scripts) still shows it.
    """
    logging.getLogger("app").setLevel(settings.log_level.upper())
    directory = Directory(settings.ldap)
    audit.configure(settings.audit)
    metrics.observe_pool(
        lambda: directory.in_use, lambda: directory.waiting, settings.ldap.pool_size
    )
    schema = read_schema(directory) if read_directory_schema else None
    mapping = UserMapping(settings.users, settings.ldap, settings.posix, settings.accounts, schema)
    if schema is not None and (problems := schema_problems(mapping, schema)):
        directory.close()
        raise MappingError("; ".join(problems))
    user_directory = UserDirectory(directory, mapping, small_search=settings.http.max_page_size)

    changes = UserChanges(user_directory, settings.accounts)
    group_directory = GroupDirectory(directory, settings, user_directory)
    sweeper = Sweeper(changes, settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        sweeper.start()
        try:
            yield
        finally:
            sweeper.stop()
            directory.close()

    app = FastAPIOffline(
        title="scim-ldap",
        version=VERSION,
        description="SCIM 2.0 provisioning of Linux accounts into an LDAP directory.",
        lifespan=lifespan,
        redoc_url=None,
        static_url=DOCS_ASSETS,
    )
    app.state.settings = settings
    app.state.directory = directory
    app.state.users = UserService(settings, user_directory, changes, group_directory)
    app.state.groups = GroupService(settings, group_directory)
    app.state.sweeper = sweeper
    app.state.auth = BearerAuth(settings.auth)
    scim = APIRouter(prefix=settings.http.base_path, dependencies=[Depends(require_token)])
    scim.include_router(users.router)
    scim.include_router(groups.router)
    scim.include_router(search.router)
    scim.include_router(discovery.router)
    app.include_router(scim)
    app.include_router(health.router)
    app.include_router(oauth.router)
    app.include_router(metrics_route.router)
    errors.install(app)
    app.add_middleware(RequestGuard, timeout=settings.http.request_timeout)
    app.openapi = openapi.generator(app)  # type: ignore[method-assign]
    return app
