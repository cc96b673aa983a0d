"""Configuration: environment variables prefixed ``SCIM_LDAP_`` and an optional TOML file.

Nested sections use ``__`` in environment variables, for example
``SCIM_LDAP_LDAP__BIND_DN`` or ``SCIM_LDAP_AUTH__TOKENS='["t1","t2"]'``. Values
given in the environment win over the TOML file given with ``--config``.

Every secret can come from a file: a ``<secret>_file`` key (``ldap.bind_password_file``),
its variable (``SCIM_LDAP_LDAP__BIND_PASSWORD_FILE``), or a file named like the variable
in the secrets directory (``$SCIM_LDAP_SECRETS_DIR``, else systemd's
``$CREDENTIALS_DIRECTORY``).
"""

from __future__ import annotations

import os
import re
import string
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal, get_args, get_origin

from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from app.attributes import UnknownPathError, parse_slot
from app.clientsecrets import hash_problem
from app.ldap.logins import LoginPolicy, LoginRule
from app.schemas import (
    CORE_USER,
    CUSTOM_EXTENSION,
    ECMA2HOST_USER,
    ENTERPRISE_USER,
    POSIX_USER,
    UserSchemas,
    split_urn,
)

_BUILT_IN_URNS = frozenset(u.lower() for u in (CORE_USER, ENTERPRISE_USER, POSIX_USER))

DEFAULT_USER_MAPPING: dict[str, str] = {
    "externalId": "scimExternalId",
    "displayName": "displayName",
    "name.givenName": "givenName",
    "name.familyName": "sn",
    "name.formatted": "scimFormattedName",
    "title": "title",
    "preferredLanguage": "preferredLanguage",
    'emails[type eq "work"].value': "mail",
    'phoneNumbers[type eq "work"].value': "telephoneNumber",
    'phoneNumbers[type eq "mobile"].value': "mobile",
    'phoneNumbers[type eq "fax"].value': "facsimileTelephoneNumber",
    'addresses[type eq "work"].streetAddress': "street",
    'addresses[type eq "work"].locality': "l",
    'addresses[type eq "work"].region': "st",
    'addresses[type eq "work"].postalCode': "postalCode",
    'addresses[type eq "work"].country': "co",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber": "employeeNumber",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department": "departmentNumber",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager": "manager",
    "urn:ietf:params:scim:schemas:extension:posix:2.0:User:uidNumber": "uidNumber",
    "urn:ietf:params:scim:schemas:extension:posix:2.0:User:gidNumber": "gidNumber",
    "urn:ietf:params:scim:schemas:extension:posix:2.0:User:homeDirectory": "homeDirectory",
    "urn:ietf:params:scim:schemas:extension:posix:2.0:User:loginShell": "loginShell",
    "urn:ietf:params:scim:schemas:extension:posix:2.0:User:gecos": "gecos",
    "urn:ietf:params:scim:schemas:extension:posix:2.0:User:sshPublicKeys": "sshPublicKey",
}

_ATTRIBUTE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]*$")


class Section(BaseModel):
    """A section of the settings: a key it does not define is an error naming it (a typo such
    as ``bind_pasword`` would otherwise leave the default in force, silently)."""

    model_config = ConfigDict(extra="forbid")


class LdapSettings(Section):
    """Where the directory is and how the server binds to it."""

    urls: list[str] = Field(
        default=["ldap://127.0.0.1:389"],
        min_length=1,
        description="LDAP URLs tried in order (ldap://, ldaps://).",
    )
    bind_dn: str = Field(default="", description="DN the server binds as.")
    bind_password: SecretStr = Field(default=SecretStr(""), description="Password of bind_dn.")
    base_dn: str = Field(default="dc=example,dc=org", description="Base DN of the directory.")
    users_dn: str = Field(
        default="", description="Container of user entries (default ou=people,<base_dn>)."
    )
    groups_dn: str = Field(
        default="", description="Container of group entries (default ou=groups,<base_dn>)."
    )
    disabled_dn: str = Field(
        default="", description="Where the move action puts disabled users (ou=disabled,<base_dn>)."
    )
    archive_dn: str = Field(
        default="", description="Where the archive delete policy puts users (ou=archive,<base_dn>)."
    )
    start_tls: bool = Field(default=False, description="Issue StartTLS on ldap:// URLs.")
    ca_file: Path | None = Field(default=None, description="CA bundle for TLS verification.")
    connect_timeout: float = Field(default=5.0, gt=0, description="Seconds to open a connection.")
    receive_timeout: int = Field(default=15, ge=1, description="Seconds to wait for a reply.")
    pool_size: int = Field(default=8, ge=1, le=64, description="Connections kept open.")
    pool_wait: float = Field(
        default=5.0,
        gt=0,
        description="Seconds a request waits for a free connection before answering 503.",
    )
    max_waiting: int = Field(
        default=32,
        ge=0,
        description="Requests allowed to wait for a free connection at once; beyond them a "
        "request answers 503 at once instead of queueing (32: with the default pool, every "
        "one of the 40 request threads may be busy with the directory or waiting for it).",
    )
    probe_timeout: float = Field(
        default=2.0,
        gt=0,
        le=30,
        description="Seconds /readyz gives the directory to answer its round trip.",
    )

    @field_validator("urls")
    @classmethod
    def _check_urls(cls, urls: list[str]) -> list[str]:
        for url in urls:
            if not re.match(r"^ldaps?://[^/\s]+/?$", url):
                raise ValueError(f"{url!r} is not an ldap:// or ldaps:// URL of a host")
        return urls

    @model_validator(mode="after")
    def _default_users_dn(self) -> LdapSettings:
        self.users_dn = self.users_dn or f"ou=people,{self.base_dn}"
        self.groups_dn = self.groups_dn or f"ou=groups,{self.base_dn}"
        self.disabled_dn = self.disabled_dn or f"ou=disabled,{self.base_dn}"
        self.archive_dn = self.archive_dn or f"ou=archive,{self.base_dn}"
        return self


