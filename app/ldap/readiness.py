"""What the directory is ready for: the probes of ``python -m app check``.

``assess`` answers, for the current settings, whether the first creates,
updates, disables, enables, renames, deletes and archives would succeed, and
names what is missing with its fix:

- at least one bearer token (``auth.tokens``) or OAuth client (``auth.oauth.clients``), else
  every request is 401;
- TLS: every URL of ``ldap.urls`` that uses TLS verifies against ``ldap.ca_file``;
- the schema holds every class and attribute the server writes (errors) and
  the directory indexes what it searches (warnings);
- the containers exist: ``ldap.users_dn``, ``ldap.groups_dn``,
  ``ldap.disabled_dn`` (disable action ``move``), ``ldap.archive_dn``
  (``accounts.delete = "archive"``), ``groups.sudoers_dn`` (``groups.sudo``);
- write rights there, tested by writing: a probe entry of the kind the
  server writes (the configured user or group classes, a sudoRole) is added
  with a random ``scim-ldap-check-*`` name, modified, disabled and enabled
  as the profile does, moved and renamed where the server moves and renames,
  and always deleted; a probe that cannot be deleted is reported by DN;
- the id counters (``posix.id_pool_dn``, ``groups.id_pool_dn``): readable,
  and writable by a modify that deletes and adds back the same value (the
  compare-and-swap of ``app.ldap.ids`` with no effect), or an add and delete
  of the counter entry when it does not exist yet;
- the default group (``gid_strategy = "default-group"``) holds
  ``default_gid_number`` (or the server can create it: the group probe), and
  the login group (``remove-group``) exists and takes members;
- with ``lock`` in the disable profile: ``pwdAccountLockedTime`` in the schema,
  and a ppolicy overlay with a default policy on the users' database.

Everything it writes it puts back; it reads cn=config only when allowed to.
"""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ldap3 import BASE, LEVEL, MODIFY_ADD, MODIFY_DELETE, MODIFY_REPLACE, Connection
from ldap3.core.exceptions import LDAPException
from scim2_models import SCIMException

from app.clientsecrets import ROUNDS, rounds_of
from app.config import LdapSettings, Settings
from app.ldap.accounts import LOCK_ATTRIBUTE, LOCKED, hidden_classes
from app.ldap.connection import Directory, DirectoryConfigError, Session
from app.ldap.dn import child_dn, first_rdn, is_under, parent_of, rdn_values
from app.ldap.groupentries import GroupDirectory
from app.ldap.ids import POOL_CLASS, GidAllocator, IdAllocator, NumberPool
from app.ldap.mapping import UserMapping, schema_problems
from app.ldap.preflight import LOAD_SCHEMA
from app.ldap.subschema import Subschema
from app.ldap.sudoroles import SUDO_CLASS
from app.ldap.users import UserDirectory

PROBE_PREFIX = "scim-ldap-check-"
"""The start of every probe entry's name, to find a leftover."""

_INTEGER = "1.3.6.1.4.1.1466.115.121.1.27"
_BOOLEAN = "1.3.6.1.4.1.1466.115.121.1.7"
_TIME = "1.3.6.1.4.1.1466.115.121.1.24"
_DN = "1.3.6.1.4.1.1466.115.121.1.12"

_INSUFFICIENT_ACCESS = 50
_NO_SUCH_OBJECT = 32
_SCHEMA_CODES = {17, 18, 21, 64, 65, 69}
"""undefinedAttributeType, inappropriateMatching, invalidAttributeSyntax, namingViolation,
objectClassViolation, objectClassModsProhibited."""

_NO_TOKEN = (
    "auth.tokens is empty and auth.oauth.clients too: every request would be answered 401; set "
    "at least one bearer token (SCIM_LDAP_AUTH__TOKENS='[\"<token>\"]') or OAuth client"
)


@dataclass
class Readiness:
    """Problems that would fail requests (``errors``) and ones that would slow or weaken them."""

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        return not self.errors

    def extend(self, other: Readiness) -> None:
        self.errors += other.errors
        self.warnings += other.warnings


