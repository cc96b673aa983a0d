"""Real Linux login stacks (sssd or nslcd, NSS and PAM) pointed at a sandbox directory.

A ``ClientStack`` runs one stack the way a Linux host would, but without touching the
host: a long-lived shell started with ``unshare --mount --propagation private`` mounts a
private /run, /etc/nsswitch.conf, /etc/pam.d and the stack's own configuration and
runtime directories over the real paths, then sleeps. The daemon and every command
(getent, id, pamtester, sss_ssh_authorizedkeys, the key lookup script) run inside that
mount namespace through ``nsenter``, so they see the private files while the host keeps
its own. Everything is undone by ``stop()``: killing the processes of the namespace
drops its mounts.

Each stack also runs a real ``sshd`` in its namespace, on a free loopback port with its
own host key, ``UsePAM yes`` and the stack's ``AuthorizedKeysCommand``; its PAM services
(``sshd``, ``su`` and the test service) are Debian's, including ``common-auth``,
``common-account`` and ``common-session`` built from the stack's PAM lines. Every login
path a host offers is a method: ``getent_passwd``, ``id``, ``authenticate`` (PAM auth),
``account`` (the PAM account phase alone, what sshd runs after a key), ``su_from_root``,
``su_with_password``, ``ssh_key_login``, ``ssh_password_login`` and ``ssh_keys`` (the key
lookup alone).

Installing the packages edits the host's NSS and PAM configuration (the postinst
scripts of libnss-sss, libnss-ldapd and the libpam-* profiles) and may start daemons;
``install_packages`` backs those files up, keeps daemons from starting, and restores the
files byte for byte afterwards.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import select
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Literal, Self

from ldap3 import HASHED_SALTED_SHA, SUBTREE, Connection
from ldap3.utils.hashed import hashed

from app.ldap.sandbox import SandboxDirectory

StackKind = Literal["sssd", "nslcd"]

SSSD_PACKAGES = ("sssd-ldap", "sssd-tools", "libnss-sss", "libpam-sss")
NSLCD_PACKAGES = ("nslcd", "libnss-ldapd", "libpam-ldapd")
TOOL_PACKAGES = ("pamtester", "ldap-utils")
PACKAGES = (*SSSD_PACKAGES, *NSLCD_PACKAGES, *TOOL_PACKAGES)

NSSWITCH = Path("/etc/nsswitch.conf")
PAM_DIR = Path("/etc/pam.d")
PAM_PROFILES = Path("/usr/share/pam-configs")
POLICY_RC = Path("/usr/sbin/policy-rc.d")
DAEMON_NAMES = frozenset(
    {"sssd", "sssd_be", "sssd_nss", "sssd_pam", "sssd_ssh", "sssd_kcm", "nslcd", "nscd"}
)
DEBCONF_SELECTIONS = "libnss-ldapd libnss-ldapd/nsswitch multiselect \n"

SERVICE = "scim-e2e"
KEYS_SCRIPT = "ldap-ssh-keys"
KEYS_COMMAND = "/usr/local/sbin/ldap-ssh-keys"
SSS_KEYS_COMMAND = "/usr/bin/sss_ssh_authorizedkeys"
SSH_TIMEOUT = 20.0
SSH_CONNECT_TIMEOUT = 5
UNPRIVILEGED = "nobody"
START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
COMMAND_TIMEOUT = 30.0
FLUSH_ATTEMPTS = 3

# PAM stacks as Debian's pam-auth-update writes common-auth and common-account with the
# unix profile plus the stack's own one (profile "sss" of libpam-sss, "ldap" of
# libpam-ldapd).
PAM_SSSD = """\
auth	[success=2 default=ignore]	pam_unix.so nullok
auth	[success=1 default=ignore]	pam_sss.so use_first_pass
auth	requisite			pam_deny.so
auth	required			pam_permit.so
account	[success=1 new_authtok_reqd=done default=ignore]	pam_unix.so
account	requisite			pam_deny.so
account	required			pam_permit.so
account	sufficient			pam_localuser.so
account	[default=bad success=ok user_unknown=ignore]	pam_sss.so
"""

PAM_NSLCD = """\
auth	[success=2 default=ignore]	pam_unix.so nullok
auth	[success=1 default=ignore]	pam_ldap.so minimum_uid=1000 use_first_pass
auth	requisite			pam_deny.so
auth	required			pam_permit.so
account	[success=1 new_authtok_reqd=done default=ignore]	pam_unix.so
account	requisite			pam_deny.so
account	required			pam_permit.so
account	[success=ok new_authtok_reqd=done ignore=ignore user_unknown=ignore \
authinfo_unavail=ignore default=bad]	pam_ldap.so minimum_uid=1000
"""

PAM_SSSD_STRICT = PAM_SSSD.replace(
    "[default=bad success=ok user_unknown=ignore]\tpam_sss.so",
    "[default=bad success=ok]\tpam_sss.so",
)

NSSWITCH_SSSD = """\
passwd:         files sss
group:          files sss
shadow:         files sss
"""

NSSWITCH_NSLCD = """\
passwd:         files ldap
group:          files ldap
shadow:         files ldap
"""

# What Debian 12's nsswitch.conf says once libnss-sss or libnss-ldapd is installed.
NSSWITCH_DEBIAN_SSSD = """\
passwd:         files systemd sss
group:          files systemd sss
shadow:         files sss
gshadow:        files
hosts:          files dns
services:       db files sss
netgroup:       nis sss
sudoers:        files sss
"""

NSSWITCH_DEBIAN_NSLCD = """\
passwd:         files systemd ldap
group:          files systemd ldap
shadow:         files ldap
gshadow:        files
hosts:          files dns
"""

# common-session and common-password as pam-auth-update writes them with the unix
# profile plus sss or ldap.
PAM_SESSION = {
    "sssd": """\
