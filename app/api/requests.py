"""Reading a request: the JSON body within its size limit, and the public base URL."""

from __future__ import annotations

import ipaddress
import json
from typing import Any

from fastapi import Request
from scim2_models import InvalidSyntaxException, PayloadTooLargeException

from app.config import HttpSettings


async def json_body(request: Request, limit: int) -> Any:
    """The parsed JSON body (``application/scim+json`` or ``application/json``).

    A body over ``limit`` bytes is refused with 413 before it is read whole.
    """
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeException(detail=f"The request body is over {limit} bytes")
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeException(detail=f"The request body is over {limit} bytes")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        raise InvalidSyntaxException(detail="The request body is empty")
    try:
        return json.loads(raw)
    except UnicodeDecodeError:
        raise InvalidSyntaxException(detail="The request body is not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise InvalidSyntaxException(
            detail=f"The request body is not valid JSON: {exc.msg} at line {exc.lineno} "
            f"column {exc.colno}"
        ) from None


def _trusted(client: str | None, proxies: list[str]) -> bool:
    if not proxies or client is None:
        return False
    if "*" in proxies or client in proxies:
        return True
    try:
        address = ipaddress.ip_address(client)
    except ValueError:
        return False
    for proxy in proxies:
        try:
            if address in ipaddress.ip_network(proxy, strict=False):
                return True
        except ValueError:
            continue
    return False


def scim_base_url(request: Request, settings: HttpSettings) -> str:
    """The public URL of the SCIM base, for ``Location`` and ``meta.location``.

    A configured ``public_base_url`` wins; otherwise ``X-Forwarded-Proto`` and
    ``X-Forwarded-Host`` are believed only from a trusted proxy.
    """
    if settings.public_base_url is not None:
        return str(settings.public_base_url).rstrip("/")
    scheme = request.url.scheme
    host = request.headers.get("host") or request.url.netloc
    client = request.client.host if request.client else None
    if _trusted(client, settings.trusted_proxies):
        forwarded_proto = request.headers.get("x-forwarded-proto")
        forwarded_host = request.headers.get("x-forwarded-host")
        if forwarded_proto:
            scheme = forwarded_proto.split(",")[0].strip().lower()
        if forwarded_host:
            host = forwarded_host.split(",")[0].strip()
    return f"{scheme}://{host}{settings.base_path}"
