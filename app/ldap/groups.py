"""The POSIX groups accounts need: the default group, private groups, memberships.

Entries are RFC 2307 ``posixGroup`` (STRUCTURAL in OpenLDAP's nis schema,
``MUST ( cn $ gidNumber ) MAY memberUid``). They are plumbing of the
accounts, not SCIM Group resources, so they do not get ``scimGroup``.

Accounts are listed by login (``memberUid``) and, in SCIM groups, by DN
(``member``, app/ldap/groupentries.py): a rename or move of an account
changes both wherever they name it, and a removal takes both away.

Membership changes send only the value added or removed (MODIFY_ADD /
MODIFY_DELETE), never the whole list, so concurrent changes to the same group
do not overwrite each other; an add of a present member or a delete of an
absent one is answered as done.
"""

from __future__ import annotations

import logging

from ldap3 import MODIFY_ADD, MODIFY_DELETE
from ldap3.utils.conv import escape_filter_chars
from scim2_models import NotFoundException, UniquenessException

from app.config import PosixSettings
from app.ldap import writes
from app.ldap.connection import Control, Directory, Session
from app.ldap.controls import assertion_control, matched_values_control
from app.ldap.dn import child_dn, rdn_of, same_dn
from app.ldap.errors import DirectoryFailure
from app.ldap.logins import values_of

log = logging.getLogger(__name__)

GROUP_CLASSES = ["top", "posixGroup"]


