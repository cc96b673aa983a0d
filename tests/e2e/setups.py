"""The client setups the lifecycle matrix runs: hosts as admins set them up by hand
("stock"), with the usual hardening, and with what ``python -m app client-config``
prints ("generated"), all over StartTLS with the sandbox's CA.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from app.ldap.sandbox import SandboxDirectory
from tests.e2e.clients import (
    ClientStack,
    StackKind,
)
from tests.e2e.hostfiles import (
    INACTIVE_FILTER,
    NSSWITCH_DEBIAN_NSLCD,
    NSSWITCH_DEBIAN_SSSD,
    PAM_NSLCD,
    PAM_SSSD,
    SSHD_STOCK,
)
from tests.e2e.processes import ClientError

ROOT = Path(__file__).resolve().parents[2]
CLI_TIMEOUT = 60

# Debian 12's /etc/nsswitch.conf before any directory client is installed.
NSSWITCH_DEBIAN = """\
passwd:         files systemd
group:          files systemd
shadow:         files
gshadow:        files
hosts:          files dns
networks:       files
protocols:      db files
services:       db files
ethers:         db files
rpc:            db files
netgroup:       nis
"""


def stock_sssd_config(directory: SandboxDirectory, extra: Mapping[str, str] | None = None) -> str:
    """sssd.conf as an admin writes it by hand: the ldap provider, the whole directory as
    search base, StartTLS with the CA, everything else (access provider, caches) default."""
    if directory.ca_file is None:
        raise ClientError("stock setups talk to a TLS sandbox")
    options = {
        "id_provider": "ldap",
        "auth_provider": "ldap",
        "ldap_uri": directory.url,
        "ldap_search_base": directory.base_dn,
        "ldap_default_bind_dn": directory.nss_dn,
        "ldap_default_authtok": directory.nss_password,
        "ldap_id_use_start_tls": "true",
        "ldap_tls_cacert": directory.ca_file,
        **(extra or {}),
    }
    lines = [
        "[sssd]",
        "services = nss, pam, ssh",
        "domains = LDAP",
        "",
        "[domain/LDAP]",
        *(f"{name} = {value}" for name, value in options.items()),
    ]
    return "\n".join(lines) + "\n"


def stock_nslcd_config(directory: SandboxDirectory, extra: tuple[str, ...] = ()) -> str:
    """nslcd.conf as an admin writes it by hand (Debian's template filled in)."""
    if directory.ca_file is None:
        raise ClientError("stock setups talk to a TLS sandbox")
    lines = [
        "uid nslcd",
        "gid nslcd",
        f"uri {directory.url}/",
        f"base {directory.base_dn}",
        f"binddn {directory.nss_dn}",
        f"bindpw {directory.nss_password}",
        "ssl start_tls",
        "tls_reqcert demand",
        f"tls_cacertfile {directory.ca_file}",
        *extra,
    ]
    return "\n".join(lines) + "\n"


def sssd_access_options(directory: SandboxDirectory) -> dict[str, str]:
    """The LDAP access provider as the sssd-ldap manual suggests it, checking scimActive."""
    return {
        "access_provider": "ldap",
        "ldap_access_order": "filter, lockout, expire",
        "ldap_account_expire_policy": "shadow",
        "ldap_access_filter": INACTIVE_FILTER,
        "ldap_pwdlockout_dn": directory.password_policy_dn,
    }


NSLCD_AUTHZ = (f"pam_authz_search (&(objectClass=posixAccount)(uid=$username){INACTIVE_FILTER})",)


@dataclass(frozen=True)
class Generated:
    """What ``client-config`` printed for one kind, by part, and the command that printed it."""

    parts: dict[str, str]
    command: list[str]
    notes: list[str] = field(default_factory=list)


def cli_supports(option: str) -> bool:
    """Whether ``python -m app client-config`` has ``option``."""
    result = subprocess.run(
        [sys.executable, "-m", "app", "client-config", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=CLI_TIMEOUT,
    )
    return option in result.stdout


def generate(
    directory: SandboxDirectory,
    kind: StackKind,
    workdir: Path,
    cache_timeout: int,
    settings: Mapping[str, str] | None = None,
) -> Generated:
    """Every part ``client-config --for KIND`` prints for the server's settings of this
    directory, with the host's bind credentials, the CA and the cache timeout given as
    options (the only inputs besides the server's own settings). ``settings`` are more
    ``SCIM_LDAP_*`` variables, the server's settings beyond the directory's."""
    secret = workdir / f"{kind}-bindpw"
    secret.write_text(directory.nss_password, encoding="utf-8")
    secret.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCIM_LDAP_")}
    env.update(directory.environment())
    env.update(settings or {})
    command = [
        sys.executable,
        "-m",
        "app",
        "client-config",
        "--for",
        kind,
        "--bind-dn",
        directory.nss_dn,
        "--bind-password-file",
        str(secret),
        "--cache-timeout",
        str(cache_timeout),
    ]
    notes = []
    if directory.ca_file is not None:
        if cli_supports("--ca-file"):
            command += ["--ca-file", directory.ca_file]
        else:
            notes.append("client-config has no --ca-file option: the CA comes from ldap.ca_file")
    result = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, check=False, timeout=CLI_TIMEOUT
    )
    if result.returncode != 0:
        raise ClientError(
            f"client-config --for {kind} failed (exit {result.returncode}): "
            f"{(result.stderr or result.stdout).strip()}"
        )
    return Generated(split_parts(result.stdout), command, notes)


def split_parts(text: str) -> dict[str, str]:
    """The parts of ``client-config`` output without ``--part``, by the ``# ==> NAME <==``
    header line that starts each."""
    parts: dict[str, str] = {}
    name = ""
    for line in text.splitlines(keepends=True):
        header = re.fullmatch(r"# ==> (\S+) <==\n?", line)
        if header:
            name = header.group(1)
            parts[name] = ""
        elif name:
            parts[name] += line
    return {name: body.rstrip("\n") + "\n" for name, body in parts.items()}


def nsswitch_with(lines: str, base: str = NSSWITCH_DEBIAN) -> str:
    """``base`` with each database that ``lines`` names replaced by that line (what "these
    lines, the others unchanged" asks of an admin)."""
    given: dict[str, str] = {}
    for line in lines.splitlines():
        if line.strip() and not line.lstrip().startswith("#") and ":" in line:
            given[line.split(":", 1)[0].strip()] = line
    out = []
    for line in base.splitlines():
        database = line.split(":", 1)[0].strip()
        out.append(given.pop(database, line))
    out.extend(given.values())
    return "\n".join(out) + "\n"


@dataclass(frozen=True)
class Setup:
    """One host configuration of the matrix.

    ``flushes``: after each SCIM change the host's caches are cleared the way an admin
    would (``sss_cache -E`` and a daemon restart); otherwise every path is polled until
    it reaches its expected state within the bound the cache settings give.
    """

    name: str
    kind: StackKind
    build: Callable[[SandboxDirectory, Path], ClientStack]
    flushes: bool
    notes: tuple[str, ...] = ()


def _stock_sssd(directory: SandboxDirectory, workdir: Path) -> ClientStack:
    return ClientStack(
        "sssd",
        directory,
        stock_sssd_config(directory),
        NSSWITCH_DEBIAN_SSSD,
        PAM_SSSD,
        sshd=SSHD_STOCK["sssd"],
    )


def _sssd_access(directory: SandboxDirectory, workdir: Path) -> ClientStack:
    return ClientStack(
        "sssd",
        directory,
        stock_sssd_config(directory, sssd_access_options(directory)),
        NSSWITCH_DEBIAN_SSSD,
        PAM_SSSD,
        sshd=SSHD_STOCK["sssd"],
    )


def _stock_nslcd(directory: SandboxDirectory, workdir: Path) -> ClientStack:
    return ClientStack(
        "nslcd",
        directory,
        stock_nslcd_config(directory),
        NSSWITCH_DEBIAN_NSLCD,
        PAM_NSLCD,
        sshd=SSHD_STOCK["nslcd"],
    )


def _nslcd_authz(directory: SandboxDirectory, workdir: Path) -> ClientStack:
    return ClientStack(
        "nslcd",
        directory,
        stock_nslcd_config(directory, NSLCD_AUTHZ),
        NSSWITCH_DEBIAN_NSLCD,
        PAM_NSLCD,
        sshd=SSHD_STOCK["nslcd"],
    )


def generated_stack(
    directory: SandboxDirectory,
    kind: StackKind,
    workdir: Path,
    cache_timeout: int,
    settings: Mapping[str, str] | None = None,
) -> ClientStack:
    """A host that runs every part ``client-config`` printed, unchanged."""
    generated = generate(directory, kind, workdir, cache_timeout, settings)
    parts = generated.parts
    daemon = "sssd.conf" if kind == "sssd" else "nslcd.conf"
    missing = [
        name for name in (daemon, "nsswitch.conf", "pam", "sshd_config") if name not in parts
    ]
    if kind == "nslcd" and "ldap-ssh-keys" not in parts:
        missing.append("ldap-ssh-keys")
    if missing:
        raise ClientError(f"client-config --for {kind} printed no {', '.join(missing)}")
    return ClientStack(
        kind,
        directory,
        parts[daemon],
        nsswitch_with(parts["nsswitch.conf"]),
        parts["pam"],
        sshd=parts["sshd_config"],
        keys_script=parts.get("ldap-ssh-keys"),
    )


def setups(cache_timeout: int, settings: Mapping[str, str] | None = None) -> tuple[Setup, ...]:
    """The matrix's setups; the generated ones ask client-config for ``cache_timeout``
    with the server's ``settings`` (``SCIM_LDAP_*`` variables) beyond the directory's."""

    def generated(kind: StackKind) -> Callable[[SandboxDirectory, Path], ClientStack]:
        def build(directory: SandboxDirectory, workdir: Path) -> ClientStack:
            return generated_stack(directory, kind, workdir, cache_timeout, settings)

        return build

    return (
        Setup("stock sssd", "sssd", _stock_sssd, flushes=True),
        Setup("sssd access", "sssd", _sssd_access, flushes=True),
        Setup("stock nslcd", "nslcd", _stock_nslcd, flushes=True),
        Setup("nslcd authz", "nslcd", _nslcd_authz, flushes=True),
        Setup("generated sssd", "sssd", generated("sssd"), flushes=False),
        Setup("generated nslcd", "nslcd", generated("nslcd"), flushes=False),
    )
