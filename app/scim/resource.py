"""A user record rendered as a SCIM User (RFC 7643 §4.1), with attribute projection."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from scim2_models import InvalidValueException

from app.ldap.mapping import UserRecord
from app.schemas import CORE_USER
from app.scim.storage import Storage

ALWAYS_RETURNED = frozenset({"id", "schemas"})


def etag(version: str | None) -> str | None:
    """The weak ETag for an entryCSN (RFC 7644 §3.14)."""
    return f'W/"{version}"' if version else None


def parse_if_match(header: str | None) -> str | None:
    """The entryCSN an If-Match header asks for; ``*`` or no header means any version."""
    if header is None:
        return None
    text = header.strip()
    if text in ("", "*"):
        return None
    if text.startswith("W/"):
        text = text[2:]
    return text.strip().strip('"')


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


def render(record: UserRecord, users_url: str, storage: Storage) -> dict[str, Any]:
    """The full SCIM representation of a user; ``users_url`` is the public ``.../Users``.

    Only assigned values are rendered (RFC 7643 §2.5).
    """
    location = f"{users_url}/{record.id}"
    body = storage.join(record.values, login=record.login, dn=record.dn, users_url=users_url)
    extensions = [s.urn for s in storage.catalog.schemas.extensions if s.urn in body]
    doc: dict[str, Any] = {"schemas": [CORE_USER, *extensions], "id": record.id}
    doc.update(body)
    doc["meta"] = meta("User", location, record.created, record.modified, record.version)
    return doc


def meta(
    resource_type: str,
    location: str,
    created: datetime | None,
    modified: datetime | None,
    version: str | None,
) -> dict[str, Any]:
    """A resource's ``meta`` (RFC 7643 §3.1), with only what the directory knows."""
    out: dict[str, Any] = {"resourceType": resource_type, "location": location}
    if created:
        out["created"] = _iso(created)
    if modified:
        out["lastModified"] = _iso(modified)
    if version:
        out["version"] = etag(version)
    return out


def int_param(name: str, raw: str | None, default: int) -> int:
    """A query parameter such as ``startIndex`` as an integer (400 naming it otherwise)."""
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise InvalidValueException(detail=f"{name} must be an integer, not {raw!r}") from None


def _split(
    paths: Iterable[str], urns: Sequence[str], core: str = CORE_USER
) -> list[tuple[str | None, str, str | None]]:
    """``a.b`` / ``urn:...:a.b`` -> (schema, attribute, sub-attribute), lower-cased."""
    parsed: list[tuple[str | None, str, str | None]] = []
    for raw in paths:
        text = raw.strip()
        if not text:
            continue
        schema = None
        for urn in (core, *urns):
            if text.lower() == urn.lower():
                parsed.append((urn.lower(), "", None))
                break
            if text.lower().startswith(urn.lower() + ":"):
                schema = urn.lower()
                text = text[len(urn) + 1 :]
                break
        else:
            attr, _, sub = text.partition(".")
            parsed.append((schema, attr.lower(), sub.lower() or None))
            continue
        if text:
            attr, _, sub = text.partition(".")
            parsed.append((schema, attr.lower(), sub.lower() or None))
    return parsed


def _select(
    container: dict[str, Any],
    schema: str,
    wanted: list[tuple[str | None, str, str | None]],
    keep: bool,
    urns: Sequence[str],
    core: str = CORE_USER,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in container.items():
        if schema == core.lower() and key.lower() in ALWAYS_RETURNED:
            out[key] = value
            continue
        if key.lower() in (u.lower() for u in urns):
            continue
        hits = [w for w in wanted if w[0] in (None, schema) and w[1] == key.lower()]
        whole = any(w[2] is None for w in hits) or any(
            w[0] == schema and w[1] == "" for w in wanted
        )
        subs = {w[2] for w in hits if w[2]}
        if keep:
            if whole:
                out[key] = value
            elif subs:
                out[key] = _sub_project(value, subs, keep=True)
        elif whole:
            continue
        elif subs:
            out[key] = _sub_project(value, subs, keep=False)
        else:
            out[key] = value
    return out


def _sub_project(value: Any, subs: set[str], *, keep: bool) -> Any:
    def one(item: Any) -> Any:
        if not isinstance(item, dict):
            return item
        return {k: v for k, v in item.items() if (k.lower() in subs) == keep}

    if isinstance(value, list):
        return [one(item) for item in value]
    return one(value)


def project(
    doc: dict[str, Any],
    attributes: list[str] | None,
    excluded: list[str] | None,
    urns: Sequence[str] = (),
    core: str = CORE_USER,
) -> dict[str, Any]:
    """Apply ``attributes`` / ``excludedAttributes`` (RFC 7644 §3.4.2.5, §3.9).

    ``urns`` are the extension schemas a document may hold, ``core`` its core schema.
    """
    if not attributes and not excluded:
        return doc
    known = [*urns, *(k for k in doc if k.lower().startswith("urn:") and k not in urns)]
    urns = [u for u in known if u in doc]
    keep = bool(attributes)
    wanted = _split(attributes if attributes else excluded or [], known, core)
    out = _select(doc, core.lower(), wanted, keep, urns, core)
    for urn in urns:
        if urn not in doc:
            continue
        whole = any(w[0] == urn.lower() and w[1] == "" for w in wanted)
        if (keep and whole) or (not keep and not whole):
            inner = doc[urn] if keep else _select(doc[urn], urn.lower(), wanted, keep, urns)
        elif keep:
            inner = _select(doc[urn], urn.lower(), wanted, keep, urns)
        else:
            inner = {}
        if inner:
            out[urn] = inner
    out["schemas"] = [core] + [urn for urn in urns if urn in out]
    return out


def split_list(value: str | None) -> list[str] | None:
    """A comma-separated query parameter as a list."""
    if value is None:
        return None
    items = [item.strip() for item in value.split(",") if item.strip()]
    return items or None