class UserSettings(Section):
    """How SCIM users become LDAP entries."""

    object_classes: list[str] = Field(
        default=["inetOrgPerson", "posixAccount", "shadowAccount", "ldapPublicKey", "scimUser"],
        min_length=1,
        description="Object classes of a new user entry.",
    )
    rdn_attribute: str = Field(default="uid", description="RDN attribute of user entries.")
    user_name_attribute: str | None = Field(
        default="scimUserName",
        description="Keeps userName as sent when it differs from the login name "
        "(empty: userName is the login name).",
    )
    active_attribute: str | None = Field(
        default="scimActive", description="Boolean attribute holding SCIM active."
    )
    stash_attribute: str | None = Field(
        default="scimStash",
        description="Keeps what the disable profile replaced, to restore it on enable.",
    )
    pending_attribute: str | None = Field(
        default="scimPending",
        description="Marks an entry whose multi-step write has not finished, so that the next "
        "request or the sweep finishes it (empty: no marker; an interrupted write then stays "
        "half-done).",
    )
    defaults_attribute: str | None = Field(
        default="scimDefaulted",
        description="Lists the attributes holding server-assigned defaults rather than SCIM "
        "values (empty: defaults are answered as values).",
    )
    unmapped_attribute: str | None = Field(
        default="scimUnmapped",
        description="Keeps, as one JSON value, what the user's SCIM resource holds that no "
        "mapped LDAP attribute does (a second e-mail, primary flags, roles...), so it is "
        "answered as written (empty: such values are accepted and not stored).",
    )
    ecma2host: bool = Field(
        default=True,
        description="Expose every attribute of users.object_classes under Microsoft's "
        "ECMA2Host namespace with its LDAP name, as Microsoft's LDAP connector does.",
    )
    adopt: Literal["off", "match"] = Field(
        default="match",
        description="Accounts under the users' container this server did not make (no scimUser "
        "class, no userName attribute): match (Entra's matching filter userName eq finds one "
        "whose uid is the login the userName gets, and its first write takes it over; a POST "
        "of that userName is 409) or off (they are found by their stored values only).",
    )
    adopt_filter: str = Field(
        default="(objectClass=posixAccount)",
        description="LDAP filter an existing account must match to be adopted.",
    )
    mapping: dict[str, str | None] = Field(
        default_factory=dict,
        description="Overrides of the SCIM path -> LDAP attribute mapping; null/empty unmaps. "
        "A path may be any attribute of the core User, the enterprise and POSIX extensions, "
        "or of a custom extension urn:ietf:params:scim:schemas:extension:<Name>:2.0:User.",
    )

    @field_validator(
        "rdn_attribute",
        "user_name_attribute",
        "active_attribute",
        "defaults_attribute",
        "stash_attribute",
        "pending_attribute",
        "unmapped_attribute",
    )
    @classmethod
    def _check_name(cls, value: str | None) -> str | None:
        if value and not _ATTRIBUTE_NAME.match(value):
            raise ValueError(f"{value!r} is not an LDAP attribute name")
        return value or None

    @field_validator("adopt_filter")
    @classmethod
    def _check_adopt_filter(cls, value: str) -> str:
        text = value.strip()
        if not (text.startswith("(") and text.endswith(")")) or text.count("(") != text.count(")"):
            raise ValueError(f"{value!r} is not an LDAP filter in parentheses")
        return text

    @field_validator("mapping")
    @classmethod
    def _check_mapping(cls, mapping: dict[str, str | None]) -> dict[str, str | None]:
        for path, attribute in mapping.items():
            urn, name = split_urn(path)
            if urn is not None and urn.lower() == ECMA2HOST_USER.lower():
                raise ValueError(
                    f"{path!r}: ECMA2Host attributes are the LDAP attributes of the same name; "
                    "they need no mapping"
                )
            if urn is not None and urn.lower() not in _BUILT_IN_URNS:
                if not CUSTOM_EXTENSION.match(urn) or not _ATTRIBUTE_NAME.match(name):
                    raise ValueError(
                        f"{path!r}: a custom attribute is urn:ietf:params:scim:schemas:"
                        "extension:<Name>:2.0:User:<attribute>"
                    )
            else:
                try:
                    parse_slot(path, UserSchemas())
                except UnknownPathError as problem:
                    raise ValueError(f"users.mapping: {problem}") from None
            if attribute and not _ATTRIBUTE_NAME.match(attribute):
                raise ValueError(f"{attribute!r} (for {path}) is not an LDAP attribute name")
        return mapping

    @model_validator(mode="after")
    def _one_path_per_attribute(self) -> UserSettings:
        seen: dict[str, str] = {}
        for path, attribute in self.attribute_map().items():
            other = seen.setdefault(attribute.lower(), path)
            if other != path:
                raise ValueError(
                    f"users.mapping: {path!r} and {other!r} both map onto {attribute}; "
                    "unmap one (null)"
                )
        return self

    def attribute_map(self) -> dict[str, str]:
        """The effective SCIM path -> LDAP attribute mapping."""
        merged: dict[str, str | None] = {**DEFAULT_USER_MAPPING, **self.mapping}
        return {path: attr for path, attr in merged.items() if attr}


