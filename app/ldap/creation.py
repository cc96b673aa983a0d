"""Creating accounts: the login, the uidNumber and its claim, the add, groups and password."""

from __future__ import annotations

import logging
import secrets
import uuid
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from ldap3 import MODIFY_REPLACE
from scim2_models import (
    NotFoundException,
    UniquenessException,
)

from app.attributes import (
    ACTIVE,
    EXTERNAL_ID,
    GID_NUMBER,
    MANAGER,
    PASSWORD,
    UID_NUMBER,
    USER_NAME,
    Slot,
    SlotValue,
)
from app.ldap.adoption import refuse_create
from app.ldap.connection import Session
from app.ldap.dn import child_dn
from app.ldap.errors import DirectoryUnavailable, ValueNotUnique
from app.ldap.logins import UserNameTaken
from app.ldap.mapping import UserRecord
from app.ldap.pending import Pending
from app.ldap.removal import check_container
from app.ldap.steps import Steps
from app.ldap.writer import AccountWriter

log = logging.getLogger(__name__)

CLAIM_ATTEMPTS = 8
"""Allocations tried when concurrent creates keep claiming the number first."""


class AccountCreation(AccountWriter):
    """POST: one new account, finished even when its first attempt was cut short."""

    def create(self, values: dict[Slot, SlotValue]) -> UserRecord:
        """Add the account (and its private group, login group membership, password).

        The add carries the marker of app/ldap/pending.py and the last step
        takes it off, so that a create whose answer was lost, or whose groups
        or password were never written, is finished by the same create sent
        again (the client sees the 201 it did not get), and otherwise taken
        back by the sweep: no account the client was not told of stays.
        """
        values = dict(values)
        requested_password = values.pop(PASSWORD, None)
        user_name = str(values[USER_NAME])
        disabled = values.get(ACTIVE) is False
        parent = self._parent_for(disabled, self.mapping.container)
        with self.directory.session() as session:
            plaintext = self.passwords.at_creation(
                str(requested_password) if requested_password is not None else None
            )
            try:
                requested = self.requested_login(values)
                login = (
                    self.claims.requested(session, user_name, requested)
                    if requested
                    else self.claims.choose(session, user_name)
                )
            except UserNameTaken as taken:
                return self._create_again(session, taken, plaintext)
            except UniquenessException:
                if not requested:
                    refuse_create(session, self.mapping, user_name)
                raise
            if not requested and login != self.mapping.logins.candidates(user_name)[0]:
                refuse_create(session, self.mapping, user_name)
            self.ids.check(session, values, None)
            if self.posix.gid_strategy == "default-group" and GID_NUMBER not in values:
                self.groups.ensure_default(session)
            manager_dn = self.users.manager_dn(session, values.get(MANAGER))
            hashed = (
                self.passwords.hashed(plaintext)
                if plaintext and not self.passwords.by_exop
                else None
            )
            private = self.posix.gid_strategy == "private-group"
            joins = self.mapping.profile.uses_login_group and not disabled
            by_exop = bool(plaintext) and self.passwords.by_exop

            def marker(login: str, dn: str, gid: int) -> Pending | None:
                if not self.pending.enabled:
                    return None
                return Pending(
                    token=token,
                    op="create",
                    login=login,
                    dn=dn,
                    join=(self.accounts.login_group,) if joins else (),
                    private_gid=gid if private else None,
                    lock=disabled and by_exop and self.mapping.profile.locks,
                )

            token = secrets.token_hex(6)
            with self.pending.running(token), Steps() as steps:
                assigned = self._claimed_number(session, steps, values)
                login, dn, attributes, result, pending = self._add(
                    session, values, login, parent, manager_dn, assigned, hashed, marker
                )
                steps.done("the add", lambda: session.delete(dn, action="undo an add"))
                if private:
                    gid = int(attributes[self.mapping.by_slot.get(GID_NUMBER, "gidNumber")][0])
                    self.groups.create_private(session, login, gid)
                    steps.done(
                        "the private group",
                        lambda: self.groups.delete_private(session, login, gid),
                    )
                if joins:
                    self._join_login_group(session, steps, login)
                if plaintext and by_exop:
                    session.set_password(dn, plaintext, action=f"set the password of {login}")
                    if disabled:
                        self._lock_again(session, dn, login)
                if pending is not None:
                    result = self.pending.clear(session, dn, pending, [self.users.post_read()])
            record = self.users.record_after(result, dn)
            if manager_dn and MANAGER in values:
                record.values[MANAGER] = str(uuid.UUID(str(values[MANAGER])))
            return record

    def _create_again(
        self, session: Session, taken: UserNameTaken, plaintext: str | None
    ) -> UserRecord:
        """Finish the interrupted create of the same userName; 409 for any other holder."""
        found = self.users.reread(session, taken.dn)
        pending = found.pending
        if pending is None or pending.op != "create" or self.pending.busy(pending):
            raise taken
        record = self.pending.take_over(session, found)
        if record is None or record.pending is None:
            raise taken
        if plaintext:
            if self.passwords.by_exop:
                session.set_password(
                    record.dn, plaintext, action=f"set the password of {record.login}"
                )
            else:
                session.modify(
                    record.dn,
                    {"userPassword": [(MODIFY_REPLACE, [self.passwords.hashed(plaintext)])]},
                    action=f"set the password of {record.login}",
                )
            if record.values.get(ACTIVE) is False:
                self._lock_again(session, record.dn, record.login)
        with self.pending.running(record.pending.token):
            dn = self.pending.finish(session, record)
        assert dn is not None
        finished = self.users.reread(session, dn)
        log.info("a create sent again finished the interrupted create of %s", dn)
        return finished

    def _claimed_number(
        self, session: Session, steps: Steps, values: dict[Slot, SlotValue]
    ) -> dict[str, list[str]]:
        """Give the new account its uidNumber, claimed (numbers.py); the defaults it implies.

        An allocated number that a concurrent create claimed first (it sent
        that number) is given back and the next one allocated.
        """
        requested = values.get(UID_NUMBER)
        user_name = str(values[USER_NAME])
        for _attempt in range(CLAIM_ATTEMPTS):
            number = self._new_number(session, values, requested)
            if not isinstance(requested, int):
                steps.done("the uidNumber", partial(self.ids.release, session, number))
            try:
                if self.numbers.claim(session, number, user_name):
                    steps.done(
                        "the uidNumber claim",
                        partial(self.numbers.release, session, number, user_name),
                    )
                break
            except UniquenessException:
                if isinstance(requested, int):
                    raise
                log.info("uidNumber %d was claimed meanwhile; allocating another", number)
        else:
            raise DirectoryUnavailable(
                detail="Other creates kept claiming the allocated uidNumbers; retry later"
            )
        return self._implied(values)

    def _new_number(
        self, session: Session, values: dict[Slot, SlotValue], requested: SlotValue | None
    ) -> int:
        """The uidNumber of a new account: the one sent, else one allocated."""
        external = values.get(EXTERNAL_ID)
        values[UID_NUMBER] = number = self.ids.uid_for(
            session,
            requested=requested if isinstance(requested, int) else None,
            external_id=str(external) if external is not None else None,
            user_name=str(values[USER_NAME]),
        )
        return number

    def _implied(self, values: Mapping[Slot, SlotValue]) -> dict[str, list[str]]:
        """The defaults a new account's uidNumber implies (its private group's gidNumber)."""
        if self.posix.gid_strategy == "private-group" and GID_NUMBER not in values:
            return {"gidnumber": [str(values[UID_NUMBER])]}
        return {}

    def _add(
        self,
        session: Session,
        values: Mapping[Slot, SlotValue],
        login: str,
        parent: str,
        manager_dn: str | None,
        assigned: dict[str, list[str]],
        hashed: str | None,
        marker: Callable[[str, str, int], Pending | None],
    ) -> tuple[str, str, dict[str, Any], dict[str, Any], Pending | None]:
        """Add the entry: its login, DN, attributes, the add's result and its marker.

        The directory refuses an add whose DN exists (entryAlreadyExists): a
        concurrent create took the login since the search, and under the
        derive policy the next free candidate is tried.
        """
        user_name = str(values[USER_NAME])
        tried: list[str] = []
        while True:
            dn = child_dn(self.mapping.rdn, login, parent)
            home = (
                self.homes.for_new_account(
                    session, values, self.mapping.templated_home(values, login)
                )
                if self.homes
                else None
            )
            attributes: dict[str, Any] = dict(
                self.mapping.attributes(
                    values,
                    login,
                    manager_dn,
                    assigned,
                    classes=self.mapping.object_classes,
                    home=home,
                )
            )
            if hashed:
                attributes["userPassword"] = [hashed]
            gid = int(attributes[self.mapping.by_slot.get(GID_NUMBER, "gidNumber")][0])
            pending = marker(login, dn, gid)
            if pending is not None:
                attributes.update(self.pending.attributes(pending))
            try:
                result = session.add(
                    dn,
                    attributes,
                    controls=[self.users.post_read()],
                    action=f"create user {login}",
                )
            except ValueNotUnique:
                raise UniquenessException(
                    detail=f"{UID_NUMBER.path} {values[UID_NUMBER]} already belongs to "
                    "another account"
                ) from None
            except UniquenessException:
                if not self.mapping.logins.derives:
                    raise UniquenessException(
                        detail=f"userName {user_name} is taken: the login name {login!r} "
                        "already exists"
                    ) from None
                tried.append(login)
                log.info("the login %s was taken meanwhile; trying the next one", login)
                login = self.claims.choose(session, user_name, skip=tried)
                continue
            except NotFoundException:
                check_container(session, parent)
                raise
            return login, dn, attributes, result, pending
