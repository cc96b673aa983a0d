"""Updating accounts: the attribute changes, renames, moves, group changes and passwords."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from ldap3 import MODIFY_ADD, MODIFY_DELETE, MODIFY_REPLACE
from scim2_models import (
    NotFoundException,
    PreconditionFailedException,
    UniquenessException,
)

from app.attributes import (
    ACTIVE,
    MANAGER,
    PASSWORD,
    UID_NUMBER,
    USER_NAME,
    Slot,
    SlotValue,
)
from app.ldap import writes
from app.ldap.adoption import kept_defaults
from app.ldap.connection import Control, Session
from app.ldap.dn import child_dn, parent_of, rdn_of, same_dn
from app.ldap.errors import ValueNotUnique
from app.ldap.logins import folded
from app.ldap.mapping import LdapValues, UserRecord
from app.ldap.pending import Pending
from app.ldap.removal import check_container, gid_of
from app.ldap.steps import Steps
from app.ldap.writer import AccountWriter, Changes, version_guard

log = logging.getLogger(__name__)


def _kept_numbers(current: UserRecord, values: Mapping[Slot, SlotValue]) -> dict[Slot, SlotValue]:
    """The uidNumber is the server's to keep: a replacement without one keeps the current."""
    kept = dict(values)
    if UID_NUMBER not in kept and UID_NUMBER in current.values:
        kept[UID_NUMBER] = current.values[UID_NUMBER]
    return kept


class AccountUpdate(AccountWriter):
    """PATCH and PUT: the difference between an account and the values it should have."""

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
        guard = version_guard(if_match, current.version)
        values = _kept_numbers(current, values)
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
            with self.pending.running(pending.token if pending else ""), Steps() as steps:
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
                    if new_login != old_login or not same_dn(dn, current.dn):
                        self._rename_groups(session, steps, current, new_login, dn)
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
        moved = renamed or not same_dn(new_parent, parent_of(current.dn))
        private = self.posix.gid_strategy == "private-group"
        return Pending(
            op="update",
            login=new_login,
            dn=child_dn(self.mapping.rdn, new_login, new_parent),
            old_login=current.login if renamed else None,
            old_dn=current.dn if moved else None,
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
        requested = self.requested_login(values)
        if requested is not None:
            if requested == current.login:
                self.claims.check_user_name(session, user_name, current.dn)
                return current.login
            return self.claims.requested(session, user_name, requested, exclude_dn=current.dn)
        if folded(user_name) == folded(str(current.values[USER_NAME])):
            return current.login
        if not self.posix.rename_login:
            self.claims.check_user_name(session, user_name, current.dn)
            return current.login
        return self.claims.choose(session, user_name, exclude_dn=current.dn)

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

    def _rename_groups(
        self, session: Session, steps: Steps, current: UserRecord, new: str, new_dn: str
    ) -> None:
        """The groups after a rename or move: the private group, memberUid and member values."""
        old = current.login
        gid = gid_of(current)
        if (
            old != new
            and self.posix.gid_strategy == "private-group"
            and self.groups.rename_private(session, old, new, gid)
        ):
            steps.done(
                "the private group rename",
                lambda: self.groups.rename_private(session, new, old, gid),
            )
        before, after = (old, current.dn), (new, new_dn)
        self.groups.rename_account(session, before, after)
        steps.done(
            "the membership renames", lambda: self.groups.rename_account(session, after, before)
        )

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
        defaults = kept_defaults(self.mapping, current)
        before = self.mapping.attributes(
            current.values,
            current.login,
            current.manager_dn,
            defaults,
            current.extra,
            classes,
        )

        def after(classes: Sequence[str], home: str | None = None) -> LdapValues:
            return self.mapping.attributes(
                values, new_login, new_manager, defaults, current.extra, classes, home
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
