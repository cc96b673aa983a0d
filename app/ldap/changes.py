"""Writing user accounts: create, update (rename, disable, enable) and delete.

Each SCIM write is one or more LDAP operations applied all-or-nothing
(``Steps``) when the directory answers, and finished later (the marker of
pending.py, resume.py) when it dies between two of them. Round trips (pooled
connection, no manager reference): POST 1 search of the logins and userName
taken (logins.py) + 1 number check + the allocation (1 read + 1
compare-and-swap + 1 collision search when allocating) + 1 search of the
home directories taken (homes.py) + 1 add of the uidNumber claim (numbers.py)
+ 1 add with the marker + 1 modify taking it off; PATCH/PUT 1 read + 1 modify
with post-read, +1 search of the logins taken when userName changes, +1
search of the homes taken when the home changes, +1 modrdn and +1 modify (the
marker off) when the login name changes or a disabled account moves; DELETE
1 read + 1 modify (the marker) + 1 delete + 1 delete of the claim. A password
set with the Password Modify operation, a private group or the login group
add one operation each; so does a password set on a locked, disabled
account, which ppolicy unlocks and which is locked again.
"""

from __future__ import annotations

from scim2_models import NotFoundException

from app.ldap.creation import AccountCreation
from app.ldap.mapping import UserRecord
from app.ldap.pending import Pending
from app.ldap.steps import Steps
from app.ldap.updates import AccountUpdate
from app.ldap.writer import version_guard


class UserChanges(AccountCreation, AccountUpdate):
    """Creates, updates and deletes user entries and the groups that go with them."""

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
            guard = version_guard(if_match, record.version)
            pending = Pending(op="delete", login=record.login, dn=record.dn)
            with self.pending.running(pending.token), Steps() as steps:
                if self.pending.enabled:
                    self.pending.mark(session, record.dn, pending, guard)
                    guard = []
                    steps.done(
                        "the marker", lambda: self.pending.clear(session, record.dn, pending)
                    )
                archived = self.removal.remove(session, steps, record, guard=guard)
                if archived and self.pending.enabled:
                    self.pending.clear(session, archived, pending)
