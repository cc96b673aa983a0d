"""Around every HTTP request: a time bound, a last-resort 500, and the access log.

- Every request is answered within ``http.request_timeout``: past it, the
  client gets 503 with ``Retry-After`` and the work still queued for it is
  cancelled; a directory call already running ends at the same deadline,
  which the directory layer reads from ``app.ldap.connection.deadline``.
- An exception no handler turned into a SCIM error is logged and answered as
  a SCIM 500 here, so the connection stays open for the next request.
- The access log records the method and the path, never the query string:
  a token or a password in a URL must not reach a log.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.responses import ScimResponse, error_body
from app.ldap.connection import deadline
from app.ldap.errors import RETRY_AFTER_SECONDS

log = logging.getLogger(__name__)
access_log = logging.getLogger("app.access")


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
        state: dict[str, Any] = {"status": None, "cut": False}

        async def guarded_send(message: Message) -> None:
            if state["cut"]:
                return
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
            await send(message)

        token = deadline.set(started + self.timeout)
        try:
            task = asyncio.ensure_future(self.app(scope, receive, guarded_send))
        finally:
            deadline.reset(token)
        try:
            done, _ = await asyncio.wait({task}, timeout=self.timeout)
            if task not in done and state["status"] is not None:
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
                await self._answer(scope, send, 503, "The request took too long; retry later")
            else:
                task.result()
        except asyncio.CancelledError:
            task.cancel()
            raise
        except Exception as exc:
            log.error("unexpected error: %s", type(exc).__name__, exc_info=exc)
            if state["status"] is not None:
                raise
            state["status"] = 500
            await self._answer(scope, send, 500, "Internal server error")
        finally:
            status = state["status"] if not state["cut"] else 503
            access_log.info(
                '%s - "%s %s HTTP/%s" %s %.1fms',
                _client(scope),
                scope["method"],
                scope["path"],
                scope.get("http_version", "1.1"),
                status,
                (time.monotonic() - started) * 1000,
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