SYSTEMD_RANGES = ((60001, 60513), (61184, 65519), (65534, 65535), (524288, 1879048191))
"""Ids systemd reserves (nspawn/container users, dynamic users, nobody): never allocated."""

TEMPLATE_FIELDS = frozenset(
    {"uid", "userName", "displayName", "givenName", "familyName", "uidNumber", "externalId"}
)


def _check_template(value: str) -> str:
    for _text, field, _spec, _conv in string.Formatter().parse(value):
        if field is not None and field not in TEMPLATE_FIELDS:
            fields = ", ".join(sorted(TEMPLATE_FIELDS))
            raise ValueError(f"unknown placeholder {{{field}}}; known: {fields}")
    return value


class IdProvider(Section):
    """One provider of a multi-provider directory and the slice of uid_range it hands out."""

    url: str = Field(description="The provider's URL, exactly as in ldap.urls.")
    uid_range: tuple[int, int] = Field(
        description="Numbers allocated through this provider; no other provider's slice overlaps."
    )
    id_pool_dn: str = Field(
        default="",
        description="Counter of this slice (default cn=scim-ldap-ids-<low>,<base_dn>).",
    )

    @field_validator("url")
    @classmethod
    def _check_url(cls, url: str) -> str:
        return LdapSettings._check_urls([url])[0]

    @field_validator("uid_range")
    @classmethod
    def _check_range(cls, value: tuple[int, int]) -> tuple[int, int]:
        return PosixSettings._check_range(value)


