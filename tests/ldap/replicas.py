"""Two OpenLDAP providers in multi-provider (N-way) syncrepl on loopback, for the tests.

Each provider is a :class:`Sandbox` (same schemas and overlays: sssvlv, ppolicy,
unique) with, in addition, its own ``olcServerID``, the ``syncprov`` overlay,
an ``olcSyncrepl`` consumer of the other provider and ``olcMultiProvider:
TRUE`` (OpenLDAP 2.5 admin guide, section 18.3.3 "N-Way Multi-Provider").
Both share the rootdn and its password, which the consumers bind as. Only the
first provider is loaded with the base entries; the second receives them by
replication, so every entry has one entryUUID on both.

By default the providers run delta-syncrepl (admin guide 18.3.2): each logs its
writes in an ``accesslog`` database (``cn=accesslog``, database {1}, the main
database becoming {2}) and the consumers replay the logged modifications. Plain
syncrepl (``delta=False``) sends whole entries, and two providers modifying one
entry at once keep one of the two versions: a memberUid added through one
provider is lost when the other adds another to the same group.
"""

from __future__ import annotations

import secrets
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from ldap3 import BASE, MODIFY_REPLACE, Connection
from ldap3.core.exceptions import LDAPException

from app.ldap.preparation import Accounts, Preparation
from app.ldap.sandbox import MODULES, Sandbox, SandboxDirectory, SandboxError, _free_port

CONVERGE_TIMEOUT = 30.0
NO_SUCH_OBJECT = 32
MDB_DN = "olcDatabase={1}mdb,cn=config"
DELTA_MDB_DN = "olcDatabase={2}mdb,cn=config"
ACCESSLOG = "cn=accesslog"
LOG_FILTER = "(&(objectClass=auditWriteObject)(reqResult=0))"


@dataclass(frozen=True)
class Link:
    """What one provider needs to know about itself and the provider it consumes."""

    server_id: int
    peer_url: str
    password: str


