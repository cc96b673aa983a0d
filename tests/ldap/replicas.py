"""Two OpenLDAP providers in multi-provider (N-way) syncrepl on loopback, for the tests.

Each provider is a :class:`Sandbox` (same schemas and overlays: sssvlv, ppolicy,
unique) with, in addition, its own ``olcServerID``, the ``syncprov`` overlay,
an ``olcSyncrepl`` consumer of the other provider and ``olcMultiProvider:
TRUE`` (OpenLDAP 2.5 admin guide, section 18.3.3 "N-Way Multi-Provider").
Both share the rootdn and its password, which the consumers bind as. Only the
first provider is loaded with the base entries; the second receives them by
replication, so every entry has one entryUUID on both.
"""

from __future__ import annotations

import secrets
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from ldap3 import BASE, Connection
from ldap3.core.exceptions import LDAPException

from app.ldap.sandbox import MODULES, Sandbox, SandboxDirectory, SandboxError, _free_port

CONVERGE_TIMEOUT = 30.0
MDB_DN = "olcDatabase={1}mdb,cn=config"


@dataclass(frozen=True)
class Link:
    """What one provider needs to know about itself and the provider it consumes."""

    server_id: int
    peer_url: str
    password: str


class Provider(Sandbox):
    """A sandbox that is one provider of a multi-provider pair."""

    def __init__(self, *, port: int, link: Link, seed: bool, workdir: Path | None = None) -> None:
        super().__init__(port=port, workdir=workdir)
        self.link = link
        self.seed = seed

    def _shared(self, directory: SandboxDirectory) -> SandboxDirectory:
        return replace(directory, bind_password=self.link.password)

    def _build(self, slapadd: Path, directory: SandboxDirectory) -> None:
        super()._build(slapadd, self._shared(directory))

    def _launch(self, slapd: Path) -> None:
        self._directory = self._shared(self.directory)
        super()._launch(slapd)

    def _slapadd(self, slapadd: Path, database: str, ldif: Path) -> None:
        if database == "0" or self.seed:
            super()._slapadd(slapadd, database, ldif)

    def _config_ldif(self, directory: SandboxDirectory, data_dir: Path) -> str:
        text = super()._config_ldif(directory, data_dir)
        modules = "".join(f"olcModuleLoad: {m}\n" for m in MODULES)
        text = _insert_after(text, modules, "olcModuleLoad: syncprov\n")
        text = _insert_after(text, "cn: config\n", f"olcServerID: {self.link.server_id}\n", count=1)
        syncrepl = (
            f"rid={self.link.server_id:03d} provider={self.link.peer_url} bindmethod=simple "
            f'binddn="{directory.bind_dn}" credentials={self.link.password} '
            f'searchbase="{directory.base_dn}" type=refreshAndPersist '
            'retry="1 +" timeout=3 network-timeout=2 keepalive=30:3:5'
        )
        text = _insert_after(
            text,
            f"olcSuffix: {directory.base_dn}\n",
            f"olcSyncrepl: {syncrepl}\nolcMultiProvider: TRUE\n",
        )
        overlay = "\n".join(
            [
                f"dn: olcOverlay={{3}}syncprov,{MDB_DN}",
                "objectClass: olcOverlayConfig",
                "objectClass: olcSyncProvConfig",
                "olcOverlay: {3}syncprov",
                "olcSpCheckpoint: 100 1",
            ]
        )
        return text + "\n" + overlay + "\n"

    def kill_server(self) -> None:
        """SIGKILL slapd (no shutdown, as in a crash); start_server() brings it back."""
        process = self._process
        if process is None:
            return
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        self.stop_server()

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        return self._process


def _insert_after(text: str, anchor: str, addition: str, count: int = -1) -> str:
    if anchor not in text:
        raise SandboxError(f"sandbox configuration changed: {anchor.strip()!r} not found")
    return text.replace(anchor, anchor + addition, count)


class Replicas:
    """Two providers replicating to each other; ``start()`` waits until the second has the base."""

    def __init__(self, workdir: Path | None = None) -> None:
        ports = [_free_port(), _free_port()]
        password = secrets.token_urlsafe(24)
        urls = [f"ldap://127.0.0.1:{port}" for port in ports]
        self.providers = [
            Provider(
                port=ports[index],
                link=Link(server_id=index + 1, peer_url=urls[1 - index], password=password),
                seed=index == 0,
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
            directory.bind_dn,
            directory.bind_password,
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

    def wait_converged(self, timeout: float = CONVERGE_TIMEOUT) -> float:
        """Wait until both providers hold the same contextCSN set; the seconds it took.

        Syncrepl (RFC 4533) carries the provider's contextCSN in its cookie: when
        both have the same value per server id, each has every change the other made.
        """
        started = time.monotonic()
        deadline = started + timeout
        last: list[set[str]] = []
        while time.monotonic() < deadline:
            try:
                last = [self.context_csns(0), self.context_csns(1)]
            except LDAPException as exc:
                last = [{type(exc).__name__}]
            else:
                if last[0] and last[0] == last[1]:
                    return time.monotonic() - started
            time.sleep(0.1)
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
