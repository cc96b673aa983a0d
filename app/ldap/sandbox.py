"""A throwaway OpenLDAP server for the demo command and the test suite.

The server is configured through cn=config (OLC) built offline with ``slapadd -n0``,
runs in the foreground as a child process of this one, listens on 127.0.0.1 only and
keeps every file (configuration, data, log) in a private temporary directory.

Access: the sandbox is prepared as ``python -m app directory-ldif`` prepares a
directory (app/ldap/preparation.py): its schema, indexes, overlays, containers,
counters and access rules come from there. ``SandboxDirectory.bind_dn`` is the
server's least-privilege account (``cn=scim-ldap,ou=services,<base>``), which the
settings and environment it gives bind as; ``nss_dn`` is the hosts' read account
(``cn=nss,ou=services,<base>``); ``admin_dn``, the rootdn, reads and writes
everything, for tests that seed or break the directory. Anonymous clients may only
bind (simple bind on userPassword). The ppolicy overlay applies
``cn=default,ou=policies,<base>`` to every entry: ``pwdAccountLockedTime:
000001010000Z`` locks an account until it is removed, and five failed binds in a
row lock it as well.

With ``bare=True`` it holds nothing of the project: the system schemas (core,
cosine, inetorgperson, nis), an mdb database with the rootdn and the base entry,
no access rule; every account is the rootdn. It listens on ``ldapi_url`` too,
where the process's own user (SASL EXTERNAL) manages cn=config, as root does on a
Debian slapd, so a test can apply the generated LDIF with the documented commands.

With ``config_style="slapd-conf"`` slapd runs from a slapd.conf(5) (``slapd -f``)
instead of cn=config; ``includes`` names files (``global``, ``config``,
``database``) included where the generated fragments belong.

With ``sudo=True`` it also loads sudo's schema (app/ldap/schema/sudo.ldif, from
Debian's sudo-ldap package) and adds ``ou=sudoers,<base>`` for sudoRole entries.

With ``ppolicy=False`` it loads neither the ppolicy module nor its overlay (so the
directory's schema has no ``pwdAccountLockedTime``) and has no default policy entry:
a directory on which the lock action cannot work.

The server may also write below ``ldap.disabled_dn``, ``ldap.archive_dn`` (which tests
create when they need them) and ``SandboxDirectory.counters_dn``, for counters of a
test's own.

``access`` puts olcAccess rules (without their ``{n}``) before the generated ones on the
database, e.g. to let an account added by a test write only some entries.

With ``tls=True`` the sandbox makes a private certificate authority (``trustme``, a
development dependency), gives slapd a certificate for 127.0.0.1 and localhost signed by
it, offers StartTLS on its ldap:// URL and listens on an ldaps:// URL as well. The CA
certificate is ``SandboxDirectory.ca_file``; the settings and environment it gives turn
StartTLS on and point at that CA. Plain binds stay allowed, so the same directory can
show what a client without TLS would do.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import TracebackType
from typing import IO, Literal, Self
from urllib.parse import quote

from ldap3 import HASHED_SALTED_SHA, NONE, Connection, Server
from ldap3.core.exceptions import LDAPException
from ldap3.utils.dn import parse_dn
from ldap3.utils.hashed import hashed
from pydantic import SecretStr

from app.config import AccountSettings, GroupSettings, LdapSettings, Settings
from app.ldap.preparation import Accounts, Preparation, quoted_dn

SYSTEM_SCHEMA_DIR = Path("/etc/ldap/schema")
SYSTEM_SCHEMAS = ("core", "cosine", "inetorgperson", "nis")
PROJECT_SCHEMAS = ("openssh-lpk", "scim-ldap")
SUDO_SCHEMA = "sudo"
"""sudo's own schema (sudoRole), shipped beside ours; loaded with ``Sandbox(sudo=True)``."""
MODULE_PATH = Path("/usr/lib/ldap")
MODULES = ("back_mdb", "sssvlv", "ppolicy", "pw-sha2", "unique")
INSTALL_HINT = "apt-get install slapd ldap-utils"

READY_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0

EXTRA_INDEXES = ("entryCSN eq",)
"""Beyond the generated indexes: what syncrepl between replicas of the tests looks up."""
ConfigStyle = Literal["cn-config", "slapd-conf"]


class SandboxError(RuntimeError):
    """The sandbox directory server could not be set up, started or stopped."""