class PosixSettings(Section):
    """Linux account numbers, names and templates."""

    uid_strategy: Literal["allocate", "attribute", "hash"] = Field(
        default="allocate",
        description="allocate: next free number of uid_range, decided in the directory; "
        "attribute: taken from the request; hash: derived from hash_source into uid_range.",
    )
    uid_range: tuple[int, int] = Field(
        default=(10000, 59999), description="Numbers allocate and hash hand out."
    )
    hash_source: Literal["externalId", "userName"] = Field(
        default="externalId", description="What the hash strategy derives the number from."
    )
    id_pool_dn: str = Field(
        default="",
        description="Entry holding the allocation counter (default cn=scim-ldap-ids,<base_dn>).",
    )
    providers: list[IdProvider] = Field(
        default_factory=list,
        description="Multi-provider directories: every URL of ldap.urls with its own slice of "
        "uid_range, so each counter is only written through one provider (empty: one "
        "directory, one counter). The same list on every server.",
    )
    min_uid_number: int = Field(
        default=1000, ge=1, description="Lowest uidNumber a client may set (system ids below)."
    )
    min_gid_number: int = Field(
        default=1000, ge=1, description="Lowest gidNumber a client may set (system ids below)."
    )
    gid_strategy: Literal["default-group", "private-group"] = Field(
        default="default-group",
        description="default-group: default_gid_number, a posixGroup the server makes sure "
        "exists; private-group: a group cn=<uid> with gidNumber = uidNumber per user.",
    )
    default_gid_number: int = Field(default=10000, ge=1, description="gidNumber when none sent.")
    default_group: str = Field(default="scim-users", description="cn of the default group.")
    login_pattern: str = Field(
        default=r"^[a-z_][a-z0-9_.-]*\$?$",
        description="Regular expression a Linux login name must match.",
    )
    login_max_length: int = Field(default=32, ge=1, le=256, description="Longest login name.")
    login_policy: LoginPolicy = Field(
        default="derive",
        description="derive: a login made of any userName (ASCII, lower-case, clashes resolved "
        "with a hash suffix); strict: the userName or its lower-cased local part when valid, "
        "else 400, and 409 when taken.",
    )
    login_prefix: str = Field(
        default="u",
        description="Put before a derived login that would start with a digit (alone with the "
        "suffix when nothing of the userName is left).",
    )
    rename_login: bool = Field(
        default=True,
        description="When userName changes: rename the login (true) or keep it (false).",
    )
    home_directory: str = Field(default="/home/{uid}", description="homeDirectory template.")
    home_collision: Literal["suffix", "refuse"] = Field(
        default="suffix",
        description="When the templated home is held by another entry: suffix: append '-' and "
        "6 hex digits of the userName's hash; refuse: 409. A homeDirectory the client sends "
        "is always refused when held.",
    )
    login_shell: str = Field(default="/bin/bash", description="loginShell when none sent.")
    gecos: str = Field(default="", description="gecos template (empty: none).")
    cn: str = Field(default="{displayName}", description="cn template (empty result: userName).")

    @field_validator("login_pattern")
    @classmethod
    def _check_pattern(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a regular expression: {exc}") from None
        return value

    @model_validator(mode="after")
    def _check_derived_logins(self) -> PosixSettings:
        rule = LoginRule(
            self.login_pattern, self.login_max_length, self.login_policy, self.login_prefix
        )
        refused = rule.problems()
        if refused:
            raise ValueError(
                f"login_pattern {self.login_pattern} (at most {self.login_max_length} "
                f"characters) refuses logins the derive policy makes: {'; '.join(refused)}. "
                "Allow a-z, 0-9, '.', '_' and '-' after a leading letter, a login_max_length "
                "of at least 8 and a login_prefix the pattern accepts, or set login_policy "
                "to 'strict'"
            )
        return self

    @field_validator("home_directory", "login_shell", "gecos", "cn")
    @classmethod
    def _check_templates(cls, value: str) -> str:
        return _check_template(value)

    @field_validator("uid_range")
    @classmethod
    def _check_range(cls, value: tuple[int, int]) -> tuple[int, int]:
        low, high = value
        if low > high:
            raise ValueError("the range must be (low, high) with low <= high")
        if low < 1000:
            raise ValueError("the range overlaps system ids (below 1000)")
        for start, end in SYSTEMD_RANGES:
            if low <= end and start <= high:
                raise ValueError(f"the range overlaps ids systemd reserves ({start}-{end})")
        return value

    @model_validator(mode="after")
    def _check_providers(self) -> PosixSettings:
        low, high = self.uid_range
        urls: set[str] = set()
        taken: list[tuple[int, int]] = []
        for provider in self.providers:
            url = provider.url.rstrip("/").lower()
            if url in urls:
                raise ValueError(f"providers: {provider.url} is listed twice")
            urls.add(url)
            start, end = provider.uid_range
            if start < low or end > high:
                raise ValueError(
                    f"providers: the slice {start}-{end} of {provider.url} is not inside "
                    f"uid_range {low}-{high}"
                )
            for other_start, other_end in taken:
                if start <= other_end and other_start <= end:
                    raise ValueError(
                        f"providers: the slices {start}-{end} and {other_start}-{other_end} "
                        "overlap: two providers would hand out the same numbers"
                    )
            taken.append((start, end))
        return self


DisableAction = Literal["lock", "expire", "hide", "nologin", "strip-keys", "remove-group", "move"]


class AccountSettings(Section):
    """Credentials and what disabling and deleting do."""

    password: Literal["request", "random", "none"] = Field(
        default="request",
        description="request: set the SCIM password when sent; random: a random initial "
        "password at creation; none: never set one.",
    )
    password_storage: Literal["exop", "ssha512", "crypt-sha512"] = Field(
        default="exop",
        description="exop: LDAP Password Modify (the directory hashes); ssha512 or "
        "crypt-sha512: hashed by the server.",
    )
    disable: list[DisableAction] = Field(
        default=["lock", "expire", "hide"],
        description="The disable profile: actions applied when active becomes false and "
        "undone when it becomes true again (hide: out of posixAccount, so no NSS client "
        "sees the account).",
    )
    nologin_shell: str = Field(default="/usr/sbin/nologin", description="Shell of nologin.")
    login_group: str = Field(
        default="linux-login",
        description="cn of the login-access group users join at creation (remove-group).",
    )
    ppolicy_dn: str = Field(
        default="",
        description="The directory's default password policy (cn=default,ou=policies,<base_dn>); "
        "sssd needs it to honour the lock action.",
    )
    delete: Literal["delete", "archive"] = Field(
        default="delete",
        description="delete: remove the entry; archive: move it out of every search base.",
    )
    sweep_interval: float = Field(
        default=300.0,
        ge=0,
        description="Seconds between two sweeps that finish interrupted writes (0: only at "
        "start-up).",
    )
    pending_grace: float = Field(
        default=900.0,
        ge=0,
        description="Seconds a create that never finished waits for the client to send it again "
        "before the sweep takes it back.",
    )


GroupMembership = Literal["both", "rfc2307", "rfc2307bis"]


class GroupSettings(Section):
    """How SCIM groups become posixGroup entries below ``ldap.groups_dn``."""

    membership: GroupMembership = Field(
        default="both",
        description="both: members as memberUid (login names, read by stock sssd and nslcd) "
        "and as member (DNs, read by rfc2307bis clients; nested groups); rfc2307: memberUid "
        "only (no nested groups); rfc2307bis: member only.",
    )
    gid_range: tuple[int, int] = Field(
        default=(70000, 99999), description="gidNumbers allocated to new groups."
    )
    id_pool_dn: str = Field(
        default="",
        description="Entry holding the gidNumber counter (default cn=scim-ldap-gids,<base_dn>).",
    )
    name_policy: LoginPolicy = Field(
        default="derive",
        description="derive: a group name (cn) made of any displayName (ASCII, lower-case, "
        "clashes resolved with a hash suffix); strict: the displayName or its lower-cased "
        "form when valid, else 400, and 409 when taken.",
    )
    name_pattern: str = Field(
        default=r"^[a-z_][a-z0-9_.-]*$",
        description="Regular expression a POSIX group name must match.",
    )
    name_max_length: int = Field(default=32, ge=1, le=256, description="Longest group name.")
    name_prefix: str = Field(
        default="g",
        description="Put before a derived group name that would start with a digit.",
    )
    rename: bool = Field(
        default=True,
        description="When displayName changes: rename the group (cn, true) or keep its name.",
    )
    object_classes: list[str] = Field(
        default=["posixGroup", "scimGroup"],
        min_length=1,
        description="Object classes of a new group entry.",
    )
    login: list[str] = Field(
        default_factory=list,
        description="displayNames of the Entra groups whose members may log in to the hosts "
        "(client-config turns them into the POSIX names the server gives them; empty: "
        "every active account may log in).",
    )
    sudo: dict[str, list[str]] = Field(
        default_factory=dict,
        description="displayName of an Entra group -> the commands its members may run as "
        "root with sudo (['ALL'] for any); the server keeps a sudoRole per such group "
        "below sudoers_dn.",
    )
    sudoers_dn: str = Field(
        default="", description="Container of the sudoRole entries (default ou=sudoers,<base_dn>)."
    )

    @field_validator("login")
    @classmethod
    def _check_login(cls, names: list[str]) -> list[str]:
        if any(not name.strip() for name in names):
            raise ValueError("groups.login: a displayName is empty")
        return names

    @field_validator("sudo")
    @classmethod
    def _check_sudo(cls, rules: dict[str, list[str]]) -> dict[str, list[str]]:
        for name, commands in rules.items():
            if not name.strip():
                raise ValueError("groups.sudo: a displayName is empty")
            if not commands or any(not c.strip() or "\n" in c for c in commands):
                raise ValueError(
                    f"groups.sudo: {name!r} needs a list of commands (['ALL'] for any), none empty"
                )
        return rules

    @field_validator("name_pattern")
    @classmethod
    def _check_pattern(cls, value: str) -> str:
        return PosixSettings._check_pattern(value)

    @field_validator("gid_range")
    @classmethod
    def _check_range(cls, value: tuple[int, int]) -> tuple[int, int]:
        return PosixSettings._check_range(value)

    @model_validator(mode="after")
    def _check_derived_names(self) -> GroupSettings:
        refused = self.rule().problems()
        if refused:
            raise ValueError(
                f"name_pattern {self.name_pattern} (at most {self.name_max_length} characters) "
                f"refuses names the derive policy makes: {'; '.join(refused)}. Allow a-z, 0-9, "
                "'.', '_' and '-' after a leading letter, a name_max_length of at least 8 and a "
                "name_prefix the pattern accepts, or set name_policy to 'strict'"
            )
        return self

    def rule(self) -> LoginRule:
        """The group name rule: the login rule's machinery with the group settings."""
        return LoginRule(
            self.name_pattern, self.name_max_length, self.name_policy, self.name_prefix
        )


TOKEN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._~@-]{0,127}$")
"""Names of tokens and OAuth clients, and client ids: safe in a log line and a metric label."""

