"""Adopting accounts this server did not make (``users.adopt``).

An entry under the users' container is *unmarked* when it carries none of
this server's markers: not the ``scimUser`` class (when ``users.object_classes``
holds it) and none of the userName, active and defaults attributes. Such an
entry was made by hand, by a script or by Microsoft's LDAP connector, and its
userName, as read, is its login.

With ``users.adopt = "match"`` (the default) an unmarked entry that also
matches ``users.adopt_filter`` is found by ``userName eq "<upn>"`` when its rdn
value is the login the userName gets (``LoginRule.candidates(upn)[0]``), so
Entra's matching finds it; mail and the other stored values find it as they
find any entry. The first write (Entra's PATCH or PUT after the match) adds the
missing object classes and stores the userName; what it does not send is kept,
uidNumber, gidNumber, homeDirectory and userPassword included. A POST whose
userName gets the login of such an entry is 409 ``uniqueness`` naming the entry:
the server never makes a second account (``gina-1a2b3c``) beside a person's
existing one. A marked entry is never found by a derived login, only by its
stored userName. With ``"off"`` unmarked entries are found by their stored
values only, and a POST takes the next free login as before. In either mode an
unmarked entry ``users.adopt_filter`` excludes is out of reach: no filter finds
it and its id is 404 (``reachable_filter``).

``report`` is what ``python -m app adoption-report`` prints.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from scim2_models import SCIMException, UniquenessException

from app.attributes import (
    ACTIVE,
    GECOS,
    GID_NUMBER,
    HOME_DIRECTORY,
    LOGIN_SHELL,
    UID_NUMBER,
    USER_NAME,
    WORK_EMAIL,
)
from app.config import PosixSettings
from app.ldap.connection import Session
from app.ldap.ids import Slice, slices
from app.ldap.logins import assertion_value, folded, values_of
from app.ldap.mapping import UserMapping, UserRecord

MARKER_CLASS = "scimUser"
REQUIRED = ("uidNumber", "gidNumber", "homeDirectory")


def unmarked_filter(mapping: UserMapping) -> str | None:
    """The filter of entries without this server's markers; None when none can be told apart.

    Without a userName attribute an adopted entry could not keep the userName
    its first write sends, so adoption by login needs one.
    """
    if not mapping.user_name_attribute:
        return None
    terms = []
    if any(c.lower() == MARKER_CLASS.lower() for c in mapping.object_classes):
        terms.append(f"(!(objectClass={MARKER_CLASS}))")
    for attribute in (
        mapping.user_name_attribute,
        mapping.active_attribute,
        mapping.defaults_attribute,
    ):
        if attribute:
            terms.append(f"(!({attribute}=*))")
    return "(&" + "".join(terms) + ")"


def reachable_filter(mapping: UserMapping) -> str | None:
    """The entries requests may reach: marked ones, and unmarked ones ``users.adopt_filter`` allows.

    An unmarked entry the filter excludes is no user of this server's: no
    filter finds it (not the work e-mail either) and its id is 404, so neither
    Entra's matching nor an id held from elsewhere (Microsoft's connector
    anchored on entryUUID) takes it over. None when no entry can be told apart.
    """
    unmarked = unmarked_filter(mapping)
    if unmarked is None:
        return None
    return f"(|(!{unmarked}){mapping.settings.adopt_filter})"


def adopts(mapping: UserMapping) -> bool:
    return mapping.settings.adopt == "match" and unmarked_filter(mapping) is not None


def derived_login(mapping: UserMapping, user_name: str) -> str | None:
    """The login ``user_name`` gets, None when it gets none (``strict``, invalid)."""
    try:
        return mapping.logins.candidates(user_name)[0]
    except SCIMException:
        return None


def login_term(mapping: UserMapping, user_name: str) -> str | None:
    """What ``userName eq user_name`` adds: an adoptable entry named by the derived login.

    None when adoption is off, or when the login is the userName itself (the
    existing fallback on the rdn already finds it).
    """
    unmarked = unmarked_filter(mapping)
    if mapping.settings.adopt != "match" or unmarked is None:
        return None
    login = derived_login(mapping, user_name)
    if login is None or folded(login) == folded(user_name):
        return None
    inner = unmarked[2:-1]
    adopt = mapping.settings.adopt_filter
    return f"(&{inner}{adopt}({mapping.rdn}={assertion_value(login)}))"


def adoptable_holder(session: Session, mapping: UserMapping, user_name: str) -> str | None:
    """The DN of the adoptable entry ``user_name``'s login names, if there is one."""
    unmarked = unmarked_filter(mapping)
    if mapping.settings.adopt != "match" or unmarked is None:
        return None
    login = derived_login(mapping, user_name)
    if login is None:
        return None
    found = session.search(
        mapping.container,
        f"(&{mapping.search_filter}{unmarked}{mapping.settings.adopt_filter}"
        f"({mapping.rdn}={assertion_value(login)}))",
        ["1.1"],
        action="look for an account to adopt",
    )
    return str(found[0]["dn"]) if found else None


