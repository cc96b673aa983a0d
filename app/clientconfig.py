"""The Linux client configuration that makes a host honour the configured disable profile.

``python -m app client-config --for sssd|nslcd`` prints, for the configured
directory: the daemon's configuration, the nsswitch lines, the PAM lines and
the sshd lines for SSH keys. What each piece is for:

- users are looked up only under ``ldap.users_dn``, so an account the
  ``move`` action or the ``archive`` delete policy put elsewhere is unknown,
  and a ``hide``-disabled account is no ``posixAccount`` anywhere;
- a disabled account (``scimActive: FALSE``) is refused in the PAM account
  phase (sssd ``ldap_access_filter``, nslcd ``pam_authz_search``), which sshd
  runs for password and key logins alike, and hidden from NSS, so that its SSH
  keys are not even looked up;
- the account phase refuses an account the directory no longer knows
  (Debian's ``user_unknown=ignore`` is dropped on the pam_sss line), so that a
  host still holding it in its NSS cache does not let it in;
- ``lock`` is checked by sssd's ``ppolicy`` access rule and by the directory
  on every password bind; ``expire`` by sssd's ``expire`` rule with the shadow
  policy and by nslcd natively;
- cached credentials are off and caches are short: sssd refreshes the user for
  every PAM request older than ``pam_id_timeout`` (5 s), so a disable closes
  every login path within seconds, and NSS answers (``getent``, ``id``) follow
  within ``--cache-timeout`` seconds.

Groups (``groups.login``, ``groups.sudo``) are named by their displayName, as
Entra shows them; the hosts know them by the POSIX name (cn) the server makes
of it (app/ldap/groupnames.py), which is what is printed, with a comment naming
the Entra group. That name is the first the naming rule gives: should another
group have taken it, the server adds a hash suffix and the printed name matches
no group, so its members are refused (never let in) until the name is fixed.

- login by group: sssd's ``simple`` access provider with
  ``simple_allow_groups`` (stock OpenLDAP has no memberOf on user entries, so
  an ``ldap_access_filter`` cannot see groups), nslcd a ``pam_authz_search``
  on ``memberUid``; with the simple provider sssd drops its ldap access rules,
  so a disabled account is refused because the user search base hides it
  (``users.active_attribute``);
- sudo by group: sssd's sudo provider reads the sudoRole entries the server
  keeps below ``groups.sudoers_dn`` (app/ldap/sudoroles.py); nslcd hosts would
  need Debian's sudo-ldap, which conflicts with (replaces) the sudo package,
  so only sssd is configured for it.

Hosts talk to the directory over TLS (StartTLS or ldaps://), verified against
the configured CA: sssd refuses password logins over plain ``ldap://`` and goes
offline, so such a configuration is refused rather than printed, unless
``--allow-plain-ldap`` asks for a lab on loopback.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ldap3.utils.conv import escape_filter_chars
from scim2_models import InvalidValueException

from app.config import Settings
from app.ldap.groupnames import GroupNames

Kind = Literal["sssd", "nslcd"]
PARTS = ("sssd.conf", "nslcd.conf", "nsswitch.conf", "pam", "sshd_config", "ldap-ssh-keys")

KEYS_COMMAND = "/usr/local/sbin/ldap-ssh-keys"


SYSTEM_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
PAM_ID_TIMEOUT = 5
"""Seconds sssd's PAM responder trusts its cached user before asking the directory again."""


class ClientConfigError(ValueError):
    """The hosts could not work with the configuration that would be printed."""


@dataclass(frozen=True)
class ClientOptions:
    """What the host needs beyond the server's own settings."""

    bind_dn: str = ""
    bind_password: str = ""
    cache_timeout: int = 60
    allow_plain_ldap: bool = False
    ca_file: str = ""
    """CA bundle the hosts verify the directory with (default ``ldap.ca_file``, else the system)."""
    uris: tuple[str, ...] = ()
    """The URIs the hosts use (a replica near them); default ``ldap.urls``."""
    mkhomedir: bool = False


