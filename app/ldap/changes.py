"""Writing user accounts: create, update (rename, disable, enable) and delete.

Each SCIM write is one or more LDAP operations applied all-or-nothing
(``Steps``). Round trips (pooled connection, no manager reference): POST
1 number check + the allocation (1 read + 1 compare-and-swap + 1 collision
search when allocating) + 1 add with post-read; PATCH/PUT 1 read + 1 modify with
post-read, +1 modrdn when the login name changes or a disabled account moves;
DELETE 1 read + 1 delete. A password set with the Password Modify operation,
a private group or the login group add one operation each; so does a password
set on a locked, disabled account, which ppolicy unlocks and which is locked
again.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from ldap3 import MODIFY_ADD, MODIFY_DELETE, MODIFY_REPLACE
from ldap3.utils.conv import escape_filter_chars
from scim2_models import (
    NotFoundException,
    PreconditionFailedException,
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
from app.config import AccountSettings
from app.ldap import writes
from app.ldap.accounts import LOCK_ATTRIBUTE, LOCKED
from app.ldap.connection import Control, Session
from app.ldap.controls import assertion_control
from app.ldap.dn import child_dn, parent_of, rdn_of, same_dn
from app.ldap.errors import DirectoryFailure, ValueNotUnique
from app.ldap.groups import PosixGroups
from app.ldap.ids import IdAllocator
from app.ldap.mapping import LdapValues, UserMapping, UserRecord
from app.ldap.passwords import PasswordPolicy
from app.ldap.steps import Steps
from app.ldap.users import UserDirectory

log = logging.getLogger(__name__)

Changes = dict[str, list[tuple[str, list[str]]]]


def _version_guard(if_match: str | None, current: str | None) -> list[Control]:
    """The assertion control (RFC 4528) making a write conditional on If-Match's entryCSN.

    A version that already differs from the one just read is refused at once
    (412); the control refuses one that changes between the read and the write.
    """
    if if_match is None:
        return []
    if if_match != current:
        raise PreconditionFailedException(
            detail="the resource changed since the version given in If-Match"
        )
    return [assertion_control(f"(entryCSN={escape_filter_chars(if_match)})")]


class UserChanges:
    """Creates, updates and deletes user entries and the groups that go with them."""

    def __init__(self, users: UserDirectory, accounts: AccountSettings) -> None:
        self.users = users
        self.directory = users.directory
        self.mapping: UserMapping = users.mapping
        self.posix = self.mapping.posix
        self.accounts = accounts
        self.passwords = PasswordPolicy(accounts)
        ldap = self.directory.settings
        self.ids = IdAllocator(self.directory, self.posix, ldap.base_dn)
        self.groups = PosixGroups(self.directory, self.posix, ldap.groups_dn)
        self.base_dn = ldap.base_dn

    # ---- create

    def create(self, values: dict[Slot, SlotValue]) -> UserRecord:
        """Add the account (and its private group, login group membership, password)."""
        values = dict(values)
        requested_password = values.pop(PASSWORD, None)
        user_name = str(values[USER_NAME])
        login = self.mapping.logins.login_for(user_name)
        disabled = values.get(ACTIVE) is False
        parent = self._parent_for(disabled, self.mapping.container)
        dn = child_dn(self.mapping.rdn, login, parent)
        with self.directory.session() as session:
            self.ids.check(session, values, None)
            if self.posix.gid_strategy == "default-group" and GID_NUMBER not in values:
                self.groups.ensure_default(session)
            manager_dn = self.users.manager_dn(session, values.get(MANAGER))
            plaintext = self.passwords.at_creation(
                str(requested_password) if requested_password is not None else None
            )
            hashed = (
                self.passwords.hashed(plaintext)
                if plaintext and not self.passwords.by_exop
                else None
            )
            requested = values.get(UID_NUMBER)
            number, attributes = self._new_entry(session, values, login, manager_dn)
            if hashed:
                attributes["userPassword"] = [hashed]
            with Steps() as steps:
                if not isinstance(requested, int):
                    steps.done("the uidNumber", lambda: self.ids.release(session, number))
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
                    raise UniquenessException(
                        detail=f"userName {user_name} is taken: the login name {login!r} "
                        "already exists"
                    ) from None
                except NotFoundException:
                    self._check_container(session, parent)
                    raise
                steps.done("the add", lambda: session.delete(dn, action="undo an add"))
                if self.posix.gid_strategy == "private-group":
                    gid = int(attributes[self.mapping.by_slot.get(GID_NUMBER, "gidNumber")][0])
                    self.groups.create_private(session, login, gid)
                    steps.done(
                        "the private group",
                        lambda: self.groups.delete_private(session, login, gid),
                    )
                if self.mapping.profile.uses_login_group and not disabled:
                    self._join_login_group(session, steps, login)
                if plaintext and self.passwords.by_exop:
                    session.set_password(dn, plaintext, action=f"set the password of {login}")
                    if disabled:
                        self._lock_again(session, dn, login)
                    return self.users.reread(session, dn)
            record = self.users.record_after(result, dn)
            if manager_dn and MANAGER in values:
                record.values[MANAGER] = str(uuid.UUID(str(values[MANAGER])))
            return record

    def _new_entry(
        self, session: Session, values: dict[Slot, SlotValue], login: str, manager_dn: str | None
    ) -> tuple[int, dict[str, Any]]:
        """The uidNumber of a new account (allocated unless sent) and its attributes."""
        requested = values.get(UID_NUMBER)
        external = values.get(EXTERNAL_ID)
        values[UID_NUMBER] = number = self.ids.uid_for(
            session,
            requested=requested if isinstance(requested, int) else None,
            external_id=str(external) if external is not None else None,
            user_name=str(values[USER_NAME]),
        )
        assigned: dict[str, list[str]] = {}
        if self.posix.gid_strategy == "private-group" and GID_NUMBER not in values:
            assigned["gidnumber"] = [str(number)]
        attributes = self.mapping.attributes(
            values, login, manager_dn, assigned, classes=self.mapping.object_classes
        )
        return number, dict(attributes)

    # ---- update

    def update(
        self, current: UserRecord, values: dict[Slot, SlotValue], if_match: str | None
    ) -> UserRecord:
        """Write the difference between ``current`` and ``values``.

        ``if_match`` is the entryCSN the write is conditional on (assertion
        control, RFC 4528): a concurrent change makes it fail with 412. Only
        attributes whose value changes are written. The entry is renamed first
        when its login name changes (``posix.rename_login``) or when the
        disable profile moves it; group changes follow, then the modify, then
        a password set with the Password Modify operation, then the lock of a
        disabled account again. A failing step undoes the ones before it.
        """
        guard = _version_guard(if_match, current.version)
        values = dict(values)
        requested_password = values.pop(PASSWORD, None)
        plaintext = self.passwords.on_update(
            str(requested_password) if requested_password is not None else None
        )
        old_login = current.login
        new_login = self._login_after(current, values)
        was_disabled = current.values.get(ACTIVE) is False
        now_disabled = values.get(ACTIVE) is False
        old_parent = parent_of(current.dn)
        new_parent = (
            old_parent
            if was_disabled == now_disabled
            else self._parent_for(now_disabled, old_parent)
        )
        with self.directory.session() as session:
            self.ids.check(session, values, current.values)
            old_manager = current.manager_dn
            new_manager = (
                old_manager
                if values.get(MANAGER) == current.values.get(MANAGER)
                else self.users.manager_dn(session, values.get(MANAGER))
            )
            before, changes = self._modification(current, values, new_login, new_manager, plaintext)
            dn = current.dn
            result: dict[str, Any] | None = None
            with Steps() as steps:
                if new_login != old_login or not same_dn(new_parent, old_parent):
                    dn = self._move(session, steps, current, new_login, new_parent, guard)
                    guard = []
                if new_login != old_login:
                    self._rename_groups(session, steps, current, new_login)
                if self.mapping.profile.uses_login_group and was_disabled != now_disabled:
                    if now_disabled:
                        self._leave_login_group(session, steps, new_login)
                    else:
                        self._join_login_group(session, steps, new_login)
                if changes:
                    inverse = self._inverse(before, changes)
                    swapped = self._uid_number_swap(before, changes, guard)
                    if swapped is not None:
                        changes, guard = swapped, []
                    try:
                        result = session.modify(
                            dn,
                            changes,
                            controls=[*guard, self.users.post_read()],
                            tolerate=(writes.NO_SUCH_ATTRIBUTE,) if swapped else (),
                            action=f"update user {new_login}",
                        )
                    except ValueNotUnique:
                        raise UniquenessException(
                            detail=f"{UID_NUMBER.path} {values.get(UID_NUMBER)} already belongs "
                            "to another account"
                        ) from None
                    if result["result"] == writes.NO_SUCH_ATTRIBUTE:
                        raise PreconditionFailedException(
                            detail="the resource changed since the version given in If-Match"
                        )
                    steps.done(
                        "the modify",
                        lambda: session.modify(dn, inverse, action="undo a modify"),
                    )
                if plaintext and self.passwords.by_exop:
                    session.set_password(dn, plaintext, action=f"set the password of {new_login}")
                    result = None
                if plaintext and now_disabled and self._lock_again(session, dn, new_login):
                    result = None
            if result is None:
                return self.users.reread(session, dn)
            record = self.users.record_after(result, dn)
            self.users.resolve_managers(session, [record])
            return record

    def _login_after(self, current: UserRecord, values: Mapping[Slot, SlotValue]) -> str:
        same = str(values[USER_NAME]).lower() == str(current.values[USER_NAME]).lower()
        if same or not self.posix.rename_login:
            return current.login
        return self.mapping.logins.login_for(str(values[USER_NAME]))

    def _parent_for(self, disabled: bool, otherwise: str) -> str:
        """The container an account goes to when created or when ``active`` changes.

        Other changes leave it where it is, in a sub-container an administrator
        chose for instance.
        """
        if not self.mapping.profile.moves:
            return otherwise
        return self.mapping.disabled_container if disabled else self.mapping.container

    def _move(
        self,
        session: Session,
        steps: Steps,
        current: UserRecord,
        new_login: str,
        new_parent: str,
        guard: Sequence[Control],
    ) -> str:
        old_parent = parent_of(current.dn)
        superior = None if same_dn(new_parent, old_parent) else new_parent
        try:
            session.rename(
                current.dn,
                rdn_of(self.mapping.rdn, new_login),
                new_superior=superior,
                controls=guard,
                action=f"rename user {current.login} to {new_login}",
            )
        except UniquenessException:
            raise UniquenessException(
                detail=f"the login name {new_login!r} is already taken"
            ) from None
        except NotFoundException:
            if superior is not None:
                self._check_container(session, superior)
            raise
        dn = child_dn(self.mapping.rdn, new_login, new_parent)
        back = None if superior is None else old_parent
        steps.done(
            "the rename",
            lambda: session.rename(
                dn,
                rdn_of(self.mapping.rdn, current.login),
                new_superior=back,
                action="undo a rename",
            ),
        )
        return dn

    def _rename_groups(self, session: Session, steps: Steps, current: UserRecord, new: str) -> None:
        old = current.login
        gid = self._gid_of(current)
        if self.posix.gid_strategy == "private-group" and self.groups.rename_private(
            session, old, new, gid
        ):
            steps.done(
                "the private group rename",
                lambda: self.groups.rename_private(session, new, old, gid),
            )
        self.groups.rename_member(session, old, new)
        steps.done("the membership renames", lambda: self.groups.rename_member(session, new, old))

    def _join_login_group(self, session: Session, steps: Steps, login: str) -> None:
        group = self.accounts.login_group
        try:
            added = self.groups.add_member(session, group, login)
        except NotFoundException:
            raise DirectoryFailure(
                detail=f"The login group {self.groups.dn_of(group)} does not exist: create it "
                "(a posixGroup) or change accounts.login_group"
            ) from None
        if added:
            steps.done("the login group", lambda: self.groups.remove_member(session, group, login))

    def _leave_login_group(self, session: Session, steps: Steps, login: str) -> None:
        group = self.accounts.login_group
        if self.groups.remove_member(session, group, login):
            steps.done("the login group", lambda: self.groups.add_member(session, group, login))

    def _modification(
        self,
        current: UserRecord,
        values: Mapping[Slot, SlotValue],
        new_login: str,
        new_manager: str | None,
        plaintext: str | None,
    ) -> tuple[LdapValues, Changes]:
        """The entry's managed attributes now, and the modify that gives it ``values``.

        The object classes the entry lacks come with any change.
        """
        classes = current.object_classes
        before = self.mapping.attributes(
            current.values,
            current.login,
            current.manager_dn,
            current.defaults,
            current.extra,
            classes,
        )

        def after(classes: Sequence[str]) -> LdapValues:
            return self.mapping.attributes(
                values, new_login, new_manager, current.defaults, current.extra, classes
            )

        changes = self._changes(before, after(classes))
        hashed = plaintext and not self.passwords.by_exop
        present = {c.lower() for c in classes}
        missing = [c for c in self.mapping.object_classes if c.lower() not in present]
        if (changes or hashed) and missing:
            changes = self._changes(before, after([*classes, *missing]))
        if plaintext and hashed:
            changes["userPassword"] = [(MODIFY_REPLACE, [self.passwords.hashed(plaintext)])]
        return before, changes

    def _changes(self, before: LdapValues, after: LdapValues) -> Changes:
        changes: Changes = {}
        names = {n.lower(): n for n in [*before, *after]}
        lower_before = {k.lower(): v for k, v in before.items()}
        lower_after = {k.lower(): v for k, v in after.items()}
        for key, name in names.items():
            if key == self.mapping.rdn.lower():
                continue
            old, new = lower_before.get(key, []), lower_after.get(key, [])
            if old != new:
                changes[name] = [(MODIFY_REPLACE, new)]
        return changes

    def _uid_number_swap(
        self, before: LdapValues, changes: Changes, guard: Sequence[Control]
    ) -> Changes | None:
        """A uidNumber change guarded by its old value instead of the assertion control.

        The ``unique`` overlay runs its uniqueness search with the request's
        controls, and the assertion (``entryCSN`` of the user) then fails on
        that search's base: such a modify would always answer assertionFailed.
        Deleting the old value and adding the new one fails instead
        (noSuchAttribute) when the number changed meanwhile. None when the
        changes keep the uidNumber or carry no guard.
        """
        attribute = self.mapping.by_slot.get(UID_NUMBER, "uidNumber")
        old = {k.lower(): v for k, v in before.items()}.get(attribute.lower())
        name = next((n for n in changes if n.lower() == attribute.lower()), None)
        if name is None or not guard or not old:
            return None
        [(_kind, new)] = changes[name]
        return {**changes, name: [(MODIFY_DELETE, list(old)), (MODIFY_ADD, list(new))]}

    @staticmethod
    def _inverse(before: LdapValues, changes: Changes) -> Changes:
        """The modify that restores what ``changes`` replaced (the password stays)."""
        lowered = {k.lower(): v for k, v in before.items()}
        return {
            name: [(MODIFY_REPLACE, lowered.get(name.lower(), []))]
            for name in changes
            if name.lower() != "userpassword"
        }

    # ---- delete

    def delete(self, user_id: str, if_match: str | None) -> None:
        """Delete (or archive, ``accounts.delete``) the account and its group memberships.

        memberUid values naming the login are removed everywhere, so a later
        account given the same login name inherits no group. An archived entry
        keeps its uidNumber, which no later account is given.
        """
        with self.directory.session() as session:
            record = self.users.find(session, user_id)
            guard = _version_guard(if_match, record.version)
            login = record.login
            with Steps() as steps:
                removed = self.groups.remove_member_everywhere(session, login)
                steps.done(
                    "the memberships",
                    lambda: [self.groups.add_member_dn(session, g, login) for g in removed],
                )
                if self.posix.gid_strategy == "private-group":
                    number = self._gid_of(record)
                    if self.groups.delete_private(session, login, number):
                        steps.done(
                            "the private group",
                            lambda: self.groups.create_private(session, login, number),
                        )
                if self.accounts.delete == "archive":
                    archive = self.mapping.archive_container
                    try:
                        session.rename(
                            record.dn,
                            self._archived_rdn(record),
                            new_superior=archive,
                            controls=guard,
                            action=f"archive user {login}",
                        )
                    except NotFoundException:
                        self._check_container(session, archive)
                        raise
                else:
                    session.delete(record.dn, controls=guard, action=f"delete user {login}")

    def _archived_rdn(self, record: UserRecord) -> str:
        """``uid=<login>+uidNumber=<n>``: unique, as numbers are never handed out twice.

        The login alone would collide with the archived entry of an earlier
        account of the same login, and that account could then not be deleted.
        """
        rdn = rdn_of(self.mapping.rdn, record.login)
        number = record.values.get(UID_NUMBER)
        attribute = self.mapping.by_slot.get(UID_NUMBER)
        if attribute is None or number is None or attribute.lower() == self.mapping.rdn.lower():
            return rdn
        return f"{rdn}+{rdn_of(attribute, str(number))}"

    @staticmethod
    def _gid_of(record: UserRecord) -> int:
        """The account's gidNumber, whether the client sent it or the server assigned it."""
        gid = record.values.get(GID_NUMBER)
        if isinstance(gid, int):
            return gid
        kept = record.defaults.get("gidnumber") or ["0"]
        return int(kept[0])

    # ---- helpers

    def _lock_again(self, session: Session, dn: str, login: str) -> bool:
        """ppolicy unlocks an account whose password changes: lock a disabled one again.

        Whether a lock was written.
        """
        if not self.mapping.profile.locks:
            return False
        session.modify(
            dn,
            {LOCK_ATTRIBUTE: [(MODIFY_REPLACE, [LOCKED])]},
            action=f"lock the disabled user {login} again",
        )
        return True

    @staticmethod
    def _check_container(session: Session, container: str) -> None:
        """A missing container is the administrator's to fix: 500 naming it, not a 404."""
        found = session.search(
            container, "(objectClass=*)", ["1.1"], scope="BASE", action=f"look for {container}"
        )
        if not found:
            raise DirectoryFailure(
                detail=f"The container {container} does not exist: create it, or point the "
                "ldap settings (users_dn, disabled_dn, archive_dn) at an existing one"
            )