session	[default=1]			pam_permit.so
session	requisite			pam_deny.so
session	required			pam_permit.so
session	required	pam_unix.so
session	optional			pam_sss.so
""",
    "nslcd": """\
session	[default=1]			pam_permit.so
session	requisite			pam_deny.so
session	required			pam_permit.so
session	required	pam_unix.so
session	[success=ok default=ignore]	pam_ldap.so minimum_uid=1000
""",
}
PAM_PASSWORD = """\
password	[success=1 default=ignore]	pam_unix.so obscure yescrypt
password	requisite			pam_deny.so
password	required			pam_permit.so
"""

# Debian's /etc/pam.d/sshd (openssh-server), su and su-l (util-linux), without
# comments and the optional pam_selinux lines.
PAM_SSHD_SERVICE = """\
@include common-auth
account    required     pam_nologin.so
@include common-account
session    required     pam_loginuid.so
session    optional     pam_keyinit.so force revoke
@include common-session
session    optional     pam_motd.so  motd=/run/motd.dynamic
session    optional     pam_motd.so noupdate
session    optional     pam_mail.so standard noenv
session    required     pam_limits.so
session    required     pam_env.so
session    required     pam_env.so user_readenv=1 envfile=/etc/default/locale
@include common-password
"""
PAM_SU_SERVICE = """\
auth       sufficient pam_rootok.so
session       required   pam_env.so readenv=1
session       required   pam_env.so readenv=1 envfile=/etc/default/locale
session    optional   pam_mail.so nopen
session    required   pam_limits.so
@include common-auth
@include common-account
@include common-session
"""
PAM_SU_LOGIN_SERVICE = """\
auth       include    su
account    include    su
password   include    su
session    optional   pam_keyinit.so force revoke
session    include    su
"""
PAM_TEST_SERVICE = """\
@include common-auth
@include common-account
"""

# The harness's own sshd settings; they follow the stack's sshd_config lines, so where
# both set a keyword the stack's wins (sshd keeps the first value it reads).
SSHD_HARNESS = """\
ListenAddress 127.0.0.1
Port {port}
HostKey {root}/ssh_host_ed25519_key
PidFile {root}/sshd.pid
UsePAM yes
PubkeyAuthentication yes
PasswordAuthentication yes
KbdInteractiveAuthentication yes
AuthorizedKeysFile none
PermitRootLogin no
StrictModes yes
LogLevel VERBOSE
"""

SSHD_STOCK = {
    "sssd": f"AuthorizedKeysCommand {SSS_KEYS_COMMAND} %u\nAuthorizedKeysCommandUser nobody\n",
    "nslcd": f"AuthorizedKeysCommand {KEYS_COMMAND} %u\nAuthorizedKeysCommandUser nslcd\n",
}

ASKPASS = """\
#!/bin/sh
exec cat "$SCIM_E2E_SECRET"
"""

NAMESPACE_SETUP = r"""
set -eu
root=$1
kind=$2
mount -t tmpfs -o mode=0755 scim-e2e /run
mkdir -m 0755 /run/sshd
mount --bind "$root/nsswitch.conf" /etc/nsswitch.conf
mount --bind "$root/pam.d" /etc/pam.d
mount -t tmpfs -o mode=0755 scim-e2e /usr/local/sbin
if [ -f "$root/ldap-ssh-keys" ]; then
    install -m 0755 -o root -g root "$root/ldap-ssh-keys" /usr/local/sbin/ldap-ssh-keys
fi
if [ "$kind" = sssd ]; then
    mount --bind "$root/sssd" /etc/sssd
    mount -t tmpfs -o mode=0755 scim-e2e /var/lib/sss
    mkdir -p /var/lib/sss/db /var/lib/sss/pipes/private /var/lib/sss/mc \
        /var/lib/sss/pubconf /var/lib/sss/gpo_cache /var/lib/sss/keytabs
    chmod 0700 /var/lib/sss/db /var/lib/sss/pipes/private
    if [ -d /var/log/sssd ]; then
        mount -t tmpfs -o mode=0750 scim-e2e /var/log/sssd
    fi
else
    mkdir -m 0755 /run/nslcd
    chown nslcd:nslcd /run/nslcd
    mount --bind "$root/nslcd.conf" /etc/nslcd.conf
fi
echo ready
exec sleep infinity
"""

KEYS_SCRIPT_TEMPLATE = """\
#!/bin/sh
# sshd_config:
#   AuthorizedKeysCommand {path} %u
#   AuthorizedKeysCommandUser <a user that may read the bind password file>
# nslcd has no SSH key map, so the keys come from LDAP directly, with the same search
# base, filter and credentials as nslcd's passwd map.
set -eu
case "${{1:-}}" in ''|-*|*[!A-Za-z0-9._-]*) exit 1 ;; esac
{tls_env}ldapsearch -LLL -x -o ldif-wrap=no -o nettimeout=5 -H {uri}{starttls} {bind} -b {base} \\
    -s sub "(&{filter}(uid=$1))" sshPublicKey | sed -n 's/^sshPublicKey: //p'