def refuse_create(session: Session, mapping: UserMapping, user_name: str) -> None:
    """409 when the login of ``user_name`` names an account to adopt rather than to duplicate."""
    dn = adoptable_holder(session, mapping, user_name)
    if dn is not None:
        raise UniquenessException(
            detail=f"userName {user_name} gets the login of the existing account {dn}, which "
            f"this server did not create: it is adopted by matching (the filter "
            f'userName eq "{user_name}" finds it, and the next PATCH or PUT takes it over), '
            "not created again"
        )


def is_unmarked(mapping: UserMapping, record: UserRecord) -> bool:
    """Whether a record read is of an entry to adopt: no marker class, userName, defaults."""
    if not adopts(mapping):
        return False
    marker = MARKER_CLASS.lower()
    if any(c.lower() == marker for c in mapping.object_classes) and any(
        c.lower() == marker for c in record.live_classes
    ):
        return False
    return (
        str(record.values.get(USER_NAME)) == record.login
        and not record.defaults
        and ACTIVE not in record.values
    )


def kept_defaults(mapping: UserMapping, record: UserRecord) -> dict[str, list[str]]:
    """The defaults a write of ``record`` keeps: for an entry to adopt, what it holds now.

    The attributes templates fill (gidNumber, homeDirectory, loginShell, gecos,
    sn) keep the values the entry was made with when a write (a PUT) leaves them
    out, instead of getting the templates' values; they are then listed as
    defaults like those this server assigns.
    """
    if not is_unmarked(mapping, record):
        return record.defaults
    now = mapping.attributes(record.values, record.login, record.manager_dn, record.defaults)
    lowered = {name.lower(): values for name, values in now.items()}
    names = ["sn"]
    names += [
        mapping.by_slot[s]
        for s in (GID_NUMBER, HOME_DIRECTORY, LOGIN_SHELL, GECOS)
        if s in mapping.by_slot
    ]
    held = {n.lower(): list(lowered[n.lower()]) for n in names if n.lower() in lowered}
    return {**held, **record.defaults}


# ---- the report


@dataclass(frozen=True, slots=True)
class Account:
    dn: str
    logins: tuple[str, ...]
    mails: tuple[str, ...]
    marked: bool
    adoptable: bool
    uid_numbers: tuple[int, ...]
    missing: tuple[str, ...]


def _texts(attributes: Mapping[str, Any], name: str | None) -> tuple[str, ...]:
    return tuple(str(v) for v in values_of(attributes, name))


def _numbers(attributes: Mapping[str, Any], name: str) -> tuple[int, ...]:
    found = []
    for value in _texts(attributes, name):
        try:
            found.append(int(value))
        except ValueError:
            continue
    return tuple(found)


def _dns(session: Session, base: str, ldap_filter: str, action: str) -> set[str]:
    return {folded(str(e["dn"])) for e in session.search(base, ldap_filter, ["1.1"], action=action)}


