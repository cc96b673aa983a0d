"""What prepares an OpenLDAP directory for the current settings (``python -m app directory-ldif``).

From the settings it derives, in the two forms slapd is configured in (cn=config
LDIF for ``ldapmodify``/``ldapadd``, slapd.conf(5) directives for ``include``):

- ``schema``: the project's schema (scim-ldap, openssh-lpk), and sudo's when
  ``groups.sudo`` is set;
- ``modules``: the modules the overlays need (sssvlv, ppolicy when the disable
  profile locks, unique, pw-sha2 when ``accounts.password_storage`` is ssha512);
- ``config``: read access for the server's account to the few cn=config
  attributes ``check`` verifies (suffixes, indexes, the ppolicy default,
  replication settings), nothing else of cn=config;
- ``database``: an index for every attribute the server or the hosts search,
  no size or time limit for the two accounts, and the access rules
  (``ACCESS_REASONS`` in docs/directory.md say why each is there);
- ``overlays``: sssvlv (sorted and VLV pages), ppolicy with the default policy
  when the profile locks, unique on uidNumber;
- ``data``: the containers, the two accounts, the default and login groups,
  the id counters and the default password policy.

Passwords of the two accounts appear only as salted hashes, and only when
given; without one, the entry is made without a password and the admin sets
it with ``ldappasswd``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from ldap3 import HASHED_SALTED_SHA
from ldap3.utils.hashed import hashed

from app.config import Settings
from app.ldap.accounts import LOCK_ATTRIBUTE, unique_uid_numbers
from app.ldap.dn import child_dn, rdn_values
from app.ldap.ids import POOL_CLASS, slices
from app.ldap.mapping import UserMapping
from app.ldap.numbers import CLAIMS_RDN
from app.ldap.preflight import GROUP_INDEXES
from app.ldap.schemaforms import schema_text, slapd_conf_schema
from app.ldap.users import user_indexes

Style = Literal["cn-config", "slapd-conf"]
STYLES: tuple[Style, ...] = ("cn-config", "slapd-conf")
PARTS = ("schema", "modules", "sortvals", "config", "database", "overlays", "data")

DEFAULT_DATABASE = "olcDatabase={1}mdb,cn=config"
DEFAULT_MODULE_PATH = "/usr/lib/ldap"
MODULE_ORDER = ("sssvlv", "ppolicy", "pw-sha2", "unique")
"""Modules in the order they are loaded."""

SUDO_ATTRIBUTES = (
    "sudoUser",
    "sudoHost",
    "sudoCommand",
    "sudoRunAs",
    "sudoRunAsUser",
    "sudoRunAsGroup",
    "sudoOption",
    "sudoOrder",
    "sudoNotBefore",
    "sudoNotAfter",
)
SHADOW_ATTRIBUTES = (
    "shadowLastChange",
    "shadowMin",
    "shadowMax",
    "shadowWarning",
    "shadowInactive",
    "shadowExpire",
    "shadowFlag",
)
CONFIG_ATTRIBUTES = (
    "entry",
    "objectClass",
    "olcDatabase",
    "olcSuffix",
    "olcDbIndex",
    "olcOverlay",
    "olcServerID",
    "olcMultiProvider",
    "olcMirrorMode",
)
"""What ``check`` reads of cn=config: which database holds the users, its indexes, its
ppolicy default, and whether it is one of several providers. Not ``olcSyncrepl``: it holds
the replication account's credentials, which may read every password hash."""

PASSWORD_POLICY = (
    ("objectClass", "top"),
    ("objectClass", "device"),
    ("objectClass", "pwdPolicy"),
    ("pwdAttribute", "userPassword"),
    ("pwdLockout", "TRUE"),
    ("pwdMaxFailure", "5"),
)
"""The default policy: ``pwdAccountLockedTime: 000001010000Z`` locks an account until it is
removed (the lock action), and five failed binds in a row lock it as well."""


@dataclass(frozen=True)
class Rule:
    """One access rule (olcAccess value without its ``{n}``, or slapd.conf ``access``)."""

    what: str
    by: tuple[str, ...]
    reason: str

    @property
    def text(self) -> str:
        return " ".join([f"to {self.what}", *(f"by {who}" for who in self.by)])


