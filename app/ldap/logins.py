"""The Linux login name (``uid``) of a SCIM userName, and the search for the ones taken.

Two policies (``posix.login_policy``):

- ``derive`` (the default) gives every userName a login: the one ``strict``
  gives when there is one, so userNames that were valid keep their login.
  Otherwise it is made from the part before the last ``@``, with Entra's
  guest marker ``#EXT#`` and what follows it dropped: transliterated to ASCII
  (anyascii), lower-cased, apostrophes dropped, every character other than
  ``a-z 0-9 . _ -`` replaced by ``_``, a run of separators (``. _ -``)
  collapsed to its first one, separators at the ends stripped, and
  ``posix.login_prefix`` put before a name starting with a digit. A name
  longer than ``posix.login_max_length`` is cut and given a suffix ``-`` + 6
  hex digits of sha256 of the case-folded userName; a name with nothing left
  (only punctuation) is the prefix with that suffix. When the name is taken
  by another entry, the next candidates carry the next 6 hex digits of the
  same digest (three alternatives in all); when every candidate is taken, 409.
- ``strict`` keeps the first rule the server had: the userName itself when it
  is a valid login, else the lower-cased part before the first ``@``, else 400;
  a taken login answers 409. The login of an archived account may be given
  again, as the archived entry is named ``uid=<login>+uidNumber=<n>``.

Under every policy and pattern a login never holds whitespace or control
characters: a DN drops blanks at the ends of an RDN value (``uid=alice\t``
names ``alice``, and the entry ends up with two uid values), and hosts,
shells and matching rules each read them differently.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from anyascii import anyascii
from ldap3.utils.ciDict import CaseInsensitiveDict
from ldap3.utils.conv import escape_filter_chars
from scim2_models import InvalidValueException, UniquenessException

from app.ldap.dn import is_under, same_dn

if TYPE_CHECKING:
    from app.ldap.connection import Session

LoginPolicy = Literal["derive", "strict"]

ALTERNATIVES = 3
"""Candidates with a hash suffix tried after the derived name."""
SUFFIX_LENGTH = 6
_GUEST = re.compile("#EXT#", re.IGNORECASE)
_APOSTROPHES = re.compile(r"['`]")
_FOREIGN = re.compile(r"[^a-z0-9._-]")
_SEPARATOR_RUN = re.compile(r"([._-])[._-]+")
SEPARATORS = "._-"

PROBES = (
    "jane.doe@contoso.com",
    "alice_fabrikam.com#EXT#@contoso.onmicrosoft.com",
    "1stuser@contoso.com",
    "!!!@contoso.com",
    "o'neil@contoso.com",
    "x" * 40 + "@contoso.com",
    str(uuid.UUID(int=0x1234)),
)
"""userNames whose logins the configured pattern must accept under ``derive``."""


def has_blank(text: str) -> bool:
    """Whether ``text`` holds whitespace or a control, format or unassigned character."""
    return any(c.isspace() or unicodedata.category(c).startswith("C") for c in text)


def local_part(user_name: str) -> str:
    """The part before the last ``@`` (all of it without one), guest marker dropped."""
    local = user_name.rpartition("@")[0] if "@" in user_name else user_name
    return _GUEST.split(local, maxsplit=1)[0]


def digest(user_name: str) -> str:
    """The hex sha256 of the case-folded userName: what suffixes are cut from."""
    return hashlib.sha256(user_name.casefold().encode("utf-8")).hexdigest()


class LoginRule:
    """Candidate logins of a userName under the configured policy, best first."""

    def __init__(
        self,
        pattern: str,
        max_length: int,
        policy: LoginPolicy = "strict",
        prefix: str = "u",
    ) -> None:
        self.pattern = re.compile(pattern)
        self.max_length = max_length
        self.policy = policy
        self.prefix = prefix

    @property
    def derives(self) -> bool:
        return self.policy == "derive"

    def is_valid(self, name: str) -> bool:
        return (
            0 < len(name) <= self.max_length
            and not has_blank(name)
            and self.pattern.fullmatch(name) is not None
        )

    def login_for(self, user_name: str) -> str:
        """The preferred login (raises 400 ``invalidValue`` under ``strict``)."""
        return self.candidates(user_name)[0]

    def candidates(self, user_name: str) -> tuple[str, ...]:
        """Every login the userName may get, in the order they are tried."""
        if not self.derives:
            return (self._strict(user_name),)
        stem = self.stem(user_name)
        hashed = digest(user_name)
        suffixed = tuple(
            self._suffixed(stem, hashed[i * SUFFIX_LENGTH : (i + 1) * SUFFIX_LENGTH])
            for i in range(ALTERNATIVES)
        )
        first = self._strict_or_none(user_name)
        if first is None and stem and len(stem) <= self.max_length:
            first = stem
        return suffixed if first is None else (first, *suffixed)

    def stem(self, user_name: str) -> str:
        """The derived name before any length limit or suffix ("" when nothing is left)."""
        name = anyascii(local_part(user_name)).lower()
        name = _APOSTROPHES.sub("", name)
        name = _FOREIGN.sub("_", name)
        name = _SEPARATOR_RUN.sub(r"\1", name).strip(SEPARATORS)
        if name[:1].isdigit():
            name = self.prefix + name
        return name

    def _suffixed(self, stem: str, suffix: str) -> str:
        room = self.max_length - SUFFIX_LENGTH - 1
        cut = stem[: max(room, 0)].rstrip(SEPARATORS) or self.prefix
        return f"{cut}-{suffix}"

    def _strict_or_none(self, user_name: str) -> str | None:
        if self.is_valid(user_name):
            return user_name
        local = user_name.split("@", 1)[0].lower()
        return local if self.is_valid(local) else None

    def _strict(self, user_name: str) -> str:
        login = self._strict_or_none(user_name)
        if login is not None:
            return login
        raise InvalidValueException(
            detail=f"userName {user_name!r} does not yield a valid Linux login name: the part "
            f"before '@' must match {self.pattern.pattern}, be at most {self.max_length} "
            "characters and hold no whitespace or control characters "
            "(posix.login_policy 'derive' makes a login of any userName)"
        )

    def problems(self) -> list[str]:
        """What the configured pattern and length refuse of what ``derive`` produces."""
        if not self.derives:
            return []
        found = []
        for probe in PROBES:
            refused = [login for login in self.candidates(probe) if not self.is_valid(login)]
            if refused:
                found.append(f"{refused[0]!r} (from the userName {probe!r})")
        return found


def folded(value: str) -> str:
    """A login or userName as the directory compares it, or more loosely.

    caseIgnoreMatch ignores letter case, spaces at the ends and repeated
    spaces: two values it finds equal must never be taken for two names.
    """
    return " ".join(value.split()).casefold()


def assertion_value(value: str) -> str:
    """A filter assertion value with every character a filter parser could strip escaped."""
    escaped = str(escape_filter_chars(value))
    return "".join(
        "".join(f"\\{b:02x}" for b in c.encode("utf-8")) if has_blank(c) else c for c in escaped
    )


@dataclass(frozen=True, slots=True)
class Holder:
    """An entry holding one of the searched logins or the searched userName."""

    dn: str
    logins: frozenset[str]
    """Its rdn attribute values, folded (``folded``)."""
    archived: bool
    user_name: str | None
    """Its SCIM userName when it is an account SCIM sees (not archived)."""


class UserNameTaken(UniquenessException):
    """409: an account SCIM sees already has the userName; ``dn`` names it."""

    def __init__(self, dn: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.dn = dn


class LoginClaims:
    """Which logins are free under the base DN, and the choice of one for a userName.

    One indexed equality search on the rdn attribute (and the userName
    attribute) covers active entries, disabled ones in ``ou=disabled`` and
    archived ones, wherever they are below the base DN.
    """

    def __init__(
        self,
        rule: LoginRule,
        *,
        base_dn: str,
        rdn: str,
        user_name_attribute: str | None,
        visible: Sequence[str],
        hidden: Sequence[str] = (),
    ) -> None:
        self.rule = rule
        self.base_dn = base_dn
        self.rdn = rdn
        self.user_name_attribute = user_name_attribute
        self.visible = tuple(visible)
        self.hidden = tuple(hidden)

    def holders(self, session: Session, logins: Iterable[str], user_name: str) -> list[Holder]:
        """Entries holding one of ``logins`` as their rdn value, or ``user_name``."""
        terms = [f"({self.rdn}={assertion_value(login)})" for login in logins]
        terms.append(f"({self.rdn}={assertion_value(user_name)})")
        if self.user_name_attribute:
            terms.append(f"({self.user_name_attribute}={assertion_value(user_name)})")
        attributes = [self.rdn, *([self.user_name_attribute] if self.user_name_attribute else [])]
        entries = session.search(
            self.base_dn,
            f"(|{''.join(terms)})",
            attributes,
            action="check which login names are taken",
        )
        return [self._holder(entry) for entry in entries]

    def _holder(self, entry: Mapping[str, Any]) -> Holder:
        dn = str(entry["dn"])
        raw: Mapping[str, Any] = entry["attributes"]
        logins = [str(v) for v in values_of(raw, self.rdn)]
        kept = values_of(raw, self.user_name_attribute) if self.user_name_attribute else []
        archived = any(is_under(dn, c) for c in self.hidden)
        seen = not archived and any(is_under(dn, c) for c in self.visible)
        user_name = (str(kept[0]) if kept else logins[0] if logins else None) if seen else None
        return Holder(dn, frozenset(folded(login) for login in logins), archived, user_name)

    def choose(
        self,
        session: Session,
        user_name: str,
        *,
        exclude_dn: str | None = None,
        skip: Iterable[str] = (),
    ) -> str:
        """The first free candidate login of ``user_name``.

        Raises 409 ``uniqueness`` when an account SCIM sees already has this
        userName, or when every candidate is taken. ``exclude_dn`` is the entry
        being renamed, whose own login counts as free; ``skip`` holds logins
        found taken since the search.
        """
        candidates = self.rule.candidates(user_name)
        holders = self._others(session, candidates, user_name, exclude_dn)
        taken = {folded(login) for login in skip}
        for holder in holders:
            if self.rule.derives or not holder.archived:
                taken |= holder.logins
        for login in candidates:
            if folded(login) not in taken:
                return login
        if not self.rule.derives:
            raise UniquenessException(
                detail=f"userName {user_name} is taken: the login name {candidates[0]!r} "
                "already exists"
            )
        raise UniquenessException(
            detail=f"userName {user_name} gets no free login name: "
            f"{', '.join(repr(c) for c in candidates)} are all taken"
        )

    def requested(
        self, session: Session, user_name: str, login: str, *, exclude_dn: str | None = None
    ) -> str:
        """A login the client chose (ECMA2Host ``uid``): valid by the pattern, and free.

        It wins over derivation, so a taken one is 409 ``uniqueness`` rather
        than a suffixed variant the client did not ask for.
        """
        if not self.rule.is_valid(login):
            raise InvalidValueException(
                detail=f"uid {login!r} is not a valid login name (posix.login_pattern "
                f"{self.rule.pattern.pattern!r}, at most {self.rule.max_length} characters)"
            )
        for holder in self._others(session, (login,), user_name, exclude_dn):
            if folded(login) in holder.logins:
                raise UniquenessException(
                    detail=f"uid {login!r} is taken (the account {holder.dn})"
                )
        return login

    def check_user_name(
        self, session: Session, user_name: str, exclude_dn: str | None = None
    ) -> None:
        """Raise 409 ``uniqueness`` when another account SCIM sees has this userName."""
        self._others(session, (), user_name, exclude_dn)

    def _others(
        self,
        session: Session,
        candidates: Iterable[str],
        user_name: str,
        exclude_dn: str | None,
    ) -> list[Holder]:
        """The other entries holding a candidate; 409 if one has the userName.

        userNames are compared as the directory compares them (caseIgnoreMatch,
        RFC 7643 §4.1.1: userName is not case-exact).
        """
        holders = [
            h
            for h in self.holders(session, candidates, user_name)
            if exclude_dn is None or not same_dn(h.dn, exclude_dn)
        ]
        wanted = folded(user_name)
        for holder in holders:
            if holder.user_name is not None and folded(holder.user_name) == wanted:
                raise UserNameTaken(
                    holder.dn,
                    detail=f"userName {user_name} already exists (the account {holder.dn})",
                )
        return holders


def values_of(attributes: Mapping[str, Any], name: str | None) -> list[Any]:
    """An attribute's values in a search entry, whatever the case of its name."""
    if not name:
        return []
    found = CaseInsensitiveDict(attributes).get(name)
    if found is None or found == []:
        return []
    return list(found) if isinstance(found, list) else [found]
