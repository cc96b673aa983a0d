"""The token endpoint: ``POST /oauth/token``, OAuth 2.0 client credentials (RFC 6749 §4.4).

Outside the SCIM base path and without a bearer token: the client authenticates with
HTTP Basic or ``client_id``/``client_secret`` in the form body (§2.3.1), and gets an
access token (§5.1) or an error (§5.2), never cached (``Cache-Control: no-store``).
"""

from __future__ import annotations

import base64
import binascii
import logging
from typing import Any
from urllib.parse import parse_qsl, unquote_plus

import anyio
import anyio.to_thread
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from app.oauth import AccessTokens

log = logging.getLogger(__name__)

router = APIRouter(tags=["OAuth"])

TOKEN_PATH = "/oauth/token"
FORM = "application/x-www-form-urlencoded"
MAX_BODY_BYTES = 16_384
SECRET_CHECKS_AT_ONCE = 2
"""Secret checks (a PBKDF2 run each) in flight at once; more wait, and the SCIM requests keep
their threads."""
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class _RefusedError(Exception):
    """An error response of RFC 6749 §5.2."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.description = description


def _invalid_request(description: str) -> _RefusedError:
    return _RefusedError(400, "invalid_request", description)


def _invalid_client(description: str) -> _RefusedError:
    return _RefusedError(401, "invalid_client", description)


def _answer(refused: _RefusedError) -> JSONResponse:
    headers = dict(_NO_STORE)
    if refused.status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="scim-ldap", charset="UTF-8"'
    body = {"error": refused.error, "error_description": refused.description}
    return JSONResponse(body, status_code=refused.status, headers=headers)


async def _form(request: Request) -> dict[str, str]:
    """The form parameters; repeated ones are refused, empty ones omitted (§3.2)."""
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != FORM:
        raise _invalid_request(f"The request body must be {FORM}")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise _invalid_request(f"The request body is over {MAX_BODY_BYTES} bytes")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True)
    except (UnicodeDecodeError, ValueError):
        raise _invalid_request("The request body is not a UTF-8 form") from None
    form: dict[str, str] = {}
    for name, value in pairs:
        if name in form:
            raise _invalid_request(f"The parameter {name} is given more than once")
        form[name] = value
    return {name: value for name, value in form.items() if value}


def _credentials(authorization: str | None, form: dict[str, str]) -> tuple[str, str]:
    """The client id and secret, from HTTP Basic or the body (§2.3.1).

    §2.3 asks a client to use one way only; one that repeats the same credentials in the body
    is let through, one whose two disagree is refused.
    """
    if authorization is None:
        if "client_id" not in form or "client_secret" not in form:
            raise _invalid_client(
                "The client must authenticate: HTTP Basic, or client_id and client_secret"
            )
        return form["client_id"], form["client_secret"]
    scheme, _, encoded = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        raise _invalid_client("Client authentication must be HTTP Basic")
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise _invalid_client("The Basic credentials are not base64 of id:secret") from None
    raw_id, colon, raw_secret = decoded.partition(":")
    if not colon:
        raise _invalid_client("The Basic credentials are not base64 of id:secret")
    client_id, secret = unquote_plus(raw_id), unquote_plus(raw_secret)
    if (form.get("client_id", client_id), form.get("client_secret", secret)) != (client_id, secret):
        raise _invalid_request(
            "The client authenticated twice, HTTP Basic and the body, differently"
        )
    return client_id, secret


_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "string",
            "enum": ["invalid_request", "invalid_client", "unsupported_grant_type"],
        },
        "error_description": {"type": "string"},
    },
}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


@router.post(
    TOKEN_PATH,
    operation_id="issueToken",
    summary="Issue an access token (OAuth 2.0 client credentials)",
    responses={
        200: {
            "description": "An access token (RFC 6749 §5.1), a JWT of RFC 9068",
            "content": _json(
                {
                    "type": "object",
                    "required": ["access_token", "token_type", "expires_in"],
                    "properties": {
                        "access_token": {"type": "string"},
                        "token_type": {"const": "Bearer"},
                        "expires_in": {"type": "integer"},
                    },
                }
            ),
        },
        400: {
            "description": "invalid_request or unsupported_grant_type",
            "content": _json(_ERROR_SCHEMA),
        },
        401: {
            "description": "invalid_client: unknown client or wrong secret",
            "content": _json(_ERROR_SCHEMA),
        },
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                FORM: {
                    "schema": {
                        "type": "object",
                        "required": ["grant_type"],
                        "properties": {
                            "grant_type": {"const": "client_credentials"},
                            "client_id": {"type": "string"},
                            "client_secret": {"type": "string", "format": "password"},
                            "scope": {"type": "string"},
                        },
                    }
                }
            },
        },
    },
)
async def issue_token(request: Request) -> JSONResponse:
    """Authenticate the client (HTTP Basic or the body) and answer a short-lived access token."""
    tokens: AccessTokens = request.app.state.auth.access_tokens
    try:
        form = await _form(request)
        grant = form.get("grant_type")
        if grant is None:
            raise _invalid_request("grant_type is required")
        if grant != "client_credentials":
            raise _RefusedError(
                400, "unsupported_grant_type", "Only grant_type=client_credentials is offered"
            )
        client_id, secret = _credentials(request.headers.get("authorization"), form)
        checks: anyio.CapacityLimiter | None = getattr(request.app.state, "secret_checks", None)
        if checks is None:
            checks = request.app.state.secret_checks = anyio.CapacityLimiter(SECRET_CHECKS_AT_ONCE)
        client = await anyio.to_thread.run_sync(
            tokens.authenticate, client_id, secret, limiter=checks
        )
        if client is None:
            known = tokens.client(client_id)
            reason = f"wrong secret for {known.name}" if known else "unknown client_id"
            log.warning("token request refused: %s", reason)
            raise _invalid_client("Unknown client or wrong secret")
    except _RefusedError as refused:
        return _answer(refused)
    request.state.token_name = client.name
    issued = tokens.issue(client)
    log.info("access token issued to %s for %d s", client.name, issued.expires_in)
    body = {
        "access_token": issued.access_token,
        "token_type": "Bearer",
        "expires_in": issued.expires_in,
    }
    return JSONResponse(body, headers=_NO_STORE)