@dataclass(frozen=True)
class SandboxDirectory:
    """How to reach a running sandbox and where its entries live."""

    url: str
    base_dn: str
    bind_dn: str
    bind_password: str
    users_dn: str
    groups_dn: str
    ca_file: str | None = None
    ldaps_url: str | None = None
    admin_dn: str = ""
    """The rootdn: reads and writes everything (seeding, breaking, asserting)."""
    admin_password: str = ""
    nss_dn: str = ""
    """The hosts' read account (NSS, PAM, SSH keys, sudo)."""
    nss_password: str = ""
    ldapi_url: str | None = None

    @property
    def tls(self) -> bool:
        """Whether the directory offers StartTLS and ldaps:// with a certificate of ``ca_file``."""
        return self.ca_file is not None

    @property
    def policies_dn(self) -> str:
        return f"ou=policies,{self.base_dn}"

    @property
    def counters_dn(self) -> str:
        """A container where the server may make counters of a test's own."""
        return f"ou=counters,{self.base_dn}"

    @property
    def sudoers_dn(self) -> str:
        """Where sudoRole entries go (made, with sudo's schema, by ``Sandbox(sudo=True)``)."""
        return f"ou=sudoers,{self.base_dn}"

    @property
    def password_policy_dn(self) -> str:
        """The default password policy, which the ppolicy overlay applies to every entry."""
        return f"cn=default,{self.policies_dn}"

    def environment(self) -> dict[str, str]:
        """``SCIM_LDAP_*`` variables that point a server process at this sandbox."""
        variables = {
            "SCIM_LDAP_LDAP__URLS": json.dumps([self.url]),
            "SCIM_LDAP_LDAP__BIND_DN": self.bind_dn,
            "SCIM_LDAP_LDAP__BIND_PASSWORD": self.bind_password,
            "SCIM_LDAP_LDAP__BASE_DN": self.base_dn,
        }
        if self.ca_file is not None:
            variables["SCIM_LDAP_LDAP__START_TLS"] = "true"
            variables["SCIM_LDAP_LDAP__CA_FILE"] = self.ca_file
        return variables

    def admin_settings(self) -> LdapSettings:
        """``ldap_settings`` bound as the rootdn, for a server that must write anywhere."""
        return self.ldap_settings().model_copy(
            update={"bind_dn": self.admin_dn, "bind_password": SecretStr(self.admin_password)}
        )

    def ldap_settings(self) -> LdapSettings:
        """Settings that point the server at this sandbox (StartTLS with its CA when TLS is on)."""
        return LdapSettings(
            urls=[self.url],
            bind_dn=self.bind_dn,
            bind_password=SecretStr(self.bind_password),
            base_dn=self.base_dn,
            users_dn=self.users_dn,
            start_tls=self.tls,
            ca_file=Path(self.ca_file) if self.ca_file is not None else None,
        )


def _find_tool(name: str) -> Path:
    for candidate in (Path("/usr/sbin") / name, Path("/usr/local/sbin") / name):
        if candidate.is_file():
            return candidate
    found = shutil.which(name)
    if found is None:
        raise SandboxError(f"{name} not found: {INSTALL_HINT}")
    return Path(found)


def find_slapd() -> Path:
    """Locate the slapd binary (/usr/sbin/slapd or PATH)."""
    return _find_tool("slapd")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _ssha(password: str) -> str:
    return str(hashed(HASHED_SALTED_SHA, password))


def _ldif_entry(dn: str, attributes: list[tuple[str, str]]) -> str:
    lines = [f"dn: {dn}", *(f"{name}: {value}" for name, value in attributes)]
    return "\n".join(lines) + "\n"