def read_accounts(session: Session, mapping: UserMapping) -> list[Account]:
    """Every person or account entry under the users' container, with what the report needs."""
    mail = mapping.attribute_of(WORK_EMAIL) or "mail"
    uid_number = mapping.by_slot.get(UID_NUMBER, "uidNumber")
    unmarked = unmarked_filter(mapping)
    people = "(|(objectClass=posixAccount)(objectClass=person)(objectClass=account))"
    unmarked_dns = (
        _dns(session, mapping.container, f"(&{people}{unmarked})", "find unmarked accounts")
        if unmarked
        else set()
    )
    adoptable_dns = (
        _dns(
            session,
            mapping.container,
            f"(&(objectClass=posixAccount){unmarked}{mapping.settings.adopt_filter})",
            "find adoptable accounts",
        )
        if unmarked
        else set()
    )
    entries = session.search(
        mapping.container,
        people,
        [mapping.rdn, mail, uid_number, *REQUIRED, "objectClass"],
        action="read the accounts to adopt",
    )
    accounts = []
    for entry in entries:
        dn = str(entry["dn"])
        attributes: Mapping[str, Any] = entry["attributes"]
        accounts.append(
            Account(
                dn=dn,
                logins=_texts(attributes, mapping.rdn),
                mails=_texts(attributes, mail),
                marked=folded(dn) not in unmarked_dns,
                adoptable=folded(dn) in adoptable_dns,
                uid_numbers=_numbers(attributes, uid_number),
                missing=tuple(a for a in REQUIRED if not values_of(attributes, a)),
            )
        )
    return sorted(accounts, key=lambda a: folded(a.dn))


def _counter(session: Session, part: Slice) -> int:
    found = session.search(
        part.pool_dn, "(objectClass=*)", ["uidNumber"], scope="BASE", action="read the counter"
    )
    values = _numbers(found[0]["attributes"], "uidNumber") if found else ()
    return max(values[0], part.low) if values else part.low


def _numbers_ahead(
    session: Session, posix: PosixSettings, base_dn: str, accounts: Iterable[Account]
) -> list[str]:
    pool_dn = posix.id_pool_dn or f"cn=scim-ldap-ids,{base_dn}"
    parts = list(slices(posix, base_dn).values()) or [Slice(*posix.uid_range, pool_dn)]
    lines = []
    held = sorted((n, a.dn) for a in accounts for n in a.uid_numbers)
    for part in parts:
        start = _counter(session, part)
        for number, dn in held:
            if start <= number <= part.high:
                lines.append(
                    f"uidNumber {number} of {dn}: inside posix.uid_range above the counter "
                    f"({start} at {part.pool_dn}); the allocator skips it"
                )
    return lines


def report(session: Session, mapping: UserMapping, posix: PosixSettings, base_dn: str) -> list[str]:
    """One line per finding: what would be matched and by what, conflicts, gaps, numbers."""
    accounts = read_accounts(session, mapping)
    by_login: dict[str, list[Account]] = defaultdict(list)
    by_mail: dict[str, list[Account]] = defaultdict(list)
    for account in accounts:
        for login in account.logins:
            by_login[folded(login)].append(account)
        for mail in account.mails:
            by_mail[folded(mail)].append(account)
    on = adopts(mapping)
    lines = []
    for account in accounts:
        if account.marked:
            continue
        if account.missing:
            lines.append(f"missing {', '.join(account.missing)}: {account.dn} cannot be adopted")
            continue
        if not account.adoptable:
            lines.append(f"excluded by users.adopt_filter: {account.dn}")
            continue
        ways = []
        if on:
            ways += [f'login "{login}" (userName eq "{login}@...")' for login in account.logins]
        ways += [f'mail "{mail}" (emails.value eq)' for mail in account.mails]
        state = "adoptable" if on else "not adopted (users.adopt off)"
        lines.append(f"{state}: {account.dn} matched by {', '.join(ways) or 'nothing'}")
    for mail, holders in sorted(by_mail.items()):
        if len(holders) > 1:
            names = ", ".join(h.dn for h in holders)
            lines.append(f'conflict: mail "{mail}" is held by {len(holders)} entries: {names}')
        if not on:
            continue
        derived = derived_login(mapping, mail)
        if derived is None:
            continue
        others = [a for a in by_login.get(folded(derived), []) if a.adoptable and a not in holders]
        for other in others:
            lines.append(
                f'conflict: userName "{mail}" would claim {other.dn} by login "{derived}" '
                f"and {', '.join(h.dn for h in holders)} by mail"
            )
    lines += _numbers_ahead(session, posix, base_dn, accounts)
    return lines
