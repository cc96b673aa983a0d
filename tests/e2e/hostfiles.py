"""The files of a Linux host's login stack: PAM services and common-* files, nsswitch,
sshd settings, sssd.conf and nslcd.conf for the sandbox, the nslcd host's key lookup."""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence

from app.ldap.sandbox import SandboxDirectory
from tests.e2e.processes import ClientError

SERVICE = "scim-e2e"
KEYS_SCRIPT = "ldap-ssh-keys"
KEYS_COMMAND = "/usr/local/sbin/ldap-ssh-keys"
SSS_KEYS_COMMAND = "/usr/bin/sss_ssh_authorizedkeys"

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
# Debian's /etc/pam.d/sudo (sudo), without comments: sudo runs the account phase of the
# user who invokes it (root for ``sudo -l -U``).
PAM_SUDO_SERVICE = """\
session    required   pam_limits.so
@include common-auth
@include common-account
@include common-session-noninteractive
"""
PAM_TEST_SERVICE = """\
@include common-auth
@include common-account
"""

# Debian 12's /etc/ssh/sshd_config (openssh-server), then the harness's listener, host
# key and log level. They follow the stack's sshd_config lines, so where both set a
# keyword the stack's wins (sshd keeps the first value it reads).
SSHD_HARNESS = """\
KbdInteractiveAuthentication no
UsePAM yes
X11Forwarding yes
PrintMotd no
AcceptEnv LANG LC_*
Subsystem sftp /usr/lib/openssh/sftp-server
ListenAddress 127.0.0.1
Port {port}
HostKey {root}/ssh_host_ed25519_key
PidFile {root}/sshd.pid
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
        "ldap_default_bind_dn": directory.nss_dn,
        "ldap_default_authtok_type": "password",
        "ldap_default_authtok": directory.nss_password,
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
        f"binddn {directory.nss_dn}",
        f"bindpw {directory.nss_password}",
        *extra,
    ]
    return "\n".join(lines) + "\n"


def nslcd_options(config: str) -> dict[str, str]:
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
    options = nslcd_options(config)
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