"""


INACTIVE_FILTER = "(!(scimActive=FALSE))"


def sssd_disable_options(directory: SandboxDirectory) -> dict[str, str]:
    """The sssd domain options that shut out users marked ``scimActive: FALSE``.

    The access filter refuses the PAM account phase (every password and key login) with
    a fresh LDAP search at each login; the user search filter also hides the user, and
    so its keys, from NSS once the cached entry expires.
    """
    return {
        "access_provider": "ldap",
        "ldap_access_order": "filter",
        "ldap_access_filter": INACTIVE_FILTER,
        "ldap_user_search_base": f"{directory.users_dn}?subtree?{INACTIVE_FILTER}",
    }


def nslcd_disable_lines() -> list[str]:
    """The nslcd.conf lines that shut out users marked ``scimActive: FALSE``."""
    return [
        f"filter passwd (&(objectClass=posixAccount){INACTIVE_FILTER})",
        f"filter shadow (&(objectClass=shadowAccount){INACTIVE_FILTER})",
        f"pam_authz_search (&(objectClass=posixAccount)(uid=$username){INACTIVE_FILTER})",
    ]


class ClientError(RuntimeError):
    """A client stack could not be installed, started or queried."""


def missing_packages(packages: Iterable[str] = PACKAGES) -> list[str]:
    """The Debian packages of ``packages`` that are not installed."""
    missing = []
    for package in packages:
        result = subprocess.run(
            ["dpkg-query", "-W", "-f=${Status}", package],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0 or not result.stdout.endswith(" installed"):
            missing.append(package)
    return missing


def _snapshot() -> dict[Path, tuple[bytes, int]]:
    files = [NSSWITCH, *sorted(path for path in PAM_DIR.iterdir() if path.is_file())]
    return {path: (path.read_bytes(), stat.S_IMODE(path.stat().st_mode)) for path in files}


def _restore(snapshot: Mapping[Path, tuple[bytes, int]]) -> None:
    for path, (content, mode) in snapshot.items():
        if not path.is_file() or path.read_bytes() != content:
            path.write_bytes(content)
        if stat.S_IMODE(path.stat().st_mode) != mode:
            path.chmod(mode)
    changed = [path for path, (content, _) in snapshot.items() if path.read_bytes() != content]
    if changed:
        raise ClientError(f"could not restore {', '.join(map(str, changed))}")


def _host_mount_namespace() -> int:
    return os.stat("/proc/self/ns/mnt").st_ino


def _processes() -> dict[int, tuple[str, int]]:
    """Every process's name and mount namespace inode, by pid."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            name = (entry / "comm").read_text().strip()
            namespace = os.stat(entry / "ns" / "mnt").st_ino
        except OSError:
            continue
        found[int(entry.name)] = (name, namespace)
    return found


def _host_daemons() -> set[int]:
    host = _host_mount_namespace()
    return {
        pid
        for pid, (name, namespace) in _processes().items()
        if name in DAEMON_NAMES and namespace == host
    }


def _kill(pids: Iterable[int]) -> None:
    pids = list(pids)
    for pid in pids:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    while pids and time.monotonic() < deadline:
        pids = [pid for pid in pids if Path(f"/proc/{pid}").exists() and not _zombie(pid)]
        time.sleep(0.05)
    for pid in pids:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _zombie(pid: int) -> bool:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return True
    return fields[0] == "Z"


@contextmanager
def _daemons_kept_stopped() -> Iterator[None]:
    """Deny every service start during package installation (invoke-rc.d's policy hook)."""
    if POLICY_RC.exists() or POLICY_RC.is_symlink():
        yield
        return
    POLICY_RC.write_text("#!/bin/sh\nexit 101\n")
    POLICY_RC.chmod(0o755)
    try:
        yield
    finally:
        POLICY_RC.unlink(missing_ok=True)


def _run_root(argv: Sequence[str], what: str, *, input: str | None = None) -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    result = subprocess.run(
        list(argv), input=input, capture_output=True, text=True, env=env, check=False
    )
    if result.returncode != 0:
        output = (result.stderr or result.stdout).strip()[-2000:]
        raise ClientError(f"{what} failed (exit {result.returncode}): {output}")


def install_packages(packages: Iterable[str] = PACKAGES) -> list[str]:
    """Install the missing ``packages`` without changing how the host resolves or logs in users.

    Returns the packages it installed (none when all were there). Needs root. The
    postinst scripts add ``sss``/``ldap`` to /etc/nsswitch.conf and enable their PAM
    profiles in /etc/pam.d/common-*: those files are restored byte for byte, and the new
    profiles are recorded as seen but disabled so a later ``pam-auth-update`` leaves
    them off. Daemons are kept from starting; any that started anyway are stopped.
    """
    missing = missing_packages(packages)
    if not missing:
        return []
    if os.geteuid() != 0:
        raise ClientError(f"installing {' '.join(missing)} needs root")
    if shutil.which("apt-get") is None:
        raise ClientError(f"apt-get not found; install {' '.join(missing)} by hand")
    snapshot = _snapshot()
    profiles = {path.name for path in PAM_PROFILES.iterdir()}
    daemons = _host_daemons()
    try:
        with _daemons_kept_stopped():
            _run_root(
                ["debconf-set-selections"], "debconf-set-selections", input=DEBCONF_SELECTIONS
            )
            _run_root(["apt-get", "update", "-qq"], "apt-get update")
            _run_root(
                ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
                f"apt-get install {' '.join(missing)}",
            )
    finally:
        _kill(_host_daemons() - daemons)
        added = sorted({path.name for path in PAM_PROFILES.iterdir()} - profiles)
        try:
            if added and shutil.which("pam-auth-update"):
                _run_root(["pam-auth-update", "--disable", *added], "pam-auth-update")
        finally:
            _restore(snapshot)
    still = missing_packages(packages)
    if still:
        raise ClientError(f"still missing after apt-get install: {' '.join(still)}")
    return missing


