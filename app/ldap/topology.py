"""The replication topology the configured directory servers show, and what is unsafe in it.

Each URL of ``ldap.urls`` is asked on its own. Where ``cn=config`` is readable
(OpenLDAP), the database holding ``base_dn`` tells its ``olcServerID``, its
``olcSyncrepl`` consumers (with ``syncdata=accesslog`` for delta-syncrepl) and
``olcMultiProvider`` (``olcMirrorMode`` before 2.5). Elsewhere the suffix's
``contextCSN`` still tells how many servers have accepted writes: it holds one
CSN per server id (RFC 4533 cookies; ``slapo-syncprov(5)``).

What is unsafe on a multi-provider directory:

- one uidNumber counter for all servers: a compare-and-swap on it can succeed
  on two providers at once (``app.ldap.ids``), so ``posix.providers`` must give
  each provider a slice of its own;
- numbers sent by clients or derived by the hash strategy: their claim entries
  (``app.ldap.numbers``) and the collision check see one provider only;
- plain syncrepl: it replicates whole entries, so of two changes to one entry
  made through two providers at once (two memberUids added to the login group)
  only one survives; delta-syncrepl replays each change.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from scim2_models import SCIMException

from app.config import AccountSettings, LdapSettings, PosixSettings
from app.ldap.connection import Directory, DirectoryConfigError, Session
from app.ldap.dn import is_under

log = logging.getLogger(__name__)

PROBE_TIMEOUT = 3.0


@dataclass(frozen=True)
class ServerView:
    """What one URL of ``ldap.urls`` shows of its place in the replication."""

    url: str
    reachable: bool = True
    config_readable: bool = False
    server_ids: tuple[str, ...] = ()
    multi_provider: bool = False
    consumes: tuple[str, ...] = ()
    delta: bool = True
    csn_server_ids: tuple[str, ...] = ()

    @property
    def accepts_writes_with_others(self) -> bool:
        """Multi-provider by its configuration or, unreadable, by its contextCSN."""
        if self.config_readable:
            return self.multi_provider
        return len(self.csn_server_ids) > 1

    def describe(self) -> str:
        if not self.reachable:
            return f"{self.url}: not reachable"
        parts = []
        if self.config_readable:
            parts.append(f"serverID {', '.join(self.server_ids) or 'none'}")
            parts.append("multi-provider" if self.multi_provider else "single provider")
            if self.consumes:
                kind = "delta-syncrepl" if self.delta else "syncrepl"
                parts.append(f"consumes {', '.join(self.consumes)} ({kind})")
        else:
            parts.append("cn=config not readable")
        ids = ", ".join(self.csn_server_ids) or "none"
        parts.append(f"contextCSN from server ids {ids}")
        return f"{self.url}: " + "; ".join(parts)


@dataclass(frozen=True)
class Topology:
    servers: tuple[ServerView, ...]

    @property
    def multi_provider(self) -> bool:
        return any(server.accepts_writes_with_others for server in self.servers)

    def describe(self) -> list[str]:
        return [server.describe() for server in self.servers]


def _words(value: str) -> dict[str, str]:
    """The ``key=value`` words of an ``olcSyncrepl`` value (quotes removed)."""
    found: dict[str, str] = {}
    for word in _split(value):
        key, sep, text = word.partition("=")
        if sep:
            found[key.lower()] = text.strip('"')
    return found


def _split(value: str) -> list[str]:
    words, current, quoted = [], "", False
    for char in value:
        if char == '"':
            quoted = not quoted
        if char.isspace() and not quoted:
            if current:
                words.append(current)
            current = ""
        else:
            current += char
    if current:
        words.append(current)
    return words


def _strings(values: object) -> list[str]:
    if values is None:
        return []
    return [str(v) for v in values] if isinstance(values, list) else [str(values)]


def _view(session: Session, url: str, base_dn: str) -> ServerView:
    csns = session.search(
        base_dn, "(objectClass=*)", ["contextCSN"], scope="BASE", action="read the contextCSN"
    )
    csn_ids = sorted(
        {
            value.split("#")[2]
            for entry in csns
            for value in _strings(entry["attributes"].get("contextCSN"))
            if value.count("#") >= 2
        }
    )
    try:
        globals_ = session.search(
            "cn=config", "(objectClass=*)", ["olcServerID"], scope="BASE", action="read cn=config"
        )
        databases = session.search(
            "cn=config",
            "(olcSuffix=*)",
            ["olcSuffix", "olcSyncrepl", "olcMultiProvider", "olcMirrorMode"],
            scope="LEVEL",
            action="read the directory configuration",
        )
    except SCIMException:
        globals_, databases = [], []
    database = next(
        (
            d
            for d in databases
            if any(is_under(base_dn, s) for s in _strings(d["attributes"].get("olcSuffix")))
        ),
        None,
    )
    if not globals_ or database is None:
        return ServerView(url, csn_server_ids=tuple(csn_ids))
    attributes = database["attributes"]
    syncrepls = [_words(v) for v in _strings(attributes.get("olcSyncrepl"))]
    flags = _strings(attributes.get("olcMultiProvider")) + _strings(attributes.get("olcMirrorMode"))
    return ServerView(
        url,
        config_readable=True,
        server_ids=tuple(_strings(globals_[0]["attributes"].get("olcServerID"))),
        multi_provider=any(flag.upper() == "TRUE" for flag in flags),
        consumes=tuple(s.get("provider", "?") for s in syncrepls),
        delta=all(s.get("syncdata", "").lower() == "accesslog" for s in syncrepls),
        csn_server_ids=tuple(csn_ids),
    )


def read_topology(ldap: LdapSettings) -> Topology:
    """Ask each URL of ``ldap.urls`` on its own connection, with a short timeout."""
    views = []
    for url in ldap.urls:
        single = ldap.model_copy(
            update={
                "urls": [url],
                "pool_size": 1,
                "connect_timeout": min(ldap.connect_timeout, PROBE_TIMEOUT),
                "receive_timeout": min(ldap.receive_timeout, int(PROBE_TIMEOUT)),
            }
        )
        directory = Directory(single)
        try:
            with directory.session(dedicated=True) as session:
                views.append(_view(session, url, ldap.base_dn))
        except (SCIMException, DirectoryConfigError) as exc:
            log.info("cannot read the replication state of %s: %s", url, exc)
            views.append(ServerView(url, reachable=False))
        finally:
            directory.close()
    return Topology(tuple(views))


def replication_warnings(
    topology: Topology,
    posix: PosixSettings,
    accounts: AccountSettings | None = None,
    base_dn: str = "",
) -> list[str]:
    """What is unsafe for uidNumber allocation and writes in this topology."""
    warnings = [
        f"cannot reach {s.url} to see its place in the replication"
        for s in topology.servers
        if not s.reachable
    ]
    if not topology.multi_provider:
        return warnings
    multi = [s for s in topology.servers if s.accepts_writes_with_others]
    seen = ", ".join(s.url for s in multi)
    if posix.uid_strategy == "allocate" and not posix.providers:
        counter = posix.id_pool_dn or f"cn=scim-ldap-ids,{base_dn or '<base_dn>'}"
        warnings.append(
            f"unsafe uidNumber allocation: the directory is multi-provider ({seen}) and every "
            f"server allocates from the one counter {counter}; two servers writing through "
            "different providers can both claim the same number, and replication keeps both "
            "accounts. List every provider in posix.providers with a slice of uid_range of its "
            "own."
        )
    if posix.uid_strategy in ("hash", "attribute"):
        warnings.append(
            f"uidNumbers from the {posix.uid_strategy} strategy are held on one provider "
            "only: the number's claim entry and the collision check cannot see a create made "
            "through another provider at the same moment, so both can win"
        )
    plain = [s for s in multi if s.config_readable and s.consumes and not s.delta]
    if plain:
        group = (
            f" (the login group {accounts.login_group} is one: every create adds a memberUid)"
            if accounts is not None and "remove-group" in accounts.disable
            else ""
        )
        warnings.append(
            f"{', '.join(s.url for s in plain)} replicate with plain syncrepl, which copies "
            "whole entries: of two changes made to one entry through two providers at once, "
            f"only one survives{group}; use delta-syncrepl (syncdata=accesslog)"
        )
    return warnings
