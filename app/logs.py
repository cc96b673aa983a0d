"""One log format for the server's own lines, the access log and uvicorn's lines.

``json`` (the default) writes one object per line, for journald, container
runtimes and log collectors that index fields (``request_id``, ``status``,
``scim_type``); ``text`` writes the same fields as ``key=value`` after the
message, for a terminal. A line logged while a request is served carries its
request id.

What a line may hold is decided where it is logged: the access log names the
path without its query string and never a header; SCIM error details name
attributes, never the values of passwords or tokens.
"""

from __future__ import annotations

import json
import logging
import logging.config
from datetime import UTC, datetime
from typing import Any

from app import context

FIELDS = "fields"
"""The ``extra`` key whose dict of structured fields a line carries."""


def timestamp(created: float) -> str:
    """RFC 3339 UTC with milliseconds."""
    moment = datetime.fromtimestamp(created, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    found: dict[str, Any] = {}
    request_id = getattr(record, "request_id", None)
    if request_id is None:
        request_id = context.current().request_id
    if request_id is not None:
        found["request_id"] = request_id
    extra = getattr(record, FIELDS, None)
    if isinstance(extra, dict):
        found.update(extra)
    return found


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "logger", "message", "request_id", ...fields}``, one per line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update(_fields(record))
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """``<time> <LEVEL> <logger> [<request id>] <message> key=value ...``."""

    def format(self, record: logging.LogRecord) -> str:
        fields = _fields(record)
        request_id = fields.pop("request_id", None)
        parts = [timestamp(record.created), record.levelname, record.name]
        if request_id is not None:
            parts.append(f"[{request_id}]")
        parts.append(record.getMessage())
        parts += [f"{key}={_text(value)}" for key, value in fields.items()]
        text = " ".join(parts)
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def _text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return json.dumps(text) if not text or any(c in text for c in ' "=\n') else text


FORMATTERS: dict[str, type[logging.Formatter]] = {"json": JsonFormatter, "text": TextFormatter}


def config(log_format: str, level: str) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for the root, ``app.*`` and uvicorn's loggers.

    uvicorn is given it as ``log_config`` so that its lines (start-up, errors)
    use the same format; its own access log stays off (``app.access`` is the
    access log).
    """
    formatter = f"{FORMATTERS[log_format].__module__}.{FORMATTERS[log_format].__qualname__}"
    handler = {
        "class": "logging.StreamHandler",
        "formatter": "scim_ldap",
        "stream": "ext://sys.stderr",
    }
    uvicorn = {"handlers": ["default"], "level": level.upper(), "propagate": False}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"scim_ldap": {"()": formatter}},
        "handlers": {"default": handler},
        "root": {"handlers": ["default"], "level": "INFO"},
        "loggers": {
            "uvicorn": uvicorn,
            "uvicorn.error": {"level": level.upper()},
            "uvicorn.access": {"handlers": ["default"], "level": "WARNING", "propagate": False},
        },
    }


def configure(log_format: str, level: str) -> dict[str, Any]:
    """Apply ``config`` now (lines before the server starts use it too); returns it."""
    settings = config(log_format, level)
    logging.config.dictConfig(settings)
    return settings