MIN_SIGNING_KEY_BYTES = 32
"""RFC 7518 §3.2: an HS256 key has at least as many bits as the hash, 256."""


def _valid_name(value: str, what: str) -> str:
    if value and not TOKEN_NAME.match(value):
        raise ValueError(
            f"{what} {value!r} must be 1-128 letters, digits or . _ ~ @ -, starting with a "
            "letter or a digit"
        )
    return value


class StaticToken(Section):
    """A bearer token and the name logs, metrics and the audit trail know it by."""

    name: str = Field(default="", description="Name of the token (default token-<position>).")
    token: SecretStr = Field(description="The token itself, at least 16 characters.")

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        return _valid_name(value, "token name")

    @field_validator("token")
    @classmethod
    def _check_token(cls, token: SecretStr) -> SecretStr:
        if len(token.get_secret_value()) < 16:
            raise ValueError("every token must be at least 16 characters long")
        return token


class OAuthClient(Section):
    """A client of the token endpoint (RFC 6749 §4.4), such as an Entra provisioning job."""

    client_id: str = Field(description="The client identifier given to the client.")
    name: str = Field(
        default="", description="Name in logs, metrics and audit (default client_id)."
    )
    secret_hashes: list[SecretStr] = Field(
        min_length=1,
        description="Hashes of the client's secrets (python -m app hash-secret); several at "
        "once while a secret is rotated.",
    )

    @field_validator("client_id")
    @classmethod
    def _check_client_id(cls, value: str) -> str:
        return _valid_name(value or " ", "client_id")

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        return _valid_name(value, "client name")

    @field_validator("secret_hashes")
    @classmethod
    def _check_hashes(cls, hashes: list[SecretStr]) -> list[SecretStr]:
        for position, hashed in enumerate(hashes, 1):
            problem = hash_problem(hashed.get_secret_value())
            if problem:
                raise ValueError(f"secret hash {position} {problem}")
        return hashes

    @model_validator(mode="after")
    def _default_name(self) -> OAuthClient:
        self.name = self.name or self.client_id
        return self


class OAuthSettings(Section):
    """The token endpoint (``POST /oauth/token``): OAuth 2.0 client credentials, RFC 6749 §4.4.

    Access tokens are JWTs (RFC 9068) signed with HS256; every server that answers for the same
    name must hold the same ``signing_key``, so none is ever generated.
    """

    clients: list[OAuthClient] = Field(
        default_factory=list, description="Clients allowed to get access tokens."
    )
    signing_key: SecretStr | None = Field(
        default=None,
        description="HS256 key signing the access tokens, at least 32 bytes "
        "(`openssl rand -base64 48`); required with clients.",
    )
    previous_signing_keys: list[SecretStr] = Field(
        default_factory=list,
        description="Keys that signed before signing_key: their tokens are accepted until they "
        "expire, so the key can be changed without refusing a token already handed out.",
    )
    issuer: str = Field(
        default="scim-ldap",
        min_length=1,
        description="iss of the tokens, checked on every request (e.g. https://scim.example.com).",
    )
    audience: str = Field(
        default="scim-ldap",
        min_length=1,
        description="aud of the tokens, checked on every request (e.g. the SCIM base URL).",
    )
    token_lifetime: int = Field(
        default=3600,
        ge=300,
        le=21600,
        description="Seconds an access token is valid (5 minutes to 6 hours).",
    )

    @field_validator("signing_key", "previous_signing_keys")
    @classmethod
    def _check_key(
        cls, key: SecretStr | list[SecretStr] | None
    ) -> SecretStr | list[SecretStr] | None:
        for one in key if isinstance(key, list) else [key] if key else []:
            if len(one.get_secret_value().encode()) < MIN_SIGNING_KEY_BYTES:
                raise ValueError(f"a signing key must be at least {MIN_SIGNING_KEY_BYTES} bytes")
        return key

    @model_validator(mode="after")
    def _check_clients(self) -> OAuthSettings:
        if self.clients and self.signing_key is None:
            raise ValueError(
                "auth.oauth.clients need auth.oauth.signing_key (or signing_key_file): the same "
                "key on every server, so that a token one issues, all accept"
            )
        seen: set[str] = set()
        for client in self.clients:
            if client.client_id in seen:
                raise ValueError(f"client_id {client.client_id!r} is listed twice")
            seen.add(client.client_id)
        return self


