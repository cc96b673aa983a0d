"""A throwaway OpenLDAP server for the demo command and the test suite.

The server is configured through cn=config (OLC) built offline with ``slapadd -n0``,
runs in the foreground as a child process of this one, listens on 127.0.0.1 only and
keeps every file (configuration, data, log) in a private temporary directory.

Access: the admin DN is the rootdn and reads and writes everything; Linux clients
(sssd, nslcd, key lookups) bind as it too. Anonymous clients may only bind
(simple bind on userPassword), so people can log in with their own password, and see
nothing else. The ppolicy overlay applies ``cn=default,ou=policies,<base>`` to every
entry: ``pwdAccountLockedTime: 000001010000Z`` locks an account until it is removed,
and five failed binds in a row lock it as well.

With ``sudo=True`` it also loads sudo's schema (app/ldap/schema/sudo.ldif, from
Debian's sudo-ldap package) and adds ``ou=sudoers,<base>`` for sudoRole entries.

With ``ppolicy=False`` it loads neither the ppolicy module nor its overlay (so the
directory's schema has no ``pwdAccountLockedTime``) and has no default policy entry:
a directory on which the lock action cannot work.

``access`` puts olcAccess rules (without their ``{n}``) before the sandbox's own on the
database, e.g. to let an account added by a test write only some entries: bound as any
account but the rootdn, the sandbox otherwise allows reading only.

With ``tls=True`` the sandbox makes a private certificate authority (``trustme``, a
development dependency), gives slapd a certificate for 127.0.0.1 and localhost signed by
it, offers StartTLS on its ldap:// URL and listens on an ldaps:// URL as well. The CA
certificate is ``SandboxDirectory.ca_file``; the settings and environment it gives turn
StartTLS on and point at that CA. Plain binds stay allowed, so the same directory can
show what a client without TLS would do.
"""

from __future__ import annotations

import json
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
from typing import IO, Self

from ldap3 import HASHED_SALTED_SHA, NONE, Connection, Server
from ldap3.core.exceptions import LDAPException
from ldap3.utils.dn import parse_dn
from ldap3.utils.hashed import hashed
from pydantic import SecretStr

from app.config import LdapSettings
from app.ldap.accounts import unique_uid_numbers

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

