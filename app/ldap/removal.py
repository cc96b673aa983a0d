"""Taking an account away: delete or archive it, with its memberships and private group."""

from __future__ import annotations

from collections.abc import Sequence

from ldap3 import MODIFY_REPLACE
from scim2_models import NotFoundException

from app.attributes import GID_NUMBER, UID_NUMBER, USER_NAME
from app.config import AccountSettings, PosixSettings
from app.ldap import writes
from app.ldap.accounts import LOCK_ATTRIBUTE, LOCKED, hidden_classes
from app.ldap.connection import Control, Session
from app.ldap.dn import is_under, rdn_of
from app.ldap.errors import DirectoryFailure
from app.ldap.groups import PosixGroups
from app.ldap.mapping import UserMapping, UserRecord
from app.ldap.numbers import NumberClaims
from app.ldap.steps import Steps


class AccountRemoval:
    """Deletes or archives (``accounts.delete``) accounts, groups first.

    memberUid values naming the login and member values naming the DN are
    removed everywhere, so a later
    account given the same login name inherits no group. An archived entry
    keeps its uidNumber, which no later account is given. Each step tolerates
    having been done already, so a removal interrupted half-way is finished by
    running it again.
    """

    def __init__(
        self,
        mapping: UserMapping,
        groups: PosixGroups,
        accounts: AccountSettings,
        posix: PosixSettings,
        numbers: NumberClaims,
    ) -> None:
        self.mapping = mapping
        self.groups = groups
        self.accounts = accounts
        self.posix = posix
        self.numbers = numbers

    def remove(
        self,
        session: Session,
        steps: Steps,
        record: UserRecord,
        *,
        archive: bool | None = None,
        guard: Sequence[Control] = (),
    ) -> str | None:
        """Take the account away; the DN of its archived entry, None when deleted."""
        login = record.login
        removed = self.groups.remove_account(session, login, record.dn)
        steps.done(
            "the memberships",
            lambda: [self.groups.add_value(session, *listing) for listing in removed],
        )
        if self.posix.gid_strategy == "private-group":
            number = gid_of(record)
            if self.groups.delete_private(session, login, number):
                steps.done(
                    "the private group",
                    lambda: self.groups.create_private(session, login, number),
                )
        if self.accounts.delete == "archive" if archive is None else archive:
            return self._archive(session, record, guard)
        writes.delete(
            session,
            record.dn,
            controls=guard,
            tolerate=(writes.NO_SUCH_OBJECT,),
            action=f"delete user {login}",
        )
        uid = record.values.get(UID_NUMBER)
        if isinstance(uid, int):
            self.numbers.release(session, uid, str(record.values[USER_NAME]))
        return None

    def archived(self, record: UserRecord) -> bool:
        return is_under(record.dn, self.mapping.archive_container)

    def _archive(self, session: Session, record: UserRecord, guard: Sequence[Control]) -> str:
        """Hide the account from every NSS client, lock it, and move it into the archive.

        ``ou=archive`` is below the base DN that stock hosts search, so the move
        alone would leave the account valid on them.
        """
        archive = self.mapping.archive_container
        rdn = self.archived_rdn(record)
        if self.archived(record):
            return record.dn
        hiding = self._hiding(record)
        if hiding:
            session.modify(
                record.dn, hiding, controls=guard, action=f"hide the archived user {record.login}"
            )
            guard = ()
        try:
            session.rename(
                record.dn,
                rdn,
                new_superior=archive,
                controls=guard,
                action=f"archive user {record.login}",
            )
        except NotFoundException:
            check_container(session, archive)
            raise
        return f"{rdn},{archive}"

    def _hiding(self, record: UserRecord) -> dict[str, list[tuple[str, list[str]]]]:
        """The modify that takes the entry out of the POSIX classes (and locks it)."""
        hidden = hidden_classes(record.live_classes)
        changes: dict[str, list[tuple[str, list[str]]]] = {}
        if hidden != record.live_classes:
            changes["objectClass"] = [(MODIFY_REPLACE, hidden)]
        if self.mapping.profile.locks:
            changes[LOCK_ATTRIBUTE] = [(MODIFY_REPLACE, [LOCKED])]
        return changes

    def archived_rdn(self, record: UserRecord) -> str:
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


def gid_of(record: UserRecord) -> int:
    """The account's gidNumber, whether the client sent it or the server assigned it."""
    gid = record.values.get(GID_NUMBER)
    if isinstance(gid, int):
        return gid
    kept = record.defaults.get("gidnumber") or ["0"]
    return int(kept[0])


def check_container(session: Session, container: str) -> None:
    """A missing container is the administrator's to fix: 500 naming it, not a 404."""
    found = session.search(
        container, "(objectClass=*)", ["1.1"], scope="BASE", action=f"look for {container}"
    )
    if not found:
        raise DirectoryFailure(
            detail=f"The container {container} does not exist: create it, or point the "
            "ldap settings (users_dn, disabled_dn, archive_dn) at an existing one"
        )