@dataclass(frozen=True)
class Overlay:
    """An overlay with its settings, by cn=config attribute and by slapd.conf keyword."""

    name: str
    object_class: str
    settings: tuple[tuple[str, str, str], ...]
    """(olc attribute, slapd.conf keyword, value)"""


@dataclass(frozen=True)
class Entry:
    dn: str
    attributes: tuple[tuple[str, str], ...]
    comment: str = ""

    def ldif(self) -> str:
        lines = [f"# {self.comment}"] if self.comment else []
        lines += [f"dn: {self.dn}", *(f"{name}: {value}" for name, value in self.attributes)]
        return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Accounts:
    """The server's account and the hosts' read account (passwords optional, never printed)."""

    server_dn: str
    hosts_dn: str
    server_password: str | None = None
    hosts_password: str | None = None


def default_accounts(base_dn: str) -> Accounts:
    return Accounts(f"cn=scim-ldap,ou=services,{base_dn}", f"cn=nss,ou=services,{base_dn}")


def quoted_dn(dn: str) -> str:
    """A DN in double quotes, as olcAccess, olcLimits and slapd.conf take it."""
    return '"' + dn.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _ou(dn: str) -> tuple[tuple[str, str], ...]:
    pairs = rdn_values(dn)
    name, value = pairs[0]
    if name.lower() == "ou":
        return (("objectClass", "top"), ("objectClass", "organizationalUnit"), ("ou", value))
    if name.lower() == "cn":
        return (("objectClass", "top"), ("objectClass", "organizationalRole"), ("cn", value))
    raise ValueError(f"{dn}: a container must be an ou= or cn= entry")


def _ssha(password: str) -> str:
    return str(hashed(HASHED_SALTED_SHA, password))