def _schema_ldif(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SandboxError(f"cannot read LDAP schema {path}: {exc}; {INSTALL_HINT}") from exc


def _project_schema_ldif(name: str) -> str:
    resource = resources.files("app.ldap").joinpath("schema", f"{name}.ldif")
    return resource.read_text(encoding="utf-8")


def _base_entry(base_dn: str) -> list[tuple[str, str]]:
    try:
        attribute, value, _ = parse_dn(base_dn)[0]
    except (IndexError, LDAPException) as exc:
        raise SandboxError(f"invalid base DN {base_dn!r}") from exc
    kind = attribute.lower()
    if kind == "dc":
        return [
            ("objectClass", "top"),
            ("objectClass", "dcObject"),
            ("objectClass", "organization"),
            ("dc", value),
            ("o", value),
        ]
    if kind == "o":
        return [("objectClass", "top"), ("objectClass", "organization"), ("o", value)]
    if kind == "ou":
        return [("objectClass", "top"), ("objectClass", "organizationalUnit"), ("ou", value)]
    raise SandboxError(f"base DN {base_dn!r} must start with dc=, o= or ou=")


class Sandbox:
    """A private slapd prepared as ``directory-ldif`` prepares one (or ``bare``)."""

    def __init__(
        self,
        *,
        base_dn: str = "dc=example,dc=org",
        port: int | None = None,
        workdir: Path | None = None,
        tls: bool = False,
        sudo: bool = False,
        ppolicy: bool = True,
        access: Sequence[str] = (),
        bare: bool = False,
        config_style: ConfigStyle = "cn-config",
        includes: dict[str, Path] | None = None,
    ) -> None:
        self._base_dn = base_dn
        self._access = tuple(access)
        self._sudo = sudo
        self._ppolicy = ppolicy
        self._bare = bare
        self._style: ConfigStyle = config_style
        self._includes = dict(includes or {})
        self._port = port
        self._tls = tls
        self._ldaps_port: int | None = None
        self._parent_dir = workdir
        self._root: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._directory: SandboxDirectory | None = None
        self._preparation: Preparation | None = None

    @property
    def directory(self) -> SandboxDirectory:
        if self._directory is None:
            raise SandboxError("sandbox is not started")
        return self._directory

    @property
    def preparation(self) -> Preparation:
        """What prepared this sandbox (``directory-ldif`` for the sandbox's settings)."""
        if self._preparation is None:
            raise SandboxError("a bare sandbox is not prepared")
        return self._preparation

    @property
    def root(self) -> Path:
        """The private directory holding configuration, data and slapd.log."""
        if self._root is None:
            raise SandboxError("sandbox is not started")
        return self._root

    @property
    def log_path(self) -> Path:
        return self.root / "slapd.log"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> SandboxDirectory:
        """Create the directory, configure it, load the base entries and start slapd."""
        if self._directory is not None:
            return self._directory
        slapd = find_slapd()
        slapadd = _find_tool("slapadd")
        if self._parent_dir is not None:
            self._parent_dir.mkdir(parents=True, exist_ok=True)
        self._root = Path(tempfile.mkdtemp(prefix="scim-ldap-sandbox-", dir=self._parent_dir))
        try:
            port = self._port if self._port is not None else _free_port()
            ca_file: str | None = None
            ldaps_url: str | None = None
            if self._tls:
                ca_file = str(self._make_certificates())
                self._ldaps_port = self._ldaps_port or _free_port()
                ldaps_url = f"ldaps://127.0.0.1:{self._ldaps_port}"
            admin_dn = f"cn=admin,{self._base_dn}"
            admin_password = secrets.token_urlsafe(24)
            if self._bare:
                accounts = Accounts(admin_dn, admin_dn, admin_password, admin_password)
            else:
                accounts = Accounts(
                    f"cn=scim-ldap,ou=services,{self._base_dn}",
                    f"cn=nss,ou=services,{self._base_dn}",
                    secrets.token_urlsafe(24),
                    secrets.token_urlsafe(24),
                )
            directory = SandboxDirectory(
                url=f"ldap://127.0.0.1:{port}",
                base_dn=self._base_dn,
                bind_dn=accounts.server_dn,
                bind_password=accounts.server_password or "",
                users_dn=f"ou=people,{self._base_dn}",
                groups_dn=f"ou=groups,{self._base_dn}",
                ca_file=ca_file,
                ldaps_url=ldaps_url,
                admin_dn=admin_dn,
                admin_password=admin_password,
                nss_dn=accounts.hosts_dn,
                nss_password=accounts.hosts_password or "",
                ldapi_url=(
                    "ldapi://" + quote(str(self.root / "ldapi"), safe="") if self._bare else None
                ),
            )
            if not self._bare:
                self._preparation = self._prepare(directory, accounts)
            self._build(slapadd, directory)
            self._directory = directory
            self._port = port
            self._launch(slapd)
        except BaseException:
            self.stop()
            raise
        return directory

    def _prepare(self, directory: SandboxDirectory, accounts: Accounts) -> Preparation:
        """The settings the sandbox is prepared for: the defaults, with or without sudo and
        ppolicy; the server may also write where tests move and archive accounts."""
        ldap = LdapSettings(base_dn=directory.base_dn)
        settings = Settings(
            ldap=ldap,
            accounts=AccountSettings(password_storage="ssha512"),
            groups=GroupSettings(sudo={"sandbox": ["ALL"]} if self._sudo else {}),
        )
        return Preparation(
            settings,
            accounts,
            sort_values=True,
            locks=self._ppolicy,
            extra_modules=("pw-sha2",),
            writable=(ldap.disabled_dn, ldap.archive_dn, directory.counters_dn),
        )

    def stop_server(self) -> None:
        """Stop slapd but keep its configuration and data for start_server()."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=STOP_TIMEOUT)
        if self._log is not None:
            self._log.close()
            self._log = None

    def kill_server(self) -> None:
        """Kill slapd at once (SIGKILL), as a crash would; start_server() brings it back."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT)
        if self._log is not None:
            self._log.close()
            self._log = None

    def start_server(self) -> None:
        """Start slapd again on the same port with the same data."""
        if self._directory is None:
            raise SandboxError("sandbox is not started; call start() first")
        if self.running:
            return
        self._launch(find_slapd())

    def stop(self) -> None:
        """Stop slapd and remove every file of the sandbox. Safe to call repeatedly."""
        self.stop_server()
        root, self._root = self._root, None
        self._directory = None
        if root is not None:
            shutil.rmtree(root, ignore_errors=True)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def _config_dir(self) -> Path:
        return self.root / "slapd.d"

    @property
    def _tls_dir(self) -> Path:
        return self.root / "tls"

    def _make_certificates(self) -> Path:
        """A fresh CA and a server certificate for 127.0.0.1/localhost; returns the CA file.

        The CA file is world-readable (clients such as nslcd read it as their own user);
        the private key is readable by its owner only.
        """
        try:
            import trustme
        except ImportError as exc:
            raise SandboxError("a TLS sandbox needs trustme (pip install -e '.[dev]')") from exc
        authority = trustme.CA(organization_name="scim-ldap sandbox")
        certificate = authority.issue_cert("127.0.0.1", "localhost")
        self.root.chmod(0o711)
        tls_dir = self._tls_dir
        tls_dir.mkdir(mode=0o755)
        ca_file = tls_dir / "ca.pem"
        authority.cert_pem.write_to_path(str(ca_file))
        ca_file.chmod(0o644)
        chain = tls_dir / "server.pem"
        chain.write_bytes(b"".join(blob.bytes() for blob in certificate.cert_chain_pems))
        key = tls_dir / "server.key"
        key.touch(mode=0o600)
        certificate.private_key_pem.write_to_path(str(key))
        return ca_file

    def _build(self, slapadd: Path, directory: SandboxDirectory) -> None:
        data_dir = self.root / "data"
        data_dir.mkdir(mode=0o700)
        base_ldif = self.root / "base.ldif"
        base_ldif.write_text(self._base_ldif(directory), encoding="utf-8")
        if self._style == "slapd-conf":
            self._slapd_conf.write_text(self._conf_text(directory, data_dir), encoding="utf-8")
            self._slapadd(slapadd, "1", base_ldif)
            return
        self._config_dir.mkdir(mode=0o700)
        config_ldif = self.root / "config.ldif"
        config_ldif.write_text(self._config_ldif(directory, data_dir), encoding="utf-8")
        self._slapadd(slapadd, "0", config_ldif)
        self._slapadd(slapadd, "1", base_ldif)

    @property
    def _slapd_conf(self) -> Path:
        return self.root / "slapd.conf"

    def _config_args(self) -> list[str]:
        if self._style == "slapd-conf":
            return ["-f", str(self._slapd_conf)]
        return ["-F", str(self._config_dir)]

    def _slapadd(self, slapadd: Path, database: str, ldif: Path) -> None:
        result = subprocess.run(
            [str(slapadd), "-n", database, *self._config_args(), "-l", str(ldif)],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            output = (result.stderr or result.stdout).strip()
            raise SandboxError(f"slapadd -n{database} failed (exit {result.returncode}): {output}")

    def _tls_settings(self, directory: SandboxDirectory) -> list[tuple[str, str]]:
        if not directory.tls:
            return []
        return [
            ("olcTLSCACertificateFile", str(self._tls_dir / "ca.pem")),
            ("olcTLSCertificateFile", str(self._tls_dir / "server.pem")),
            ("olcTLSCertificateKeyFile", str(self._tls_dir / "server.key")),
        ]

    @property
    def _peercred(self) -> str:
        return f"gidNumber={os.getgid()}+uidNumber={os.getuid()},cn=peercred,cn=external,cn=auth"

    def _conf_text(self, directory: SandboxDirectory, data_dir: Path) -> str:
        """slapd.conf: the bare server, the generated fragments included (or ``includes``)."""
        includes = dict(self._includes)
        prepared = self._preparation
        if prepared is not None:
            for part, names in (
                ("global", ("modules", "sortvals", "schema")),
                ("config", ("config",)),
                ("database", ("database", "overlays")),
            ):
                path = self.root / f"{part}.conf"
                text = "\n".join(prepared.render("slapd-conf", name) for name in names)
                path.write_text(text, encoding="utf-8")
                includes[part] = path
        keywords = {
            "olcTLSCACertificateFile": "TLSCACertificateFile",
            "olcTLSCertificateFile": "TLSCertificateFile",
            "olcTLSCertificateKeyFile": "TLSCertificateKeyFile",
        }
        lines = [
            *(f"include {SYSTEM_SCHEMA_DIR / name}.schema" for name in SYSTEM_SCHEMAS),
            f"pidfile {self.root / 'slapd.pid'}",
            f"argsfile {self.root / 'slapd.args'}",
            *(f"{keywords[k]} {v}" for k, v in self._tls_settings(directory)),
            f"modulepath {MODULE_PATH}",
            "moduleload back_mdb",
            "sizelimit 500",
            'access to dn.base="" by * read',
            'access to dn.base="cn=Subschema" by * read',
        ]
        if "global" in includes:
            lines.append(f"include {includes['global']}")
        if "config" in includes:
            lines.append(f"include {includes['config']}")
        lines += [
            "database mdb",
            f"suffix {quoted_dn(directory.base_dn)}",
            f"rootdn {quoted_dn(directory.admin_dn)}",
            f"rootpw {_ssha(directory.admin_password)}",
            f"directory {data_dir}",
            f"maxsize {1 << 30}",
            f"limits dn.exact={quoted_dn(directory.admin_dn)} size=unlimited time=unlimited",
            *(f"access {rule}" for rule in self._access),
        ]
        if prepared is not None:
            lines += [f"index {index}" for index in EXTRA_INDEXES]
        if "database" in includes:
            lines.append(f"include {includes['database']}")
        return "\n".join(lines) + "\n"

    def _config_ldif(self, directory: SandboxDirectory, data_dir: Path) -> str:
        """cn=config, built offline: the bare server, and what the preparation adds to it."""
        prepared = self._preparation
        modules = ["back_mdb", *(prepared.modules if prepared else [])]
        schemas = [_schema_ldif(SYSTEM_SCHEMA_DIR / f"{name}.ldif") for name in SYSTEM_SCHEMAS]
        if prepared is not None:
            schemas += [_project_schema_ldif(name) for name in prepared.schemas]
        config_access = [rule.text for rule in prepared.config_access()] if prepared else []
        config_access.append(
            f"to * by dn.exact={quoted_dn(self._peercred)} manage "
            f'by dn.exact="{directory.admin_dn}" read by * none'
        )
        database: list[tuple[str, str]] = [
            ("objectClass", "olcDatabaseConfig"),
            ("objectClass", "olcMdbConfig"),
            ("olcDatabase", "{1}mdb"),
            ("olcDbDirectory", str(data_dir)),
            ("olcDbMaxSize", str(1 << 30)),
            ("olcSuffix", directory.base_dn),
            ("olcRootDN", directory.admin_dn),
            ("olcRootPW", _ssha(directory.admin_password)),
            ("olcLimits", f'dn.exact="{directory.admin_dn}" size=unlimited time=unlimited'),
            ("olcLastMod", "TRUE"),
        ]
        overlays: list[str] = []
        if prepared is not None:
            database += [("olcLimits", limit) for limit in prepared.limits]
            indexes = [*prepared.indexes, *EXTRA_INDEXES]
            database += [("olcDbIndex", index) for index in indexes]
            rules = [*self._access, *(rule.text for rule in prepared.access())]
            database += [("olcAccess", f"{{{n}}}{rule}") for n, rule in enumerate(rules)]
            for number, overlay in enumerate(prepared.overlays()):
                name = f"{{{number}}}{overlay.name}"
                overlays.append(
                    _ldif_entry(
                        f"olcOverlay={name},olcDatabase={{1}}mdb,cn=config",
                        [
                            ("objectClass", "olcOverlayConfig"),
                            ("objectClass", overlay.object_class),
                            ("olcOverlay", name),
                            *((olc, value) for olc, _, value in overlay.settings),
                        ],
                    )
                )
        elif self._access:
            database += [("olcAccess", f"{{{n}}}{rule}") for n, rule in enumerate(self._access)]
        entries = [
            _ldif_entry(
                "cn=config",
                [
                    ("objectClass", "olcGlobal"),
                    ("cn", "config"),
                    ("olcPidFile", str(self.root / "slapd.pid")),
                    ("olcArgsFile", str(self.root / "slapd.args")),
                    *self._tls_settings(directory),
                ],
            ),
            _ldif_entry(
                "cn=module{0},cn=config",
                [
                    ("objectClass", "olcModuleList"),
                    ("cn", "module{0}"),
                    ("olcModulePath", str(MODULE_PATH)),
                    *(("olcModuleLoad", module) for module in modules),
                ],
            ),
            _ldif_entry(
                "cn=schema,cn=config", [("objectClass", "olcSchemaConfig"), ("cn", "schema")]
            ),
            *schemas,
            _ldif_entry(
                "olcDatabase={-1}frontend,cn=config",
                [
                    ("objectClass", "olcDatabaseConfig"),
                    ("objectClass", "olcFrontendConfig"),
                    ("olcDatabase", "{-1}frontend"),
                    ("olcSizeLimit", "500"),
                    *([("olcSortVals", prepared.sorted)] if prepared and prepared.sorted else []),
                    ("olcAccess", '{0}to dn.base="" by * read'),
                    ("olcAccess", '{1}to dn.base="cn=Subschema" by * read'),
                ],
            ),
            _ldif_entry(
                "olcDatabase={0}config,cn=config",
                [
                    ("objectClass", "olcDatabaseConfig"),
                    ("olcDatabase", "{0}config"),
                    *(("olcAccess", f"{{{n}}}{rule}") for n, rule in enumerate(config_access)),
                ],
            ),
            _ldif_entry("olcDatabase={1}mdb,cn=config", database),
            *overlays,
        ]
        return "\n".join(entry.strip() + "\n" for entry in entries)

    def _base_ldif(self, directory: SandboxDirectory) -> str:
        entries = [_ldif_entry(directory.base_dn, _base_entry(directory.base_dn))]
        if self._preparation is not None:
            entries += [entry.ldif() for entry in self._preparation.entries()]
            ou = [("objectClass", "top"), ("objectClass", "organizationalUnit"), ("ou", "counters")]
            entries.append(_ldif_entry(directory.counters_dn, ou))
        return "\n".join(entries)

    def _launch(self, slapd: Path) -> None:
        directory = self.directory
        listeners = [f"{directory.url}/"]
        if directory.ldaps_url is not None:
            listeners.append(f"{directory.ldaps_url}/")
        if directory.ldapi_url is not None:
            listeners.append(f"{directory.ldapi_url}/")
        self._log = self.log_path.open("ab")
        self._process = subprocess.Popen(
            [str(slapd), "-d", "none", "-h", " ".join(listeners), *self._config_args()],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        try:
            self._wait_ready(directory)
        except BaseException:
            self.stop_server()
            raise

    def _wait_ready(self, directory: SandboxDirectory) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        last_error = "no answer"
        while time.monotonic() < deadline:
            process = self._process
            if process is None or process.poll() is not None:
                code = None if process is None else process.returncode
                raise SandboxError(f"slapd exited with status {code}\n{self._log_tail()}")
            try:
                connection = Connection(
                    Server(directory.url, connect_timeout=1, get_info=NONE),
                    user=directory.admin_dn,
                    password=directory.admin_password,
                    receive_timeout=2,
                )
                try:
                    if connection.bind():
                        return
                    last_error = str(connection.result.get("description", "bind refused"))
                finally:
                    connection.unbind()
            except LDAPException as exc:
                last_error = str(exc)
            time.sleep(0.05)
        raise SandboxError(
            f"slapd did not answer a bind at {directory.url} within {READY_TIMEOUT:.0f} s "
            f"({last_error})\n{self._log_tail()}"
        )

    def _log_tail(self, lines: int = 20) -> str:
        if self._log is not None:
            self._log.flush()
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no slapd log)"
        tail = text.strip().splitlines()[-lines:]
        return "slapd log:\n" + "\n".join(tail) if tail else "(slapd log is empty)"
