"""POSIX group names of SCIM groups, their displayNames kept unique, and requested gidNumbers.

The name (``cn``) is made of the displayName by the login rule's machinery
(app/ldap/logins.py ``LoginRule``) with the ``groups.name_*`` settings: under
``derive`` any displayName gets one (ASCII, lower-case, a hash suffix when
taken), under ``strict`` the displayName itself or its lower-cased form must be
valid and free. ``@`` counts as a separator, not as the start of a mail domain.
A name is taken when any posixGroup under the base DN has it, so a SCIM group
never shadows a group made by hand or a private group for NSS clients.
"""

from __future__ import annotations

from collections.abc import Collection

from scim2_models import InvalidValueException, UniquenessException

from app.ldap.connection import Session
from app.ldap.dn import same_dn
from app.ldap.groupmembers import GROUP_CLASS
from app.ldap.logins import LoginRule, assertion_value, folded, values_of


class GroupNames:
    """Chooses a group's name with one search, which also finds its displayName if held."""

    def __init__(self, rule: LoginRule, base_dn: str, min_gid_number: int) -> None:
        self.rule = rule
        self.base_dn = base_dn
        self.min_gid_number = min_gid_number

    @property
    def derives(self) -> bool:
        return self.rule.derives

    def candidates(self, display_name: str) -> tuple[str, ...]:
        """The names a group of this displayName may get, best first (400 when none)."""
        if not display_name.strip():
            raise InvalidValueException(detail="displayName is required")
        try:
            return self.rule.candidates(display_name.replace("@", " "))
        except InvalidValueException:
            raise InvalidValueException(
                detail=f"displayName {display_name!r} is not a valid POSIX group name "
                f"(groups.name_pattern {self.rule.pattern.pattern!r}, at most "
                f"{self.rule.max_length} characters); groups.name_policy 'derive' makes a "
                "name of any displayName"
            ) from None

    def choose(
        self,
        session: Session,
        display_name: str,
        *,
        current: tuple[str, str] | None = None,
        skip: Collection[str] = (),
    ) -> str:
        """The name for a group of this displayName; 409 when another SCIM group has it.

        displayNames are compared as the directory compares them (caseIgnoreMatch).
        ``current`` is the (DN, name) of the group being renamed: its own entry
        does not count, and it keeps its name when that is a candidate. ``skip``
        holds names found taken since the search.
        """
        candidates = self.candidates(display_name)
        names = "".join(f"(cn={assertion_value(c)})" for c in candidates)
        entries = session.search(
            self.base_dn,
            f"(|(&(objectClass=posixGroup)(|{names}))"
            f"(&(objectClass={GROUP_CLASS})(displayName={assertion_value(display_name)})))",
            ["cn", "displayName", "objectClass"],
            action="check which group names are taken",
        )
        skipped = {folded(s) for s in skip}
        taken = set(skipped)
        wanted = folded(display_name)
        for entry in entries:
            if current is not None and same_dn(str(entry["dn"]), current[0]):
                continue
            attributes = entry["attributes"]
            classes = {str(c).lower() for c in values_of(attributes, "objectClass")}
            shown = [str(v) for v in values_of(attributes, "displayName")]
            if GROUP_CLASS.lower() in classes and any(folded(v) == wanted for v in shown):
                raise UniquenessException(
                    detail=f"displayName {display_name} already exists (the group {entry['dn']})"
                )
            if "posixgroup" in classes:
                taken.update(folded(str(v)) for v in values_of(attributes, "cn"))
        if current is not None and current[1] in candidates and folded(current[1]) not in skipped:
            return current[1]
        for name in candidates:
            if folded(name) not in taken:
                return name
        if not self.rule.derives:
            raise UniquenessException(
                detail=f"the group name {candidates[0]!r} of displayName {display_name} is taken"
            )
        raise UniquenessException(
            detail=f"displayName {display_name} gets no free group name: "
            f"{', '.join(repr(c) for c in candidates)} are all taken"
        )

    def check_gid(self, session: Session, gid: int) -> None:
        """A gidNumber the client sent: 400 below the system ids, 409 when a group has it."""
        if gid < self.min_gid_number:
            raise InvalidValueException(
                detail=f"gidNumber {gid} is below {self.min_gid_number}: system ids are refused"
            )
        found = session.search(
            self.base_dn,
            f"(&(objectClass=posixGroup)(gidNumber={int(gid)}))",
            ["1.1"],
            size_limit=1,
            action=f"look for the group of gidNumber {gid}",
        )
        if found:
            raise UniquenessException(
                detail=f"gidNumber {gid} already belongs to another group ({found[0]['dn']})"
            )
