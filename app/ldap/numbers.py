"""uidNumbers held atomically: one claim entry per number in use.

Checking that no account has a number and then adding the account is not
atomic: two creates sending the same number at once both pass the check (and
so do they under OpenLDAP's ``unique`` overlay, which checks before the add
without serialising concurrent adds — measured: 2 to 7 of 50 creates won).
What a directory does serialise is adding one DN: the account's number is
therefore claimed first by adding ``cn=<number>`` below ``cn=scim-ldap-uids``
(class ``scimIdPool``, the claimant's folded userName in ``description``), and
a second claim of the same number fails with entryAlreadyExists. A claim
already held by the same userName is a retry of the same create and is
accepted. A deleted account's claim is given back (a returning person may be
given their number again); an archived account keeps it. A claim names the
userName the account was created with: after a userName change, the claim is
given back when no entry under the base DN holds the number any more.

Numbers of accounts made before claims existed, or by hand, have none: the
search of ``IdAllocator.check`` still refuses them, without the atomicity.
"""

from __future__ import annotations

from typing import Any

from scim2_models import UniquenessException

from app.ldap import writes
from app.ldap.connection import Session
from app.ldap.controls import assertion_control
from app.ldap.dn import child_dn, rdn_values
from app.ldap.ids import POOL_CLASS
from app.ldap.logins import assertion_value, folded

CLAIMS_RDN = "cn=scim-ldap-uids"


class NumberClaims:
    """The claim entries of uidNumbers below ``cn=scim-ldap-uids,<base_dn>``."""

    def __init__(self, base_dn: str, path: str) -> None:
        self.base_dn = base_dn
        self.container = f"{CLAIMS_RDN},{base_dn}"
        self.path = path
        self._container_made = False

    def dn_of(self, number: int) -> str:
        return child_dn("cn", str(int(number)), self.container)

    def claim(self, session: Session, number: int, user_name: str) -> bool:
        """Hold ``number`` for ``user_name``; False when it held it already. 409 if another does."""
        owner = folded(user_name)
        code = self._add(session, number, owner)
        if code == writes.NO_SUCH_OBJECT:
            self._make_container(session)
            code = self._add(session, number, owner)
        if code == writes.SUCCESS:
            return True
        found = session.search(
            self.dn_of(number),
            "(objectClass=*)",
            ["description"],
            scope="BASE",
            action=f"read the claim of uidNumber {number}",
        )
        holders = [str(v) for e in found for v in e["attributes"].get("description") or []]
        if owner in holders:
            return False
        raise UniquenessException(detail=f"{self.path} {number} already belongs to another account")

    def release(self, session: Session, number: int, user_name: str) -> None:
        """Give the number back, if ``user_name`` holds it or no entry holds the number."""
        code = writes.delete(
            session,
            self.dn_of(number),
            controls=[assertion_control(f"(description={assertion_value(folded(user_name))})")],
            tolerate=(writes.NO_SUCH_OBJECT, writes.ASSERTION_FAILED),
            action=f"give back the claim of uidNumber {number}",
        )
        if code == writes.ASSERTION_FAILED:
            self._release_unheld(session, number)

    def _release_unheld(self, session: Session, number: int) -> None:
        """Give back a claim made under an earlier userName, once no entry has its number.

        The claim keeps the userName of the create; a renamed account's delete
        finds another name there. The number is free when no entry under the
        base DN (active, disabled or archived) holds it. No create can take the
        claim in between: it exists, so a claim of the number fails.
        """
        holders = session.search(
            self.base_dn,
            f"(&(uidNumber={int(number)})(!(objectClass={POOL_CLASS})))",
            ["1.1"],
            size_limit=1,
            action=f"look for holders of uidNumber {number}",
        )
        if holders:
            return
        writes.delete(
            session,
            self.dn_of(number),
            tolerate=(writes.NO_SUCH_OBJECT,),
            action=f"give back the claim of uidNumber {number}",
        )

    def _add(self, session: Session, number: int, owner: str) -> int:
        attributes: dict[str, Any] = {
            "objectClass": ["top", POOL_CLASS],
            "cn": str(int(number)),
            "description": owner,
        }
        return writes.add(
            session,
            self.dn_of(number),
            attributes,
            tolerate=(writes.ENTRY_ALREADY_EXISTS, writes.NO_SUCH_OBJECT),
            action="claim a uidNumber",
        )

    def _make_container(self, session: Session) -> None:
        if self._container_made:
            return
        attributes: dict[str, Any] = {"objectClass": ["top", POOL_CLASS]}
        for attribute, value in rdn_values(self.container):
            attributes[attribute] = value
        attributes["description"] = "uidNumbers held by scim-ldap accounts, one entry each"
        writes.add(
            session,
            self.container,
            attributes,
            tolerate=(writes.ENTRY_ALREADY_EXISTS,),
            action=f"create {self.container}",
        )
        self._container_made = True
