"""The audit trail: one JSON line for every change the server asks of the directory.

Every add, modify, modrdn, delete and password change goes through
``app.ldap.connection.Session``, which calls ``record`` with its result, so
nothing the server writes escapes the trail: SCIM requests, the id counters
(operation ``allocate``) and the sweep of interrupted writes (``sweep``, no
request id). A line names the attributes a change touched, never a value:
passwords, the stash of a disabled account and every other value stay out.

The sink is ``audit.sink``: ``stdout`` (the logs go to stderr, so the two
streams stay apart), ``file`` (``audit.path``, appended, reopened when
logrotate moves it), ``syslog`` (``audit.syslog_address``, facility
``authpriv``) or ``off``.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import sys
import time
from collections.abc import Iterable
from typing import Any

from app import context
from app.config import AuditSettings
from app.logs import timestamp

log = logging.getLogger("scim_ldap.audit")
log.propagate = False
log.setLevel(logging.INFO)

ADD = "add"
MODIFY = "modify"
MODRDN = "modrdn"
DELETE = "delete"
PASSWORD = "passwordModify"


class AuditSinkError(RuntimeError):
    """The configured sink cannot be opened: the server does not start without its trail."""


class _Line(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return record.getMessage()


def configure(settings: AuditSettings) -> None:
    """Send the trail to the configured sink (replacing the one set before)."""
    for old in list(log.handlers):
        log.removeHandler(old)
        old.close()
    handler: logging.Handler
    if settings.sink == "off":
        log.disabled = True
        return
    log.disabled = False
    try:
        if settings.sink == "file":
            assert settings.path is not None
            handler = logging.handlers.WatchedFileHandler(settings.path, encoding="utf-8")
        elif settings.sink == "syslog":
            handler = logging.handlers.SysLogHandler(
                _syslog_address(settings.syslog_address),
                facility=logging.handlers.SysLogHandler.LOG_AUTHPRIV,
            )
            handler.ident = "scim-ldap: "
        else:
            handler = logging.StreamHandler(sys.stdout)
    except OSError as exc:
        target = settings.path if settings.sink == "file" else settings.syslog_address
        raise AuditSinkError(
            f"audit.sink {settings.sink}: cannot open {target}: {exc.strerror or exc}"
        ) from None
    handler.setFormatter(_Line())
    log.addHandler(handler)


def _syslog_address(address: str) -> str | tuple[str, int]:
    """A socket path, or ``host:port`` (UDP)."""
    if address.startswith("/") or ":" not in address:
        return address
    host, _, port = address.rpartition(":")
    return (host.strip("[]"), int(port))


def record(
    ldap_operation: str,
    dn: str,
    attributes: Iterable[str],
    result: dict[str, Any] | None,
    *,
    new_dn: str | None = None,
) -> None:
    """Write the line of one directory change; ``result`` None: no answer came.

    ``new_dn`` is where a modrdn moves the entry.
    """
    if log.disabled or not log.handlers:
        return
    work = context.current()
    line = {
        "time": timestamp(time.time()),
        "request_id": work.request_id,
        "token": work.token_name,
        "operation": work.operation,
        "resource_id": work.resource_id,
        "dn": dn,
        **({"new_dn": new_dn} if new_dn is not None else {}),
        "ldap_operation": ldap_operation,
        "attributes": sorted(set(attributes), key=str.lower),
        "result": _result(result),
    }
    log.info("%s", json.dumps(line, ensure_ascii=False))


def _result(result: dict[str, Any] | None) -> dict[str, Any]:
    if result is None:
        return {"code": None, "description": "no answer"}
    return {"code": int(result.get("result", 0)), "description": str(result.get("description"))}
