"""Writing user accounts: create, update (rename, disable, enable) and delete.

Each SCIM write is one or more LDAP operations applied all-or-nothing
(``Steps``). Round trips (pooled connection, no manager reference): POST
1 search of the logins and userName taken (logins.py) + 1 number check + the
allocation (1 read + 1 compare-and-swap + 1 collision search when allocating)
+ 1 search of the home directories taken (homes.py) + 1 add with post-read;
PATCH/PUT 1 read + 1 modify with post-read, +1 search of the logins taken when
userName changes, +1 search of the homes taken when the home changes, +1 modrdn
when the login name changes or a disabled account moves; DELETE 1 read + 1
delete. A password set with the Password Modify operation,
a private group or the login group add one operation each; so does a password
set on a locked, disabled account, which ppolicy unlocks and which is locked
again.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
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
    HOME_DIRECTORY,
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
from app.ldap.homes import HomeClaims
from app.ldap.ids import IdAllocator
from app.ldap.logins import LoginClaims, UserNameTaken, folded
from app.ldap.mapping import LdapValues, UserMapping, UserRecord
from app.ldap.passwords import PasswordPolicy
from app.ldap.pending import Pending
from app.ldap.removal import AccountRemoval, check_container, gid_of
from app.ldap.resume import PendingWrites
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
        self.claims = LoginClaims(
            self.mapping.logins,
            base_dn=ldap.base_dn,
            rdn=self.mapping.rdn,
            user_name_attribute=self.mapping.user_name_attribute,
            visible=(self.mapping.container, self.mapping.disabled_container),
            hidden=(self.mapping.archive_container,),
        )
        self.removal = AccountRemoval(self.mapping, self.groups, accounts, self.posix)
        self.pending = PendingWrites(users, self.groups, self.removal)
        home = self.mapping.by_slot.get(HOME_DIRECTORY)
        self.homes = (
            HomeClaims(
                self.posix.home_collision,
                base_dn=ldap.base_dn,
                attribute=home,
                rdn=self.mapping.rdn,
            )
            if home
            else None
        )

    # ---- create

    def get(self, user_id: str) -> UserRecord:
        """The user with this id, after finishing a write of it that was interrupted."""
        with self.directory.session() as session:
            record = self.users.find(session, user_id)
            if record.pending is not None:
                settled = self.pending.settle(session, record)
                if settled is None:
                    raise NotFoundException(detail=f"User {user_id} not found")
                record = settled
            self.users.resolve_managers(session, [record])
            return record

    def sweep(self, grace: float, settle: float) -> int:
        """Finish or take back the writes interrupted longer ago than ``settle`` seconds."""
        swept = self.pending.sweep(grace, settle)
        return swept.finished + swept.taken_back

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
                login = self.claims.choose(session, user_name)
            except UserNameTaken as taken:
                return self._create_again(session, taken, plaintext)
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
                    op="create",
                    login=login,
                    dn=dn,
                    join=(self.accounts.login_group,) if joins else (),
                    private_gid=gid if private else None,
                    lock=disabled and by_exop and self.mapping.profile.locks,
                )

            requested = values.get(UID_NUMBER)
            number, assigned = self._new_number(session, values)
            with Steps() as steps:
                if not isinstance(requested, int):
                    steps.done("the uidNumber", lambda: self.ids.release(session, number))
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
        record = self.users.reread(session, taken.dn)
        if record.pending is None or record.pending.op != "create":
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
        dn = self.pending.finish(session, record)
        assert dn is not None
        finished = self.users.reread(session, dn)
        log.info("a create sent again finished the interrupted create of %s", dn)
        return finished

    def _new_number(
        self, session: Session, values: dict[Slot, SlotValue]
    ) -> tuple[int, dict[str, list[str]]]:
        """The uidNumber of a new account (allocated unless sent), and the defaults it implies."""
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
        return number, assigned

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

    # ---- update

    def update(
        self, current: UserRecord, values: dict[Slot, SlotValue], if_match: str | None
    ) -> UserRecord:
        """Write the difference between ``current`` and ``values``.

        ``if_match`` is the entryCSN the write is conditional on (assertion
        control, RFC 4528): a concurrent change makes it fail with 412. Only
        attributes whose value changes are written, in one modify that comes
        first. When more follows, that modify also puts the marker of
        app/ldap/pending.py on the entry: the rename (login change,
        ``posix.rename_login``) or move (disable profile ``move``), the
        groups that name the login, a password set with the Password Modify
        operation, the lock of a disabled account again, and last the marker
        taken off. A step the directory refuses undoes the ones before it; a
        step it cannot be asked (it died) leaves the marker, and the next
        request or the sweep finishes the write.
        """
        guard = _version_guard(if_match, current.version)
        values = dict(values)
        requested_password = values.pop(PASSWORD, None)
        plaintext = self.passwords.on_update(
            str(requested_password) if requested_password is not None else None
        )
        old_login = current.login
        was_disabled = current.values.get(ACTIVE) is False
        now_disabled = values.get(ACTIVE) is False
        old_parent = parent_of(current.dn)
        new_parent = (
            self._parent_for(now_disabled, old_parent)
            if was_disabled != now_disabled
            else old_parent
        )
        with self.directory.session() as session:
            new_login = self._login_after(session, current, values)
            self.ids.check(session, values, current.values)
            new_manager = (
                current.manager_dn
                if values.get(MANAGER) == current.values.get(MANAGER)
                else self.users.manager_dn(session, values.get(MANAGER))
            )
            before, changes = self._modification(
                session, current, values, new_login, new_manager, plaintext
            )
            renames = new_login != old_login or not same_dn(new_parent, old_parent)
            groups = self.mapping.profile.uses_login_group and was_disabled != now_disabled
            by_exop = bool(plaintext) and self.passwords.by_exop
            relock = bool(plaintext) and now_disabled and self.mapping.profile.locks
            pending = self._update_marker(
                session,
                current,
                (new_login, new_parent, now_disabled),
                relock,
                renames or groups or by_exop,
            )
            dn = current.dn
            result: dict[str, Any] | None = None
            with Steps() as steps:
                if pending is not None:
                    changes = {**changes, **self._marker_change(pending)}
                if changes:
                    result = self._modify(session, steps, dn, before, changes, guard, values)
                if renames:
                    dn, moved = self._move(session, steps, current, values, new_login, new_parent)
                    if moved != new_login:
                        dn, pending = self._moved_elsewhere(
                            session, current, values, moved, new_parent, new_manager, pending
                        )
                        new_login = moved
                    if new_login != old_login:
                        self._rename_groups(session, steps, current, new_login)
                    result = None
                if groups:
                    if now_disabled:
                        self._leave_login_group(session, steps, new_login)
                    else:
                        self._join_login_group(session, steps, new_login)
                if by_exop and plaintext:
                    session.set_password(dn, plaintext, action=f"set the password of {new_login}")
                    result = None
                if relock and self._lock_again(session, dn, new_login):
                    result = None
                if pending is not None:
                    result = self.pending.clear(session, dn, pending, [self.users.post_read()])
            if result is None:
                return self.users.reread(session, dn)
            record = self.users.record_after(result, dn)
            self.users.resolve_managers(session, [record])
            return record

    def _update_marker(
        self,
        session: Session,
        current: UserRecord,
        after: tuple[str, str, bool],
        relock: bool,
        more: bool,
    ) -> Pending | None:
        """The marker of a multi-step update: where the entry ends, what its groups become.

        ``after`` is the login, container and disabled state the update gives.
        None when the update is one modify (``more`` and ``relock`` false). A
        move first makes sure its container exists, so nothing is written for
        a move that cannot be made.
        """
        new_login, new_parent, now_disabled = after
        if not same_dn(new_parent, parent_of(current.dn)):
            check_container(session, new_parent)
        if not self.pending.enabled or not (more or relock):
            return None
        was_disabled = current.values.get(ACTIVE) is False
        group = (self.accounts.login_group,)
        moves_group = self.mapping.profile.uses_login_group and was_disabled != now_disabled
        renamed = new_login != current.login
        private = self.posix.gid_strategy == "private-group"
        return Pending(
            op="update",
            login=new_login,
            dn=child_dn(self.mapping.rdn, new_login, new_parent),
            old_login=current.login if renamed else None,
            join=group if moves_group and not now_disabled else (),
            leave=group if moves_group and now_disabled else (),
            private_gid=gid_of(current) if private and renamed else None,
            lock=relock,
        )

    def _marker_change(self, pending: Pending) -> Changes:
        attribute = self.pending.attribute
        return {attribute: [(MODIFY_REPLACE, [pending.encode()])]} if attribute else {}

    def _modify(
        self,
        session: Session,
        steps: Steps,
        dn: str,
        before: LdapValues,
        changes: Changes,
        guard: Sequence[Control],
        values: Mapping[Slot, SlotValue],
    ) -> dict[str, Any]:
        """The attribute changes (and the marker), guarded; undone by replacing them back."""
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
                action="update user",
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
        steps.done("the modify", lambda: session.modify(dn, inverse, action="undo a modify"))
        return result

    def _moved_elsewhere(
        self,
        session: Session,
        current: UserRecord,
        values: Mapping[Slot, SlotValue],
        moved: str,
        new_parent: str,
        new_manager: str | None,
        pending: Pending | None,
    ) -> tuple[str, Pending | None]:
        """After a rename that had to take another login: the attributes and marker for it."""
        _before, changes = self._modification(session, current, values, moved, new_manager, None)
        dn = child_dn(self.mapping.rdn, moved, new_parent)
        if pending is not None:
            pending = replace(pending, login=moved, dn=dn)
            changes = {**changes, **self._marker_change(pending)}
        if changes:
            session.modify(dn, changes, action=f"update user {moved}")
        return dn, pending

    def _login_after(
        self, session: Session, current: UserRecord, values: Mapping[Slot, SlotValue]
    ) -> str:
        """The login after a userName change: kept when only letter case changes.

        Otherwise, with ``posix.rename_login``, the first free candidate of the
        new userName, the entry's own login counting as free.
        """
        user_name = str(values[USER_NAME])
        if folded(user_name) == folded(str(current.values[USER_NAME])):
            return current.login
        if not self.posix.rename_login:
            self.claims.check_user_name(session, user_name, current.dn)
            return current.login
        return self.claims.choose(session, user_name, exclude_dn=current.dn)

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
        values: Mapping[Slot, SlotValue],
        new_login: str,
        new_parent: str,
    ) -> tuple[str, str]:
        """Rename or move the entry: its new DN and login.

        The directory refuses a new DN that exists (entryAlreadyExists): a
        concurrent write took the login since the search, and under the derive
        policy the next free candidate is tried.
        """
        old_parent = parent_of(current.dn)
        superior = None if same_dn(new_parent, old_parent) else new_parent
        tried: list[str] = []
        while True:
            try:
                session.rename(
                    current.dn,
                    rdn_of(self.mapping.rdn, new_login),
                    new_superior=superior,
                    action=f"rename user {current.login} to {new_login}",
                )
                break
            except UniquenessException:
                if new_login == current.login or not self.mapping.logins.derives:
                    raise UniquenessException(
                        detail=f"the login name {new_login!r} is already taken"
                    ) from None
                tried.append(new_login)
                log.info("the login %s was taken meanwhile; trying the next one", new_login)
                new_login = self.claims.choose(
                    session, str(values[USER_NAME]), exclude_dn=current.dn, skip=tried
                )
            except NotFoundException:
                if superior is not None:
                    check_container(session, superior)
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
        return dn, new_login

    def _rename_groups(self, session: Session, steps: Steps, current: UserRecord, new: str) -> None:
        old = current.login
        gid = gid_of(current)
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
        session: Session,
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

        def after(classes: Sequence[str], home: str | None = None) -> LdapValues:
            return self.mapping.attributes(
                values, new_login, new_manager, current.defaults, current.extra, classes, home
            )

        home = (
            self.homes.for_update(session, values, before, after(classes), current.dn)
            if self.homes
            else None
        )
        changes = self._changes(before, after(classes, home))
        hashed = plaintext and not self.passwords.by_exop
        present = {c.lower() for c in classes}
        missing = [c for c in self.mapping.object_classes if c.lower() not in present]
        if (changes or hashed) and missing:
            changes = self._changes(before, after([*classes, *missing], home))
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

        The entry is marked first, so a delete the directory's death cut short
        is finished by the next request or the sweep.
        """
        with self.directory.session() as session:
            record = self.users.find(session, user_id)
            if record.pending is not None:
                settled = self.pending.settle(session, record)
                if settled is None:
                    return
                record = settled
            guard = _version_guard(if_match, record.version)
            pending = Pending(op="delete", login=record.login, dn=record.dn)
            with Steps() as steps:
                if self.pending.enabled:
                    self.pending.mark(session, record.dn, pending, guard)
                    guard = []
                    steps.done(
                        "the marker", lambda: self.pending.clear(session, record.dn, pending)
                    )
                archived = self.removal.remove(session, steps, record, guard=guard)
                if archived and self.pending.enabled:
                    self.pending.clear(session, archived, pending)

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