def sssd_config(
    directory: SandboxDirectory,
    domain: Mapping[str, str] | None = None,
    *,
    nss: Mapping[str, str] | None = None,
    services: str = "nss, pam, ssh",
) -> str:
    """An sssd.conf for the sandbox over plain ldap://, with caching cut to the minimum.

    Entries expire after a second, the in-memory cache is off and so is the negative
    cache (``entry_negative_timeout = 0``), which ``sss_cache -E`` would not clear: a user
    looked up before it existed would stay unknown to NSS and PAM for 15 s by default.

    Over ldap:// sssd refuses every password (and then takes the server for down) unless
    ``ldap_auth_disable_tls_never_use_in_production = true``, although its own config
    validator warns that the option is unknown. No TLS option is needed.

    ``domain`` and ``nss`` add or override options of the ``[domain/LDAP]`` and ``[nss]``
    sections; an empty value removes an option (sssd's default applies).
    """
    options = {
        "id_provider": "ldap",
        "auth_provider": "ldap",
        "access_provider": "permit",
        "chpass_provider": "none",
        "ldap_uri": directory.url,
        "ldap_schema": "rfc2307",
        "ldap_search_base": directory.base_dn,
        "ldap_user_search_base": directory.users_dn,
        "ldap_group_search_base": directory.groups_dn,
        "ldap_default_bind_dn": directory.bind_dn,
        "ldap_default_authtok_type": "password",
        "ldap_default_authtok": directory.bind_password,
        "ldap_auth_disable_tls_never_use_in_production": "true",
        "cache_credentials": "false",
        "enumerate": "false",
        "entry_cache_timeout": "1",
    }
    options.update(domain or {})
    nss_options = {"memcache_timeout": "0", "entry_negative_timeout": "0", **(nss or {})}
    lines = [
        "[sssd]",
        f"services = {services}",
        "domains = LDAP",
        "",
        "[nss]",
        *(f"{name} = {value}" for name, value in nss_options.items() if value),
        "",
        "[pam]",
        "",
        "[ssh]",
        "",
        "[domain/LDAP]",
        *(f"{name} = {value}" for name, value in options.items() if value),
    ]
    return "\n".join(lines) + "\n"


def nslcd_config(directory: SandboxDirectory, extra: Sequence[str] = ()) -> str:
    """An nslcd.conf for the sandbox over plain ldap://; ``extra`` lines are appended."""
    lines = [
        "uid nslcd",
        "gid nslcd",
        f"uri {directory.url}/",
        f"base {directory.base_dn}",
        f"base passwd {directory.users_dn}",
        f"base shadow {directory.users_dn}",
        f"base group {directory.groups_dn}",
        f"binddn {directory.bind_dn}",
        f"bindpw {directory.bind_password}",
        *extra,
    ]
    return "\n".join(lines) + "\n"


def _nslcd_options(config: str) -> dict[str, str]:
    options: dict[str, str] = {}
    for raw in config.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, _, value = line.partition(" ")
        value = value.strip()
        if name in ("base", "filter"):
            map_name, _, rest = value.partition(" ")
            if name == "filter" or (rest and map_name in ("passwd", "shadow", "group")):
                name, value = f"{name} {map_name}", rest.strip()
        options.setdefault(name, value)
    return options


def ldap_keys_script(config: str, path: str, password_file: str) -> str:
    """The sshd ``AuthorizedKeysCommand`` of an nslcd host, built from its nslcd.conf.

    It searches what nslcd's passwd map searches (``base passwd`` or ``base``, ``filter
    passwd`` or objectClass=posixAccount), with nslcd's bind DN, for the user's
    sshPublicKey values and prints them one a line.
    """
    options = _nslcd_options(config)
    uri = options.get("uri", "").split()[0] if options.get("uri") else ""
    if not uri:
        raise ClientError("nslcd.conf has no uri")
    base = options.get("base passwd") or options.get("base", "")
    ldap_filter = options.get("filter passwd", "(objectClass=posixAccount)")
    if not ldap_filter.startswith("("):
        ldap_filter = f"({ldap_filter})"
    bind = ""
    if options.get("binddn"):
        bind = f"-D {shlex.quote(options['binddn'])} -y {shlex.quote(password_file)}"
    tls_env = ""
    if options.get("tls_cacertfile"):
        tls_env = f"LDAPTLS_CACERT={shlex.quote(options['tls_cacertfile'])} "
    starttls = " -ZZ" if options.get("ssl") == "start_tls" else ""
    return KEYS_SCRIPT_TEMPLATE.format(
        path=path,
        uri=shlex.quote(uri),
        starttls=starttls,
        tls_env=tls_env,
        bind=bind,
        base=shlex.quote(base),
        filter=_double_quoted(ldap_filter),
    )


