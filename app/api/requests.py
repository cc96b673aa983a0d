"""Reading a request: the JSON body within its size limit, and the public base URL."""

from __future__ import annotations

import ipaddress
import json
import math
from typing import Any

from fastapi import Request
from scim2_models import InvalidSyntaxException, PayloadTooLargeException, SCIMException

from app.config import HttpSettings


class UnsupportedMediaType(SCIMException):
    """A request body that is not JSON (HTTP 415, RFC 7231 §6.5.13)."""

    status = 415
    _default_detail = "The request body must be application/scim+json or application/json"


JSON_TYPES = frozenset({"application/scim+json", "application/json"})
MAX_DEPTH = 32
"""Deepest nesting of a body: a PATCH of group members, the deepest SCIM body, has 5 levels."""
MAX_DIGITS = 100
"""Longest JSON integer: no SCIM attribute needs more than 64 bits (19 digits)."""


def _check_media_type(header: str | None) -> None:
    """Accept the SCIM and plain JSON media types, with parameters such as charset."""
    media_type = (header or "").split(";", 1)[0].strip().lower()
    if media_type not in JSON_TYPES:
        shown = f"{header!r}" if header else "none"
        raise UnsupportedMediaType(
            detail=f"The request body must be application/scim+json or application/json "
            f"(Content-Type: {shown})"
        )


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object whose keys are unique; RFC 8259 §4 leaves duplicates undefined, so refuse them."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _value in pairs:
            if key in seen:
                raise InvalidSyntaxException(detail=f"The request body repeats the key {key!r}")
            seen.add(key)
    return obj


def _constant(name: str) -> Any:
    raise InvalidSyntaxException(detail=f"The request body holds {name}, which JSON does not allow")


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise InvalidSyntaxException(detail=f"The request body holds a number out of range: {text}")
    return value


def _int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_DIGITS:
        raise InvalidSyntaxException(
            detail=f"The request body holds an integer of more than {MAX_DIGITS} digits"
        )
    return int(text)


def _depth(document: Any) -> int:
    deepest = 0
    stack = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            value = list(value.values())
        if isinstance(value, list):
            deepest = max(deepest, depth)
            if deepest > MAX_DEPTH:
                break
            stack.extend((item, depth + 1) for item in value)
    return deepest


def parse_json(raw: bytes) -> Any:
    """The JSON document in ``raw`` (RFC 8259), refusing what JSON leaves undefined.

    Duplicate keys, ``NaN``/``Infinity``, numbers out of range, integers of more
    than ``MAX_DIGITS`` digits and nesting deeper than ``MAX_DEPTH`` are
    ``invalidSyntax``.
    """
    try:
        document = json.loads(
            raw,
            object_pairs_hook=_unique_keys,
            parse_constant=_constant,
            parse_float=_float,
            parse_int=_int,
        )
    except UnicodeDecodeError:
        raise InvalidSyntaxException(detail="The request body is not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise InvalidSyntaxException(
            detail=f"The request body is not valid JSON: {exc.msg} at line {exc.lineno} "
            f"column {exc.colno}"
        ) from None
    except RecursionError:
        raise InvalidSyntaxException(
            detail=f"The request body is nested deeper than {MAX_DEPTH} levels"
        ) from None
    if _depth(document) > MAX_DEPTH:
        raise InvalidSyntaxException(
            detail=f"The request body is nested deeper than {MAX_DEPTH} levels"
        )
    return document


async def json_body(request: Request, limit: int) -> Any:
    """The parsed JSON body (``application/scim+json`` or ``application/json``).

    Another media type is 415; a body over ``limit`` bytes is refused with 413
    before it is read whole.
    """
    _check_media_type(request.headers.get("content-type"))
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
    return parse_json(raw)


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
