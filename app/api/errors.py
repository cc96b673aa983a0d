"""Every failure answered as a SCIM error body; no traceback ever reaches a client.

Typed errors are answered here; anything else is answered as a 500 by
``app.api.guard``, which also keeps the connection open.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from scim2_models import SCIMException
from starlette.exceptions import HTTPException

from app.api.responses import ScimResponse, error_body, error_response

log = logging.getLogger(__name__)


async def _scim_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SCIMException)
    return error_response(exc)


async def _validation_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    problems = "; ".join(
        f"{'.'.join(str(p) for p in err.get('loc', ()))}: {err.get('msg')}" for err in exc.errors()
    )
    return ScimResponse(error_body(400, problems, "invalidValue"), status_code=400)


async def _http_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else "Request failed"
    return ScimResponse(
        error_body(exc.status_code, detail), status_code=exc.status_code, headers=exc.headers
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(SCIMException, _scim_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