class _RefusedError(Exception):
    """A probe step the directory refused; ``args[0]`` is the message."""


def _loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def connection_findings(settings: Settings) -> Readiness:
    """Tokens and TLS: what needs no directory, or only a connection to each URL."""
    found = Readiness()
    if not settings.auth.configured:
        found.errors.append(_NO_TOKEN)
    found.warnings += secret_hash_warnings(settings)
    found.extend(tls_findings(settings.ldap))
    return found


def secret_hash_warnings(settings: Settings) -> list[str]:
    """Client secret hashes cheaper to guess against than the ones ``hash-secret`` makes."""
    warnings = []
    for client in settings.auth.oauth.clients:
        for position, hashed in enumerate(client.secret_hashes, 1):
            rounds = rounds_of(hashed.get_secret_value())
            if rounds < ROUNDS:
                warnings.append(
                    f"auth.oauth.clients {client.name}: secret hash {position} has {rounds} "
                    f"PBKDF2 rounds; python -m app hash-secret makes one of {ROUNDS}"
                )
    return warnings


def tls_findings(ldap: LdapSettings) -> Readiness:
    """Each URL that uses TLS must verify; passwords on a network need TLS."""
    found = Readiness()
    for url in ldap.urls:
        tls = url.startswith("ldaps://") or ldap.start_tls
        if not tls:
            if not _loopback(url):
                found.warnings.append(
                    f"{url} is used without TLS: the bind password and every password the "
                    "server sets cross the network in the clear; set ldap.start_tls = true "
                    "or use an ldaps:// URL"
                )
            continue
        one = Directory(ldap.model_copy(update={"urls": [url]}))
        try:
            problem = one.check()
        except DirectoryConfigError:
            problem = ""
        finally:
            one.close()
        failed = problem.find("TLS certificate verification failed")
        if failed >= 0:
            ca = f"ldap.ca_file = {ldap.ca_file}" if ldap.ca_file else "the system's CAs"
            found.errors.append(
                f"{url}: {problem[failed:]}: the server's certificate does not verify against "
                f"{ca}; set ldap.ca_file to the CA bundle that signed it"
            )
        elif problem and len(ldap.urls) > 1:
            found.warnings.append(f"{url} is not reachable now ({problem})")
    return found


def _describe(result: dict[str, Any]) -> str:
    code = result.get("result")
    text = str(result.get("description") or "")
    message = str(result.get("message") or "").strip()
    return f"{text} (LDAP code {code}){': ' + message if message else ''}"