@dataclass
class Preparation:
    """Everything of the directory's half for one set of settings and two accounts."""

    settings: Settings
    accounts: Accounts
    database: str = DEFAULT_DATABASE
    module_path: str = DEFAULT_MODULE_PATH
    sort_values: bool = False
    sudo: bool | None = None
    """Whether sudo's schema and container are part of it (default: ``groups.sudo`` is set)."""
    locks: bool | None = None
    """Whether ppolicy is part of it (default: the disable profile locks)."""
    extra_modules: Sequence[str] = ()
    writable: Sequence[str] = ()
    """More containers the server may write below (access rules only; not created)."""

    def __post_init__(self) -> None:
        settings = self.settings
        self.mapping = UserMapping(
            settings.users, settings.ldap, settings.posix, settings.accounts, None
        )
        profile = self.mapping.profile
        if self.sudo is None:
            self.sudo = bool(settings.groups.sudo)
        if self.locks is None:
            self.locks = profile.locks
        ldap = settings.ldap
        self.base_dn = ldap.base_dn
        self.services_dn = _common_parent(self.accounts.server_dn, self.accounts.hosts_dn)
        self.policy_dn = settings.accounts.ppolicy_dn or f"cn=default,ou=policies,{self.base_dn}"
        self.claims_dn = f"{CLAIMS_RDN},{self.base_dn}"
        self.users_dn = ldap.users_dn
        self.groups_dn = ldap.groups_dn
        self.disabled_dn = ldap.disabled_dn if profile.moves else None
        self.archive_dn = ldap.archive_dn if settings.accounts.delete == "archive" else None
        self.sudoers_dn = (
            settings.groups.sudoers_dn or f"ou=sudoers,{self.base_dn}" if self.sudo else None
        )

    # ---- what is derived

    @property
    def schemas(self) -> list[str]:
        return ["openssh-lpk", "scim-ldap", *(["sudo"] if self.sudo else [])]

    @property
    def modules(self) -> list[str]:
        wanted = {"sssvlv", "unique", *self.extra_modules}
        if self.locks:
            wanted.add("ppolicy")
        if self.settings.accounts.password_storage == "ssha512":
            wanted.add("pw-sha2")
        ordered = [m for m in MODULE_ORDER if m in wanted]
        return ordered + sorted(wanted - set(ordered))

    @property
    def uid_counters(self) -> list[tuple[str, int]]:
        posix = self.settings.posix
        if posix.uid_strategy != "allocate":
            return []
        parts = list(slices(posix, self.base_dn).values())
        if parts:
            return [(part.pool_dn, part.low) for part in parts]
        return [(posix.id_pool_dn or f"cn=scim-ldap-ids,{self.base_dn}", posix.uid_range[0])]

    @property
    def gid_counter(self) -> str:
        return self.settings.groups.id_pool_dn or f"cn=scim-ldap-gids,{self.base_dn}"

    @property
    def login_group(self) -> tuple[str, int] | None:
        """The login group and its gidNumber (the first of ``groups.gid_range``)."""
        if not self.mapping.profile.uses_login_group:
            return None
        return (self.settings.accounts.login_group, self.settings.groups.gid_range[0])

    @property
    def indexes(self) -> list[str]:
        """``olcDbIndex`` values: what the server's searches and the hosts' filter on."""
        needed: dict[str, set[str]] = {}

        def need(attribute: str, kind: str) -> None:
            needed.setdefault(attribute, set()).add(kind)

        for attribute, kind in user_indexes(self.mapping).items():
            need(attribute, kind)
        for attribute, kind in GROUP_INDEXES.items():
            need(attribute, kind)
        for attribute in ("uid", "uidNumber", "gidNumber", "memberUid", "member"):
            need(attribute, "eq")
        if self.settings.users.active_attribute:
            need(self.settings.users.active_attribute, "eq")
        if self.sudo:
            need("sudoUser", "eq")
            need("sudoHost", "eq")
        by_kinds: dict[str, list[str]] = {}
        lowered: dict[str, str] = {}
        for attribute in needed:
            lowered.setdefault(attribute.lower(), attribute)
        merged: dict[str, set[str]] = {}
        for attribute, kinds in needed.items():
            merged.setdefault(lowered[attribute.lower()], set()).update(kinds)
        for attribute, kinds in merged.items():
            by_kinds.setdefault(",".join(sorted(kinds)), []).append(attribute)
        return [f"{','.join(names)} {kinds}" for kinds, names in sorted(by_kinds.items())]

    @property
    def sorted_attributes(self) -> list[str]:
        membership = self.settings.groups.membership
        return [
            *(["member"] if membership in ("both", "rfc2307bis") else []),
            *(["memberUid"] if membership in ("both", "rfc2307") else []),
        ]

    @property
    def limits(self) -> list[str]:
        return [
            f"dn.exact={quoted_dn(self.accounts.server_dn)} size=unlimited time=unlimited",
            f"dn.exact={quoted_dn(self.accounts.hosts_dn)} size=unlimited time=unlimited",
        ]

    def user_host_attributes(self) -> list[str]:
        """What NSS, PAM, the SSH key lookups and sssd's access rules read of an account."""
        names = [
            "entry",
            "objectClass",
            self.mapping.rdn,
            "uid",
            "cn",
            "uidNumber",
            "gidNumber",
            "homeDirectory",
            "loginShell",
            "gecos",
            *SHADOW_ATTRIBUTES,
            "sshPublicKey",
            "modifyTimestamp",
        ]
        if self.settings.users.active_attribute:
            names.append(self.settings.users.active_attribute)
        if self.locks:
            names.append(LOCK_ATTRIBUTE)
        return _unique(names)

    @staticmethod
    def group_host_attributes() -> list[str]:
        return ["entry", "objectClass", "cn", "gidNumber", "memberUid", "member", "modifyTimestamp"]

    def server_search_attributes(self) -> list[str]:
        """What the server's collision and lookup searches under the base filter on and read:
        numbers, logins, userNames, homes, group names and members, anywhere below the base."""
        names = ["entry", "objectClass", "entryUUID", "contextCSN"]
        for line in self.indexes:
            names += line.split(" ")[0].split(",")
        return _unique(names)

    @property
    def password_containers(self) -> list[str]:
        """Where the server sets passwords: the users' container, and where the move action
        puts disabled accounts (an account created inactive is made there)."""
        found: list[str] = []
        for dn in (self.users_dn, self.disabled_dn, *self.writable):
            if dn and dn.lower() not in {known.lower() for known in found}:
                found.append(dn)
        return found

    def access(self) -> list[Rule]:
        """The database's access rules, in order; the first rule that matches decides."""
        server, hosts = quoted_dn(self.accounts.server_dn), quoted_dn(self.accounts.hosts_dn)
        s, h = f"dn.exact={server}", f"dn.exact={hosts}"
        rules = [
            Rule(
                f"dn.subtree={quoted_dn(dn)} attrs=userPassword",
                (f"{s} =w", "self =wx", "anonymous auth", "* none"),
                f"Passwords of accounts below {dn}: the server sets them (add, replace, or the "
                "Password Modify extended operation) but never reads one; a user changes "
                "their own (=w) and proves the old one (=x) without reading it; an anonymous "
                "connection may only bind with it (auth); nobody, the hosts' account "
                "included, reads a hash.",
            )
            for dn in self.password_containers
        ]
        rules += [
            Rule(
                "attrs=userPassword",
                ("self =wx", "anonymous auth", "* none"),
                "Every other password (the two accounts', anyone's outside the containers "
                "above): its owner changes it and binds with it; the server cannot set it, "
                "nobody reads it.",
            ),
        ]
        user_attrs = ",".join(self.user_host_attributes())
        rules += [
            Rule(
                f"dn.subtree={quoted_dn(self.users_dn)} attrs={user_attrs}",
                (f"{s} write", f"{h} read", "self read", "* none"),
                "Accounts as the hosts see them: what NSS (passwd, shadow), PAM's account "
                "phase (the active flag, shadowExpire, the ppolicy lock), and the SSH key "
                "lookup read of an account below ldap.users_dn; the server writes them. A "
                "user reads the same of their own entry: nslcd confirms a password bind by "
                "reading the entry as the user.",
            ),
            Rule(
                f"dn.subtree={quoted_dn(self.users_dn)}",
                (f"{s} write", "* none"),
                "The rest of the users' container (the userName, externalId, e-mail and the "
                "server's own stash, pending, defaulted and unmapped attributes, and the "
                "children of the container, for adds, renames and deletes) is the server's "
                "alone.",
            ),
            Rule(
                f"dn.subtree={quoted_dn(self.groups_dn)} "
                f"attrs={','.join(self.group_host_attributes())}",
                (f"{s} write", f"{h} read", "* none"),
                "Groups as the hosts see them: names, numbers and members (memberUid for "
                "rfc2307 clients, member for rfc2307bis ones); the server writes them, the "
                "default and login groups included.",
            ),
            Rule(
                f"dn.subtree={quoted_dn(self.groups_dn)}",
                (f"{s} write", "* none"),
                "The rest of the groups' container (externalId, displayName, unmapped values, "
                "and its children) is the server's alone.",
            ),
        ]
        if self.sudoers_dn:
            sudo_attrs = ",".join(["entry", "objectClass", "cn", *SUDO_ATTRIBUTES])
            rules += [
                Rule(
                    f"dn.subtree={quoted_dn(self.sudoers_dn)} attrs={sudo_attrs},modifyTimestamp",
                    (f"{s} write", f"{h} read", "* none"),
                    "sudoRole entries (groups.sudo): sssd's sudo provider reads them; the "
                    "server keeps one per configured group.",
                ),
                Rule(
                    f"dn.subtree={quoted_dn(self.sudoers_dn)}",
                    (f"{s} write", "* none"),
                    "The children of groups.sudoers_dn, for the server's adds and deletes.",
                ),
            ]
        moved: list[tuple[str, str]] = []
        for dn, why in (
            (self.disabled_dn, "accounts the move action put out of the hosts' search base"),
            (self.archive_dn, 'accounts accounts.delete = "archive" moved out of every search'),
            *((dn, "a container the server moves accounts into") for dn in self.writable),
        ):
            if dn and dn.lower() not in {known.lower() for known, _ in moved}:
                moved.append((dn, why))
        for dn, why in moved:
            if dn:
                rules.append(
                    Rule(
                        f"dn.subtree={quoted_dn(dn)}",
                        (f"{s} write", "* none"),
                        f"{dn}: {why}; the server moves them in and out, the hosts never see them.",
                    )
                )
        for dn, _ in self.uid_counters:
            rules.append(
                Rule(
                    f"dn.base={quoted_dn(dn)}",
                    (f"{s} write", "* none"),
                    "The uidNumber counter: the server advances it with a compare-and-swap modify.",
                )
            )
        rules += [
            Rule(
                f"dn.base={quoted_dn(self.gid_counter)}",
                (f"{s} write", "* none"),
                "The gidNumber counter of new groups: advanced like the uidNumber counter.",
            ),
            Rule(
                f"dn.subtree={quoted_dn(self.claims_dn)}",
                (f"{s} write", "* none"),
                "One claim entry per uidNumber in use: the server adds and deletes them so "
                "that two creates can never hold one number.",
            ),
        ]
        if self.locks:
            rules.append(
                Rule(
                    f"dn.base={quoted_dn(self.policy_dn)}",
                    (f"{s} read", f"{h} read", "* none"),
                    "The default password policy: check verifies it exists, and sssd reads "
                    "it (ldap_pwdlockout_dn) to honour the lock action.",
                )
            )
        rules += [
            Rule(
                f"dn.base={quoted_dn(self.base_dn)} attrs=entry,objectClass",
                (f"{s} read", f"{h} read", "* none"),
                "The base entry itself: both accounts search below it (the hosts' "
                "ldap_search_base, the server's collision searches).",
            ),
            Rule(
                f"dn.subtree={quoted_dn(self.base_dn)} "
                f"attrs={','.join(self.server_search_attributes())}",
                (f"{s} read", "* none"),
                "Numbers, logins, homes and group names are unique in the whole directory, "
                "not only in the server's containers: the server searches the base for "
                "entries made by hand holding them, on these attributes only.",
            ),
        ]
        return rules

    def config_access(self) -> list[Rule]:
        attributes = [*CONFIG_ATTRIBUTES, *(["olcPPolicyDefault"] if self.locks else [])]
        return [
            Rule(
                f'dn.subtree="cn=config" attrs={",".join(attributes)}',
                (f"dn.exact={quoted_dn(self.accounts.server_dn)} read", "* break"),
                "check verifies indexes, the ppolicy overlay and replication in cn=config; "
                "the server's account reads these attributes only (no olcRootPW, no ACLs).",
            )
        ]

    def overlays(self) -> list[Overlay]:
        found = [
            Overlay(
                "sssvlv",
                "olcSssVlvConfig",
                (
                    ("olcSssVlvMax", "sssvlv-max", "64"),
                    ("olcSssVlvMaxKeys", "sssvlv-maxkeys", "5"),
                    ("olcSssVlvMaxPerConn", "sssvlv-maxperconn", "16"),
                ),
            )
        ]
        if self.locks:
            found.append(
                Overlay(
                    "ppolicy",
                    "olcPPolicyConfig",
                    (
                        ("olcPPolicyDefault", "ppolicy_default", self.policy_dn),
                        ("olcPPolicyUseLockout", "ppolicy_use_lockout", "TRUE"),
                    ),
                )
            )
        found.append(
            Overlay(
                "unique",
                "olcUniqueConfig",
                (("olcUniqueURI", "unique_uri", unique_uid_numbers(self.base_dn)),),
            )
        )
        return found

    def entries(self) -> list[Entry]:
        """The data: containers, accounts, groups, counters, the policy (parents first)."""
        settings = self.settings
        out: list[Entry] = [
            Entry(self.services_dn, _ou(self.services_dn), "the accounts that bind"),
        ]
        for account_dn, password, what in (
            (self.accounts.server_dn, self.accounts.server_password, "the SCIM server"),
            (self.accounts.hosts_dn, self.accounts.hosts_password, "the Linux hosts (NSS/PAM)"),
        ):
            name = rdn_values(account_dn)[0][1]
            attributes = [
                ("objectClass", "top"),
                ("objectClass", "person"),
                ("cn", name),
                ("sn", name),
                ("description", f"the account {what} bind as"),
            ]
            comment = f"{what}; set its password with ldappasswd -S"
            if password:
                attributes.append(("userPassword", _ssha(password)))
                comment = what
            out.append(Entry(account_dn, tuple(attributes), comment))
        for dn, why in (
            (self.users_dn, "ldap.users_dn"),
            (self.groups_dn, "ldap.groups_dn"),
            (self.disabled_dn, "ldap.disabled_dn (the move action)"),
            (self.archive_dn, 'ldap.archive_dn (accounts.delete = "archive")'),
            (self.sudoers_dn, "groups.sudoers_dn"),
        ):
            if dn:
                out.append(Entry(dn, _ou(dn), why))
        posix = settings.posix
        if posix.gid_strategy == "default-group":
            out.append(
                _group(
                    posix.default_group,
                    posix.default_gid_number,
                    self.groups_dn,
                    "posix.default_group",
                )
            )
        login = self.login_group
        if login:
            out.append(
                _group(login[0], login[1], self.groups_dn, "accounts.login_group (remove-group)")
            )
        for dn, low in self.uid_counters:
            out.append(_counter(dn, "uidNumber", low, "the uidNumber counter"))
        gid_low = settings.groups.gid_range[0] + (1 if login else 0)
        out.append(_counter(self.gid_counter, "gidNumber", gid_low, "the gidNumber counter"))
        out.append(
            Entry(
                self.claims_dn,
                (
                    ("objectClass", "top"),
                    ("objectClass", POOL_CLASS),
                    ("cn", rdn_values(self.claims_dn)[0][1]),
                    ("description", "uidNumbers held by scim-ldap accounts, one entry each"),
                ),
                "the uidNumber claims",
            )
        )
        if self.locks:
            policies = self.policy_dn.split(",", 1)[1]
            if policies.lower() != self.base_dn.lower():
                out.append(Entry(policies, _ou(policies), "password policies"))
            name = rdn_values(self.policy_dn)[0][1]
            out.append(
                Entry(
                    self.policy_dn,
                    (*PASSWORD_POLICY[:3], ("cn", name), *PASSWORD_POLICY[3:]),
                    "the default password policy (ppolicy)",
                )
            )
        return _parents_first(out, self.base_dn)

    # ---- rendering

    def render(self, style: Style, part: str | None = None) -> str:
        """One part (``PARTS``) in ``style``, or all of them, each under a header comment."""
        if part is not None:
            if part not in PARTS:
                raise KeyError(f"{part} is not a part: {', '.join(PARTS)}")
            return self._part(style, part)
        blocks = []
        for name in PARTS:
            text = self._part(style, name)
            if text:
                blocks.append(f"# ==> {name} <==\n{text}")
        return "\n".join(blocks)

    def _part(self, style: Style, part: str) -> str:
        if part == "data":
            return "\n".join(entry.ldif() for entry in self.entries())
        if style == "cn-config":
            return {
                "schema": self._olc_schema,
                "modules": self._olc_modules,
                "sortvals": self._olc_sortvals,
                "config": self._olc_config,
                "database": self._olc_database,
                "overlays": self._olc_overlays,
            }[part]()
        return {
            "schema": self._conf_schema,
            "modules": self._conf_modules,
            "sortvals": self._conf_sortvals,
            "config": self._conf_config,
            "database": self._conf_database,
            "overlays": self._conf_overlays,
        }[part]()

    def _olc_schema(self) -> str:
        return "\n".join(schema_text(name, "ldif").strip() + "\n" for name in self.schemas)

    def _olc_modules(self) -> str:
        lines = [
            "dn: cn=module,cn=config",
            "objectClass: olcModuleList",
            "cn: module",
            f"olcModulePath: {self.module_path}",
            *(f"olcModuleLoad: {module}" for module in self.modules),
        ]
        return "\n".join(lines) + "\n"

    @property
    def sorted(self) -> str:
        """The ``sortvals`` setting (global in both forms), empty unless ``sort_values``."""
        return " ".join(self.sorted_attributes) if self.sort_values else ""

    def _olc_sortvals(self) -> str:
        if not self.sorted:
            return ""
        return (
            "dn: olcDatabase={-1}frontend,cn=config\nchangetype: modify\n"
            f"replace: olcSortVals\nolcSortVals: {self.sorted}\n"
        )

    def _conf_sortvals(self) -> str:
        return f"sortvals {self.sorted}\n" if self.sorted else ""

    def _olc_config(self) -> str:
        rules = self.config_access()
        lines = [
            "dn: olcDatabase={0}config,cn=config",
            "changetype: modify",
            "add: olcAccess",
            *(f"olcAccess: {{{n}}}{rule.text}" for n, rule in enumerate(rules)),
        ]
        return "\n".join(lines) + "\n"

    def _olc_database(self) -> str:
        changes: list[list[str]] = [
            ["add: olcDbIndex", *(f"olcDbIndex: {index}" for index in self.indexes)],
            ["add: olcLimits", *(f"olcLimits: {limit}" for limit in self.limits)],
            [
                "replace: olcAccess",
                *(f"olcAccess: {{{n}}}{rule.text}" for n, rule in enumerate(self.access())),
            ],
        ]
        body = "\n-\n".join("\n".join(change) for change in changes)
        return f"dn: {self.database}\nchangetype: modify\n{body}\n"

    def _olc_overlays(self) -> str:
        blocks = []
        for overlay in self.overlays():
            lines = [
                f"dn: olcOverlay={overlay.name},{self.database}",
                "objectClass: olcOverlayConfig",
                f"objectClass: {overlay.object_class}",
                f"olcOverlay: {overlay.name}",
                *(f"{olc}: {value}" for olc, _, value in overlay.settings),
            ]
            blocks.append("\n".join(lines) + "\n")
        return "\n".join(blocks)

    def _conf_schema(self) -> str:
        return "\n".join(slapd_conf_schema(schema_text(name, "ldif")) for name in self.schemas)

    def _conf_modules(self) -> str:
        lines = [f"modulepath {self.module_path}", *(f"moduleload {m}" for m in self.modules)]
        return "\n".join(lines) + "\n"

    def _conf_config(self) -> str:
        lines = ["database config", *(f"access {rule.text}" for rule in self.config_access())]
        return "\n".join(lines) + "\n"

    def _conf_database(self) -> str:
        lines = [
            *(f"index {index}" for index in self.indexes),
            *(f"limits {limit}" for limit in self.limits),
            *(f"access {rule.text}" for rule in self.access()),
        ]
        return "\n".join(lines) + "\n"

    def _conf_overlays(self) -> str:
        lines = []
        for overlay in self.overlays():
            lines.append(f"overlay {overlay.name}")
            for _, keyword, value in overlay.settings:
                shown = quoted_dn(value) if keyword in ("ppolicy_default", "unique_uri") else value
                lines.append(f"{keyword} {'' if keyword == 'ppolicy_use_lockout' else shown}")
        return "\n".join(line.rstrip() for line in lines) + "\n"