class PosixGroups:
    """posixGroup entries below ``groups_dn`` named by ``cn``."""

    def __init__(self, directory: Directory, posix: PosixSettings, groups_dn: str) -> None:
        self.directory = directory
        self.posix = posix
        self.groups_dn = groups_dn
        self.base_dn = directory.settings.base_dn
        self._default_checked = False

    def dn_of(self, name: str) -> str:
        return child_dn("cn", name, self.groups_dn)

    # ---- the default group

    def ensure_default(self, session: Session) -> None:
        """Make sure a posixGroup with ``default_gid_number`` exists somewhere under the base.

        When none does, ``cn=<default_group>`` is added below ``groups_dn``. Two
        servers doing so at once both succeed: the loser's add fails with
        entryAlreadyExists and it finds the winner's group. Once found, the
        group is not looked up again by this instance.
        """
        if self._default_checked:
            return
        gid = self.posix.default_gid_number
        if not self._gid_exists(session, gid):
            name = self.posix.default_group
            code = self._add_group(
                session, name, gid, tolerate=(writes.ENTRY_ALREADY_EXISTS,), what="default group"
            )
            if code == writes.ENTRY_ALREADY_EXISTS and not self._gid_exists(session, gid):
                raise DirectoryFailure(
                    detail=f"The group {self.dn_of(name)} exists with a gidNumber other than "
                    f"posix.default_gid_number {gid}: change one of them"
                )
        self._default_checked = True

    def _gid_exists(self, session: Session, gid: int) -> bool:
        found = session.search(
            self.base_dn,
            f"(&(objectClass=posixGroup)(gidNumber={int(gid)}))",
            ["1.1"],
            size_limit=1,
            action=f"look for the group of gidNumber {gid}",
        )
        return bool(found)

    def _add_group(
        self, session: Session, name: str, gid: int, *, tolerate: tuple[int, ...], what: str
    ) -> int:
        dn = self.dn_of(name)
        try:
            return writes.add(
                session,
                dn,
                {"objectClass": GROUP_CLASSES, "cn": name, "gidNumber": str(int(gid))},
                tolerate=tolerate,
                action=f"create the {what} {name}",
            )
        except NotFoundException:
            raise DirectoryFailure(
                detail=f"Cannot create the {what} {dn}: the container {self.groups_dn} "
                "does not exist"
            ) from None

    # ---- private groups

    def create_private(self, session: Session, login: str, gid: int) -> str:
        """Add ``cn=<login>`` with ``gid``; 409 when a group of that name exists."""
        try:
            self._add_group(session, login, gid, tolerate=(), what="private group")
        except UniquenessException:
            raise UniquenessException(
                detail=f"the login name {login!r} is taken: a group {self.dn_of(login)} "
                "already exists"
            ) from None
        return self.dn_of(login)

    def ensure_private(self, session: Session, login: str, gid: int) -> None:
        """``create_private`` that accepts the group being there already (a finished write)."""
        self._add_group(
            session,
            login,
            gid,
            tolerate=(writes.ENTRY_ALREADY_EXISTS,),
            what="private group",
        )

    def rename_private(
        self, session: Session, old_login: str, new_login: str, gid: int | None = None
    ) -> bool:
        """Rename ``cn=<old_login>`` to ``cn=<new_login>``; whether a group was renamed.

        An absent group is not an error (the account may predate private
        groups). With ``gid``, a group of that name with another gidNumber is
        someone else's and is left alone. 409 when ``new_login`` is taken.
        """
        if old_login == new_login:
            return False
        try:
            code = writes.rename(
                session,
                self.dn_of(old_login),
                rdn_of("cn", new_login),
                controls=self._guard(gid),
                tolerate=(writes.NO_SUCH_OBJECT, writes.ASSERTION_FAILED),
                action=f"rename the private group {old_login} to {new_login}",
            )
        except UniquenessException:
            raise UniquenessException(
                detail=f"the login name {new_login!r} is taken: a group "
                f"{self.dn_of(new_login)} already exists"
            ) from None
        self._note_foreign(code, old_login, gid)
        return code == writes.SUCCESS

    def delete_private(self, session: Session, login: str, gid: int | None = None) -> bool:
        """Delete ``cn=<login>``; whether a group was deleted (absent is not an error).

        With ``gid``, a group of that name with another gidNumber is left alone.
        """
        code = writes.delete(
            session,
            self.dn_of(login),
            controls=self._guard(gid),
            tolerate=(writes.NO_SUCH_OBJECT, writes.ASSERTION_FAILED),
            action=f"delete the private group {login}",
        )
        self._note_foreign(code, login, gid)
        return code == writes.SUCCESS

    @staticmethod
    def _guard(gid: int | None) -> list[Control]:
        return [] if gid is None else [assertion_control(f"(gidNumber={int(gid)})")]

    def _note_foreign(self, code: int, login: str, gid: int | None) -> None:
        if code == writes.ASSERTION_FAILED:
            log.warning(
                "left %s alone: its gidNumber is not %s, so it is not the private group",
                self.dn_of(login),
                gid,
            )

    # ---- memberships (memberUid and member)

    def _listings(self, session: Session, login: str, dn: str) -> list[tuple[str, bool, bool]]:
        """The groups below ``groups_dn`` naming an account: (group DN, by login, by DN).

        One search: the matched values control (RFC 3876) returns only the
        values naming the account, not whole member lists; a directory without
        it returns them all and they are checked here.
        """
        by_login = f"(memberUid={escape_filter_chars(login)})"
        by_dn = f"(member={escape_filter_chars(dn)})"
        found = session.search(
            self.groups_dn,
            f"(|{by_login}{by_dn})",
            ["memberUid", "member"],
            controls=[matched_values_control([by_login, by_dn])],
            action=f"find the groups of {login}",
        )
        listings = []
        for group in found:
            attributes = group["attributes"]
            logins = [str(v) for v in values_of(attributes, "memberUid")]
            dns = [str(v) for v in values_of(attributes, "member")]
            listings.append((str(group["dn"]), login in logins, any(same_dn(v, dn) for v in dns)))
        return listings

    def rename_account(self, session: Session, old: tuple[str, str], new: tuple[str, str]) -> int:
        """Rename an account's (login, DN) in every group naming it; the groups changed.

        One search, then one modify per group (memberUid and member together).
        """
        (old_login, old_dn), (new_login, new_dn) = old, new
        login_changes = old_login != new_login
        dn_changes = not same_dn(old_dn, new_dn)
        if not login_changes and not dn_changes:
            return 0
        changed = 0
        for group, by_login, by_dn in self._listings(session, old_login, old_dn):
            changes: dict[str, list[tuple[str, list[str]]]] = {}
            if by_login and login_changes:
                changes["memberUid"] = [(MODIFY_DELETE, [old_login]), (MODIFY_ADD, [new_login])]
            if by_dn and dn_changes:
                changes["member"] = [(MODIFY_DELETE, [old_dn]), (MODIFY_ADD, [new_dn])]
            if not changes:
                continue
            code = writes.modify(
                session,
                group,
                changes,
                tolerate=(
                    writes.NO_SUCH_ATTRIBUTE,
                    writes.ATTRIBUTE_OR_VALUE_EXISTS,
                    writes.NO_SUCH_OBJECT,
                ),
                action=f"rename member {old_login} to {new_login}",
            )
            if code in (writes.NO_SUCH_ATTRIBUTE, writes.ATTRIBUTE_OR_VALUE_EXISTS):
                renamed = False
                if "memberUid" in changes:
                    renamed |= self._rename_value(session, group, "memberUid", old_login, new_login)
                if "member" in changes:
                    renamed |= self._rename_value(session, group, "member", old_dn, new_dn)
            else:
                renamed = code == writes.SUCCESS
            if renamed:
                changed += 1
        return changed

    def _rename_value(
        self, session: Session, group: str, attribute: str, old: str, new: str
    ) -> bool:
        code = writes.modify(
            session,
            group,
            {attribute: [(MODIFY_DELETE, [old]), (MODIFY_ADD, [new])]},
            tolerate=(
                writes.NO_SUCH_ATTRIBUTE,
                writes.ATTRIBUTE_OR_VALUE_EXISTS,
                writes.NO_SUCH_OBJECT,
            ),
            action=f"rename member {old} to {new}",
        )
        if code == writes.ATTRIBUTE_OR_VALUE_EXISTS:
            return self.remove_value(session, group, attribute, old)
        return code == writes.SUCCESS

    def remove_account(self, session: Session, login: str, dn: str) -> list[tuple[str, str, str]]:
        """Take an account out of every group naming it; the (group, attribute, value) removed.

        One search, then one modify per group. Undo with ``add_value`` on each.
        """
        removed: list[tuple[str, str, str]] = []
        for group, by_login, by_dn in self._listings(session, login, dn):
            values = [("memberUid", login)] if by_login else []
            values += [("member", dn)] if by_dn else []
            if not values:
                continue
            code = writes.modify(
                session,
                group,
                {attribute: [(MODIFY_DELETE, [value])] for attribute, value in values},
                tolerate=(writes.NO_SUCH_ATTRIBUTE, writes.NO_SUCH_OBJECT),
                action=f"remove {login} from the group {group}",
            )
            if code == writes.SUCCESS:
                removed += [(group, attribute, value) for attribute, value in values]
            elif code == writes.NO_SUCH_ATTRIBUTE:
                removed += [
                    (group, attribute, value)
                    for attribute, value in values
                    if self.remove_value(session, group, attribute, value)
                ]
        return removed

    def _nesting(self, session: Session, dn: str) -> list[str]:
        """DNs of the groups below ``groups_dn`` whose ``member`` holds ``dn``."""
        found = session.search(
            self.groups_dn,
            f"(member={escape_filter_chars(dn)})",
            ["1.1"],
            action=f"find the groups listing {dn}",
        )
        return [str(group["dn"]) for group in found]

    def rename_member_dn(self, session: Session, old_dn: str, new_dn: str) -> int:
        """Replace the member DN ``old_dn`` by ``new_dn`` in every group listing it (nesting)."""
        if same_dn(old_dn, new_dn):
            return 0
        return sum(
            self._rename_value(session, group, "member", old_dn, new_dn)
            for group in self._nesting(session, old_dn)
        )

    def remove_dn_everywhere(self, session: Session, dn: str) -> list[str]:
        """Remove the member DN ``dn`` from every group listing it; the DNs of those groups."""
        return [
            group
            for group in self._nesting(session, dn)
            if self.remove_value(session, group, "member", dn)
        ]

    def add_value(self, session: Session, group_dn: str, attribute: str, value: str) -> bool:
        """Add one ``memberUid`` or ``member`` value; False if it was there (absent group too)."""
        code = writes.modify(
            session,
            group_dn,
            {attribute: [(MODIFY_ADD, [value])]},
            tolerate=(writes.ATTRIBUTE_OR_VALUE_EXISTS, writes.NO_SUCH_OBJECT),
            action=f"add {value} to the group {group_dn}",
        )
        return code == writes.SUCCESS

    def remove_value(self, session: Session, group_dn: str, attribute: str, value: str) -> bool:
        """Remove one ``memberUid`` or ``member`` value; False if it was not there."""
        code = writes.modify(
            session,
            group_dn,
            {attribute: [(MODIFY_DELETE, [value])]},
            tolerate=(writes.NO_SUCH_ATTRIBUTE, writes.NO_SUCH_OBJECT),
            action=f"remove {value} from the group {group_dn}",
        )
        return code == writes.SUCCESS

    def add_member(self, session: Session, group_cn: str, login: str) -> bool:
        """Add memberUid ``login`` to ``cn=<group_cn>``; False if it was there already.

        404 when the group does not exist.
        """
        return self.add_member_dn(session, self.dn_of(group_cn), login)

    def remove_member(self, session: Session, group_cn: str, login: str) -> bool:
        """Remove memberUid ``login`` from ``cn=<group_cn>``; False if it was not there."""
        return self.remove_member_dn(session, self.dn_of(group_cn), login)

    def add_member_dn(self, session: Session, group_dn: str, login: str) -> bool:
        """``add_member`` for a group given by DN."""
        try:
            code = writes.modify(
                session,
                group_dn,
                {"memberUid": [(MODIFY_ADD, [login])]},
                tolerate=(writes.ATTRIBUTE_OR_VALUE_EXISTS,),
                action=f"add {login} to the group {group_dn}",
            )
        except NotFoundException:
            raise NotFoundException(
                detail=f"Cannot add {login} to the group {group_dn}: it does not exist"
            ) from None
        return code == writes.SUCCESS

    def remove_member_dn(self, session: Session, group_dn: str, login: str) -> bool:
        """``remove_member`` for a group given by DN; an absent group is not an error."""
        code = writes.modify(
            session,
            group_dn,
            {"memberUid": [(MODIFY_DELETE, [login])]},
            tolerate=(writes.NO_SUCH_ATTRIBUTE, writes.NO_SUCH_OBJECT),
            action=f"remove {login} from the group {group_dn}",
        )
        return code == writes.SUCCESS