class _Prober:
    """The probes of one assessment, on one connection."""

    def __init__(self, settings: Settings, session: Session, schema: Subschema | None) -> None:
        self.settings = settings
        self.conn: Connection = session.conn
        self.session = session
        self.schema = schema
        self.bind_dn = settings.ldap.bind_dn or "the anonymous bind"
        self.found = Readiness()

    # ---- raw operations

    def _result(self) -> dict[str, Any]:
        return dict(self.conn.result)

    def _do(self, what: str, where: str, setting: str, call: Callable[[], object]) -> None:
        """Run one write; raise _RefusedError naming it, the container and the fix."""
        try:
            call()
        except LDAPException as exc:
            raise _RefusedError(f"cannot {what}: {type(exc).__name__}: {exc}") from None
        result = self._result()
        code = result.get("result")
        if code == 0:
            return
        raise _RefusedError(
            f"cannot {what}: {_describe(result)}; {self._fix(code, where, setting)}"
        )

    def _fix(self, code: object, where: str, setting: str) -> str:
        if code == _INSUFFICIENT_ACCESS and setting.endswith("id_pool_dn"):
            return (
                f"grant {self.bind_dn} write access to the counter ({setting}) and the right to "
                f'add it, e.g. olcAccess: to dn.base="{where}" by dn.exact="{self.bind_dn}" write, '
                f'and olcAccess: to dn.base="{parent_of(where)}" attrs=children by '
                f'dn.exact="{self.bind_dn}" write'
            )
        if code == _INSUFFICIENT_ACCESS:
            return (
                f"grant {self.bind_dn} write access below {where} ({setting}), e.g. "
                f'olcAccess: to dn.subtree="{where}" by dn.exact="{self.bind_dn}" write'
            )
        if code == _NO_SUCH_OBJECT:
            return f"create {where} or change {setting}"
        if code in _SCHEMA_CODES:
            return f"{LOAD_SCHEMA}, or change the configured classes and mapping"
        return f"check what the directory allows {self.bind_dn} below {where} ({setting})"

    def _exists(self, dn: str) -> bool | None:
        """Whether ``dn`` exists (None: the search failed otherwise)."""
        try:
            self.conn.search(dn, "(objectClass=*)", BASE, attributes=["1.1"])
        except LDAPException:
            return None
        code = self._result().get("result")
        if code == 0:
            return True
        if code == _NO_SUCH_OBJECT:
            return False
        return None

    def _read(self, dn: str, attributes: list[str]) -> dict[str, Any] | None:
        try:
            self.conn.search(dn, "(objectClass=*)", BASE, attributes=attributes)
        except LDAPException:
            return None
        if self._result().get("result") != 0:
            return None
        for entry in self.conn.response or []:
            if entry.get("type") == "searchResEntry":
                found: dict[str, Any] = dict(entry["attributes"])
                return found
        return None

    def container(self, dn: str, setting: str, why: str) -> bool:
        exists = self._exists(dn)
        if exists:
            return True
        if exists is None:
            self.found.errors.append(
                f"{setting} {dn} ({why}) cannot be read: {_describe(self._result())}; grant "
                f"{self.bind_dn} read access to it"
            )
        else:
            self.found.errors.append(
                f"{setting} {dn} ({why}) does not exist: create it (an organizationalUnit) or "
                f"change {setting}"
            )
        return False

    @contextmanager
    def probe(self, dn: str) -> Iterator[list[str]]:
        """Yields a one-item list holding where the probe entry is now; deletes it at the end."""
        where = [dn]
        try:
            yield where
        finally:
            current = where[0]
            if self._exists(current):
                try:
                    self.conn.delete(current)
                    code = self._result().get("result")
                    problem = _describe(self._result())
                except LDAPException as exc:
                    code, problem = -1, str(exc)
                if code != 0:
                    self.found.errors.append(
                        f"the probe entry {current} is left in the directory (cannot delete it: "
                        f"{problem}): delete it by hand, and grant {self.bind_dn} the right to "
                        f"delete entries below {parent_of(current)}"
                    )

    # ---- entries of the configured classes

    def _known_classes(self, classes: list[str]) -> bool:
        if self.schema is None:
            return True
        return all(self.schema.object_class(c) is not None for c in classes)

    def _attribute_names(self, classes: list[str]) -> set[str]:
        if self.schema is None:
            return set()
        names: set[str] = set()
        for attribute in self.schema.attributes_of(classes):
            names.update(n.lower() for n in attribute.names)
        return names

    def _known(self, attribute: str) -> bool:
        return self.schema is None or self.schema.attribute(attribute) is not None

    def entry(self, classes: list[str], name: str, values: dict[str, str]) -> dict[str, Any]:
        """An entry of ``classes``: each MUST filled (``values`` first), then ``values`` allowed."""
        lowered = {k.lower(): v for k, v in values.items()}
        attributes: dict[str, Any] = {"objectClass": classes}
        required = self.schema.required_by(classes) if self.schema else set(lowered)
        for key in sorted(required - {"objectclass"}):
            found = self.schema.attribute(key) if self.schema else None
            spelled = found.name if found else key
            if key in lowered:
                attributes[spelled] = lowered[key]
            elif found is not None and found.syntax == _INTEGER:
                attributes[spelled] = "0"
            elif found is not None and found.syntax == _BOOLEAN:
                attributes[spelled] = "FALSE"
            elif found is not None and found.syntax == _TIME:
                attributes[spelled] = "20000101000000Z"
            elif found is not None and found.syntax == _DN:
                attributes[spelled] = self.settings.ldap.base_dn
            else:
                attributes[spelled] = name
        allowed = self._attribute_names(classes)
        present = {k.lower() for k in attributes}
        for key, value in values.items():
            if key.lower() not in present and (not allowed or key.lower() in allowed):
                attributes[key] = value
        return attributes

    # ---- users

    def users(self, mapping: UserMapping) -> None:
        ldap, accounts, posix = self.settings.ldap, self.settings.accounts, self.settings.posix
        profile = mapping.profile
        if not self.container(ldap.users_dn, "ldap.users_dn", "where users are created"):
            return
        moves = profile.moves and self.container(
            ldap.disabled_dn, "ldap.disabled_dn", "where the move action puts disabled users"
        )
        archives = accounts.delete == "archive" and self.container(
            ldap.archive_dn, "ldap.archive_dn", 'where accounts.delete = "archive" puts users'
        )
        classes = ["top", *mapping.object_classes]
        if not self._known_classes(classes):
            return
        name = PROBE_PREFIX + secrets.token_hex(4)
        number = str(2_000_000_000 + secrets.randbelow(100_000_000))
        values = {
            mapping.rdn: name,
            "cn": name,
            "sn": name,
            "uidNumber": number,
            "gidNumber": str(posix.default_gid_number),
            "homeDirectory": f"/nonexistent/{name}",
        }
        if mapping.user_name_attribute:
            values[mapping.user_name_attribute] = name
        if mapping.active_attribute:
            values[mapping.active_attribute] = "TRUE"
        attributes = self.entry(classes, name, values)
        dn = child_dn(mapping.rdn, name, ldap.users_dn)
        with self.probe(dn) as where:
            try:
                self._do(
                    f"create a user below ldap.users_dn {ldap.users_dn}",
                    ldap.users_dn,
                    "ldap.users_dn",
                    lambda: self.conn.add(dn, attributes=attributes),
                )
                self._do(
                    "update a user",
                    ldap.users_dn,
                    "ldap.users_dn",
                    lambda: self.conn.modify(dn, {"cn": [(MODIFY_REPLACE, [f"{name} updated"])]}),
                )
                attributes["cn"] = f"{name} updated"
                disabling, enabling = self._disable_changes(mapping, attributes)
                what = f"accounts.disable {sorted(profile.actions)}"
                if disabling:
                    self._do(
                        f"disable a user ({what})",
                        ldap.users_dn,
                        "ldap.users_dn",
                        lambda: self.conn.modify(where[0], disabling),
                    )
                if moves:
                    self._move(where, ldap.disabled_dn)
                    self._move(where, ldap.users_dn, back=True)
                if enabling:
                    self._do(
                        f"enable a user ({what})",
                        ldap.users_dn,
                        "ldap.users_dn",
                        lambda: self.conn.modify(where[0], enabling),
                    )
                if posix.rename_login:
                    renamed = f"{name}r"
                    self._do(
                        "rename a user (posix.rename_login)",
                        ldap.users_dn,
                        "ldap.users_dn",
                        lambda: self.conn.modify_dn(where[0], first_rdn_of(mapping.rdn, renamed)),
                    )
                    where[0] = child_dn(mapping.rdn, renamed, ldap.users_dn)
                    name = renamed
                if archives:
                    self._archive(where, mapping, attributes, name, number)
                self._do(
                    "delete a user",
                    parent_of(where[0]),
                    "ldap.archive_dn" if archives else "ldap.users_dn",
                    lambda: self.conn.delete(where[0]),
                )
            except _RefusedError as refused:
                self.found.errors.append(str(refused.args[0]))

    def _disable_changes(
        self, mapping: UserMapping, attributes: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The modifies that disable and enable the probe, as the profile writes them."""
        profile = mapping.profile
        enabled = {k: v if isinstance(v, list) else [v] for k, v in attributes.items()}
        disabled = profile.disable(enabled)
        disabling: dict[str, Any] = {}
        enabling: dict[str, Any] = {}
        for key in sorted({*enabled, *disabled}):
            before, after = enabled.get(key, []), disabled.get(key, [])
            if before == after or not self._known(key):
                continue
            disabling[key] = [(MODIFY_REPLACE, after)]
            enabling[key] = [(MODIFY_REPLACE, before)]
        return disabling, enabling

    def _move(self, where: list[str], to: str, *, back: bool = False) -> None:
        rdn = first_rdn(where[0])
        source = parent_of(where[0])
        what = (
            f"move an enabled user back from ldap.disabled_dn {source} (disable action move)"
            if back
            else f"move a disabled user into ldap.disabled_dn {to} (disable action move)"
        )
        self._do(
            what,
            source if back else to,
            "ldap.disabled_dn",
            lambda: self.conn.modify_dn(where[0], rdn, new_superior=to),
        )
        where[0] = f"{rdn},{to}"

    def _archive(
        self,
        where: list[str],
        mapping: UserMapping,
        attributes: dict[str, Any],
        name: str,
        number: str,
    ) -> None:
        archive = self.settings.ldap.archive_dn
        classes = list(attributes["objectClass"])
        hiding: dict[str, Any] = {}
        hidden = hidden_classes(classes)
        if hidden != classes:
            hiding["objectClass"] = [(MODIFY_REPLACE, hidden)]
        if mapping.profile.locks and self._known(LOCK_ATTRIBUTE):
            hiding[LOCK_ATTRIBUTE] = [(MODIFY_REPLACE, [LOCKED])]
        if hiding:
            self._do(
                "hide a user before archiving it",
                parent_of(where[0]),
                "ldap.users_dn",
                lambda: self.conn.modify(where[0], hiding),
            )
        rdn = f"{first_rdn_of(mapping.rdn, name)}+uidNumber={number}"
        self._do(
            f'archive a user into ldap.archive_dn {archive} (accounts.delete = "archive")',
            archive,
            "ldap.archive_dn",
            lambda: self.conn.modify_dn(where[0], rdn, new_superior=archive),
        )
        where[0] = f"{rdn},{archive}"

    # ---- groups

    def groups(self, groups: GroupDirectory) -> None:
        ldap, settings = self.settings.ldap, self.settings.groups
        if not self.container(ldap.groups_dn, "ldap.groups_dn", "where groups are created"):
            return
        self._default_group()
        self._login_group()
        classes = ["top", *settings.object_classes]
        if not self._known_classes(classes):
            return
        name = PROBE_PREFIX + secrets.token_hex(4)
        gid = str(2_000_000_000 + secrets.randbelow(100_000_000))
        attributes = self.entry(classes, name, {"cn": name, "gidNumber": gid, "displayName": name})
        dn = child_dn("cn", name, ldap.groups_dn)
        members: dict[str, Any] = {}
        if settings.membership in ("both", "rfc2307"):
            members["memberUid"] = [(MODIFY_ADD, [name])]
        if settings.membership in ("both", "rfc2307bis"):
            members["member"] = [(MODIFY_ADD, [ldap.users_dn])]
        with self.probe(dn) as where:
            try:
                self._do(
                    f"create a group below ldap.groups_dn {ldap.groups_dn}",
                    ldap.groups_dn,
                    "ldap.groups_dn",
                    lambda: self.conn.add(dn, attributes=attributes),
                )
                self._do(
                    "change a group's members",
                    ldap.groups_dn,
                    "ldap.groups_dn",
                    lambda: self.conn.modify(dn, members),
                )
                if settings.rename:
                    renamed = f"{name}r"
                    self._do(
                        "rename a group (groups.rename)",
                        ldap.groups_dn,
                        "ldap.groups_dn",
                        lambda: self.conn.modify_dn(dn, first_rdn_of("cn", renamed)),
                    )
                    where[0] = child_dn("cn", renamed, ldap.groups_dn)
                self._do(
                    "delete a group",
                    ldap.groups_dn,
                    "ldap.groups_dn",
                    lambda: self.conn.delete(where[0]),
                )
            except _RefusedError as refused:
                self.found.errors.append(str(refused.args[0]))
        del groups

    def _default_group(self) -> None:
        posix, ldap = self.settings.posix, self.settings.ldap
        if posix.gid_strategy != "default-group":
            return
        gid = int(posix.default_gid_number)
        try:
            self.conn.search(
                ldap.base_dn,
                f"(&(objectClass=posixGroup)(gidNumber={gid}))",
                attributes=["1.1"],
                size_limit=1,
            )
        except LDAPException:
            return
        if any(e.get("type") == "searchResEntry" for e in self.conn.response or []):
            return
        dn = child_dn("cn", posix.default_group, ldap.groups_dn)
        if self._exists(dn):
            self.found.errors.append(
                f"the group {dn} (posix.default_group) exists with a gidNumber other than "
                f"posix.default_gid_number {gid}: the first create would fail; change one of them"
            )

    def _login_group(self) -> None:
        accounts, ldap = self.settings.accounts, self.settings.ldap
        if "remove-group" not in accounts.disable:
            return
        dn = child_dn("cn", accounts.login_group, ldap.groups_dn)
        if not self._exists(dn):
            self.found.errors.append(
                f"the login group {dn} does not exist (accounts.login_group; remove-group in "
                "accounts.disable adds every new user to it): create it (a posixGroup) or change "
                "accounts.login_group"
            )
            return
        login = PROBE_PREFIX + secrets.token_hex(4)
        try:
            self._do(
                f"add a member to the login group {dn}",
                dn,
                "accounts.login_group",
                lambda: self.conn.modify(dn, {"memberUid": [(MODIFY_ADD, [login])]}),
            )
        except _RefusedError as refused:
            self.found.errors.append(str(refused.args[0]))
            return
        try:
            self._do(
                f"remove a member from the login group {dn}",
                dn,
                "accounts.login_group",
                lambda: self.conn.modify(dn, {"memberUid": [(MODIFY_DELETE, [login])]}),
            )
        except _RefusedError as refused:
            self.found.errors.append(
                f"{refused.args[0]}; the probe member {login} is left in {dn}: remove it by hand"
            )

    # ---- sudo roles

    def sudo(self) -> None:
        settings = self.settings.groups
        if not settings.sudo or not self._known_classes([SUDO_CLASS]):
            return
        container = settings.sudoers_dn
        if not self._exists(container):
            self._sudoers_container(container)
            return
        name = PROBE_PREFIX + secrets.token_hex(4)
        dn = child_dn("cn", name, container)
        entry = {
            "objectClass": ["top", SUDO_CLASS],
            "cn": name,
            "sudoUser": f"%{name}",
            "sudoHost": "ALL",
            "sudoCommand": "/bin/false",
        }
        with self.probe(dn):
            try:
                for what, call in (
                    (
                        f"write a sudo role below groups.sudoers_dn {container}",
                        lambda: self.conn.add(dn, attributes=entry),
                    ),
                    (
                        "change a sudo role",
                        lambda: self.conn.modify(
                            dn, {"sudoCommand": [(MODIFY_REPLACE, ["/bin/true"])]}
                        ),
                    ),
                    ("delete a sudo role", lambda: self.conn.delete(dn)),
                ):
                    self._do(what, container, "groups.sudoers_dn", call)
            except _RefusedError as refused:
                self.found.errors.append(str(refused.args[0]))

    def _sudoers_container(self, container: str) -> None:
        """The server adds a missing ``ou=`` container itself: it must be allowed to."""
        parts = rdn_values(container)
        if len(parts) != 1 or parts[0][0].lower() != "ou":
            self.found.errors.append(
                f"groups.sudoers_dn {container} does not exist and the server can only create "
                "an ou= container: create it or change groups.sudoers_dn"
            )
            return
        entry = {"objectClass": ["top", "organizationalUnit"], "ou": parts[0][1]}
        with self.probe(container):
            try:
                self._do(
                    f"create groups.sudoers_dn {container} (it does not exist yet)",
                    parent_of(container),
                    "groups.sudoers_dn",
                    lambda: self.conn.add(container, attributes=entry),
                )
            except _RefusedError as refused:
                self.found.errors.append(str(refused.args[0]))

    # ---- id counters

    def counter(self, pool: NumberPool, setting: str) -> None:
        attribute = pool.attribute
        try:
            dn = pool.slice_for(self.session).pool_dn
        except SCIMException as exc:
            self.found.errors.append(f"cannot pick the {attribute} counter: {exc.detail}")
            return
        exists = self._exists(dn)
        if exists is None:
            self.found.errors.append(
                f"cannot read the {attribute} counter {dn} ({setting}): "
                f"{_describe(self._result())}; grant {self.bind_dn} read and write access to it"
            )
            return
        try:
            if not exists:
                self._new_counter(pool, dn, setting)
                return
            entry = self._read(dn, [attribute]) or {}
            values = entry.get(attribute) or []
            if not isinstance(values, list):
                values = [values]
            if values:
                value = [str(values[0])]
                same = {attribute: [(MODIFY_DELETE, value), (MODIFY_ADD, value)]}
                self._do(
                    f"advance the {attribute} counter {dn} ({setting})",
                    dn,
                    setting,
                    lambda: self.conn.modify(dn, same),
                )
                return
            low = [str(pool.single.low)]
            self._do(
                f"start the {attribute} counter {dn} ({setting})",
                dn,
                setting,
                lambda: self.conn.modify(dn, {attribute: [(MODIFY_ADD, low)]}),
            )
            self._do(
                f"put the {attribute} counter {dn} back",
                dn,
                setting,
                lambda: self.conn.modify(dn, {attribute: [(MODIFY_DELETE, low)]}),
            )
        except _RefusedError as refused:
            self.found.errors.append(str(refused.args[0]))

    def _new_counter(self, pool: NumberPool, dn: str, setting: str) -> None:
        """The first allocation adds the counter: add it and delete it again."""
        attributes: dict[str, Any] = {"objectClass": ["top", POOL_CLASS]}
        for name, value in rdn_values(dn):
            attributes[name] = value
        attributes[pool.attribute] = str(pool.single.low)
        with self.probe(dn):
            self._do(
                f"create the {pool.attribute} counter {dn} ({setting}; the first allocation "
                "adds it)",
                dn,
                setting,
                lambda: self.conn.add(dn, attributes=attributes),
            )
            self._do(
                f"delete the {pool.attribute} counter {dn} again",
                dn,
                setting,
                lambda: self.conn.delete(dn),
            )

    # ---- password policy

    def ppolicy(self) -> None:
        accounts, ldap = self.settings.accounts, self.settings.ldap
        if "lock" not in accounts.disable:
            return
        overlay = (
            "load the ppolicy overlay on the database holding ldap.users_dn (olcModuleLoad: "
            "ppolicy; an olcPPolicyConfig overlay with olcPPolicyDefault naming a pwdPolicy "
            "entry), or remove lock from accounts.disable"
        )
        if self.schema is not None and self.schema.attribute(LOCK_ATTRIBUTE) is None:
            self.found.errors.append(
                f"the directory schema has no {LOCK_ATTRIBUTE}, which the lock action of "
                f"accounts.disable writes: disabling a user would fail; {overlay}"
            )
            return
        if accounts.ppolicy_dn and not self._exists(accounts.ppolicy_dn):
            self.found.errors.append(
                f"accounts.ppolicy_dn {accounts.ppolicy_dn} does not exist: create the password "
                "policy (a pwdPolicy entry) or change accounts.ppolicy_dn"
            )
        database = self._database(ldap.users_dn)
        if database is None:
            self.found.warnings.append(
                f"cannot read cn=config to verify that a ppolicy overlay with a default policy "
                f"covers ldap.users_dn (the lock action needs one, or {LOCK_ATTRIBUTE} locks "
                "nobody)"
            )
            return
        try:
            self.conn.search(
                database, "(objectClass=olcPPolicyConfig)", LEVEL, attributes=["olcPPolicyDefault"]
            )
        except LDAPException:
            return
        overlays = [e for e in self.conn.response or [] if e.get("type") == "searchResEntry"]
        if not overlays:
            self.found.errors.append(
                f"the database of ldap.users_dn ({database}) has no ppolicy overlay: the lock "
                f"action would not lock anyone out; {overlay}"
            )
            return
        default = overlays[0]["attributes"].get("olcPPolicyDefault")
        if isinstance(default, list):
            default = default[0] if default else None
        if not default:
            self.found.errors.append(
                f"the ppolicy overlay of {database} has no default policy (olcPPolicyDefault): "
                f"{LOCK_ATTRIBUTE} locks nobody; set olcPPolicyDefault to a pwdPolicy entry"
            )
        elif not self._exists(str(default)):
            self.found.errors.append(
                f"the default password policy {default} (olcPPolicyDefault of {database}) does "
                "not exist: create it (a pwdPolicy entry) so that the lock action works"
            )

    def _database(self, dn: str) -> str | None:
        try:
            self.conn.search("cn=config", "(olcSuffix=*)", LEVEL, attributes=["olcSuffix"])
        except LDAPException:
            return None
        if self._result().get("result") != 0:
            return None
        for entry in self.conn.response or []:
            if entry.get("type") != "searchResEntry":
                continue
            suffixes = entry["attributes"].get("olcSuffix") or []
            if any(is_under(dn, str(s)) for s in suffixes):
                return str(entry["dn"])
        return None


def first_rdn_of(attribute: str, value: str) -> str:
    """``attribute=value`` as an RDN, the value escaped."""
    return first_rdn(child_dn(attribute, value, "cn=x"))


def _preflight(users: UserDirectory, groups: GroupDirectory) -> Readiness:
    """Schema gaps (errors: writes would fail) and missing indexes (warnings)."""
    found = Readiness()
    try:
        lines = [*users.preflight_warnings(), *groups.preflight_warnings()]
    except SCIMException as exc:
        found.warnings.append(f"cannot verify the schema and indexes: {exc.detail}")
        return found
    for line in lines:
        if line.startswith(f"the directory schema has no attribute {LOCK_ATTRIBUTE} "):
            continue  # ppolicy's, not ours: _Prober.ppolicy names the overlay instead
        if line.startswith("the directory schema has no"):
            found.errors.append(line)
        else:
            found.warnings.append(line)
    return found


def assess(settings: Settings, directory: Directory, schema: Subschema | None) -> Readiness:
    """Everything that would make the first writes fail with the current settings."""
    found = connection_findings(settings)
    mapping = UserMapping(settings.users, settings.ldap, settings.posix, settings.accounts, schema)
    if schema is not None:
        found.errors += schema_problems(mapping, schema)
    users = UserDirectory(directory, mapping)
    groups = GroupDirectory(directory, settings, users)
    found.extend(_preflight(users, groups))
    with directory.session(dedicated=True) as session:
        prober = _Prober(settings, session, schema)
        prober.users(mapping)
        prober.groups(groups)
        prober.sudo()
        if settings.posix.uid_strategy == "allocate":
            prober.counter(
                IdAllocator(directory, settings.posix, settings.ldap.base_dn), "posix.id_pool_dn"
            )
        prober.counter(
            GidAllocator(directory, settings.groups, settings.ldap.base_dn), "groups.id_pool_dn"
        )
        prober.ppolicy()
    found.extend(prober.found)
    return found


def leftovers(session: Session, base_dn: str) -> list[str]:
    """DNs of probe entries under ``base_dn`` (none after a clean check)."""
    entries = session.search(
        base_dn,
        f"(|(cn={PROBE_PREFIX}*)(uid={PROBE_PREFIX}*)(ou={PROBE_PREFIX}*))",
        ["1.1"],
        action="look for probe entries",
    )
    return [str(e["dn"]) for e in entries]
