"""sudoRole entries that give the members of configured SCIM groups sudo rights.

``groups.sudo`` maps the displayName of an Entra group (as Entra shows it,
compared as the directory compares displayNames: ignoring case and repeated
spaces) to the commands its members may run. For each SCIM group whose
displayName is configured there is one entry below ``groups.sudoers_dn``::

    dn: cn=<group name>,<sudoers_dn>
    objectClass: sudoRole
    sudoUser: %<group name>
    sudoHost: ALL
    sudoCommand: <each configured command>

with the group's POSIX name (cn), so that sudo (through sssd) matches it
against the groups NSS gives the user; no sudoRunAsUser, so the commands run as
root only. The entry needs sudo's schema (app/ldap/schema/sudo.ldif).

Rights are taken away before the group changes (``revoke``): when the group is
deleted, renamed, or its displayName leaves the configuration, its entry is
deleted first, and a failure fails the request, so Entra's retry finds the
same state and tries again. Rights are given after the group is written
(``grant``): on create and on every later update of a configured group (one
modify, or an add when the entry is missing), so a group created before the
setting, or a grant that failed, is repaired by Entra's next change of the
group. A grant that fails is logged, not answered: the group itself is written.

Round trips: grant 1 modify (+1 add when the entry is missing, +1 add of the
container when that is missing too); revoke 1 delete.
"""

from __future__ import annotations

import logging

from ldap3 import MODIFY_REPLACE
from ldap3.core.exceptions import LDAPException
from ldap3.utils.dn import parse_dn
from scim2_models import SCIMException

from app.config import GroupSettings
from app.ldap import writes
from app.ldap.connection import Session
from app.ldap.dn import child_dn
from app.ldap.logins import folded

log = logging.getLogger(__name__)

SUDO_CLASS = "sudoRole"


class SudoRoles:
    """Keeps one sudoRole per SCIM group that ``groups.sudo`` names."""

    def __init__(self, settings: GroupSettings) -> None:
        self.rules = {folded(name): commands for name, commands in settings.sudo.items()}
        self.container = settings.sudoers_dn

    def commands(self, display_name: str) -> list[str] | None:
        """The commands members of a group of this displayName may run, None when not configured."""
        return self.rules.get(folded(display_name))

    def dn(self, name: str) -> str:
        return child_dn("cn", name, self.container)

    def grant(self, session: Session, name: str, display_name: str) -> None:
        """Write the role of the group ``name`` when its displayName is configured."""
        commands = self.commands(display_name)
        if commands is None:
            return
        values = {
            "sudoUser": [f"%{name}"],
            "sudoHost": ["ALL"],
            "sudoCommand": list(commands),
            "description": [f"scim-ldap: sudo for the members of the Entra group {display_name}"],
        }
        action = f"write the sudo role of group {name}"
        try:
            code = writes.modify(
                session,
                self.dn(name),
                {key: [(MODIFY_REPLACE, value)] for key, value in values.items()},
                tolerate=(writes.NO_SUCH_OBJECT,),
                action=action,
            )
            if code == writes.SUCCESS:
                return
            entry = {"objectClass": ["top", SUDO_CLASS], "cn": name, **values}
            tolerate = (writes.NO_SUCH_OBJECT, writes.ENTRY_ALREADY_EXISTS)
            code = writes.add(session, self.dn(name), entry, tolerate=tolerate, action=action)
            if code == writes.NO_SUCH_OBJECT and self._add_container(session):
                writes.add(session, self.dn(name), entry, tolerate=tolerate, action=action)
        except SCIMException as problem:
            log.error(
                "the members of group %s get no sudo rights: cannot %s (%s); does the directory "
                "have sudo's schema (app/ldap/schema/sudo.ldif)? The next change of the group "
                "tries again",
                name,
                action,
                problem.detail,
            )

    def revoke(self, session: Session, name: str, display_name: str) -> None:
        """Delete the role of the group ``name`` when its displayName is configured."""
        if self.commands(display_name) is None:
            return
        writes.delete(
            session,
            self.dn(name),
            tolerate=(writes.NO_SUCH_OBJECT,),
            action=f"delete the sudo role of group {name}",
        )

    def leaving(self, session: Session, old: tuple[str, str], new: tuple[str, str]) -> None:
        """Before a group changes from (name, displayName) ``old`` to ``new``: revoke the
        old role unless the same role stays (same name, displayName still configured)."""
        if old[0] != new[0] or self.commands(new[1]) is None:
            self.revoke(session, *old)

    def _add_container(self, session: Session) -> bool:
        try:
            attribute, value, _ = parse_dn(self.container)[0]
        except (IndexError, LDAPException):
            return False
        if attribute.lower() != "ou":
            return False
        code = writes.add(
            session,
            self.container,
            {"objectClass": ["top", "organizationalUnit"], "ou": value},
            tolerate=(writes.ENTRY_ALREADY_EXISTS, writes.NO_SUCH_OBJECT),
            action=f"create the container {self.container}",
        )
        return code != writes.NO_SUCH_OBJECT