class AuthSettings(Section):
    """Who may call the SCIM endpoints: static bearer tokens and OAuth clients.

    ``tokens`` takes plain strings (named ``token-1``, ``token-2``... by position) or
    ``{name, token}`` tables; several at once for rotation.
    """

    tokens: list[StaticToken] = Field(default_factory=list, description="Accepted bearer tokens.")
    oauth: OAuthSettings = Field(default_factory=OAuthSettings)

    @field_validator("tokens", mode="before")
    @classmethod
    def _plain_tokens(cls, tokens: Any) -> Any:
        if not isinstance(tokens, list):
            return tokens
        return [{"token": t} if isinstance(t, str | SecretStr) else t for t in tokens]

    @model_validator(mode="after")
    def _unique_names(self) -> AuthSettings:
        for position, token in enumerate(self.tokens, 1):
            token.name = token.name or f"token-{position}"
        seen: set[str] = set()
        for name in [t.name for t in self.tokens] + [c.name for c in self.oauth.clients]:
            if name in seen:
                raise ValueError(
                    f"the name {name!r} is given to two tokens or clients; logs and the audit "
                    "trail need to tell them apart"
                )
            seen.add(name)
        return self

    @property
    def configured(self) -> bool:
        """Whether any caller can authenticate at all."""
        return bool(self.tokens or self.oauth.clients)


class AuditSettings(Section):
    """Where the audit trail of directory changes goes (one JSON line per change)."""

    sink: Literal["stdout", "file", "syslog", "off"] = Field(
        default="stdout",
        description="stdout (logs go to stderr), file (audit.path), syslog "
        "(audit.syslog_address) or off.",
    )
    path: Path | None = Field(
        default=None, description="File the trail is appended to when audit.sink is 'file'."
    )
    syslog_address: str = Field(
        default="/dev/log",
        description="Syslog socket path, or host:port (UDP), when audit.sink is 'syslog'.",
    )

    @field_validator("syslog_address")
    @classmethod
    def _check_syslog_address(cls, value: str) -> str:
        if value.startswith("/"):
            return value
        host, _, port = value.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("must be a socket path (/dev/log) or host:port")
        return value

    @model_validator(mode="after")
    def _check_path(self) -> AuditSettings:
        if self.sink == "file" and self.path is None:
            raise ValueError("audit.sink 'file' needs audit.path")
        return self


class MetricsSettings(Section):
    """Who may read the Prometheus metrics at /metrics."""

    token: SecretStr | None = Field(
        default=None,
        description="Bearer token a scraper must send; without one (and metrics.public off) "
        "/metrics answers 403.",
    )
    public: bool = Field(
        default=False,
        description="Serve /metrics without a token (only where the port is not reachable "
        "from untrusted networks).",
    )

    @field_validator("token")
    @classmethod
    def _check_token(cls, token: SecretStr | None) -> SecretStr | None:
        if token is not None and len(token.get_secret_value()) < 16:
            raise ValueError("the metrics token must be at least 16 characters long")
        return token


class HttpSettings(Section):
    """The HTTP side: paths, limits and the reverse proxy in front."""

    base_path: str = Field(default="/scim/v2", description="Path the SCIM endpoints live under.")
    public_base_url: AnyHttpUrl | None = Field(
        default=None,
        description="Public URL of the SCIM base (e.g. https://scim.example.com/scim/v2); "
        "wins over forwarded headers.",
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="Client addresses whose X-Forwarded-Proto/-Host are believed ('*' for all).",
    )
    max_page_size: int = Field(default=200, ge=1, le=10000, description="Largest page served.")
    default_page_size: int = Field(default=100, ge=1, description="Page size when none asked.")
    max_body_bytes: int = Field(default=1_048_576, ge=1024, description="Largest request body.")
    request_timeout: float = Field(
        default=20.0,
        gt=0,
        description="Seconds after which any request answers 503 with Retry-After; a little "
        "over ldap.receive_timeout, so a stalled directory is reported, not waited for.",
    )
    max_filter_length: int = Field(
        default=10_000,
        ge=100,
        description="Longest filter, in characters: Entra's filters are one or two comparisons "
        "(under 600), and 200 'id eq' terms take about 9,000.",
    )
    max_filter_terms: int = Field(
        default=200,
        ge=1,
        description="Most comparisons in one filter: each becomes one or more LDAP assertions "
        "the directory evaluates on every candidate entry.",
    )

    @field_validator("base_path")
    @classmethod
    def _check_base_path(cls, value: str) -> str:
        if not re.match(r"^(/[A-Za-z0-9._~-]+)+$", value):
            raise ValueError("must look like /scim/v2 (no trailing slash)")
        return value

    @model_validator(mode="after")
    def _check_pages(self) -> HttpSettings:
        self.default_page_size = min(self.default_page_size, self.max_page_size)
        return self