class ClientConfig:
    """Builds the files of one client stack for the configured directory and profile.

    Raises ``ClientConfigError`` when the hosts would have to send passwords
    over plain ``ldap://`` and ``allow_plain_ldap`` was not given.
    """

    def __init__(self, settings: Settings, options: ClientOptions) -> None:
        self.settings = settings
        self.options = options
        self.ldap = settings.ldap
        self.actions = set(settings.accounts.disable)
        active = settings.users.active_attribute
        self.active_filter = f"(!({active}=FALSE))" if active else ""
        self.uris = list(options.uris or self.ldap.urls)
        for uri in self.uris:
            if not uri.startswith(("ldap://", "ldaps://")):
                raise ClientConfigError(f"{uri!r} is not an ldap:// or ldaps:// URI")
        self.start_tls = self.ldap.start_tls and any(u.startswith("ldap://") for u in self.uris)
        self.tls = self.start_tls or all(u.startswith("ldaps://") for u in self.uris)
        self.ca_file = options.ca_file or (
            str(self.ldap.ca_file) if self.ldap.ca_file else SYSTEM_CA_BUNDLE
        )
        names = GroupNames(settings.groups.rule(), self.ldap.base_dn, settings.posix.min_gid_number)
        try:
            self.login_groups = {
                shown: names.candidates(shown)[0] for shown in settings.groups.login
            }
        except InvalidValueException as problem:
            raise ClientConfigError(f"groups.login: {problem.detail}") from None
        """POSIX name by displayName of the groups whose members may log in."""
        self.sudo = bool(settings.groups.sudo)
        if self.login_groups and "remove-group" in self.actions and not self.active_filter:
            raise ClientConfigError(
                "groups.login and the remove-group action both decide who may log in, and "
                "sssd's simple provider lets in a member of any group it lists: a disabled "
                "user still in an Entra login group would get in. Set users.active_attribute "
                "(the hosts then hide disabled accounts) or drop remove-group"
            )
        if not self.tls and not options.allow_plain_ldap:
            plain = ", ".join(u for u in self.uris if u.startswith("ldap://"))
            raise ClientConfigError(
                f"the hosts would send passwords over plain {plain}, which sssd refuses (it "
                "goes offline and locks every user out): enable TLS on the directory and set "
                "ldap.start_tls = true with ldap.ca_file (or use ldaps:// URLs, or --uri "
                "ldaps://...), or pass --allow-plain-ldap for a lab on loopback only"
            )

    @property
    def _uri(self) -> str:
        return " ".join(self.uris)

    @property
    def _plain(self) -> bool:
        return not self.tls

    @property
    def _login_group_filter(self) -> str:
        if "remove-group" not in self.actions:
            return ""
        group = escape_filter_chars(self.settings.accounts.login_group)
        return f"(&(objectClass=posixGroup)(cn={group})(memberUid=$username))"

    @property
    def _login_groups_filter(self) -> str:
        """Members of any ``groups.login`` group, by memberUid (what stock OpenLDAP holds)."""
        names = [f"(cn={escape_filter_chars(n)})" for n in self.login_groups.values()]
        if not names:
            return ""
        one = names[0] if len(names) == 1 else f"(|{''.join(names)})"
        return f"(&(objectClass=posixGroup){one}(memberUid=$username))"

    def _group_comments(self) -> list[str]:
        lines = [
            f"# groups.login: the Entra group {shown!r} is the POSIX group {name}"
            for shown, name in self.login_groups.items()
        ]
        if self.sudo:
            lines.append(f"# groups.sudo: sudoRole entries below {self.settings.groups.sudoers_dn}")
        return lines

    def files(self, kind: Kind) -> dict[str, str]:
        """The parts for ``kind``, by name (see ``PARTS``)."""
        if kind == "sssd":
            return {
                "sssd.conf": self.sssd_conf(),
                "nsswitch.conf": self.nsswitch("sss"),
                "pam": self.pam("sss"),
                "sshd_config": self.sshd("/usr/bin/sss_ssh_authorizedkeys", "nobody"),
            }
        return {
            "nslcd.conf": self.nslcd_conf(),
            "nsswitch.conf": self.nsswitch("ldap"),
            "pam": self.pam("ldap"),
            "sshd_config": self.sshd(KEYS_COMMAND, "nslcd"),
            "ldap-ssh-keys": self.keys_command(),
        }

    def sssd_conf(self) -> str:
        """sssd.conf (mode 0600): the ldap provider with the profile's access rules."""
        order = ["filter"]
        lock = "lock" in self.actions
        if lock:
            order.append("ppolicy")
        if "expire" in self.actions:
            order.append("expire")
        users = self.ldap.users_dn
        if self.active_filter:
            users = f"{users}?subtree?{self.active_filter}"
        timeout = self.options.cache_timeout
        domain = {
            "id_provider": "ldap",
            "auth_provider": "ldap",
            "access_provider": "ldap",
            "chpass_provider": "ldap",
            "ldap_uri": ",".join(self.uris),
            "ldap_schema": "rfc2307",
            "ldap_search_base": self.ldap.base_dn,
            "ldap_user_search_base": users,
            "ldap_group_search_base": self.ldap.groups_dn,
            "ldap_user_ssh_public_key": "sshPublicKey",
            "ldap_access_order": ", ".join(order),
            "ldap_access_filter": self.active_filter or "(objectClass=posixAccount)",
            "ldap_account_expire_policy": "shadow" if "expire" in self.actions else "",
            "ldap_pwdlockout_dn": self.settings.accounts.ppolicy_dn if lock else "",
            "cache_credentials": "false",
            "enumerate": "false",
            "entry_cache_timeout": str(max(timeout, 1)),
            "refresh_expired_interval": "",
        }
        if "remove-group" in self.actions or self.login_groups:
            domain["access_provider"] = "simple"
            domain["simple_allow_groups"] = ", ".join(
                self.login_groups.values() or [self.settings.accounts.login_group]
            )
            for name in (
                "ldap_access_order",
                "ldap_access_filter",
                "ldap_account_expire_policy",
                "ldap_pwdlockout_dn",
            ):
                domain[name] = ""
        if self.options.bind_dn:
            domain["ldap_default_bind_dn"] = self.options.bind_dn
            domain["ldap_default_authtok_type"] = "password"
            domain["ldap_default_authtok"] = self.options.bind_password or "<password>"
        if self.sudo:
            domain["sudo_provider"] = "ldap"
            domain["ldap_sudo_search_base"] = self.settings.groups.sudoers_dn
        if self.start_tls:
            domain["ldap_id_use_start_tls"] = "true"
        if self._plain:
            domain["ldap_auth_disable_tls_never_use_in_production"] = "true"
        else:
            domain["ldap_tls_reqcert"] = "demand"
            domain["ldap_tls_cacert"] = self.ca_file
        lines = [
            "# /etc/sssd/sssd.conf (mode 0600), generated by scim-ldap client-config",
            *self._group_comments(),
            "[sssd]",
            f"services = nss, pam, ssh{', sudo' if self.sudo else ''}",
            "domains = scim",
            "",
            "[nss]",
            f"memcache_timeout = {min(timeout, 300)}",
            f"entry_negative_timeout = {min(timeout, 15)}",
            "",
            "[pam]",
            f"pam_id_timeout = {PAM_ID_TIMEOUT}",
            "",
            "[ssh]",
            "",
            *(["[sudo]", ""] if self.sudo else []),
            "[domain/scim]",
            *(f"{name} = {value}" for name, value in domain.items() if value),
        ]
        if self._plain:
            lines.insert(1, "# LAB ONLY: passwords travel over plain ldap:// (--allow-plain-ldap)")
        return "\n".join(lines) + "\n"

    def nslcd_conf(self) -> str:
        """nslcd.conf (mode 0640, root:nslcd)."""
        users = self.ldap.users_dn
        lines = [
            "# /etc/nslcd.conf (mode 0640, root:nslcd), generated by scim-ldap client-config",
            "uid nslcd",
            "gid nslcd",
            f"uri {self._uri}",
            f"base {self.ldap.base_dn}",
            f"base passwd {users}",
            f"base shadow {users}",
            f"base group {self.ldap.groups_dn}",
            f"filter passwd (&(objectClass=posixAccount){self.active_filter})",
            f"filter shadow (&(objectClass=shadowAccount){self.active_filter})",
            f"pam_authz_search (&(objectClass=posixAccount)(uid=$username){self.active_filter})",
        ]
        if group := self._login_group_filter:
            lines.append(f"pam_authz_search {group}")
        if groups := self._login_groups_filter:
            lines.append(f"pam_authz_search {groups}")
        lines[1:1] = [line for line in self._group_comments() if "groups.sudo" not in line]
        if self.sudo:
            lines.insert(
                1,
                "# groups.sudo is not configured here: sudo rules from LDAP need Debian's "
                "sudo-ldap, which replaces sudo; use sssd on hosts that need them",
            )
        if self.options.bind_dn:
            lines += [
                f"binddn {self.options.bind_dn}",
                f"bindpw {self.options.bind_password or '<password>'}",
            ]
        if self.start_tls:
            lines.append("ssl start_tls")
        if self.tls:
            lines += ["tls_reqcert demand", f"tls_cacertfile {self.ca_file}"]
        else:
            lines.insert(1, "# LAB ONLY: passwords travel over plain ldap:// (--allow-plain-ldap)")
        return "\n".join(lines) + "\n"

    def nsswitch(self, source: str) -> str:
        """The /etc/nsswitch.conf lines: the directory after the host's own sources.

        ``files systemd`` is what Debian 12 lists; a host with other sources
        keeps them and adds the directory's at the end.
        """
        return (
            "\n".join(
                [
                    f"# /etc/nsswitch.conf: add {source} at the end of these lines, keep the rest",
                    f"passwd:         files systemd {source}",
                    f"group:          files systemd {source}",
                    f"shadow:         files systemd {source}",
                    *(["sudoers:        files sss"] if self.sudo and source == "sss" else []),
                ]
            )
            + "\n"
        )

    def pam(self, module: str) -> str:
        """The PAM lines, as ``pam-auth-update`` writes them into /etc/pam.d/common-*.

        One change to Debian's profile: the pam_sss account line does not
        ignore ``user_unknown``, so an account the directory no longer shows
        (hidden, moved, deleted) is refused even while the host's NSS cache
        still knows it. Local users pass before it (``pam_localuser``).
        """
        if module == "sss":
            auth = "pam_sss.so use_first_pass"
            account = [
                "account\tsufficient\t\t\tpam_localuser.so",
                "account\t[default=bad success=ok]\tpam_sss.so",
            ]
            session = "session\toptional\t\t\tpam_sss.so"
        else:
            auth = "pam_ldap.so minimum_uid=1000 use_first_pass"
            account = [
                "account\t[success=ok new_authtok_reqd=done ignore=ignore user_unknown=ignore "
                "authinfo_unavail=ignore default=bad]\tpam_ldap.so minimum_uid=1000"
            ]
            session = "session\t[success=ok default=ignore]\tpam_ldap.so minimum_uid=1000"
        enable = "sss" if module == "sss" else "ldap"
        if self.options.mkhomedir:
            enable += " mkhomedir"
        lines = [
            f"# PAM: pam-auth-update --enable {enable}, then make the files match these lines",
            "# /etc/pam.d/common-auth",
            "auth\t[success=2 default=ignore]\tpam_unix.so nullok",
            f"auth\t[success=1 default=ignore]\t{auth}",
            "auth\trequisite\t\t\tpam_deny.so",
            "auth\trequired\t\t\tpam_permit.so",
            "# /etc/pam.d/common-account",
            "account\t[success=1 new_authtok_reqd=done default=ignore]\tpam_unix.so",
            "account\trequisite\t\t\tpam_deny.so",
            "account\trequired\t\t\tpam_permit.so",
            *account,
            "# /etc/pam.d/common-session",
            "session\t[default=1]\t\t\tpam_permit.so",
            "session\trequisite\t\t\tpam_deny.so",
            "session\trequired\t\t\tpam_permit.so",
            "session\trequired\tpam_unix.so",
            session,
        ]
        if self.options.mkhomedir:
            lines.append("session\toptional\t\t\tpam_mkhomedir.so umask=0077")
        return "\n".join(lines) + "\n"

    @staticmethod
    def sshd(command: str, user: str) -> str:
        """sshd_config lines for SSH keys from the directory (sshd runs PAM's account phase)."""
        return (
            "\n".join(
                [
                    "# /etc/ssh/sshd_config",
                    "UsePAM yes",
                    f"AuthorizedKeysCommand {command} %u",
                    f"AuthorizedKeysCommandUser {user}",
                ]
            )
            + "\n"
        )

    def keys_command(self) -> str:
        """The AuthorizedKeysCommand of an nslcd host: the keys of an active account.

        It binds as nslcd does, with the ``binddn``/``bindpw`` of /etc/nslcd.conf
        (readable by the nslcd group it runs as), and passes the password on
        standard input, never on a command line.
        """
        starttls = " -ZZ" if self.start_tls else ""
        account = f"(&(objectClass=posixAccount){self.active_filter}(uid=$user))"
        tls = [f"export LDAPTLS_CACERT={self.ca_file} LDAPTLS_REQCERT=demand"] if self.tls else []
        return (
            "\n".join(
                [
                    "#!/bin/sh",
                    f"# {KEYS_COMMAND} (root:root 0755): prints the SSH keys of an active account",
                    'user="$1"',
                    'case "$user" in *[!a-z0-9_.\\$-]*|"") exit 1 ;; esac',
                    "conf=/etc/nslcd.conf",
                    "binddn=$(sed -n 's/^binddn[[:space:]]*//p' \"$conf\")",
                    "bindpw=$(sed -n 's/^bindpw[[:space:]]*//p' \"$conf\")",
                    *tls,
                    "set -- -x -LLL -o ldif-wrap=no -o nettimeout=5",
                    'if [ -n "$binddn" ]; then set -- "$@" -D "$binddn" -y /dev/stdin; fi',
                    "found=$(printf '%s' \"$bindpw\" \\",
                    f'    | ldapsearch "$@"{starttls} -H "{self._uri}" \\',
                    f'    -b "{self.ldap.users_dn}" "{account}" sshPublicKey) || exit 1',
                    "printf '%s\\n' \"$found\" | sed -n 's/^sshPublicKey: //p'",
                ]
            )
            + "\n"
        )


def render(settings: Settings, kind: Kind, options: ClientOptions, part: str | None) -> str:
    """One part, or every part of ``kind`` with a header line each."""
    files = ClientConfig(settings, options).files(kind)
    if part is not None:
        if part not in files:
            raise KeyError(f"{part} is not a part of the {kind} configuration: {', '.join(files)}")
        return files[part]
    return "\n".join(f"# ==> {name} <==\n{text}" for name, text in files.items())