INDEXES = (
    "objectClass eq",
    "uid,cn,mail,givenName,sn,displayName,scimUserName eq,sub",
    "scimExternalId,entryUUID,entryCSN,uidNumber,gidNumber,memberUid,member,"
    "employeeNumber,manager,homeDirectory eq",
    "scimPending pres",
)
PASSWORD_POLICY = (
    ("objectClass", "top"),
    ("objectClass", "device"),
    ("objectClass", "pwdPolicy"),
    ("cn", "default"),
    ("pwdAttribute", "userPassword"),
    ("pwdLockout", "TRUE"),
    ("pwdMaxFailure", "5"),
)


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

    @property
    def tls(self) -> bool:
        """Whether the directory offers StartTLS and ldaps:// with a certificate of ``ca_file``."""
        return self.ca_file is not None

    @property
    def policies_dn(self) -> str:
        return f"ou=policies,{self.base_dn}"

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
    """A private slapd with the SCIM schema, an mdb database and the sssvlv and ppolicy overlays."""

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
    ) -> None:
        self._base_dn = base_dn
        self._access = tuple(access)
        self._sudo = sudo
        self._ppolicy = ppolicy
        self._port = port
        self._tls = tls
        self._ldaps_port: int | None = None
        self._parent_dir = workdir
        self._root: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._directory: SandboxDirectory | None = None

    @property
    def directory(self) -> SandboxDirectory:
        if self._directory is None:
            raise SandboxError("sandbox is not started")
        return self._directory

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
            directory = SandboxDirectory(
                url=f"ldap://127.0.0.1:{port}",
                base_dn=self._base_dn,
                bind_dn=f"cn=admin,{self._base_dn}",
                bind_password=secrets.token_urlsafe(24),
                users_dn=f"ou=people,{self._base_dn}",
                groups_dn=f"ou=groups,{self._base_dn}",
                ca_file=ca_file,
                ldaps_url=ldaps_url,
            )
            self._build(slapadd, directory)
            self._directory = directory
            self._port = port
            self._launch(slapd)
        except BaseException:
            self.stop()
            raise
        return directory

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
        self._config_dir.mkdir(mode=0o700)

        config_ldif = self.root / "config.ldif"
        config_ldif.write_text(self._config_ldif(directory, data_dir), encoding="utf-8")
        self._slapadd(slapadd, "0", config_ldif)

        base_ldif = self.root / "base.ldif"
        base_ldif.write_text(self._base_ldif(directory), encoding="utf-8")
        self._slapadd(slapadd, "1", base_ldif)

    def _slapadd(self, slapadd: Path, database: str, ldif: Path) -> None:
        result = subprocess.run(
            [str(slapadd), "-n", database, "-F", str(self._config_dir), "-l", str(ldif)],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            output = (result.stderr or result.stdout).strip()
            raise SandboxError(f"slapadd -n{database} failed (exit {result.returncode}): {output}")

    def _config_ldif(self, directory: SandboxDirectory, data_dir: Path) -> str:
        unique = 2 if self._ppolicy else 1
        tls: list[tuple[str, str]] = []
        if directory.tls:
            tls = [
                ("olcTLSCACertificateFile", str(self._tls_dir / "ca.pem")),
                ("olcTLSCertificateFile", str(self._tls_dir / "server.pem")),
                ("olcTLSCertificateKeyFile", str(self._tls_dir / "server.key")),
            ]
        entries = [
            _ldif_entry(
                "cn=config",
                [
                    ("objectClass", "olcGlobal"),
                    ("cn", "config"),
                    ("olcPidFile", str(self.root / "slapd.pid")),
                    ("olcArgsFile", str(self.root / "slapd.args")),
                    *tls,
                ],
            ),
            _ldif_entry(
                "cn=module{0},cn=config",
                [
                    ("objectClass", "olcModuleList"),
                    ("cn", "module{0}"),
                    ("olcModulePath", str(MODULE_PATH)),
                    *(
                        ("olcModuleLoad", module)
                        for module in MODULES
                        if self._ppolicy or module != "ppolicy"
                    ),
                ],
            ),
            _ldif_entry(
                "cn=schema,cn=config", [("objectClass", "olcSchemaConfig"), ("cn", "schema")]
            ),
            *(_schema_ldif(SYSTEM_SCHEMA_DIR / f"{name}.ldif") for name in SYSTEM_SCHEMAS),
            *(_project_schema_ldif(name) for name in PROJECT_SCHEMAS),
            *([_project_schema_ldif(SUDO_SCHEMA)] if self._sudo else []),
            _ldif_entry(
                "olcDatabase={-1}frontend,cn=config",
                [
                    ("objectClass", "olcDatabaseConfig"),
                    ("objectClass", "olcFrontendConfig"),
                    ("olcDatabase", "{-1}frontend"),
                    ("olcSizeLimit", "500"),
                    ("olcAccess", '{0}to dn.base="" by * read'),
                    ("olcAccess", '{1}to dn.base="cn=Subschema" by * read'),
                ],
            ),
            _ldif_entry(
                "olcDatabase={0}config,cn=config",
                [
                    ("objectClass", "olcDatabaseConfig"),
                    ("olcDatabase", "{0}config"),
                    ("olcAccess", f'{{0}}to * by dn.exact="{directory.bind_dn}" read by * none'),
                ],
            ),
            _ldif_entry(
                "olcDatabase={1}mdb,cn=config",
                [
                    ("objectClass", "olcDatabaseConfig"),
                    ("objectClass", "olcMdbConfig"),
                    ("olcDatabase", "{1}mdb"),
                    ("olcDbDirectory", str(data_dir)),
                    ("olcDbMaxSize", str(1 << 30)),
                    ("olcSuffix", directory.base_dn),
                    ("olcRootDN", directory.bind_dn),
                    ("olcRootPW", _ssha(directory.bind_password)),
                    ("olcLimits", f'dn.exact="{directory.bind_dn}" size=unlimited time=unlimited'),
                    ("olcLastMod", "TRUE"),
                    *(("olcDbIndex", index) for index in INDEXES),
                    *(
                        ("olcAccess", f"{{{number}}}{rule}")
                        for number, rule in enumerate(
                            [
                                *self._access,
                                "to attrs=userPassword by self write by anonymous auth by * none",
                                "to * by users read by * none",
                            ]
                        )
                    ),
                ],
            ),
            _ldif_entry(
                "olcOverlay={0}sssvlv,olcDatabase={1}mdb,cn=config",
                [
                    ("objectClass", "olcOverlayConfig"),
                    ("objectClass", "olcSssVlvConfig"),
                    ("olcOverlay", "{0}sssvlv"),
                    ("olcSssVlvMax", "64"),
                    ("olcSssVlvMaxKeys", "5"),
                    ("olcSssVlvMaxPerConn", "16"),
                ],
            ),
            _ldif_entry(
                f"olcOverlay={{{unique}}}unique,olcDatabase={{1}}mdb,cn=config",
                [
                    ("objectClass", "olcOverlayConfig"),
                    ("objectClass", "olcUniqueConfig"),
                    ("olcOverlay", f"{{{unique}}}unique"),
                    ("olcUniqueURI", unique_uid_numbers(directory.base_dn)),
                ],
            ),
        ]
        if self._ppolicy:
            entries.insert(-1, self._ppolicy_ldif(directory))
        return "\n".join(entry.strip() + "\n" for entry in entries)

    @staticmethod
    def _ppolicy_ldif(directory: SandboxDirectory) -> str:
        return _ldif_entry(
            "olcOverlay={1}ppolicy,olcDatabase={1}mdb,cn=config",
            [
                ("objectClass", "olcOverlayConfig"),
                ("objectClass", "olcPPolicyConfig"),
                ("olcOverlay", "{1}ppolicy"),
                ("olcPPolicyDefault", directory.password_policy_dn),
                ("olcPPolicyUseLockout", "TRUE"),
            ],
        )

    def _base_ldif(self, directory: SandboxDirectory) -> str:
        entries = [
            _ldif_entry(directory.base_dn, _base_entry(directory.base_dn)),
            _ldif_entry(
                directory.users_dn,
                [("objectClass", "top"), ("objectClass", "organizationalUnit"), ("ou", "people")],
            ),
            _ldif_entry(
                directory.groups_dn,
                [("objectClass", "top"), ("objectClass", "organizationalUnit"), ("ou", "groups")],
            ),
            _ldif_entry(
                directory.policies_dn,
                [("objectClass", "top"), ("objectClass", "organizationalUnit"), ("ou", "policies")],
            ),
        ]
        if self._ppolicy:
            entries.append(_ldif_entry(directory.password_policy_dn, list(PASSWORD_POLICY)))
        if self._sudo:
            entries.append(
                _ldif_entry(
                    directory.sudoers_dn,
                    [
                        ("objectClass", "top"),
                        ("objectClass", "organizationalUnit"),
                        ("ou", "sudoers"),
                    ],
                )
            )
        return "\n".join(entries)

    def _launch(self, slapd: Path) -> None:
        directory = self.directory
        listeners = [f"{directory.url}/"]
        if directory.ldaps_url is not None:
            listeners.append(f"{directory.ldaps_url}/")
        self._log = self.log_path.open("ab")
        self._process = subprocess.Popen(
            [
                str(slapd),
                "-d",
                "none",
                "-h",
                " ".join(listeners),
                "-F",
                str(self._config_dir),
            ],
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
                    user=directory.bind_dn,
                    password=directory.bind_password,
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