class Settings(BaseSettings):
    """All settings of the server."""

    model_config = SettingsConfigDict(
        env_prefix="SCIM_LDAP_",
        env_nested_delimiter="__",
        extra="forbid",
    )
    toml_file: ClassVar[Path | None] = None
    secrets_dir: ClassVar[Path | None] = None

    ldap: LdapSettings = Field(default_factory=LdapSettings)
    users: UserSettings = Field(default_factory=UserSettings)
    posix: PosixSettings = Field(default_factory=PosixSettings)
    accounts: AccountSettings = Field(default_factory=AccountSettings)
    groups: GroupSettings = Field(default_factory=GroupSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    log_level: str = Field(default="info", pattern="^(debug|info|warning|error)$")
    log_format: Literal["json", "text"] = Field(
        default="json", description="json (one object per line) or text (key=value)."
    )
    audit: AuditSettings = Field(default_factory=AuditSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)

    @model_validator(mode="after")
    def _default_pool(self) -> Settings:
        self.posix.id_pool_dn = self.posix.id_pool_dn or f"cn=scim-ldap-ids,{self.ldap.base_dn}"
        base = self.ldap.base_dn
        self.groups.id_pool_dn = self.groups.id_pool_dn or f"cn=scim-ldap-gids,{base}"
        self.groups.sudoers_dn = self.groups.sudoers_dn or f"ou=sudoers,{base}"
        if same_entry(self.groups.id_pool_dn, self.posix.id_pool_dn):
            raise ValueError("groups.id_pool_dn and posix.id_pool_dn must be different entries")
        low, high = self.groups.gid_range
        if self.posix.gid_strategy == "private-group":
            uid_low, uid_high = self.posix.uid_range
            if low <= uid_high and uid_low <= high:
                raise ValueError(
                    f"groups.gid_range {low}-{high} overlaps posix.uid_range {uid_low}-{uid_high}: "
                    "with posix.gid_strategy 'private-group' every uidNumber is also the "
                    "gidNumber of a private group"
                )
        if low <= self.posix.default_gid_number <= high:
            raise ValueError(
                f"groups.gid_range {low}-{high} holds posix.default_gid_number "
                f"{self.posix.default_gid_number}"
            )
        self.accounts.ppolicy_dn = self.accounts.ppolicy_dn or f"cn=default,ou=policies,{base}"
        if "hide" in self.accounts.disable and not self.users.stash_attribute:
            raise ValueError(
                "accounts.disable 'hide' needs users.stash_attribute: the object classes it "
                "removes are restored from there on enable"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if cls.secrets_dir is not None:
            sources.append(SecretsDirectory(settings_cls, cls.secrets_dir))
        if cls.toml_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=cls.toml_file))
        return tuple(SecretFiles(settings_cls, source) for source in sources)


def same_entry(left: str, right: str) -> bool:
    """Whether two counter DNs name one entry (compared loosely: case and spaces)."""
    return "".join(left.split()).lower() == "".join(right.split()).lower()


def load_settings(toml_file: Path | None = None, **overrides: Any) -> Settings:
    """Read settings from the environment, the secrets directory and, when given, a TOML file.

    A file a secret is read from that cannot be read is a ``SecretFileError`` naming it.
    """

    class _FileSettings(Settings):
        toml_file: ClassVar[Path | None] = None
        secrets_dir: ClassVar[Path | None] = None

    _FileSettings.toml_file = toml_file
    _FileSettings.secrets_dir = secrets_directory(os.environ)
    unknown = unknown_environment(os.environ)
    if unknown:
        raise ValueError(
            "unknown settings in the environment: "
            + ", ".join(unknown)
            + f" (known sections and keys: {', '.join(sorted(Settings.model_fields))})"
        )
    return _FileSettings(**overrides)


ENV_PREFIX = "SCIM_LDAP_"


def unknown_environment(environment: Mapping[str, str]) -> list[str]:
    """``SCIM_LDAP_*`` variables that name no setting (pydantic-settings would ignore them).

    Keys inside a section (``SCIM_LDAP_LDAP__BIND_PASWORD``, ``..._BIND_PASWORD_FILE``) are
    refused by the section itself, and a ``_FILE`` of a secret is read as that secret; this
    catches the top level (``SCIM_LDAP_LOG_LEVL``, ``SCIM_LDAP_LDAPP__URLS``).
    ``SCIM_LDAP_SECRETS_DIR`` names the secrets directory.
    """
    known = {name.upper() for name in Settings.model_fields}
    found = []
    for name in environment:
        if not name.upper().startswith(ENV_PREFIX) or name.upper() == SECRETS_DIR_VARIABLE:
            continue
        head = name[len(ENV_PREFIX) :].split("__", 1)[0].upper()
        if head not in known:
            found.append(name)
    return sorted(found)


# ---- secrets read from files

SECRETS_DIR_VARIABLE = "SCIM_LDAP_SECRETS_DIR"
CREDENTIALS_DIRECTORY = "CREDENTIALS_DIRECTORY"
"""Set by systemd for a unit with ``LoadCredential=`` or ``SetCredential=``."""

FileKind = Literal["text", "lines"]


class SecretFileError(ValueError):
    """A file a secret is to be read from cannot be; the message names the file, never content."""


