"""Unauthenticated health endpoints outside the SCIM base."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from app.ldap.connection import Directory
from app.ldap.errors import DirectoryUnavailable

router = APIRouter(tags=["Health"])


@router.get("/healthz", operation_id="health")
def health() -> JSONResponse:
    """Liveness: the process answers."""
    return JSONResponse({"status": "ok"})


@router.get("/readyz", operation_id="readiness")
def ready(request: Request) -> JSONResponse:
    """Readiness: the directory answers a bind (503 while it does not)."""
    directory: Directory = request.app.state.directory
    try:
        with directory.session():
            pass
    except DirectoryUnavailable:
        return JSONResponse({"status": "directory unavailable"}, status_code=503)
    return JSONResponse({"status": "ok"})
