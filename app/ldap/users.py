"""User entries: read, search, create, update, rename and delete.

Round trips per SCIM operation (without a manager reference to resolve):
GET 1 search; list 1 search (VLV + server-side sort when the directory offers
them); POST 1 add with post-read; PATCH/PUT 1 search + 1 modify with post-read
(+1 modrdn when the login name changes); DELETE 1 search + 1 delete.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from ldap3 import MODIFY_ADD, MODIFY_REPLACE
from ldap3.protocol.rfc4527 import post_read_control
from ldap3.utils.ciDict import CaseInsensitiveDict
from ldap3.utils.conv import escape_filter_chars
from scim2_models import (
    InvalidValueException,
    NotFoundException,
    PreconditionFailedException,
    SCIMException,
    UniquenessException,
)

from app.attributes import (
    EXTERNAL_ID,
    GID_NUMBER,
    MANAGER,
    UID_NUMBER,
    USER_NAME,
    WORK_EMAIL,
    Slot,
    SlotValue,
)
from app.ldap.connection import Control, Directory, Session
from app.ldap.controls import assertion_control
from app.ldap.dn import child_dn, rdn_of, same_dn
from app.ldap.mapping import LdapValues, UserMapping, UserRecord
from app.ldap.pages import Page, PageReader
from app.ldap.preflight import index_warnings, schema_warnings
from app.ldap.search import FALSE, TRUE

log = logging.getLogger(__name__)

POST_READ = "1.3.6.1.1.13.2"


def _version_filter(version: str) -> str:
    return f"(entryCSN={escape_filter_chars(version)})"


class UserDirectory:
    """User entries below the users' container, addressed by entryUUID."""

    def __init__(self, directory: Directory, mapping: UserMapping, small_search: int = 200) -> None:
        self.base_dn = directory.settings.base_dn
        self.directory = directory
        self.mapping = mapping
        self.pages = PageReader(directory, mapping, small_search)

    # ---- reading

    def _filter(self, condition: str) -> str:
        base = self.mapping.search_filter
        return base if condition == TRUE else f"(&{base}{condition})"

    def _find(self, session: Session, user_id: str) -> UserRecord:
        try:
            canonical = str(uuid.UUID(user_id))
        except ValueError:
            raise NotFoundException(detail=f"User {user_id} not found") from None
        entries = session.search(
            self.mapping.container,
            self._filter(f"(entryUUID={canonical})"),
            self.mapping.read_attributes,
            action=f"read user {canonical}",
        )
        if not entries:
            raise NotFoundException(detail=f"User {user_id} not found")
        return self.mapping.record(entries[0])

    def get(self, user_id: str) -> UserRecord:
        with self.directory.session() as session:
            record = self._find(session, user_id)
            self._manager_ids(session, [record])
            return record

    def search(self, condition: str, start_index: int, count: int) -> Page:
        """Matches of an LDAP condition, ``count`` of them from the 1-based ``start_index``."""
        if condition == FALSE:
            return Page(0)
        return self.pages.read(
            self._filter(condition),
            selective=condition != TRUE,
            start_index=start_index,
            count=count,
            finish=self._manager_ids,
        )

    def _manager_ids(self, session: Session, records: Sequence[UserRecord]) -> None:
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

    def _manager_dn(self, session: Session, manager_id: SlotValue | None) -> str | None:
        """The DN of the manager with this id; an unknown id is ignored (ENTRA.md §2)."""
        if not manager_id:
            return None
        try:
            canonical = str(uuid.UUID(str(manager_id)))
        except ValueError:
            return None
        found = session.search(
            self.mapping.container,
            f"(entryUUID={canonical})",
            ["1.1"],
            action="find manager",
        )
        return str(found[0]["dn"]) if found else None

    def preflight_warnings(self) -> list[str]:
        """What the directory lacks for this mapping: schema elements, then indexes."""
        needed = {"objectClass": "eq", "entryUUID": "eq", self.mapping.rdn: "eq"}
        for slot in (USER_NAME, EXTERNAL_ID, WORK_EMAIL):
            attribute = self.mapping.attribute_of(slot)
            if attribute:
                needed[attribute] = "eq"
        if self.mapping.user_name_attribute:
            needed[self.mapping.user_name_attribute] = "eq"
        with self.directory.session() as session:
            return [
                *schema_warnings(session, self.mapping.uses(), self.mapping.object_classes),
                *index_warnings(session, self.mapping.container, needed),
            ]

    # ---- writing

    def _post_read(self) -> Control:
        control: Control = post_read_control(self.mapping.read_attributes)
        return control

    def _record_after(self, result: Mapping[str, Any], dn: str) -> UserRecord:
        control = (result.get("controls") or {}).get(POST_READ, {})
        raw = control.get("value", {}).get("result", {})
        attributes = CaseInsensitiveDict()
        for name, values in raw.items():
            attributes[name] = [
                v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values
            ]
        return self.mapping.record({"dn": dn, "attributes": attributes})

    def create(self, values: dict[Slot, SlotValue]) -> UserRecord:
        """Add the entry; the manager id is answered as GET answers it, in entryUUID's form."""
        login = self.mapping.logins.login_for(str(values[USER_NAME]))
        dn = child_dn(self.mapping.rdn, login, self.mapping.container)
        with self.directory.session() as session:
            manager_dn = self._manager_dn(session, values.get(MANAGER))
            self._check_numbers(session, values, None)
            attributes: dict[str, Any] = dict(self.mapping.attributes(values, login, manager_dn))
            attributes["objectClass"] = self.mapping.object_classes
            try:
                result = session.add(
                    dn, attributes, controls=[self._post_read()], action=f"create user {login}"
                )
            except UniquenessException:
                raise UniquenessException(
                    detail=f"userName {values[USER_NAME]!s} is taken: the login name {login!r} "
                    "already exists"
                ) from None
            record = self._record_after(result, dn)
            if manager_dn and MANAGER in values:
                record.values[MANAGER] = str(uuid.UUID(str(values[MANAGER])))
            return record

    def update(
        self,
        current: UserRecord,
        values: dict[Slot, SlotValue],
        if_match: str | None,
    ) -> UserRecord:
        """Write the difference between ``current`` and ``values``: one modify, plus a modrdn.

        ``if_match`` is the entryCSN the write is conditional on (assertion
        control, RFC 4528): a concurrent change makes it fail with 412.

        Only attributes whose value changes are written. When the login name
        changes, the entry is renamed first; if the modify then fails, the
        rename is undone, so the change is never half-applied.
        """
        if if_match is not None and if_match != current.version:
            raise PreconditionFailedException(
                detail="the resource changed since the version given in If-Match"
            )
        old_login = current.login
        new_login = (
            old_login
            if str(values[USER_NAME]).lower() == str(current.values[USER_NAME]).lower()
            and values[USER_NAME] != ""
            else self.mapping.logins.login_for(str(values[USER_NAME]))
        )
        version = if_match
        with self.directory.session() as session:
            old_manager = current.manager_dn
            new_manager = (
                old_manager
                if values.get(MANAGER) == current.values.get(MANAGER)
                else self._manager_dn(session, values.get(MANAGER))
            )
            self._check_numbers(session, values, current)
            before = self.mapping.attributes(
                current.values, old_login, old_manager, current.defaults
            )
            after = self.mapping.attributes(values, new_login, new_manager, current.defaults)
            changes = self._changes(before, after, current, renamed=new_login != old_login)
            dn = current.dn
            guard = [assertion_control(_version_filter(version))] if version else []
            if new_login != old_login:
                dn = self._rename(session, current, new_login, guard)
                guard = []
            if not changes:
                return self._reread(session, current.id)
            try:
                result = session.modify(
                    dn,
                    changes,
                    controls=[*guard, self._post_read()],
                    action=f"update user {new_login}",
                )
            except SCIMException:
                if dn != current.dn:
                    self._undo_rename(session, dn, old_login)
                raise
            record = self._record_after(result, dn)
            self._manager_ids(session, [record])
            return record

    def _check_numbers(
        self, session: Session, values: Mapping[Slot, SlotValue], current: UserRecord | None
    ) -> None:
        """Refuse system ids and a uidNumber another account already has.

        Only numbers the request sets or changes are checked, so an existing
        entry made by hand with a low id stays editable. The uniqueness search
        covers the whole base DN; it is not atomic across concurrent writers
        (the directory's unique overlay is, see README).
        """
        settings = self.mapping.posix
        for slot, minimum in (
            (UID_NUMBER, settings.min_uid_number),
            (GID_NUMBER, settings.min_gid_number),
        ):
            value = values.get(slot)
            if not isinstance(value, int) or (
                current is not None and current.values.get(slot) == value
            ):
                continue
            if int(value) < minimum:
                raise InvalidValueException(
                    detail=f"{slot.path} {value} is below {minimum}: system ids are refused"
                )
            if slot != UID_NUMBER:
                continue
            attribute = self.mapping.attribute_of(slot) or "uidNumber"
            taken = session.search(
                self.base_dn,
                f"(&(objectClass=posixAccount)({attribute}={int(value)}))",
                ["1.1"],
                size_limit=2,
                action="check the uidNumber",
            )
            if any(current is None or not same_dn(str(e["dn"]), current.dn) for e in taken):
                raise UniquenessException(
                    detail=f"{slot.path} {value} already belongs to another account"
                )

    def _changes(
        self, before: LdapValues, after: LdapValues, current: UserRecord, *, renamed: bool
    ) -> dict[str, list[tuple[str, list[str]]]]:
        changes: dict[str, list[tuple[str, list[str]]]] = {}
        names = {n.lower(): n for n in [*before, *after]}
        lower_before = {k.lower(): v for k, v in before.items()}
        lower_after = {k.lower(): v for k, v in after.items()}
        for key, name in names.items():
            if key == self.mapping.rdn.lower():
                continue
            old, new = lower_before.get(key, []), lower_after.get(key, [])
            if old != new:
                changes[name] = [(MODIFY_REPLACE, new)]
        if changes:
            present = {c.lower() for c in current.object_classes}
            missing = [c for c in self.mapping.object_classes if c.lower() not in present]
            if missing:
                changes["objectClass"] = [(MODIFY_ADD, missing)]
        return changes

    def _rename(
        self, session: Session, current: UserRecord, new_login: str, guard: Sequence[Control]
    ) -> str:
        try:
            session.rename(
                current.dn,
                rdn_of(self.mapping.rdn, new_login),
                controls=guard,
                action=f"rename user {current.login} to {new_login}",
            )
        except UniquenessException:
            raise UniquenessException(
                detail=f"the login name {new_login!r} is already taken"
            ) from None
        return child_dn(self.mapping.rdn, new_login, self.mapping.container)

    def _undo_rename(self, session: Session, dn: str, old_login: str) -> None:
        try:
            session.rename(dn, rdn_of(self.mapping.rdn, old_login), action="undo a rename")
        except SCIMException:
            log.error("could not undo the rename of %s back to %s", dn, old_login)

    def _reread(self, session: Session, user_id: str) -> UserRecord:
        record = self._find(session, user_id)
        self._manager_ids(session, [record])
        return record

    def delete(self, user_id: str, if_match: str | None) -> None:
        with self.directory.session() as session:
            record = self._find(session, user_id)
            guard = [assertion_control(_version_filter(if_match))] if if_match else None
            session.delete(record.dn, controls=guard, action=f"delete user {record.login}")
