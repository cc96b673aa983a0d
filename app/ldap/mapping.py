"""SCIM slots <-> LDAP attributes of a user entry, driven by the configured mapping."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ldap3.utils.ciDict import CaseInsensitiveDict
from ldap3.utils.conv import escape_filter_chars
from scim2_models import InvalidValueException, SCIMException

from app.attributes import (
    ACTIVE,
    GECOS,
    GID_NUMBER,
    HOME_DIRECTORY,
    LOGIN_SHELL,
    MANAGER,
    UID_NUMBER,
    USER_NAME,
    Catalog,
    Slot,
    SlotValue,
)
from app.config import AccountSettings, LdapSettings, PosixSettings, UserSettings
from app.ldap.accounts import ACCOUNT_FILTER, DisableProfile, enabled_view, read_stash
from app.ldap.logins import LoginRule
from app.ldap.pending import Pending

if TYPE_CHECKING:
    from app.ldap.connection import Directory
    from app.ldap.subschema import Subschema

log = logging.getLogger(__name__)

OPERATIONAL = ("entryUUID", "entryCSN", "createTimestamp", "modifyTimestamp")

LdapValues = dict[str, list[str]]


@dataclass
class UserRecord:
    """A user entry read from the directory, in slot form."""

    id: str
    dn: str
    login: str
    values: dict[Slot, SlotValue]
    manager_dn: str | None
    object_classes: list[str]
    created: datetime | None
    modified: datetime | None
    version: str | None
    defaults: dict[str, list[str]] = field(default_factory=dict)
    """Server-assigned defaults (lower-cased attribute -> values), not SCIM values."""
    extra: dict[str, list[str]] = field(default_factory=dict)
    """Attributes the disable profile changes that no slot maps, as they are when enabled."""
    pending: Pending | None = None
    """What an interrupted write of this entry still has to do (app/ldap/pending.py)."""
    live_classes: list[str] = field(default_factory=list)
    """The object classes the entry has now (``object_classes`` is its enabled view)."""

    @property
    def disabled_in_directory(self) -> bool:
        """Whether the entry currently carries the disabled profile (active is false)."""
        return self.values.get(ACTIVE) is False


TEXT_SYNTAXES = frozenset(
    f"1.3.6.1.4.1.1466.115.121.1.{n}" for n in (7, 11, 15, 22, 24, 26, 27, 41, 44, 50)
)
"""Syntaxes whose values JSON carries as text and the directory takes as sent: Boolean,
Country, Directory String, Facsimile number, GeneralizedTime, IA5, Integer, Postal Address,
Printable and Telephone Number. Binary, DN and other structured syntaxes are left out."""
_ECMA2HOST_OWN = ("uid", "objectClass", "userPassword")


def ecma2host_attributes(schema: Subschema | None, classes: Sequence[str]) -> list[str]:
    """The LDAP names the ECMA2Host namespace offers: the classes' attributes with text values.

    ``uid``, ``objectClass`` and ``userPassword`` are always there: they have meanings of
    their own (ENTRA.md §4).
    """
    if schema is None:
        return []
    names = [
        a.name
        for a in schema.attributes_of(classes)
        if a.user_modifiable and a.syntax in TEXT_SYNTAXES
    ]
    lowered = {n.lower() for n in names}
    return [*names, *(n for n in _ECMA2HOST_OWN if n.lower() not in lowered)]


def _attribute_infos(schema: Subschema | None, names: Iterable[str]) -> dict[str, Any]:
    """What the subschema says of the mapped attributes (lower-cased names)."""
    if schema is None:
        return {}
    infos: dict[str, Any] = {}
    for name in names:
        found = schema.attribute(name)
        if found is not None:
            infos[name.lower()] = found
    return infos


def parse_generalized_time(value: str | None) -> datetime | None:
    """``20261127140102Z`` (or with fractions) -> an aware datetime."""
    if not value:
        return None
    text = value.rstrip("Z")
    whole, _, fraction = text.partition(".")
    try:
        moment = datetime.strptime(whole, "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    except ValueError:
        return None
    if fraction:
        moment = moment.replace(microsecond=int(fraction[:6].ljust(6, "0")))
    return moment


def _generalized(text: str) -> str:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return text
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return generalized_time(moment)


def generalized_time(moment: datetime) -> str:
    """An aware datetime -> LDAP GeneralizedTime in UTC."""
    return moment.astimezone(UTC).strftime("%Y%m%d%H%M%SZ")


def _all(attributes: Mapping[str, Any], name: str) -> list[Any]:
    value = attributes.get(name)
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _first(attributes: Mapping[str, Any], name: str) -> str | None:
    value = attributes.get(name)
    if isinstance(value, list):
        return str(value[0]) if value else None
    return None if value is None else str(value)


class UserMapping:
    """The configured correspondence between slots and LDAP attributes."""

    def __init__(
        self,
        users: UserSettings,
        ldap: LdapSettings,
        posix: PosixSettings | None = None,
        accounts: AccountSettings | None = None,
        schema: Subschema | None = None,
    ) -> None:
        self.settings = users
        self.schema = schema
        self.posix = posix or PosixSettings()
        self.accounts = accounts or AccountSettings()
        self.profile = DisableProfile(self.accounts, users.stash_attribute)
        self.container = ldap.users_dn
        self.disabled_container = ldap.disabled_dn
        self.archive_container = ldap.archive_dn
        self.rdn = users.rdn_attribute
        self.logins = LoginRule(
            self.posix.login_pattern,
            self.posix.login_max_length,
            self.posix.login_policy,
            self.posix.login_prefix,
        )
        self.user_name_attribute = users.user_name_attribute
        self.active_attribute = users.active_attribute
        self.object_classes = list(users.object_classes)
        own = [
            a
            for a in (
                self.rdn,
                users.user_name_attribute,
                users.active_attribute,
                users.defaults_attribute,
                users.pending_attribute,
                users.stash_attribute,
                users.unmapped_attribute,
                *self.profile.touched,
            )
            if a
        ]
        ecma2host = ecma2host_attributes(schema, users.object_classes) if users.ecma2host else []
        attribute_map = users.attribute_map()
        self.catalog = Catalog(
            attribute_map,
            ldap=_attribute_infos(schema, [*attribute_map.values(), *ecma2host]),
            ecma2host=ecma2host,
            unmapped_attribute=users.unmapped_attribute,
            reserved=own,
        )
        self.by_slot: dict[Slot, str] = dict(self.catalog.by_slot)
        self.orderable: frozenset[str] | None = (
            frozenset(
                a.lower()
                for a in self.by_slot.values()
                if (found := schema.attribute(a)) is not None and found.ordering
            )
            if schema is not None
            else None
        )
        """Mapped attributes with an ORDERING rule (None: the schema was not read)."""
        managed = {self.rdn, "cn", "sn", *self.by_slot.values()}
        if self.user_name_attribute:
            managed.add(self.user_name_attribute)
        if self.active_attribute:
            managed.add(self.active_attribute)
        self.defaults_attribute = users.defaults_attribute
        if self.defaults_attribute:
            managed.add(self.defaults_attribute)
        self.pending_attribute = users.pending_attribute
        if self.pending_attribute:
            managed.add(self.pending_attribute)
        managed.update(self.profile.touched)
        self.extra = [a for a in self.profile.disabled if a not in self.by_slot.values()]
        self.managed = sorted(managed, key=str.lower)
        self.read_attributes = [*self.managed, "objectClass", *OPERATIONAL]
        self.search_base = self.container
        self.search_filter = ACCOUNT_FILTER if self.profile.hides else "(objectClass=posixAccount)"
        if self.profile.moves:
            self.search_base = ldap.base_dn
            self.search_filter = (
                f"(&{self.search_filter}"
                f"(|(entryDN:dnSubtreeMatch:={escape_filter_chars(self.container)})"
                f"(entryDN:dnSubtreeMatch:={escape_filter_chars(self.disabled_container)})))"
            )

    def uses(self) -> dict[str, str]:
        """Every LDAP attribute the mapping writes, with what it holds."""
        uses = {attr: slot.path for slot, attr in self.by_slot.items()}
        uses.update({self.rdn: "the login name", "cn": "cn", "sn": "sn"})
        if self.user_name_attribute:
            uses[self.user_name_attribute] = "userName"
        if self.active_attribute:
            uses[self.active_attribute] = "active"
        if self.defaults_attribute:
            uses[self.defaults_attribute] = "server-assigned defaults"
        if self.pending_attribute:
            uses[self.pending_attribute] = "the marker of an unfinished write"
        for attribute in self.profile.touched:
            uses.setdefault(attribute, "the disable profile (accounts.disable)")
        return uses

    def attribute_of(self, slot: Slot) -> str | None:
        """The LDAP attribute a slot is stored in, or None when it is not stored."""
        if slot == USER_NAME:
            return self.rdn
        if slot == ACTIVE:
            return self.active_attribute
        return self.by_slot.get(slot)

    def record(self, entry: Mapping[str, Any]) -> UserRecord:
        """Turn an ldap3 search entry into a record, as the entry is when enabled."""
        live: Mapping[str, Any] = entry["attributes"]
        stash = (
            read_stash(live.get(self.profile.stash_attribute or ""))
            if (self.profile.stash_attribute)
            else {}
        )
        attrs = CaseInsensitiveDict(enabled_view(live, stash))
        login = _first(attrs, self.rdn) or ""
        values: dict[Slot, SlotValue] = {}
        user_name = _first(attrs, self.user_name_attribute) if self.user_name_attribute else None
        values[USER_NAME] = user_name or login
        active = _first(attrs, self.active_attribute) if self.active_attribute else None
        if active:
            values[ACTIVE] = active.upper() != "FALSE"
        defaults: dict[str, list[str]] = {}
        if self.defaults_attribute:
            for name in attrs.get(self.defaults_attribute) or []:
                found = attrs.get(str(name))
                if found:
                    defaults[str(name).lower()] = [str(v) for v in found]
        manager_dn = None
        for slot, attr in self.by_slot.items():
            if attr.lower() in defaults:
                continue
            raw = _first(attrs, attr)
            if raw is None or raw == "":
                continue
            if slot == MANAGER:
                manager_dn = raw
            elif slot.kind == "strings":
                found = attrs.get(attr) or []
                values[slot] = tuple(
                    str(v) for v in (found if isinstance(found, list) else [found])
                )
            elif slot.kind == "integer":
                try:
                    values[slot] = int(raw)
                except ValueError:
                    continue
            elif slot.kind == "boolean":
                values[slot] = raw.upper() == "TRUE"
            elif slot.kind == "dateTime":
                moment = parse_generalized_time(raw)
                values[slot] = moment.isoformat().replace("+00:00", "Z") if moment else raw
            else:
                values[slot] = raw
        return UserRecord(
            id=_first(attrs, "entryUUID") or "",
            dn=str(entry["dn"]),
            login=login,
            values=values,
            manager_dn=manager_dn,
            object_classes=[str(c) for c in attrs.get("objectClass", [])],
            created=parse_generalized_time(_first(attrs, "createTimestamp")),
            modified=parse_generalized_time(_first(attrs, "modifyTimestamp")),
            version=_first(attrs, "entryCSN"),
            defaults=defaults,
            extra={a: [str(v) for v in _all(attrs, a)] for a in self.extra if _all(attrs, a)},
            pending=self._pending(attrs),
            live_classes=[str(c) for c in _all(live, "objectClass")],
        )

    def _pending(self, attributes: Mapping[str, Any]) -> Pending | None:
        if not self.pending_attribute:
            return None
        value = _first(attributes, self.pending_attribute)
        return Pending.decode(value) if value else None

    def attributes(
        self,
        values: Mapping[Slot, SlotValue],
        login: str,
        manager_dn: str | None,
        defaults: Mapping[str, list[str]] | None = None,
        extra: Mapping[str, list[str]] | None = None,
        classes: Sequence[str] = (),
        home: str | None = None,
    ) -> LdapValues:
        """The managed attributes of an entry holding ``values``, defaults filled in.

        posixAccount requires uidNumber, gidNumber and homeDirectory, and
        inetOrgPerson requires cn and sn: missing ones are derived here, except
        uidNumber, which has no safe default. A default, once assigned, keeps
        its value (``defaults``), so a rename or a changed template never moves
        an existing home directory. The attributes holding defaults are listed
        in the defaults attribute, so they are not answered as SCIM values and
        a client that removes one sees it gone (RFC 7644 §3.5.2.2).
        ``extra`` carries the attributes only the disable profile writes, and
        ``classes`` the entry's object classes as they are when enabled; with
        ``active`` false the profile is applied. ``home`` replaces the templated
        home directory (one no other entry holds, see homes.py).
        """
        out: LdapValues = {"objectClass": list(classes)} if classes else {}
        for slot, attr in self.by_slot.items():
            if slot == MANAGER:
                if manager_dn:
                    out[attr] = [manager_dn]
                continue
            value = values.get(slot)
            if value is None or value in ("", ()):
                continue
            if isinstance(value, bool):
                out[attr] = ["TRUE" if value else "FALSE"]
            elif slot.kind == "dateTime":
                out[attr] = [_generalized(str(value))]
            else:
                out[attr] = list(value) if isinstance(value, tuple) else [str(value)]
        user_name = str(values[USER_NAME])
        out[self.rdn] = [login]
        if self.user_name_attribute and user_name != login:
            out[self.user_name_attribute] = [user_name]
        if self.active_attribute and ACTIVE in values:
            out[self.active_attribute] = ["TRUE" if values[ACTIVE] else "FALSE"]
        fields = self._template_fields(values, login)
        templated_cn = not any(k.lower() == "cn" for k in out)
        if templated_cn:
            out["cn"] = [self._cn(values, login)]
        uid_attr = self.by_slot.get(UID_NUMBER, "uidNumber")
        if uid_attr not in out:
            raise InvalidValueException(
                detail=f"{UID_NUMBER.path} is required: the Linux account needs a uidNumber"
            )
        templates: dict[str, str] = {"sn": login}
        for slot, template in (
            (GID_NUMBER, str(self.posix.default_gid_number)),
            (HOME_DIRECTORY, home or self.posix.home_directory.format_map(fields)),
            (LOGIN_SHELL, self.posix.login_shell.format_map(fields)),
            (GECOS, self.posix.gecos.format_map(fields)),
        ):
            if (target := self.by_slot.get(slot)) and template.strip():
                templates[target] = template
        kept = defaults or {}
        filled = []
        for attr, template in templates.items():
            if attr not in out:
                out[attr] = list(kept.get(attr.lower(), [template]))
                filled.append(attr)
        if templated_cn and self.catalog.ecma2host:
            filled.append("cn")
        if self.defaults_attribute and filled:
            out[self.defaults_attribute] = sorted(filled, key=str.lower)
        for attr, extra_values in (extra or {}).items():
            if extra_values:
                out[attr] = list(extra_values)
        if values.get(ACTIVE) is False:
            return self.profile.disable(out)
        return out

    def _cn(self, values: Mapping[Slot, SlotValue], login: str) -> str:
        """The templated cn (``posix.cn``), recomputed on every write unlike other defaults."""
        text = self.posix.cn.format_map(self._template_fields(values, login)).strip()
        return text or str(values[USER_NAME])

    def templated_home(self, values: Mapping[Slot, SlotValue], login: str) -> str | None:
        """The home directory the template gives, None when the client sends one or none is made."""
        value = values.get(HOME_DIRECTORY)
        if HOME_DIRECTORY not in self.by_slot or (value is not None and value not in ("", ())):
            return None
        home = self.posix.home_directory.format_map(self._template_fields(values, login))
        return home if home.strip() else None

    def _template_fields(self, values: Mapping[Slot, SlotValue], login: str) -> dict[str, str]:
        """What templates may use (``{uid}``, ``{displayName}``...); missing ones are empty."""

        def text(path: str) -> str:
            slot = self.catalog.by_path(path)
            value = values.get(slot) if slot is not None else None
            return "" if value is None else str(value)

        return {
            "uid": login,
            "userName": str(values[USER_NAME]),
            "displayName": text("displayName"),
            "givenName": text("name.givenName"),
            "familyName": text("name.familyName"),
            "uidNumber": text(UID_NUMBER.path),
            "externalId": text("externalId"),
        }


class MappingError(ValueError):
    """The mapping does not fit the directory's schema; the message names each mapping."""