def _double_quoted(text: str) -> str:
    """``text`` escaped for use inside double quotes in a shell script."""
    for special in ("\\", '"', "$", "`"):
        text = text.replace(special, "\\" + special)
    return text


@dataclass(frozen=True)
class LoginUser:
    """A POSIX account added straight to LDAP, with its own primary group."""

    uid: str
    uid_number: int
    password: str
    key: str
    dn: str
    group_dn: str


def add_login_user(
    conn: Connection,
    directory: SandboxDirectory,
    uid: str,
    uid_number: int,
    *,
    password: str,
    key: str,
    attributes: Mapping[str, object] | None = None,
) -> LoginUser:
    """Add ``uid`` as inetOrgPerson, posixAccount, shadowAccount, ldapPublicKey and scimUser
    (``scimActive: TRUE``, an {SSHA} userPassword, one sshPublicKey) and a posixGroup of
    the same name and number as its primary group."""
    group_dn = f"cn={uid},{directory.groups_dn}"
    if not conn.add(group_dn, ["posixGroup"], {"cn": uid, "gidNumber": uid_number}):
        raise ClientError(f"cannot add {group_dn}: {conn.result}")
    dn = f"uid={uid},{directory.users_dn}"
    values: dict[str, object] = {
        "cn": uid,
        "sn": uid,
        "uidNumber": uid_number,
        "gidNumber": uid_number,
        "homeDirectory": f"/home/{uid}",
        "loginShell": "/bin/bash",
        "userPassword": hashed(HASHED_SALTED_SHA, password),
        "sshPublicKey": key,
        "scimActive": "TRUE",
    }
    values.update(attributes or {})
    classes = ["inetOrgPerson", "posixAccount", "shadowAccount", "ldapPublicKey", "scimUser"]
    if not conn.add(dn, classes, values):
        conn.delete(group_dn)
        raise ClientError(f"cannot add {dn}: {conn.result}")
    return LoginUser(uid, uid_number, password, key, dn, group_dn)


def remove_login_user(conn: Connection, directory: SandboxDirectory, user: LoginUser) -> None:
    """Delete the user wherever it was moved to, and its group."""
    conn.search(directory.base_dn, f"(uid={user.uid})", SUBTREE, attributes=[])
    for entry in list(conn.entries):
        conn.delete(entry.entry_dn)
    conn.delete(user.group_dn)


@dataclass(frozen=True)
class CommandResult:
    returncode: int
    stdout: str
    stderr: str


