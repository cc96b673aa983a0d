"""Reading user entries: by id, and pages of a search.

Round trips (without a manager reference to resolve): GET 1 search; a list
1 search (see pages.py). Writes are in changes.py.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from ldap3.protocol.rfc4527 import post_read_control
from ldap3.utils.ciDict import CaseInsensitiveDict
from scim2_models import (
    NotFoundException,
)

from app.attributes import (
    EXTERNAL_ID,
    HOME_DIRECTORY,
    MANAGER,
    USER_NAME,
    WORK_EMAIL,
    SlotValue,
)
from app.ldap.adoption import reachable_filter
from app.ldap.connection import Control, Directory, Session
from app.ldap.mapping import UserMapping, UserRecord
from app.ldap.pages import Page, PageReader
from app.ldap.preflight import index_warnings, schema_warnings
from app.ldap.search import FALSE, TRUE
from app.ldap.sorting import Order

log = logging.getLogger(__name__)

POST_READ = "1.3.6.1.1.13.2"


def user_indexes(mapping: UserMapping) -> dict[str, str]:
    """What user reads and writes search on, with the index type each needs: ids, the
    login and userName (Entra's matching filter), externalId, the work e-mail, homes
    taken, and the pending marker the sweep looks for."""
    needed = {"objectClass": "eq", "entryUUID": "eq", mapping.rdn: "eq"}
    for slot in (USER_NAME, EXTERNAL_ID, WORK_EMAIL, HOME_DIRECTORY):
        attribute = mapping.attribute_of(slot)
        if attribute:
            needed[attribute] = "eq"
    if mapping.user_name_attribute:
        needed[mapping.user_name_attribute] = "eq"
    if mapping.pending_attribute:
        needed[mapping.pending_attribute] = "pres"
    return needed


class UserDirectory:
    """User entries below the users' container, addressed by entryUUID."""

    def __init__(self, directory: Directory, mapping: UserMapping, small_search: int = 200) -> None:
        self.base_dn = directory.settings.base_dn
        self.directory = directory
        self.mapping = mapping
        self.pages = PageReader(directory, mapping, small_search)
        reachable = reachable_filter(mapping)
        self._base_filter = (
            mapping.search_filter if reachable is None else f"(&{mapping.search_filter}{reachable})"
        )

    # ---- reading

    def _filter(self, condition: str) -> str:
        base = self._base_filter
        return base if condition == TRUE else f"(&{base}{condition})"

    def find(self, session: Session, user_id: str) -> UserRecord:
        try:
            canonical = str(uuid.UUID(user_id))
        except ValueError:
            raise NotFoundException(detail=f"User {user_id} not found") from None
        entries = session.search(
            self.mapping.search_base,
            self._filter(f"(entryUUID={canonical})"),
            self.mapping.read_attributes,
            action=f"read user {canonical}",
        )
        if not entries:
            raise NotFoundException(detail=f"User {user_id} not found")
        return self.mapping.record(entries[0])

    def get(self, user_id: str) -> UserRecord:
        with self.directory.session() as session:
            record = self.find(session, user_id)
            self.resolve_managers(session, [record])
            return record

    def search(
        self, condition: str, start_index: int, count: int, order: Order | None = None
    ) -> Page:
        """Matches of an LDAP condition in ``order`` (by login without one), ``count`` of
        them from the 1-based ``start_index``."""
        if condition == FALSE:
            return Page(0)
        return self.pages.read(
            self._filter(condition),
            selective=condition != TRUE,
            start_index=start_index,
            count=count,
            finish=self.resolve_managers,
            order=order,
        )

    def reread(self, session: Session, dn: str) -> UserRecord:
        """The entry at ``dn`` after a write that returned no post-read."""
        found = session.search(
            dn, "(objectClass=*)", self.mapping.read_attributes, scope="BASE", action="read user"
        )
        if not found:
            raise NotFoundException(detail="the user vanished during the update")
        record = self.mapping.record(found[0])
        self.resolve_managers(session, [record])
        return record

    def resolve_managers(self, session: Session, records: Sequence[UserRecord]) -> None:
        """Replace manager DNs by the managers' ids (entryUUID)."""
        cache: dict[str, str | None] = {}
        for record in records:
            dn = record.manager_dn
            if not dn:
                continue
            if dn not in cache:
                found = session.search(
                    dn, "(objectClass=*)", ["entryUUID"], scope="BASE", action="read manager"
                )
                values = found[0]["attributes"].get("entryUUID") if found else None
                cache[dn] = (
                    str(values[0] if isinstance(values, list) else values) if values else None
                )
            manager_id = cache[dn]
            if manager_id:
                record.values[MANAGER] = manager_id

    def preflight_warnings(self) -> list[str]:
        """What the directory lacks for this mapping: schema elements, then indexes."""
        needed = user_indexes(self.mapping)
        with self.directory.session() as session:
            return [
                *schema_warnings(
                    session,
                    self.mapping.uses(),
                    [*self.mapping.object_classes, *self.mapping.profile.classes],
                ),
                *index_warnings(session, self.mapping.container, needed),
            ]

    def manager_dn(self, session: Session, manager_id: SlotValue | None) -> str | None:
        """The DN of the manager with this id; an unknown id is ignored (ENTRA.md §2)."""
        if not manager_id:
            return None
        try:
            canonical = str(uuid.UUID(str(manager_id)))
        except ValueError:
            return None
        found = session.search(
            self.mapping.search_base,
            f"(&{self.mapping.search_filter}(entryUUID={canonical}))",
            ["1.1"],
            action="find manager",
        )
        return str(found[0]["dn"]) if found else None

    def post_read(self) -> Control:
        control: Control = post_read_control(self.mapping.read_attributes)
        return control

    def record_after(self, result: Mapping[str, Any], dn: str) -> UserRecord:
        control = (result.get("controls") or {}).get(POST_READ, {})
        raw = control.get("value", {}).get("result", {})
        attributes = CaseInsensitiveDict()
        for name, values in raw.items():
            attributes[name] = [
                v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values
            ]
        return self.mapping.record({"dn": dn, "attributes": attributes})
