"""Unauthenticated health endpoints outside the SCIM base.

Both run on the event loop, never in the thread pool the SCIM routes share, so
a stalled directory that ties up every worker thread cannot make them wait.
"""

from __future__ import annotations

import anyio
import anyio.to_thread
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from app.ldap.connection import Directory, DirectoryConfigError
from app.ldap.errors import RETRY_AFTER_SECONDS, DirectoryUnavailable

router = APIRouter(tags=["Health"])

PROBES_IN_FLIGHT = 2
"""Round trips in flight at once; a probe beyond them answers 503 without waiting."""


def _unready(status: str) -> JSONResponse:
    return JSONResponse(
        {"status": status}, status_code=503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)}
    )


@router.get("/healthz", operation_id="health")
async def health() -> JSONResponse:
    """Liveness: the process answers; the directory is not consulted."""
    return JSONResponse({"status": "ok"})


@router.get(
    "/readyz",
    operation_id="readiness",
    responses={503: {"description": "The directory did not answer a round trip in time"}},
)
async def ready(request: Request) -> JSONResponse:
    """Readiness: the directory answers a bind and a root DSE read within ``ldap.probe_timeout``."""
    directory: Directory = request.app.state.directory
    probes: anyio.CapacityLimiter | None = getattr(request.app.state, "probes", None)
    if probes is None:
        probes = request.app.state.probes = anyio.CapacityLimiter(PROBES_IN_FLIGHT)
    timeout = directory.settings.probe_timeout
    if probes.available_tokens < 1:
        return _unready("directory unavailable")
    try:
        with anyio.fail_after(timeout + 0.5):
            await anyio.to_thread.run_sync(
                directory.ping, timeout, limiter=probes, abandon_on_cancel=True
            )
    except (DirectoryUnavailable, TimeoutError):
        return _unready("directory unavailable")
    except DirectoryConfigError:
        return _unready("directory refuses the configured bind")
    return JSONResponse({"status": "ok"})