class ClientStack:
    """One Linux login stack (sssd or nslcd with its NSS and PAM modules, and sshd) in a
    private mount namespace, pointed at a sandbox directory.

    ``config`` is the text of sssd.conf or nslcd.conf, ``nsswitch`` of nsswitch.conf and
    ``pam`` the lines that become common-auth, common-account and common-session by their
    type (without session lines, common-session is Debian's; common-password is always).
    ``sshd`` holds the host's sshd_config lines (its AuthorizedKeysCommand), placed before
    the harness's own listener settings. ``keys_script`` replaces the nslcd host's key
    lookup script derived from its config; it is installed as ``KEYS_COMMAND``.

    The methods that check a login path may run in parallel on different stacks, not on
    the same one.
    """

    def __init__(
        self,
        kind: StackKind,
        directory: SandboxDirectory,
        config: str,
        nsswitch: str | None = None,
        pam: str | None = None,
        *,
        sshd: str | None = None,
        keys_script: str | None = None,
        workdir: Path | None = None,
    ) -> None:
        self.kind: StackKind = kind
        self.directory = directory
        self.config = config
        self.nsswitch = nsswitch or (NSSWITCH_SSSD if kind == "sssd" else NSSWITCH_NSLCD)
        self.pam = pam or (PAM_SSSD if kind == "sssd" else PAM_NSLCD)
        self.sshd = sshd or SSHD_STOCK[kind]
        self.keys_script = keys_script
        self.ssh_port = 0
        self._parent_dir = workdir
        self._root: Path | None = None
        self._holder: subprocess.Popen[bytes] | None = None
        self._namespace: int | None = None
        self._daemon: subprocess.Popen[bytes] | None = None
        self._sshd: subprocess.Popen[bytes] | None = None

    @property
    def root(self) -> Path:
        if self._root is None:
            raise ClientError(f"{self.kind} stack is not started")
        return self._root

    @property
    def log_path(self) -> Path:
        return self.root / f"{self.kind}.log"

    @property
    def sshd_log_path(self) -> Path:
        return self.root / "sshd.log"

    @property
    def keys_command(self) -> str:
        """The key lookup sshd runs: sss_ssh_authorizedkeys, or the nslcd host's script."""
        return SSS_KEYS_COMMAND if self.kind == "sssd" else KEYS_COMMAND

    def start(self) -> Self:
        if self._root is not None:
            return self
        if os.geteuid() != 0:
            raise ClientError("client stacks need root (mount namespaces, PAM as any user)")
        if self._parent_dir is not None:
            self._parent_dir.mkdir(parents=True, exist_ok=True)
        self._root = Path(tempfile.mkdtemp(prefix=f"scim-e2e-{self.kind}-", dir=self._parent_dir))
        try:
            self._write_files()
            self._enter_namespace()
            self._start_daemon()
            self._start_sshd()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the daemons and every other process of the namespace, and remove the files."""
        for attribute in ("_sshd", "_daemon"):
            process: subprocess.Popen[bytes] | None = getattr(self, attribute)
            setattr(self, attribute, None)
            if process is not None:
                _kill([process.pid])
                with suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=STOP_TIMEOUT)
        holder, self._holder = self._holder, None
        namespace, self._namespace = self._namespace, None
        if namespace is not None:
            _kill(
                pid
                for pid, (_, inode) in _processes().items()
                if inode == namespace and (holder is None or pid != holder.pid)
            )
        if holder is not None:
            _kill([holder.pid])
            with suppress(subprocess.TimeoutExpired):
                holder.wait(timeout=STOP_TIMEOUT)
            if holder.stdout is not None:
                holder.stdout.close()
        root, self._root = self._root, None
        if root is not None:
            shutil.rmtree(root, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def run(
        self, argv: Sequence[str], *, stdin: str | None = None, timeout: float = COMMAND_TIMEOUT
    ) -> CommandResult:
        """Run a command inside the stack's mount namespace."""
        result = subprocess.run(
            self._nsenter(argv),
            input=stdin if stdin is not None else "",
            capture_output=True,
            text=True,
            timeout=timeout,
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C"},
            check=False,
        )
        return CommandResult(result.returncode, result.stdout, result.stderr)

    def run_on_terminal(
        self, argv: Sequence[str], answer: str, *, timeout: float = COMMAND_TIMEOUT
    ) -> CommandResult:
        """Run a command inside the namespace on a fresh pseudo-terminal (its controlling
        terminal) and type ``answer`` at the first prompt ending in a colon."""
        leader, follower = os.openpty()
        try:
            process = subprocess.Popen(
                self._nsenter(["setsid", "--ctty", "--wait", *argv]),
                stdin=follower,
                stdout=follower,
                stderr=follower,
                env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C", "TERM": "dumb"},
            )
        finally:
            os.close(follower)
        output = b""
        answered = False
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                ready, _, _ = select.select([leader], [], [], 0.1)
                if ready:
                    try:
                        chunk = os.read(leader, 4096)
                    except OSError:
                        chunk = b""
                    if not chunk:
                        break
                    output += chunk
                    if not answered and output.rstrip().endswith(b":"):
                        os.write(leader, answer.encode() + b"\n")
                        answered = True
                elif process.poll() is not None:
                    break
            try:
                returncode = process.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                process.kill()
                returncode = process.wait()
        finally:
            os.close(leader)
        return CommandResult(returncode, output.decode(errors="replace"), "")

    def getent_passwd(self, user: str) -> str | None:
        """The passwd line NSS gives for ``user``, or None when it knows no such user."""
        result = self.run(["getent", "passwd", user])
        line = result.stdout.strip()
        return line if result.returncode == 0 and line else None

    def id(self, user: str) -> str | None:
        result = self.run(["id", user])
        line = result.stdout.strip()
        return line if result.returncode == 0 and line else None

    def authenticate(self, user: str, password: str) -> bool:
        """Whether the PAM auth phase accepts ``password`` for ``user``."""
        return self._pamtester(user, "authenticate", stdin=password + "\n")

    def account(self, user: str) -> bool:
        """Whether the PAM account phase (acct_mgmt, run for every login) lets ``user`` in."""
        return self._pamtester(user, "acct_mgmt")

    def su_from_root(self, user: str) -> bool:
        """Whether root's ``su -s /bin/sh - USER -c true`` runs (pam_rootok, then the PAM
        account and session phases; the shell is chosen by root, so no loginShell stops it)."""
        return self.run(["su", "-s", "/bin/sh", "-", user, "-c", "true"]).returncode == 0

    def su_with_password(self, user: str, password: str) -> bool:
        """Whether an unprivileged local user (``nobody``) becomes ``user`` by typing its
        password to ``su`` on a terminal."""
        argv = [
            "setpriv",
            f"--reuid={UNPRIVILEGED}",
            f"--regid={_primary_group(UNPRIVILEGED)}",
            "--clear-groups",
            "--reset-env",
            "su",
            "-s",
            "/bin/sh",
            "-",
            user,
            "-c",
            "true",
        ]
        return self.run_on_terminal(argv, password).returncode == 0

    def ssh_keys(self, user: str) -> list[str]:
        """The keys sshd's AuthorizedKeysCommand prints for ``user``, run as sshd runs it
        (as its AuthorizedKeysCommandUser)."""
        command_user = _sshd_option(self.sshd, "AuthorizedKeysCommandUser") or "root"
        command = (_sshd_option(self.sshd, "AuthorizedKeysCommand") or self.keys_command).split()
        argv = [part.replace("%u", user) for part in command]
        if command_user != "root":
            argv = [
                "setpriv",
                f"--reuid={command_user}",
                f"--regid={_primary_group(command_user)}",
                "--clear-groups",
                *argv,
            ]
        result = self.run(argv)
        if result.returncode != 0:
            return []
        return [line.strip() for line in result.stdout.splitlines() if line.strip()]

    def ssh_key_login(self, user: str, identity: Path) -> bool:
        """Whether sshd accepts a public-key login of ``user`` with the private key
        ``identity`` (``true`` runs, or sshd logs that it accepted the key)."""
        options = [
            "-i",
            str(identity),
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "PreferredAuthentications=publickey",
        ]
        return self._ssh(user, options, "publickey")

    def ssh_password_login(self, user: str, password: str) -> bool:
        """Whether sshd accepts ``password`` for ``user`` (keyboard-interactive through PAM,
        or the password method), typed by an askpass program."""
        secret = self.root / f"secret-{threading.get_ident()}"
        secret.touch(mode=0o600)
        secret.write_text(password + "\n")
        options = [
            "-o",
            "BatchMode=no",
            "-o",
            "PubkeyAuthentication=no",
            "-o",
            "PreferredAuthentications=keyboard-interactive,password",
            "-o",
            "NumberOfPasswordPrompts=1",
        ]
        env = {
            "SSH_ASKPASS": str(self.root / "askpass"),
            "SSH_ASKPASS_REQUIRE": "force",
            "SCIM_E2E_SECRET": str(secret),
        }
        try:
            return self._ssh(user, options, "(keyboard-interactive/pam|password)", env)
        finally:
            secret.unlink(missing_ok=True)

    def flush(self) -> None:
        """Make the next lookup of any user or group go to LDAP.

        nslcd keeps no user cache (and no nscd runs), so only sssd has one to expire.
        """
        if self.kind != "sssd":
            return
        for _ in range(FLUSH_ATTEMPTS):
            result = self.run(["sss_cache", "-E"])
            if result.returncode == 0:
                return
            time.sleep(0.2)
        output = (result.stderr or result.stdout).strip() or "no output"
        raise ClientError(f"sss_cache -E failed (exit {result.returncode}): {output}")

    def restart(self) -> None:
        """What an admin does after a change in the directory: ``sss_cache -E`` and a
        restart of the daemon (which also drops sssd's negative and in-memory caches)."""
        self.flush()
        daemon, self._daemon = self._daemon, None
        if daemon is not None:
            _kill([daemon.pid])
            with suppress(subprocess.TimeoutExpired):
                daemon.wait(timeout=STOP_TIMEOUT)
        if self._namespace is not None:
            _kill(
                pid
                for pid, (name, inode) in _processes().items()
                if inode == self._namespace and name in DAEMON_NAMES
            )
        self._start_daemon()

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except (OSError, ClientError):
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])

    def sshd_log_tail(self, lines: int = 20) -> str:
        try:
            text = self.sshd_log_path.read_text(errors="replace")
        except (OSError, ClientError):
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])

    def _nsenter(self, argv: Sequence[str]) -> list[str]:
        if self._holder is None:
            raise ClientError(f"{self.kind} stack is not started")
        return ["nsenter", "--mount", f"--target={self._holder.pid}", "--", *argv]

    def _ssh(
        self,
        user: str,
        options: Sequence[str],
        method: str,
        env: Mapping[str, str] | None = None,
    ) -> bool:
        log = self.sshd_log_path
        offset = log.stat().st_size
        argv = [
            "ssh",
            "-F",
            "/dev/null",
            "-p",
            str(self.ssh_port),
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            f"ConnectTimeout={SSH_CONNECT_TIMEOUT}",
            "-o",
            "LogLevel=ERROR",
            *options,
            "-l",
            user,
            "127.0.0.1",
            "true",
        ]
        result = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=SSH_TIMEOUT,
            env={"PATH": "/usr/bin:/bin", "LANG": "C", "HOME": str(self.root), **(env or {})},
            check=False,
        )
        accepted = re.compile(rf"Accepted {method} for {re.escape(user)} from")
        deadline = time.monotonic() + 2.0
        while True:
            with log.open("rb") as stream:
                stream.seek(offset)
                text = stream.read().decode(errors="replace")
            if accepted.search(text):
                return True
            if result.returncode != 0 or time.monotonic() > deadline:
                return result.returncode == 0
            time.sleep(0.05)

    def _pamtester(self, user: str, operation: str, *, stdin: str = "") -> bool:
        return self.run(["pamtester", SERVICE, user, operation], stdin=stdin).returncode == 0

    def _write_files(self) -> None:
        root = self.root
        root.chmod(0o755)
        (root / "nsswitch.conf").write_text(self.nsswitch)
        self._write_pam(root / "pam.d")
        self._write_sshd(root)
        if self.kind == "sssd":
            sssd_dir = root / "sssd"
            sssd_dir.mkdir(mode=0o700)
            (sssd_dir / "conf.d").mkdir(mode=0o700)
            conf = sssd_dir / "sssd.conf"
            conf.write_text(self.config)
            conf.chmod(0o600)
            return
        conf = root / "nslcd.conf"
        conf.write_text(self.config)
        conf.chmod(0o640)
        os.chown(conf, 0, _group_id("nslcd"))
        password_file = root / "bindpw"
        password_file.write_text(_nslcd_options(self.config).get("bindpw", ""))
        password_file.chmod(0o640)
        os.chown(password_file, 0, _group_id("nslcd"))
        script = root / KEYS_SCRIPT
        script.write_text(
            self.keys_script or ldap_keys_script(self.config, KEYS_COMMAND, str(password_file))
        )
        script.chmod(0o755)

    def _write_pam(self, pam_dir: Path) -> None:
        pam_dir.mkdir()
        lines = [
            line for line in self.pam.splitlines() if line.strip() and not line.startswith("#")
        ]
        for phase in ("auth", "account"):
            chosen = [line for line in lines if line.split(None, 1)[0] == phase]
            (pam_dir / f"common-{phase}").write_text("\n".join(chosen) + "\n")
        session = [line for line in lines if line.split(None, 1)[0] == "session"]
        session = session or PAM_SESSION[self.kind].splitlines()
        (pam_dir / "common-session").write_text("\n".join(session) + "\n")
        (pam_dir / "common-session-noninteractive").write_text("\n".join(session) + "\n")
        (pam_dir / "common-password").write_text(PAM_PASSWORD)
        (pam_dir / SERVICE).write_text(PAM_TEST_SERVICE)
        (pam_dir / "sshd").write_text(PAM_SSHD_SERVICE)
        (pam_dir / "su").write_text(PAM_SU_SERVICE)
        (pam_dir / "su-l").write_text(PAM_SU_LOGIN_SERVICE)
        (pam_dir / "other").write_text(
            "auth required pam_deny.so\naccount required pam_deny.so\n"
            "password required pam_deny.so\nsession required pam_deny.so\n"
        )

    def _write_sshd(self, root: Path) -> None:
        key = root / "ssh_host_ed25519_key"
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", str(key)],
            check=True,
            capture_output=True,
            timeout=COMMAND_TIMEOUT,
        )
        self.ssh_port = _free_port()
        harness = SSHD_HARNESS.format(port=self.ssh_port, root=root)
        (root / "sshd_config").write_text(self.sshd.rstrip("\n") + "\n" + harness)
        askpass = root / "askpass"
        askpass.write_text(ASKPASS)
        askpass.chmod(0o755)

    def _enter_namespace(self) -> None:
        with (self.root / "namespace.log").open("wb") as log:
            holder = self._spawn_holder(log)
        self._holder = holder
        assert holder.stdout is not None
        ready, _, _ = select.select([holder.stdout], [], [], START_TIMEOUT)
        line = holder.stdout.readline() if ready else b""
        if line.strip() != b"ready":
            log_text = (self.root / "namespace.log").read_text(errors="replace").strip()
            raise ClientError(f"mount namespace setup failed: {log_text or 'no output'}")
        self._namespace = os.stat(f"/proc/{holder.pid}/ns/mnt").st_ino

    def _spawn_holder(self, log: IO[bytes]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [
                "unshare",
                "--mount",
                "--propagation",
                "private",
                "/bin/sh",
                "-c",
                NAMESPACE_SETUP,
                "scim-e2e-namespace",
                str(self.root),
                self.kind,
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
        )

    def _start_daemon(self) -> None:
        assert self._holder is not None
        view = Path(f"/proc/{self._holder.pid}/root")
        if self.kind == "sssd":
            argv = ["sssd", "-i", "--logger=stderr"]
            sockets = [f"var/lib/sss/pipes/{name}" for name in _sssd_services(self.config)]
        else:
            argv = ["nslcd", "-d"]
            sockets = ["run/nslcd/socket"]
        for socket_path in sockets:
            (view / socket_path).unlink(missing_ok=True)
        with self.log_path.open("ab") as log:
            self._daemon = subprocess.Popen(
                self._nsenter(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while not all((view / socket_path).exists() for socket_path in sockets):
            if self._daemon.poll() is not None:
                raise ClientError(
                    f"{self.kind} exited with status {self._daemon.returncode}\n{self.log_tail()}"
                )
            if time.monotonic() > deadline:
                raise ClientError(f"{self.kind} did not open its sockets\n{self.log_tail()}")
            time.sleep(0.05)

    def _start_sshd(self) -> None:
        config = self.root / "sshd_config"
        check = self.run(["/usr/sbin/sshd", "-t", "-f", str(config)])
        if check.returncode != 0:
            raise ClientError(f"sshd refuses its configuration: {check.stderr.strip()}")
        with self.sshd_log_path.open("ab") as log:
            self._sshd = subprocess.Popen(
                self._nsenter(["/usr/sbin/sshd", "-D", "-e", "-f", str(config)]),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                probe.settimeout(0.5)
                if probe.connect_ex(("127.0.0.1", self.ssh_port)) == 0:
                    return
            if self._sshd.poll() is not None or time.monotonic() > deadline:
                raise ClientError(f"sshd did not start\n{self.sshd_log_tail()}")
            time.sleep(0.05)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _primary_group(user: str) -> int:
    return pwd.getpwnam(user).pw_gid


def _sshd_option(config: str, name: str) -> str:
    """The value of the first ``name`` line of sshd_config text (sshd's first match wins)."""
    for raw in config.splitlines():
        words = raw.strip().split(None, 1)
        if len(words) == 2 and words[0].lower() == name.lower():
            return words[1].strip()
    return ""


def _sssd_services(config: str) -> list[str]:
    """The responders that sssd.conf starts (``services`` of ``[sssd]``) and have a socket."""
    match = re.search(r"^\s*services\s*=\s*(.*)$", config, re.MULTILINE)
    names = [name.strip() for name in match.group(1).split(",")] if match else []
    return [name for name in names if name in ("nss", "pam", "ssh", "sudo", "autofs")]


def _group_id(name: str) -> int:
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError as exc:
        raise ClientError(f"group {name} missing: is nslcd installed?") from exc