def secrets_directory(environment: Mapping[str, str]) -> Path | None:
    """``$SCIM_LDAP_SECRETS_DIR``, else systemd's ``$CREDENTIALS_DIRECTORY``, else none."""
    chosen = environment.get(SECRETS_DIR_VARIABLE) or environment.get(CREDENTIALS_DIRECTORY)
    return Path(chosen) if chosen else None


def _file_kind(field: FieldInfo | None) -> FileKind | None:
    """How a secret setting is read from a file: the whole text, or one value per line."""
    if field is None:
        return None
    annotation = field.annotation
    if get_origin(annotation) is list:
        return "lines" if get_args(annotation)[0] in (SecretStr, StaticToken) else None
    if annotation is SecretStr or SecretStr in get_args(annotation):
        return "text"
    return None


def _section_of(field: FieldInfo | None) -> tuple[type[BaseModel], bool] | None:
    """The section a field holds, and whether it holds a list of them."""
    if field is None:
        return None
    annotation = field.annotation
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    if get_origin(annotation) is list:
        (item,) = get_args(annotation)
        if isinstance(item, type) and issubclass(item, BaseModel):
            return item, True
    return None


def read_secret_file(path: str | Path, where: str) -> str:
    """The text of a secret file, without its trailing newline."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise SecretFileError(f"{where}: cannot read {path}: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        raise SecretFileError(f"{where}: {path} is not UTF-8 text") from None
    if not text:
        raise SecretFileError(f"{where}: {path} is empty")
    return text


def read_secret_files(
    model: type[BaseModel], data: Mapping[str, Any], where: str
) -> dict[str, Any]:
    """``data`` with every ``<secret>_file`` key replaced by ``<secret>`` read from that file.

    A secret that is a list (``auth.tokens``) has one value per non-empty line of its file,
    without the spaces around it. A ``_file`` key of a setting that is no secret is left
    for the section to refuse by name.
    """
    resolved = dict(data)
    for key in [k for k in resolved if isinstance(k, str) and k.endswith("_file")]:
        stem = key.removesuffix("_file")
        kind = _file_kind(model.model_fields.get(stem))
        if kind is None:
            continue
        if stem in resolved:
            raise SecretFileError(f"{where}{stem} and {where}{key} are both given; keep one")
        text = read_secret_file(resolved.pop(key), f"{where}{key}")
        lines = [line.strip() for line in text.splitlines()]
        resolved[stem] = text if kind == "text" else [line for line in lines if line]
    for key, value in resolved.items():
        section = _section_of(model.model_fields.get(key))
        if section is None:
            continue
        inner, many = section
        if not many and isinstance(value, Mapping):
            resolved[key] = read_secret_files(inner, value, f"{where}{key}.")
        elif many and isinstance(value, list):
            resolved[key] = [
                read_secret_files(inner, item, f"{where}{key}[{position}].")
                if isinstance(item, Mapping)
                else item
                for position, item in enumerate(value)
            ]
    return resolved


class SecretFiles(PydanticBaseSettingsSource):
    """Another source's values with the secrets its ``*_file`` keys name read in.

    Each source is read on its own, so a ``SCIM_LDAP_LDAP__BIND_PASSWORD_FILE`` in the
    environment wins over a ``bind_password`` in the TOML file like any other variable.
    """

    def __init__(self, settings_cls: type[BaseSettings], inner: PydanticBaseSettingsSource):
        super().__init__(settings_cls)
        self.inner = inner
        self.__name__ = getattr(inner, "__name__", type(inner).__name__)

    def _set_current_state(self, state: dict[str, Any]) -> None:
        super()._set_current_state(state)
        self.inner._set_current_state(state)

    def _set_settings_sources_data(self, states: dict[str, dict[str, Any]]) -> None:
        super()._set_settings_sources_data(states)
        self.inner._set_settings_sources_data(states)

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self.inner.get_field_value(field, field_name)

    def __call__(self) -> dict[str, Any]:
        return read_secret_files(self.settings_cls, self.inner(), "")


class SecretsDirectory(PydanticBaseSettingsSource):
    """Secrets as files named like their variables (``SCIM_LDAP_LDAP__BIND_PASSWORD``) in one
    directory, as systemd's credentials (``$CREDENTIALS_DIRECTORY``) and container secrets
    provide them. Files not named ``SCIM_LDAP_*`` are not read; one naming a setting that is
    not a secret is an error naming the file."""

    def __init__(self, settings_cls: type[BaseSettings], directory: Path) -> None:
        super().__init__(settings_cls)
        self.directory = directory

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        try:
            entries = sorted(self.directory.iterdir())
        except OSError as exc:
            raise SecretFileError(
                f"secrets directory {self.directory}: cannot read it: {exc.strerror or exc}"
            ) from None
        found: dict[str, Any] = {}
        for entry in entries:
            if not entry.name.upper().startswith(ENV_PREFIX) or entry.is_dir():
                continue
            keys = entry.name[len(ENV_PREFIX) :].lower().split("__")
            model: type[BaseModel] = self.settings_cls
            node = found
            for key in keys[:-1]:
                section = _section_of(model.model_fields.get(key))
                if section is None or section[1]:
                    break
                model = section[0]
                node = node.setdefault(key, {})
            else:
                if _file_kind(model.model_fields.get(keys[-1])) is not None:
                    node[f"{keys[-1]}_file"] = str(entry)
                    continue
            raise SecretFileError(
                f"{entry}: {'.'.join(keys)} is not a secret setting (a file in the secrets "
                f"directory is named like the variable of a secret, e.g. "
                f"{ENV_PREFIX}LDAP__BIND_PASSWORD)"
            )
        return found
