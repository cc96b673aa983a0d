"""The invariant of app/ldap/pending.py, checked on a whole directory: what breaks it.

Used by the fault tests (which want no problem) and by scripts/campaign.py
(which counts them after killing the directory under load).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from ldap3 import SUBTREE, Connection

from app.ldap.accounts import ACCOUNT_FILTER, LOCK_ATTRIBUTE
from app.ldap.dn import parent_of, same_dn
from app.ldap.sandbox import SandboxDirectory

DEFAULT_GROUP = "scim-users"


def entries(conn: Connection, base: str, condition: str, *attributes: str) -> list[dict[str, Any]]:
    conn.search(base, condition, SUBTREE, attributes=list(attributes) or ["1.1"])
    return [e for e in conn.response or [] if e.get("type") == "searchResEntry"]


def problems(
    conn: Connection,
    directory: SandboxDirectory,
    actions: Collection[str],
    *,
    private: bool,
    login_group: str,
) -> list[str]:
    """Each way the directory is not converged: markers, partial accounts, strays, duplicates.

    Disabled accounts sit in ``ou=disabled`` with ``move`` and are locked with
    ``lock``; the login group lists exactly the active accounts with
    ``remove-group``; every account has its private group (``private``) and
    no group names an account that does not exist.
    """
    base = directory.base_dn
    disabled_dn, archive_dn = f"ou=disabled,{base}", f"ou=archive,{base}"
    found = [f"marker left on {e['dn']}" for e in entries(conn, base, "(scimPending=*)")]
    accounts = entries(
        conn,
        base,
        ACCOUNT_FILTER,
        "uid",
        "uidNumber",
        "gidNumber",
        "scimActive",
        LOCK_ATTRIBUTE,
        "objectClass",
    )
    numbers = [a["attributes"]["uidNumber"] for a in accounts]
    found += [
        f"uidNumber {n} held twice" for n in sorted({n for n in numbers if numbers.count(n) > 1})
    ]
    live: dict[str, dict[str, Any]] = {}
    for account in accounts:
        attributes = account["attributes"]
        login = attributes["uid"][0]
        parent = parent_of(str(account["dn"]))
        if same_dn(parent, archive_dn):
            if "posixAccount" in attributes["objectClass"]:
                found.append(f"archived {account['dn']} still a posixAccount")
            continue
        live[login] = attributes
        disabled = attributes.get("scimActive") is False
        moved = disabled and "move" in actions
        if not same_dn(parent, disabled_dn if moved else directory.users_dn):
            found.append(f"{account['dn']} in the wrong container (active: {not disabled})")
        if bool(attributes.get(LOCK_ATTRIBUTE)) != (disabled and "lock" in actions):
            found.append(f"{account['dn']} locked: {bool(attributes.get(LOCK_ATTRIBUTE))}")
    groups = entries(
        conn, directory.groups_dn, "(objectClass=posixGroup)", "cn", "gidNumber", "memberUid"
    )
    for group in groups:
        attributes = group["attributes"]
        name = attributes["cn"][0]
        members = set(attributes.get("memberUid") or [])
        found += [f"group {name} lists {m}, who has no account" for m in members - set(live)]
        if name == login_group:
            active = {login for login, a in live.items() if a.get("scimActive") is not False}
            joined = active if "remove-group" in actions else set()
            found += [f"{m} should not be in {name}" for m in members - joined]
            found += [f"{m} missing from {name}" for m in joined - members]
        elif name != DEFAULT_GROUP:
            if name not in live:
                found.append(f"private group {name} without its account")
            elif attributes["gidNumber"] != live[name]["gidNumber"]:
                found.append(f"private group {name} has another gidNumber")
    if private:
        names = {g["attributes"]["cn"][0] for g in groups}
        found += [f"{login} has no private group" for login in sorted(set(live) - names)]
    return found
