"""Home directories no two entries share (``posix.home_collision``).

A home directory outlives the name it was made for: a renamed account keeps
its home (``/home/jane.doe`` stays with ``jane.smith``), a disabled or archived
entry still owns its files. A later account whose templated home is such a
path would be handed someone else's files, so before an account is given a
home the server looks for an entry holding it: one indexed equality search on
homeDirectory under the base DN, covering active, disabled, archived and
renamed entries.

- ``suffix`` (the default): the templated home, else the first free of the
  same path followed by ``-`` and the next 6 hex digits of sha256 of the
  case-folded userName (``/home/jane.doe-6f0733``), as for logins; 409 when
  all are held.
- ``refuse``: 409 naming the path and the login holding it.

A homeDirectory the client sends is stored as sent or refused with 409: the
server never changes a value it was given.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal

from scim2_models import UniquenessException

from app.attributes import HOME_DIRECTORY, USER_NAME, Slot, SlotValue
from app.ldap.dn import same_dn
from app.ldap.logins import ALTERNATIVES, SUFFIX_LENGTH, assertion_value, digest, values_of

if TYPE_CHECKING:
    from app.ldap.connection import Session

HomeCollision = Literal["suffix", "refuse"]


def home_candidates(path: str, user_name: str) -> tuple[str, ...]:
    """``path``, then the suffixed paths the ``suffix`` policy tries, in order."""
    hashed = digest(user_name)
    stem = path.rstrip("/") or path
    return (
        path,
        *(
            f"{stem}-{hashed[i * SUFFIX_LENGTH : (i + 1) * SUFFIX_LENGTH]}"
            for i in range(ALTERNATIVES)
        ),
    )


class HomeClaims:
    """Which home directories entries under the base DN hold, and the choice of a free one."""

    def __init__(self, policy: HomeCollision, *, base_dn: str, attribute: str, rdn: str) -> None:
        self.policy = policy
        self.base_dn = base_dn
        self.attribute = attribute
        self.rdn = rdn

    def holders(
        self, session: Session, paths: Iterable[str], exclude_dn: str | None = None
    ) -> dict[str, str]:
        """``{path: the login (or DN) of an entry holding it}`` for every held path.

        Paths are keyed as the directory compares them (caseExactIA5Match:
        spaces at the ends and repeated ones are insignificant), so that what
        the search matched is never taken for free.
        """
        terms = "".join(f"({self.attribute}={assertion_value(p)})" for p in paths)
        entries = session.search(
            self.base_dn,
            f"(|{terms})",
            [self.attribute, self.rdn],
            action="check which home directories are in use",
        )
        held: dict[str, str] = {}
        for entry in entries:
            dn = str(entry["dn"])
            if exclude_dn is not None and same_dn(dn, exclude_dn):
                continue
            attributes: Mapping[str, Any] = entry["attributes"]
            logins = values_of(attributes, self.rdn)
            for path in values_of(attributes, self.attribute):
                held.setdefault(_normal(str(path)), str(logins[0]) if logins else dn)
        return held

    def for_new_account(
        self, session: Session, values: Mapping[Slot, SlotValue], templated: str | None
    ) -> str | None:
        """The home a new account gets instead of ``templated``; None to keep what it sends.

        A sent home is checked free (409 otherwise) and stored as sent.
        """
        user_name = str(values[USER_NAME])
        sent = _sent(values)
        if sent is not None:
            self.settle(session, sent, user_name, explicit=True)
            return None
        if templated is None:
            return None
        return self.settle(session, templated, user_name, explicit=False)

    def for_update(
        self,
        session: Session,
        values: Mapping[Slot, SlotValue],
        before: Mapping[str, list[str]],
        after: Mapping[str, list[str]],
        dn: str,
    ) -> str | None:
        """The home an update gives the entry ``dn``, checked free; None when it keeps its own."""
        new = after.get(self.attribute) or []
        if not new or new == (before.get(self.attribute) or []):
            return None
        return self.settle(
            session,
            new[0],
            str(values[USER_NAME]),
            explicit=_sent(values) is not None,
            exclude_dn=dn,
        )

    def settle(
        self,
        session: Session,
        path: str,
        user_name: str,
        *,
        explicit: bool,
        exclude_dn: str | None = None,
    ) -> str:
        """The home the account gets for the wanted ``path``; 409 when it can get none."""
        suffixing = self.policy == "suffix" and not explicit
        candidates = home_candidates(path, user_name) if suffixing else (path,)
        held = self.holders(session, candidates, exclude_dn)
        for candidate in candidates:
            if _normal(candidate) not in held:
                return candidate
        holder = held[_normal(path)]
        if explicit:
            raise UniquenessException(
                detail=f"homeDirectory {path} is already the home of {holder}: send another "
                "one, or none and let the server choose"
            )
        if not suffixing:
            raise UniquenessException(
                detail=f"the home directory {path} is already the home of {holder}, and "
                "posix.home_collision is 'refuse': send a homeDirectory, or choose 'suffix'"
            )
        raise UniquenessException(
            detail=f"the home directory {path} and its alternatives "
            f"{', '.join(candidates[1:])} are all held by other entries"
        )


def _normal(path: str) -> str:
    return " ".join(part for part in path.split(" ") if part)


def _sent(values: Mapping[Slot, SlotValue]) -> str | None:
    """The homeDirectory the client sends, if any."""
    value = values.get(HOME_DIRECTORY)
    return None if value is None or value in ("", ()) else str(value)