def schema_problems(mapping: UserMapping, schema: Subschema) -> list[str]:
    """Mappings the directory's schema cannot hold: unknown attributes, types, multiplicity.

    ``mapping`` is built with ``schema``, so custom attributes carry its types.
    """
    problems = []
    for slot, name in mapping.catalog.mapped.items():
        found = schema.attribute(name)
        where = f"users.mapping {slot.path!r} -> {name}"
        if found is None:
            problems.append(f"{where}: the directory schema has no attribute {name}")
            continue
        if slot.kind == "strings" and found.single_value:
            problems.append(f"{where}: {name} is SINGLE-VALUE, {slot.path} is multi-valued")
        wanted = {"integer": "integer", "boolean": "boolean"}.get(slot.kind)
        if found.scim_type in ("integer", "boolean") and wanted != found.scim_type:
            problems.append(
                f"{where}: {name} holds {found.scim_type} values, {slot.path} is a {slot.kind}"
            )
    return problems


def read_schema(directory: Directory) -> Subschema | None:
    """The directory's schema, or None (logged) when it cannot be read now."""
    from app.ldap.subschema import Subschema

    try:
        with directory.session() as session:
            return Subschema.read(session)
    except SCIMException as problem:
        log.warning(
            "the directory schema cannot be read (%s): custom mappings are typed as strings "
            "and the ECMA2Host namespace is not offered until the server restarts",
            problem.detail,
        )
        return None
