"""The writes of a group update: its attributes and member values in one modify, its rename.

Adding or removing members sends only those values (MODIFY_ADD/MODIFY_DELETE),
never the whole list, so concurrent changes to one group do not overwrite each
other and a group of any size costs the same; replacing every member reads the
values once and sends the difference. Each write registers its undo in the
update's ``Steps``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

from ldap3 import MODIFY_ADD, MODIFY_DELETE
from scim2_models import InvalidValueException, NotFoundException, UniquenessException

from app.ldap import writes
from app.ldap.connection import Control, Session
from app.ldap.dn import child_dn, dn_key, rdn_of, same_dn
from app.ldap.groupmembers import MemberResolver, Target, pick
from app.ldap.groupnames import GroupNames
from app.ldap.groups import PosixGroups
from app.ldap.logins import values_of
from app.ldap.steps import Steps

Changes = dict[str, list[tuple[str, list[str]]]]
Values = dict[str, list[str]]
MEMBER_ATTRIBUTES = ("memberUid", "member")


def _key(attribute: str, value: str) -> Any:
    """How the directory compares values of a member attribute."""
    if attribute == "memberUid":
        return value
    try:
        return dn_key(value)
    except (ValueError, IndexError):
        return value.lower()


def _difference(
    attribute: str, present: list[str], wanted: list[str]
) -> tuple[list[str], list[str]]:
    """The values of ``wanted`` the group lacks and those of ``present`` it should not have.

    Values written as the directory returns them (most of a big group's) match
    as they are; only the rest are compared as the directory compares them.
    Each value in both lists names one entry, and an entry is listed once, so
    a value matched as written cannot match another one by its form.
    """
    same = set(present) & set(wanted)
    rest = {_key(attribute, v): v for v in present if v not in same}
    target = {_key(attribute, v): v for v in wanted if v not in same}
    return (
        [v for k, v in target.items() if k not in rest],
        [v for k, v in rest.items() if k not in target],
    )


class GroupEdits:
    """Computes and sends the modify of a group update, and renames groups."""

    def __init__(
        self,
        resolver: MemberResolver,
        names: GroupNames,
        posix_groups: PosixGroups,
        container: str,
        post_read: Control,
    ) -> None:
        self.resolver = resolver
        self.names = names
        self.posix_groups = posix_groups
        self.container = container
        self.post_read = post_read

    def membership(
        self,
        session: Session,
        group_dn: str,
        found: Mapping[str, Target],
        add: Sequence[str],
        remove: Sequence[str],
        replace_members: Sequence[str] | None,
    ) -> tuple[Values, Values]:
        """The member values to add and to delete (an id in ``add`` and ``remove`` ends removed).

        With ``replace_members``, one read of the group's values gives the difference.
        """
        gone = {t.member.id for t in pick(found, remove)}
        wanted = [*(replace_members or []), *add]
        desired = [t for t in pick(found, wanted) if t.member.id not in gone]
        if any(t.member.kind == "Group" and same_dn(t.dn, group_dn) for t in desired):
            raise InvalidValueException(detail="a group cannot be a member of itself")
        if replace_members is None:
            return self.resolver.values(desired), self.resolver.values(pick(found, remove))
        entries = session.search(
            group_dn,
            "(objectClass=*)",
            list(MEMBER_ATTRIBUTES),
            scope="BASE",
            action="read the members of the group",
        )
        if not entries:
            raise NotFoundException(detail="the group vanished during the update")
        have = entries[0]["attributes"]
        want = self.resolver.values(desired)
        adds: Values = {}
        deletes: Values = {}
        for attribute in MEMBER_ATTRIBUTES:
            new, old = _difference(
                attribute, [str(v) for v in values_of(have, attribute)], want.get(attribute, [])
            )
            if new:
                adds[attribute] = new
            if old:
                deletes[attribute] = old
        return adds, deletes

    def modify(
        self,
        session: Session,
        steps: Steps,
        dn: str,
        changes: Changes,
        inverse: Changes,
        added: Mapping[str, list[str]],
        removed: Mapping[str, list[str]],
        guard: list[Control],
    ) -> dict[str, Any] | None:
        """One modify of the attributes and member values; its result (None: nothing sent,
        or several modifies).

        When a value to add is there already or one to delete is gone (a
        concurrent change, a repeated request), the directory refuses the whole
        modify: the attributes are then sent alone and the values one per
        modify, each tolerating that answer. The assertion of ``guard`` held
        for the refused modify (it is checked first), so those go without it.
        """
        full: Changes = dict(changes)
        undo: Changes = dict(inverse)
        for attribute in MEMBER_ATTRIBUTES:
            ops = [(MODIFY_ADD, added[attribute])] if added.get(attribute) else []
            ops += [(MODIFY_DELETE, removed[attribute])] if removed.get(attribute) else []
            if ops:
                full[attribute] = ops
                undo[attribute] = [
                    (MODIFY_DELETE if kind == MODIFY_ADD else MODIFY_ADD, values)
                    for kind, values in ops
                ]
        if not full:
            return None
        result = session.modify(
            dn,
            full,
            controls=[*guard, self.post_read],
            tolerate=(writes.ATTRIBUTE_OR_VALUE_EXISTS, writes.NO_SUCH_ATTRIBUTE),
            action="update group",
        )
        if result["result"] == writes.SUCCESS:
            steps.done("the group modify", lambda: session.modify(dn, undo, action="undo a modify"))
            return result
        if changes:
            session.modify(dn, changes, action="update group")
            steps.done(
                "the group modify", lambda: session.modify(dn, inverse, action="undo a modify")
            )
        groups = self.posix_groups
        for attribute, values in added.items():
            for value in values:
                if groups.add_value(session, dn, attribute, value):
                    steps.done(
                        "a member added",
                        partial(groups.remove_value, session, dn, attribute, value),
                    )
        for attribute, values in removed.items():
            for value in values:
                if groups.remove_value(session, dn, attribute, value):
                    steps.done(
                        "a member removed", partial(groups.add_value, session, dn, attribute, value)
                    )
        return None

    def rename(
        self, session: Session, steps: Steps, current: tuple[str, str], display_name: str, name: str
    ) -> str:
        """modrdn of the group (DN, name) ``current`` to ``cn=<name>``; the new DN.

        A name taken meanwhile gives the next free one (derive) or 409 (strict).
        Groups nesting this one follow: their member value is renamed.
        """
        old_dn, old_name = current
        tried: list[str] = []
        while True:
            try:
                writes.rename(
                    session,
                    old_dn,
                    rdn_of("cn", name),
                    action=f"rename group {old_name} to {name}",
                )
                break
            except UniquenessException:
                if not self.names.derives:
                    raise UniquenessException(
                        detail=f"the group name {name!r} is already taken"
                    ) from None
                tried.append(name)
                name = self.names.choose(session, display_name, current=current, skip=tried)
        dn = child_dn("cn", name, self.container)
        steps.done(
            "the rename",
            lambda: session.rename(dn, rdn_of("cn", old_name), action="undo a rename"),
        )
        if self.resolver.by_dn:
            self.posix_groups.rename_member_dn(session, old_dn, dn)
            steps.done(
                "the nesting renames",
                lambda: self.posix_groups.rename_member_dn(session, dn, old_dn),
            )
        return dn