class Provider(Sandbox):
    """A sandbox that is one provider of a multi-provider pair."""

    def __init__(
        self, *, port: int, link: Link, seed: bool, delta: bool = True, workdir: Path | None = None
    ) -> None:
        super().__init__(port=port, workdir=workdir)
        self.link = link
        self.seed = seed
        self.delta = delta

    def _shared(self, directory: SandboxDirectory) -> SandboxDirectory:
        password = self.link.password
        return replace(
            directory, bind_password=password, admin_password=password, nss_password=password
        )

    def _prepare(self, directory: SandboxDirectory, accounts: Accounts) -> Preparation:
        password = self.link.password
        shared = replace(accounts, server_password=password, hosts_password=password)
        return super()._prepare(directory, shared)

    def _build(self, slapadd: Path, directory: SandboxDirectory) -> None:
        super()._build(slapadd, self._shared(directory))

    def _launch(self, slapd: Path) -> None:
        self._directory = self._shared(self.directory)
        super()._launch(slapd)

    def _slapadd(self, slapadd: Path, database: str, ldif: Path) -> None:
        """The configuration everywhere; the base entries on the seed only, in the main database.

        ``-S`` stamps the entries' CSNs with this server's id (slapadd(8)), so the
        contextCSN holds no CSN of a server id 0 that no provider would ever send.
        """
        if database == "0":
            super()._slapadd(slapadd, database, ldif)
            return
        if not self.seed:
            return
        number = "2" if self.delta else database
        command = [str(slapadd), "-n", number, "-F", str(self._config_dir), "-l", str(ldif)]
        result = subprocess.run(
            [*command, "-S", str(self.link.server_id), "-w"],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            output = (result.stderr or result.stdout).strip()
            raise SandboxError(f"slapadd -n{number} failed (exit {result.returncode}): {output}")

    def _config_ldif(self, directory: SandboxDirectory, data_dir: Path) -> str:
        text = super()._config_ldif(directory, data_dir)
        modules = "".join(f"olcModuleLoad: {m}\n" for m in MODULES)
        extra = "olcModuleLoad: syncprov\n" + ("olcModuleLoad: accesslog\n" if self.delta else "")
        text = _insert_after(text, modules, extra)
        text = _insert_after(text, "cn: config\n", f"olcServerID: {self.link.server_id}\n", count=1)
        syncrepl = (
            f"rid={self.link.server_id:03d} provider={self.link.peer_url} bindmethod=simple "
            f'binddn="{directory.admin_dn}" credentials={self.link.password} '
            f'searchbase="{directory.base_dn}" type=refreshAndPersist '
            'retry="1 +" timeout=3 network-timeout=2 keepalive=30:3:5'
        )
        if self.delta:
            syncrepl += f' syncdata=accesslog logbase="{ACCESSLOG}" logfilter="{LOG_FILTER}"'

        text = _insert_after(
            text,
            f"olcSuffix: {directory.base_dn}\n",
            f"olcSyncrepl: {syncrepl}\nolcMultiProvider: TRUE\n",
        )
        overlays = [
            [
                f"dn: olcOverlay={{3}}syncprov,{MDB_DN}",
                "objectClass: olcOverlayConfig",
                "objectClass: olcSyncProvConfig",
                "olcOverlay: {3}syncprov",
                "olcSpCheckpoint: 100 1",
            ]
        ]
        if not self.delta:
            return text + "".join("\n" + "\n".join(entry) + "\n" for entry in overlays)
        overlays.append(
            [
                f"dn: olcOverlay={{4}}accesslog,{MDB_DN}",
                "objectClass: olcOverlayConfig",
                "objectClass: olcAccessLogConfig",
                "olcOverlay: {4}accesslog",
                f"olcAccessLogDB: {ACCESSLOG}",
                "olcAccessLogOps: writes",
                "olcAccessLogSuccess: TRUE",
                "olcAccessLogPurge: 07+00:00 01+00:00",
            ]
        )
        text += "".join("\n" + "\n".join(entry) + "\n" for entry in overlays)
        log_dir = self.root / "accesslog"
        log_dir.mkdir(mode=0o700, exist_ok=True)
        log_database = "\n".join(
            [
                f"dn: {MDB_DN}",
                "objectClass: olcDatabaseConfig",
                "objectClass: olcMdbConfig",
                "olcDatabase: {1}mdb",
                f"olcDbDirectory: {log_dir}",
                f"olcDbMaxSize: {1 << 30}",
                f"olcSuffix: {ACCESSLOG}",
                f"olcRootDN: {directory.admin_dn}",
                "olcDbIndex: default eq",
                "olcDbIndex: entryCSN,objectClass,reqEnd,reqResult,reqStart,reqDN",
                "",
                f"dn: olcOverlay={{0}}syncprov,{MDB_DN}",
                "objectClass: olcOverlayConfig",
                "objectClass: olcSyncProvConfig",
                "olcOverlay: {0}syncprov",
                "olcSpNoPresent: TRUE",
                "olcSpReloadHint: TRUE",
                "",
            ]
        )
        text = text.replace(MDB_DN, DELTA_MDB_DN).replace(
            "olcDatabase: {1}mdb", "olcDatabase: {2}mdb"
        )
        anchor = f"dn: {DELTA_MDB_DN}\n"
        if anchor not in text:
            raise SandboxError(f"sandbox configuration changed: {anchor.strip()!r} not found")
        return text.replace(anchor, log_database + "\n" + anchor, 1)

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        return self._process


def _insert_after(text: str, anchor: str, addition: str, count: int = -1) -> str:
    if anchor not in text:
        raise SandboxError(f"sandbox configuration changed: {anchor.strip()!r} not found")
    return text.replace(anchor, anchor + addition, count)


class Replicas:
    """Two providers replicating to each other; ``start()`` waits until the second has the base."""

    def __init__(self, *, delta: bool = True, workdir: Path | None = None) -> None:
        ports = [_free_port(), _free_port()]
        password = secrets.token_urlsafe(24)
        urls = [f"ldap://127.0.0.1:{port}" for port in ports]
        self.providers = [
            Provider(
                port=ports[index],
                link=Link(server_id=index + 1, peer_url=urls[1 - index], password=password),
                seed=index == 0,
                delta=delta,
                workdir=workdir,
            )
            for index in range(2)
        ]

    @property
    def urls(self) -> list[str]:
        return [provider.directory.url for provider in self.providers]

    @property
    def directory(self) -> SandboxDirectory:
        return self.providers[0].directory

    def start(self) -> None:
        try:
            for provider in self.providers:
                provider.start()
            self.wait_converged()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        for provider in self.providers:
            provider.stop()

    @contextmanager
    def connection(self, index: int) -> Iterator[Connection]:
        """A raw rootdn connection to provider ``index``."""
        directory = self.providers[index].directory
        conn = Connection(
            directory.url,
            directory.admin_dn,
            directory.admin_password,
            auto_bind=True,
            receive_timeout=10,
        )
        try:
            yield conn
        finally:
            conn.unbind()

    def context_csns(self, index: int) -> set[str]:
        """The contextCSN values of the suffix on provider ``index`` (one per server id)."""
        with self.connection(index) as conn:
            conn.search(self.directory.base_dn, "(objectClass=*)", BASE, attributes=["contextCSN"])
            if not conn.response:
                return set()
            values = conn.response[0]["attributes"].get("contextCSN") or []
            return {str(value) for value in values}

    def probe_dn(self, index: int) -> str:
        return f"cn=replication-probe-{index + 1},{self.directory.base_dn}"

    def _probe(self, index: int, token: str) -> None:
        """Write ``token`` into provider ``index``'s probe entry, through that provider."""
        dn = self.probe_dn(index)
        with self.connection(index) as conn:
            if not conn.modify(dn, {"description": [(MODIFY_REPLACE, [token])]}):
                if conn.result["result"] != NO_SUCH_OBJECT:
                    raise SandboxError(f"cannot write {dn}: {conn.result}")
                conn.add(dn, ["device"], {"cn": dn.split(",")[0][3:], "description": token})

    def _probes(self, index: int) -> list[str]:
        with self.connection(index) as conn:
            found = []
            for other in (0, 1):
                conn.search(
                    self.probe_dn(other), "(objectClass=*)", BASE, attributes=["description"]
                )
                found.append(str(conn.entries[0].description) if conn.entries else "")
            return found

    def wait_converged(self, timeout: float = CONVERGE_TIMEOUT) -> float:
        """Wait until each provider has the other's latest write; the seconds it took.

        A fresh value is first written through each provider into a probe entry of
        its own; converged means both providers hold both values and the same
        contextCSN set (one CSN per server id, RFC 4533 cookies). The probes are
        needed after a crash: syncprov keeps the contextCSN in memory and stores it
        at checkpoints, so a killed provider comes back with a contextCSN older
        than its own last writes until it writes again.
        """
        started = time.monotonic()
        deadline = started + timeout
        tokens = [secrets.token_hex(8) for _ in (0, 1)]
        last: list[object] = []
        while time.monotonic() < deadline:
            try:
                if tokens:
                    for index, token in enumerate(tokens):
                        self._probe(index, token)
                    written, tokens = tokens, []
                probes = [self._probes(0), self._probes(1)]
                csns = [self.context_csns(0), self.context_csns(1)]
            except LDAPException as exc:
                last = [type(exc).__name__]
            else:
                last = [probes, csns]
                if probes == [written, written] and csns[0] and csns[0] == csns[1]:
                    return time.monotonic() - started
            time.sleep(0.05)
        raise SandboxError(f"the providers did not converge within {timeout:.0f} s: {last}")


@pytest.fixture(scope="session")
def replicas() -> Iterator[Replicas]:
    """Two providers in multi-provider replication, for the replication tests only."""
    pair = Replicas()
    try:
        pair.start()
    except SandboxError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield pair
    finally:
        pair.stop()


@pytest.fixture(scope="session")
def plain() -> Iterator[Replicas]:
    """Two providers in plain (whole-entry) syncrepl instead of delta-syncrepl."""
    pair = Replicas(delta=False)
    try:
        pair.start()
    except SandboxError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield pair
    finally:
        pair.stop()
