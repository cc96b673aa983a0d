"""The SCIM User operations (RFC 7644 §3.3-§3.6) over the directory."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from scim2_models import (
    PreconditionFailedException,
)

from app import metrics
from app.attributes import ACTIVE, Slot
from app.config import Settings
from app.ldap.changes import UserChanges
from app.ldap.groupentries import GroupDirectory
from app.ldap.mapping import UserRecord
from app.ldap.search import TRUE, translate
from app.ldap.sorting import order_of
from app.ldap.users import UserDirectory
from app.scim.filters import parse_filter
from app.scim.patch import loaded, patched
from app.scim.resource import int_param, parse_if_match, project, render
from app.scim.storage import State, Storage

_RETRIES = 3
LIST_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:ListResponse"


@dataclass
class Written:
    """A user as answered after a read or write: the body and its version."""

    body: dict[str, Any]
    version: str | None


class UserService:
    """Turns SCIM requests into directory operations and directory records into SCIM bodies."""

    def __init__(
        self,
        settings: Settings,
        users: UserDirectory,
        changes: UserChanges,
        groups: GroupDirectory | None = None,
    ) -> None:
        self.settings = settings
        self.users = users
        self.changes = changes
        self.groups = groups
        self.catalog = users.mapping.catalog
        self.schemas = self.catalog.schemas
        self.storage = Storage(self.catalog, users.mapping.object_classes)
        self.urns = [s.urn for s in self.schemas.extensions]

    def stored_slots(self) -> list[Slot]:
        return self.catalog.stored()

    def _answer(self, record: UserRecord, users_url: str, *, groups: bool = False) -> Written:
        return Written(self._render(record, users_url, groups=groups), record.version)

    def _render(
        self, record: UserRecord, users_url: str, *, groups: bool = False
    ) -> dict[str, Any]:
        """The user; with ``groups``, its read-only groups (RFC 7643 §4.1.2) from the directory.

        They cost one search per user, so they are answered by ``GET /Users/{id}`` and by
        searches that ask for them with ``attributes``, not by writes or plain listings:
        Entra's reads (``userName eq``) and writes stay one round trip.
        """
        body = render(record, users_url, self.storage)
        if self.groups is not None and groups:
            base = users_url.rsplit("/", 1)[0]
            found = self.groups.groups_of_user(None, record.dn, record.login)
            if found:
                body["groups"] = [
                    {
                        "value": g.id,
                        "$ref": f"{base}/Groups/{g.id}",
                        "type": "direct",
                        **({"display": g.display} if g.display else {}),
                    }
                    for g in found
                ]
                body["meta"] = body.pop("meta")
        return body

    def _document(self, record: UserRecord, users_url: str) -> dict[str, Any]:
        return self.storage.join(
            record.values, login=record.login, dn=record.dn, users_url=users_url
        )

    def get(
        self,
        user_id: str,
        users_url: str,
        attributes: list[str] | None = None,
        excluded: list[str] | None = None,
    ) -> Written:
        record = self.changes.get(user_id)
        wanted = not excluded or not any(p.strip().lower() == "groups" for p in excluded)
        answer = self._answer(record, users_url, groups=wanted)
        answer.body = project(answer.body, attributes, excluded, self.urns)
        return answer

    def create(self, body: Any, users_url: str) -> Written:
        state = self.storage.split(loaded(self.schemas, body))
        return self._answer(self.changes.create(state), users_url)

    def replace(self, user_id: str, body: Any, if_match: str | None, users_url: str) -> Written:
        state = self.storage.split(loaded(self.schemas, body))

        def replacement(current: UserRecord) -> State:
            """A PUT that omits ``active`` keeps it: no disabled account is enabled by omission
            (a PATCH ``remove`` of ``active`` still removes it)."""
            if ACTIVE not in state and ACTIVE in current.values:
                return {**state, ACTIVE: current.values[ACTIVE]}
            return state

        return self._update(user_id, replacement, if_match, users_url)

    def patch(self, user_id: str, body: Any, if_match: str | None, users_url: str) -> Written:
        def change(current: UserRecord) -> State:
            document = self._document(current, users_url)
            return self.storage.split(patched(self.schemas, document, body), document)

        return self._update(user_id, change, if_match, users_url)

    def _update(
        self,
        user_id: str,
        change: Callable[[UserRecord], State],
        if_match: str | None,
        users_url: str,
    ) -> Written:
        """Read, change, write guarded by the version read.

        With If-Match the client's version guards the write and a stale one is
        412. Without it, a write that lost a race with another writer is
        recomputed on the fresh state, so concurrent PATCHes never undo each
        other and the client never sees a 412 it did not ask for.
        """
        wanted = parse_if_match(if_match)
        for _attempt in range(_RETRIES):
            current = self.changes.get(user_id)
            try:
                record = self.changes.update(current, change(current), wanted or current.version)
            except PreconditionFailedException:
                if wanted is not None:
                    raise
                continue
            was_active = current.values.get(ACTIVE) is not False
            now_active = record.values.get(ACTIVE) is not False
            if was_active != now_active:
                (metrics.ENABLES if now_active else metrics.DISABLES).inc()
            return self._answer(record, users_url)
        raise PreconditionFailedException(detail="the user kept changing during the update; retry")

    def delete(self, user_id: str, if_match: str | None) -> None:
        self.changes.delete(user_id, parse_if_match(if_match))
        metrics.DELETES.labels("User").inc()

    def search(
        self,
        users_url: str,
        *,
        filter_text: str | None,
        start_index: str | None,
        count: str | None,
        attributes: list[str] | None,
        excluded: list[str] | None,
        sort_by: str | None = None,
        sort_order: str | None = None,
    ) -> dict[str, Any]:
        """A ListResponse (RFC 7644 §3.4.2); ``count=0`` answers the total only.

        ``sortBy``/``sortOrder`` (§3.4.2.3) are sorted by the directory, see sorting.py.
        """
        http = self.settings.http
        start = max(int_param("startIndex", start_index, 1), 1)
        size = min(max(int_param("count", count, http.default_page_size), 0), http.max_page_size)
        order = order_of(self.users.mapping, sort_by, sort_order)
        condition = TRUE
        if filter_text is not None and filter_text.strip():
            node = parse_filter(filter_text, http.max_filter_length, http.max_filter_terms)
            condition = translate(self.users.mapping, node)
        page = self.users.search(condition, start, size, order)
        asks_groups = any(a.strip().lower() == "groups" for a in attributes or [])
        resources = [
            project(self._render(r, users_url, groups=asks_groups), attributes, excluded, self.urns)
            for r in page.records
        ]
        return {
            "schemas": [LIST_RESPONSE],
            "totalResults": page.total,
            "itemsPerPage": len(resources),
            "startIndex": start,
            "Resources": resources,
        }
