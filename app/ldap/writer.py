"""What account writes share: the directory pieces they use and their small common steps."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from ldap3 import MODIFY_REPLACE
from ldap3.utils.conv import escape_filter_chars
from scim2_models import (
    InvalidValueException,
    NotFoundException,
    PreconditionFailedException,
)

from app.attributes import (
    ENTRY_DN,
    HOME_DIRECTORY,
    LOGIN,
    UID_NUMBER,
    Slot,
    SlotValue,
)
from app.config import AccountSettings
from app.ldap.accounts import LOCK_ATTRIBUTE, LOCKED
from app.ldap.connection import Control, Session
from app.ldap.controls import assertion_control
from app.ldap.dn import parent_of, rdn_values, same_dn
from app.ldap.errors import DirectoryFailure
from app.ldap.groups import PosixGroups
from app.ldap.homes import HomeClaims
from app.ldap.ids import IdAllocator
from app.ldap.logins import LoginClaims
from app.ldap.mapping import UserMapping
from app.ldap.numbers import NumberClaims
from app.ldap.passwords import PasswordPolicy
from app.ldap.removal import AccountRemoval
from app.ldap.resume import PendingWrites
from app.ldap.steps import Steps
from app.ldap.users import UserDirectory

log = logging.getLogger(__name__)

Changes = dict[str, list[tuple[str, list[str]]]]


def version_guard(if_match: str | None, current: str | None) -> list[Control]:
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


class AccountWriter:
    """The parts of the account model that creating, updating and removing accounts use."""

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
        self.numbers = NumberClaims(ldap.base_dn, UID_NUMBER.path)
        self.removal = AccountRemoval(self.mapping, self.groups, accounts, self.posix, self.numbers)
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

    def requested_login(self, values: Mapping[Slot, SlotValue]) -> str | None:
        """The login the client chose: ECMA2Host ``uid``, or the RDN of its ``-dn-``.

        A ``-dn-`` must name an entry of the users' container by the RDN
        attribute; the server decides containers (disabled, archive) itself.
        """
        login = str(values[LOGIN]) if values.get(LOGIN) else None
        dn = str(values[ENTRY_DN]) if values.get(ENTRY_DN) else None
        if dn is not None:
            try:
                rdn = rdn_values(dn)
                parent = parent_of(dn)
            except (ValueError, IndexError):
                raise InvalidValueException(detail=f"-dn- {dn!r} is not a DN") from None
            containers = (self.mapping.container, self.mapping.disabled_container)
            if (
                len(rdn) != 1
                or rdn[0][0].lower() != self.mapping.rdn.lower()
                or not any(same_dn(parent, c) for c in containers)
            ):
                raise InvalidValueException(
                    detail=f"-dn- {dn!r} must be {self.mapping.rdn}=<login>,"
                    f"{self.mapping.container}"
                )
            if login is not None and login != rdn[0][1]:
                raise InvalidValueException(
                    detail=f"-dn- {dn!r} and uid {login!r} name different logins"
                )
            login = rdn[0][1]
        return login

    def _parent_for(self, disabled: bool, otherwise: str) -> str:
        """The container an account goes to when created or when ``active`` changes.

        Other changes leave it where it is, in a sub-container an administrator
        chose for instance.
        """
        if not self.mapping.profile.moves:
            return otherwise
        return self.mapping.disabled_container if disabled else self.mapping.container

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
