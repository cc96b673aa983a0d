"""What the logs, the metrics and the audit trail know about the work in progress.

The HTTP layer opens a ``RequestContext`` per request (``app.api.guard``);
every layer reads it with ``current()``. Sync routes run in worker threads
that copy the context, and the context object is shared, so what a route
learns (the resource id of a new user) is seen by the layer that logs the
request. Background work (the sweep) opens one of its own without a request
id.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

NONE = "-"
"""How an unknown field is written (request id, token name, operation, resource id)."""

MAX_REQUEST_ID = 64
_SAFE_ID = re.compile(rf"[A-Za-z0-9._:@/+=-]{{1,{MAX_REQUEST_ID}}}")


def new_request_id() -> str:
    """A fresh request id: 128 random bits, hex."""
    return secrets.token_hex(16)


def request_id_from(header: str | None) -> str:
    """The client's ``X-Request-Id`` when it is short and plain, else a fresh id.

    A value that could break a log line or a header (control characters,
    quotes, spaces) or grow it without bound is replaced, not cleaned: a
    changed id would match nothing on the client's side anyway.
    """
    if header is not None and _SAFE_ID.fullmatch(header):
        return header
    return new_request_id()


Describe = Callable[[Mapping[str, Any]], tuple[str, str | None]]
"""The operation name and resource id of a request, read from its ASGI scope."""


@dataclass
class RequestContext:
    """The request (or background job) on whose behalf the server is working.

    A request's operation and resource id are read from its ASGI scope when
    asked, so they are known once the router has matched a route; an
    operation given here (``sweep``, ``allocate``) wins.
    """

    request_id: str | None = None
    given_operation: str | None = None
    given_resource: str | None = None
    scope: Mapping[str, Any] = field(default_factory=dict)
    describe: Describe | None = None

    @property
    def operation(self) -> str:
        if self.given_operation is not None:
            return self.given_operation
        return self.describe(self.scope)[0] if self.describe is not None else NONE

    @property
    def resource_id(self) -> str | None:
        if self.given_resource is not None:
            return self.given_resource
        return self.describe(self.scope)[1] if self.describe is not None else None

    @resource_id.setter
    def resource_id(self, value: str | None) -> None:
        self.given_resource = value

    @property
    def token_name(self) -> str:
        """The name the auth dependency put in ``request.state.token_name``, else "-"."""
        state = self.scope.get("state")
        name = state.get("token_name") if isinstance(state, Mapping) else None
        return name if isinstance(name, str) and name else NONE


_current: ContextVar[RequestContext | None] = ContextVar("request_context", default=None)


def current() -> RequestContext:
    """The context of the work in progress (an empty one outside any request)."""
    return _current.get() or RequestContext()


@contextmanager
def opened(context: RequestContext) -> Iterator[RequestContext]:
    """Make ``context`` the current one for the code inside."""
    token = _current.set(context)
    try:
        yield context
    finally:
        _current.reset(token)


@contextmanager
def acting_as(operation: str) -> Iterator[RequestContext]:
    """Run the code inside as ``operation`` (``allocate``), keeping the request and token."""
    outer = current()
    inner = RequestContext(
        outer.request_id, operation, outer.given_resource, outer.scope, outer.describe
    )
    with opened(inner):
        yield inner
