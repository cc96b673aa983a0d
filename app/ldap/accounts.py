"""The disable profile: what ``active: false`` changes in the directory, undone exactly.

The profile is a list of named actions (``accounts.disable``). Actions on the
entry's attributes are a pure function of the enabled view of the entry:
disabling moves the values an action replaces into the stash attribute (JSON,
attribute -> values as they were) and writes the disabled values; enabling
writes the stashed values back. SCIM keeps seeing the enabled values while the
account is disabled (Entra diffs them), and a client that changes a stashed
attribute (an SSH key) while disabled changes the stash, not the live entry.

``hide`` takes the entry out of ``posixAccount`` and ``shadowAccount``, the
classes every NSS client (sssd, nslcd) searches for, whatever its search base;
``scimHiddenAccount`` keeps the POSIX attributes on the entry meanwhile, so the
server still finds the account by every attribute and never hands its
uidNumber or home directory to anyone else. The classes as they were are
stashed and come back on enable.

``move`` and ``remove-group`` are not attribute changes: the directory layer
renames the entry into the disabled container and edits the login group.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

from app.config import AccountSettings

LOCK_ATTRIBUTE = "pwdAccountLockedTime"
LOCKED = "000001010000Z"
"""ppolicy's permanent lock (draft-behera-ldap-password-policy §5.3.3)."""

EXPIRED = "1"
"""shadowExpire: days since 1970-01-01; day 1 is long past."""

HIDDEN_CLASS = "scimHiddenAccount"
"""The auxiliary class holding the POSIX attributes of a hidden account."""

HIDDEN_CLASSES = frozenset({"posixaccount", "shadowaccount"})
"""The classes ``hide`` removes (lower-cased): what NSS clients search for."""

ACCOUNT_FILTER = f"(|(objectClass=posixAccount)(objectClass={HIDDEN_CLASS}))"
"""Every account entry of the server's, hidden or not."""

LdapValues = dict[str, list[str]]


def unique_uid_numbers(base_dn: str) -> str:
    """The ``unique`` overlay's URI that keeps accounts' uidNumbers unique (slapo-unique(5)).

    Hidden accounts count. The filter keeps the allocation counter
    (``scimIdPool``) out of adds, but the overlay checks the new value of any
    modify under the base: the allocator keeps the counter on a free number.
    """
    return f"ldap:///{base_dn}?uidNumber?sub?{ACCOUNT_FILTER}"


def hidden_classes(classes: Iterable[str]) -> list[str]:
    """An entry's object classes with the POSIX ones swapped for ``scimHiddenAccount``."""
    kept = [c for c in classes if c.lower() not in HIDDEN_CLASSES]
    if HIDDEN_CLASS.lower() not in {c.lower() for c in kept}:
        kept.append(HIDDEN_CLASS)
    return kept


class DisableProfile:
    """Applies and undoes the configured disable actions on an entry's attribute set."""

    def __init__(self, accounts: AccountSettings, stash_attribute: str | None) -> None:
        self.actions = set(accounts.disable)
        self.stash_attribute = stash_attribute
        disabled: LdapValues = {}
        if "lock" in self.actions:
            disabled[LOCK_ATTRIBUTE] = [LOCKED]
        if "expire" in self.actions:
            disabled["shadowExpire"] = [EXPIRED]
        if "nologin" in self.actions:
            disabled["loginShell"] = [accounts.nologin_shell]
        if "strip-keys" in self.actions:
            disabled["sshPublicKey"] = []
        self.disabled = disabled

    @property
    def hides(self) -> bool:
        return "hide" in self.actions

    @property
    def moves(self) -> bool:
        return "move" in self.actions

    @property
    def locks(self) -> bool:
        """Whether the profile locks the account, which ppolicy undoes when the password changes."""
        return "lock" in self.actions

    @property
    def uses_login_group(self) -> bool:
        return "remove-group" in self.actions

    @property
    def touched(self) -> list[str]:
        """Attributes the profile writes, beyond the SCIM-mapped ones."""
        return [*self.disabled, *([self.stash_attribute] if self.stash_attribute else [])]

    @property
    def classes(self) -> list[str]:
        """Object classes the profile writes, beyond the configured user classes."""
        return [HIDDEN_CLASS] if self.hides else []

    def disable(self, enabled: LdapValues) -> LdapValues:
        """The attribute set of the disabled entry, from its enabled view.

        With ``hide``, ``enabled`` carries ``objectClass``.
        """
        lowered = {k.lower(): k for k in enabled}
        out = dict(enabled)
        stash: LdapValues = {}
        for attribute, value in self.disabled.items():
            key = lowered.get(attribute.lower(), attribute)
            stash[attribute] = list(out.pop(key, []))
            if value:
                out[attribute] = list(value)
        if self.hides and "objectclass" in lowered:
            classes = out.pop(lowered["objectclass"])
            stash["objectClass"] = list(classes)
            out["objectClass"] = hidden_classes(classes)
        if self.stash_attribute and stash:
            out[self.stash_attribute] = [json.dumps(stash, sort_keys=True)]
        return out


def read_stash(values: Iterable[str] | None) -> LdapValues:
    """The stash attribute's values parsed; a damaged stash reads as empty."""
    for value in values or []:
        try:
            parsed = json.loads(value)
        except (TypeError, ValueError):
            return {}
        if isinstance(parsed, dict):
            return {
                str(k): [str(v) for v in vs] for k, vs in parsed.items() if isinstance(vs, list)
            }
    return {}


def enabled_view(live: Mapping[str, list[str]], stash: LdapValues) -> dict[str, list[str]]:
    """The entry's attributes as they are when enabled: live values overlaid with the stash."""
    out = {k.lower(): v for k, v in live.items()}
    for attribute, values in stash.items():
        out[attribute.lower()] = values
    return out
