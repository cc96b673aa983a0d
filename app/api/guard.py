"""Around every HTTP request: its context, a time bound, a last-resort 500, the access log.

- Each request gets a request id (``X-Request-Id`` when the client sent a
  plain one, else a fresh one), echoed in the response, and a
  ``RequestContext`` (app/context.py) naming its SCIM operation and
  resource, which the logs, the metrics and the audit trail read.

- Every request is answered within ``http.request_timeout``: past it, the
  client gets 503 with ``Retry-After`` and the work still queued for it is
  cancelled; a directory call already running ends at the same deadline,
  which the directory layer reads from ``app.ldap.connection.deadline``.
- An exception no handler turned into a SCIM error is logged and answered as
  a SCIM 500 here, so the connection stays open for the next request.
- The access log records the method and the path, never the query string
  (a token or a password in a URL must not reach a log) nor a header, with
  the status, the time taken, the token's name, the operation, and for a
  4xx or 5xx the ``detail`` and ``scimType`` the client was answered
  (RFC 7644 §3.12), so the reason for a refusal is in the log.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import context, metrics
from app.api.operations import describe
from app.api.responses import ScimResponse, error_body
from app.ldap.connection import deadline
from app.ldap.errors import RETRY_AFTER_SECONDS
from app.logs import FIELDS

log = logging.getLogger(__name__)
access_log = logging.getLogger("app.access")

REQUEST_ID = "x-request-id"
MAX_ERROR_BODY = 16_384
"""Bytes of an error body kept to read its detail and scimType for the log."""


class _Reply:
    """What was sent back: the status and, for an error, the start of its body."""

    def __init__(self, send: Send, request_id: str) -> None:
        self.send = send
        self.request_id = request_id.encode("ascii")
        self.status: int | None = None
        self.body = bytearray()

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            headers = [h for h in message.get("headers", []) if h[0].lower() != b"x-request-id"]
            message = {**message, "headers": [*headers, (b"x-request-id", self.request_id)]}
        elif message["type"] == "http.response.body" and (self.status or 0) >= 400:
            self.body += message.get("body", b"")[: MAX_ERROR_BODY - len(self.body)]
        await self.send(message)

    def reason(self) -> dict[str, str]:
        """The SCIM error's ``detail`` and ``scimType`` (RFC 7644 §3.12), an OAuth error's
        ``error`` and ``error_description`` (RFC 6749 §5.2), a health probe's ``status``."""
        try:
            body = json.loads(bytes(self.body))
        except ValueError:
            return {}
        if not isinstance(body, dict):
            return {}
        found = {}
        for key, name in (
            ("detail", "detail"),
            ("scimType", "scim_type"),
            ("error_description", "detail"),
            ("error", "error"),
        ):
            value = body.get(key)
            if isinstance(value, str) and value and name not in found:
                found[name] = value
        status = body.get("status")
        if "detail" not in found and isinstance(status, str) and not status.isdigit():
            found["detail"] = status
        return found


class RequestGuard:
    """ASGI middleware bounding, protecting and logging each HTTP request."""

    def __init__(self, app: ASGIApp, timeout: float) -> None:
        self.app = app
        self.timeout = timeout
        self._abandoned: set[asyncio.Task[None]] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        headers = dict(scope.get("headers") or [])
        request_id = context.request_id_from(
            headers.get(REQUEST_ID.encode(), b"").decode("latin-1") or None
        )
        scope.setdefault("state", {})
        work = context.RequestContext(request_id, scope=scope, describe=describe)
        with context.opened(work):
            await self._guard(scope, receive, _Reply(send, request_id), work, started)

    async def _guard(
        self,
        scope: Scope,
        receive: Receive,
        reply: _Reply,
        work: context.RequestContext,
        started: float,
    ) -> None:
        state: dict[str, Any] = {"cut": False}

        async def guarded_send(message: Message) -> None:
            if state["cut"]:
                return
            await reply(message)

        token = deadline.set(started + self.timeout)
        try:
            task = asyncio.ensure_future(self.app(scope, receive, guarded_send))
        finally:
            deadline.reset(token)
        try:
            done, _ = await asyncio.wait({task}, timeout=self.timeout)
            if task not in done and reply.status is not None:
                await task
            elif task not in done:
                state["cut"] = True
                task.cancel()
                self._abandoned.add(task)
                task.add_done_callback(self._forget)
                log.warning(
                    "%s %s took over %.1f s; answered 503",
                    scope["method"],
                    scope["path"],
                    self.timeout,
                )
                await self._answer(scope, reply, 503, "The request took too long; retry later")
            else:
                task.result()
        except asyncio.CancelledError:
            task.cancel()
            raise
        except Exception as exc:
            log.error("unexpected error: %s", type(exc).__name__, exc_info=exc)
            if reply.status is not None:
                raise
            await self._answer(scope, reply, 500, "Internal server error")
        finally:
            self._log(scope, reply, work, time.monotonic() - started)

    @staticmethod
    def _log(scope: Scope, reply: _Reply, work: context.RequestContext, seconds: float) -> None:
        status = reply.status or 500
        metrics.REQUESTS.labels(work.operation, str(status), work.token_name).inc()
        metrics.LATENCY.labels(work.operation).observe(seconds)
        fields: dict[str, Any] = {
            "request_id": work.request_id,
            "method": scope["method"],
            "path": scope["path"],
            "status": status,
            "duration_ms": round(seconds * 1000, 1),
            "client": _client(scope),
            "token": work.token_name,
            "operation": work.operation,
        }
        if work.resource_id is not None:
            fields["resource_id"] = work.resource_id
        if status >= 400:
            fields.update(reply.reason())
        access_log.log(
            logging.WARNING if status >= 500 else logging.INFO,
            '%s - "%s %s HTTP/%s" %s %.1fms',
            fields["client"],
            scope["method"],
            scope["path"],
            scope.get("http_version", "1.1"),
            status,
            seconds * 1000,
            extra={FIELDS: fields},
        )

    def _forget(self, task: asyncio.Task[None]) -> None:
        self._abandoned.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.debug("abandoned request failed: %s", type(task.exception()).__name__)

    @staticmethod
    async def _answer(scope: Scope, send: Send, status: int, detail: str) -> None:
        headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if status == 503 else None
        response = ScimResponse(error_body(status, detail), status_code=status, headers=headers)
        await response(scope, _no_body, send)


async def _no_body() -> Message:
    return {"type": "http.disconnect"}


def _client(scope: Scope) -> str:
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else "-"