def _unique(names: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for name in names:
        if name.lower() not in seen:
            seen.add(name.lower())
            out.append(name)
    return out


def _common_parent(left: str, right: str) -> str:
    parent_left, parent_right = left.split(",", 1)[1], right.split(",", 1)[1]
    if parent_left.lower() != parent_right.lower():
        raise ValueError(f"{left} and {right} must be in one container")
    return parent_left


def _group(name: str, gid: int, groups_dn: str, why: str) -> Entry:
    return Entry(
        child_dn("cn", name, groups_dn),
        (
            ("objectClass", "top"),
            ("objectClass", "posixGroup"),
            ("cn", name),
            ("gidNumber", str(gid)),
        ),
        why,
    )


def _counter(dn: str, attribute: str, low: int, why: str) -> Entry:
    attributes = [("objectClass", "top"), ("objectClass", POOL_CLASS)]
    attributes += list(rdn_values(dn))
    attributes.append((attribute, str(low)))
    return Entry(dn, tuple(attributes), f"{why}: the next number to hand out")


def _parents_first(entries: list[Entry], base_dn: str) -> list[Entry]:
    """Each entry after its parent when both are listed; duplicates dropped."""
    seen: set[str] = set()
    unique = []
    for entry in entries:
        key = entry.dn.lower()
        if key not in seen and key != base_dn.lower():
            seen.add(key)
            unique.append(entry)
    return sorted(unique, key=lambda e: e.dn.count(","))
