"""Measure which directory-side "disable" actions stop a Linux login, per client stack.

Starts a throwaway slapd (the sandbox), installs the Linux client packages when missing
(as tests/e2e does), and for every action gives a fresh user, checks it can log in,
applies the action straight in LDAP, checks again, undoes the action and checks once
more. Each check runs under every client profile, each in its own mount namespace:

- ``sssd``: ``access_provider = permit``, as a stock install.
- ``sssd+access``: ``access_provider = ldap``, ``ldap_access_order = filter, lockout,
  expire``, ``ldap_account_expire_policy = shadow``, ``ldap_pwdlockout_dn`` and
  ``ldap_access_filter = (!(scimActive=FALSE))``.
- ``sssd rec.``: the recommended profile, ``sssd_disable_options`` (access filter and
  user search filter on scimActive) with the PAM account line of pam_sss not ignoring
  ``user_unknown`` (``PAM_SSSD_STRICT``).
- ``... cached``: the same with sssd's default cache lifetimes (entry_cache_timeout
  5400 s, negative cache 15 s, in-memory cache 300 s) and no cache flush: the check runs
  6 s after the action, past pam_id_timeout (5 s), so PAM requests refresh the user
  while NSS and the ssh responder still answer from the cache, as on a real host.
- ``nslcd``: nslcd with Debian's pam_ldap profile; nslcd has no cache.
- ``nslcd+authz``: plus ``pam_authz_search (&(objectClass=posixAccount)(uid=$username)
  (!(scimActive=FALSE)))``.
- ``nslcd rec.``: the recommended profile, ``nslcd_disable_lines`` (the same
  pam_authz_search plus ``filter passwd`` and ``filter shadow`` on scimActive).

Rows that need client configuration add it on top ("layers"): ``group`` requires
membership of the posixGroup ``cn=linux-login`` (sssd+access: ``access_provider =
simple``, ``simple_allow_groups = linux-login``, as rfc2307 memberUid groups cannot be
matched by ldap_access_filter without a memberOf overlay; nslcd+authz: a second
pam_authz_search on the group); ``nss`` hides ``scimActive=FALSE`` users from NSS in the
sssd, sssd+access and nslcd profiles (sssd: a filter on ``ldap_user_search_base``;
nslcd: ``filter passwd`` and ``filter shadow``). Users live in ``ou=people``, which is
the clients' user search base.

The checks run in the order sshd makes them: ``nss`` getent passwd (sshd refuses unknown
users), ``key`` the AuthorizedKeysCommand (sssd: sss_ssh_authorizedkeys; nslcd: an
ldapsearch script with nslcd's base and passwd filter), ``acct`` the PAM account phase
(run for password and key logins alike), ``pw`` PAM auth with the right password.

Usage (root): ``.venv/bin/python scripts/measure_disable.py [ACTION ...]`` with action
letters to run only those rows; ``--configs`` prints every profile's files instead.

``--stock-cache [SECONDS [INTERVAL]]`` measures something else: how long a stock sssd
host with its default caches, never flushed, keeps letting in a user that Entra disabled
through the real HTTP app with the server's default settings (``tests/e2e/cachewatch.py``;
default 420 s, a try every 10 s).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ldap3 import MODIFY_ADD, MODIFY_DELETE, MODIFY_REPLACE, Connection

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from app.ldap.sandbox import Sandbox, SandboxDirectory  # noqa: E402
from tests.e2e.clients import (  # noqa: E402
    ClientStack,
    LoginUser,
    StackKind,
    add_login_user,
    remove_login_user,
)
from tests.e2e.hostfiles import (  # noqa: E402
    PAM_SSSD_STRICT,
    SERVICE,
    nslcd_config,
    nslcd_disable_lines,
    sssd_config,
    sssd_disable_options,
)
from tests.e2e.packages import install_packages  # noqa: E402
from tests.e2e.processes import ClientError  # noqa: E402

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGJ1c3kgYmVlcyBidXp6IGFsbCBkYXkgbG9uZw m@example"
LOGIN_GROUP = "linux-login"
LOGIN_GROUP_GID = 5000
FIRST_UID_NUMBER = 40001
CHECKS = ("nss", "key", "acct", "pw")
INACTIVE = "(!(scimActive=FALSE))"
PAM_ID_TIMEOUT = 6.0
NEGATIVE_TIMEOUT = 16.0

Change = Callable[[Connection, SandboxDirectory, LoginUser], None]


def _modify(
    conn: Connection, dn: str, changes: Mapping[str, list[tuple[str, list[object]]]]
) -> None:
    if not conn.modify(dn, dict(changes)):
        raise ClientError(f"modify {dn} failed: {conn.result}")


def _replace(attribute: str, value: object) -> Change:
    def change(conn: Connection, directory: SandboxDirectory, user: LoginUser) -> None:
        _modify(conn, user.dn, {attribute: [(MODIFY_REPLACE, [value])]})

    return change


def _delete(*attributes: str) -> Change:
    def change(conn: Connection, directory: SandboxDirectory, user: LoginUser) -> None:
        _modify(conn, user.dn, {name: [(MODIFY_DELETE, [])] for name in attributes})

    return change


def _move(
    source: Callable[[SandboxDirectory], str], target: Callable[[SandboxDirectory], str]
) -> Change:
    def change(conn: Connection, directory: SandboxDirectory, user: LoginUser) -> None:
        dn = f"uid={user.uid},{source(directory)}"
        if not conn.modify_dn(dn, f"uid={user.uid}", new_superior=target(directory)):
            raise ClientError(f"modrdn {dn} failed: {conn.result}")

    return change


def _membership(operation: str) -> Change:
    def change(conn: Connection, directory: SandboxDirectory, user: LoginUser) -> None:
        _modify(conn, _login_group_dn(directory), {"memberUid": [(operation, [user.uid])]})

    return change


def _nothing(conn: Connection, directory: SandboxDirectory, user: LoginUser) -> None:
    return None


def _login_group_dn(directory: SandboxDirectory) -> str:
    return f"cn={LOGIN_GROUP},{directory.groups_dn}"


def _disabled_dn(directory: SandboxDirectory) -> str:
    return f"ou=disabled,{directory.base_dn}"


def _users_dn(directory: SandboxDirectory) -> str:
    return directory.users_dn


@dataclass(frozen=True)
class Action:
    key: str
    title: str
    apply: Change
    undo: Change
    layer: str = ""


ACTIONS = (
    Action("-", "none (control)", _nothing, _nothing),
    Action(
        "a",
        "ppolicy lock `pwdAccountLockedTime: 000001010000Z`",
        _replace("pwdAccountLockedTime", "000001010000Z"),
        _delete("pwdAccountLockedTime"),
    ),
    Action("b", "`shadowExpire: 1`", _replace("shadowExpire", 1), _delete("shadowExpire")),
    Action(
        "c",
        "`loginShell: /usr/sbin/nologin`",
        _replace("loginShell", "/usr/sbin/nologin"),
        _replace("loginShell", "/bin/bash"),
    ),
    Action("d", "sshPublicKey removed", _delete("sshPublicKey"), _replace("sshPublicKey", KEY)),
    Action(
        "e",
        "moved to `ou=disabled`",
        _move(_users_dn, _disabled_dn),
        _move(_disabled_dn, _users_dn),
    ),
    Action(
        "f",
        f"removed from `cn={LOGIN_GROUP}` (access rule)",
        _membership(MODIFY_DELETE),
        _membership(MODIFY_ADD),
        "group",
    ),
    Action(
        "g",
        "`scimActive: FALSE` (access rule)",
        _replace("scimActive", "FALSE"),
        _replace("scimActive", "TRUE"),
    ),
    Action(
        "h",
        "`scimActive: FALSE` (NSS filter)",
        _replace("scimActive", "FALSE"),
        _replace("scimActive", "TRUE"),
        "nss",
    ),
)


@dataclass(frozen=True)
class Profile:
    name: str
    kind: StackKind
    config: Callable[[SandboxDirectory, str], str]
    flush: bool = True
    settle: float = 0.0
    pam: str | None = None


def _sssd_nss_layer(directory: SandboxDirectory, layer: str) -> dict[str, str]:
    if layer != "nss":
        return {}
    return {"ldap_user_search_base": f"{directory.users_dn}?subtree?{INACTIVE}"}


def _sssd_stock(directory: SandboxDirectory, layer: str) -> str:
    return sssd_config(directory, _sssd_nss_layer(directory, layer))


def _sssd_access_options(directory: SandboxDirectory, layer: str) -> dict[str, str]:
    options = {
        "access_provider": "ldap",
        "ldap_access_order": "filter, lockout, expire",
        "ldap_account_expire_policy": "shadow",
        "ldap_access_filter": INACTIVE,
        "ldap_pwdlockout_dn": directory.password_policy_dn,
    }
    if layer == "group":
        options = {"access_provider": "simple", "simple_allow_groups": LOGIN_GROUP}
    return options | _sssd_nss_layer(directory, layer)


def _sssd_access(directory: SandboxDirectory, layer: str) -> str:
    return sssd_config(directory, _sssd_access_options(directory, layer))


def _sssd_access_cached(directory: SandboxDirectory, layer: str) -> str:
    options = _sssd_access_options(directory, layer) | {"entry_cache_timeout": ""}
    return sssd_config(
        directory, options, nss={"memcache_timeout": "", "entry_negative_timeout": ""}
    )


def _sssd_recommended(directory: SandboxDirectory, layer: str) -> str:
    return sssd_config(directory, sssd_disable_options(directory))


def _sssd_recommended_cached(directory: SandboxDirectory, layer: str) -> str:
    options = sssd_disable_options(directory) | {"entry_cache_timeout": ""}
    return sssd_config(
        directory, options, nss={"memcache_timeout": "", "entry_negative_timeout": ""}
    )


def _nslcd_recommended(directory: SandboxDirectory, layer: str) -> str:
    return nslcd_config(directory, nslcd_disable_lines())


def _nslcd_nss_layer(layer: str) -> list[str]:
    if layer != "nss":
        return []
    return [
        f"filter passwd (&(objectClass=posixAccount){INACTIVE})",
        f"filter shadow (&(objectClass=shadowAccount){INACTIVE})",
    ]


def _nslcd_stock(directory: SandboxDirectory, layer: str) -> str:
    return nslcd_config(directory, _nslcd_nss_layer(layer))


def _nslcd_authz(directory: SandboxDirectory, layer: str) -> str:
    lines = [f"pam_authz_search (&(objectClass=posixAccount)(uid=$username){INACTIVE})"]
    if layer == "group":
        lines.append(
            f"pam_authz_search (&(objectClass=posixGroup)(cn={LOGIN_GROUP})(memberUid=$username))"
        )
    return nslcd_config(directory, [*lines, *_nslcd_nss_layer(layer)])


PROFILES = (
    Profile("sssd", "sssd", _sssd_stock),
    Profile("sssd+access", "sssd", _sssd_access),
    Profile("sssd+access cached", "sssd", _sssd_access_cached, flush=False, settle=PAM_ID_TIMEOUT),
    Profile("sssd rec.", "sssd", _sssd_recommended, pam=PAM_SSSD_STRICT),
    Profile(
        "sssd rec. cached",
        "sssd",
        _sssd_recommended_cached,
        flush=False,
        settle=PAM_ID_TIMEOUT,
        pam=PAM_SSSD_STRICT,
    ),
    Profile("nslcd", "nslcd", _nslcd_stock),
    Profile("nslcd+authz", "nslcd", _nslcd_authz),
    Profile("nslcd rec.", "nslcd", _nslcd_recommended),
)

Result = dict[str, bool]


def check(stack: ClientStack, user: LoginUser, *, flush: bool, settle: float = 0.0) -> Result:
    time.sleep(settle)
    if flush:
        stack.flush()
    result = {"nss": stack.getent_passwd(user.uid) is not None}
    result["key"] = user.key in stack.ssh_keys(user.uid)
    result["acct"] = stack.account(user.uid)
    result["pw"] = stack.authenticate(user.uid, user.password)
    return result


@dataclass
class Row:
    action: Action
    before: list[Result]
    disabled: list[Result]
    after: list[Result]
    late: list[Result]


def _reversed(results: Sequence[Result], late: Sequence[Result] | None = None) -> str:
    """ "yes" when every profile lets the user in again; cached profiles get a second
    look after sssd's default negative cache lifetime."""
    delayed, failed = [], []
    for profile, result, retried in zip(PROFILES, results, late or results, strict=True):
        if all(result.values()):
            continue
        if all(retried.values()):
            delayed.append(profile.name)
        else:
            failed.append(f"{profile.name}: {_cell(retried)}")
    if failed:
        return "NO (" + "; ".join(failed) + ")"
    if delayed:
        return f"yes ({', '.join(delayed)}: after {NEGATIVE_TIMEOUT:.0f} s)"
    return "yes"


def measure(action: Action, directory: SandboxDirectory, conn: Connection, uid_number: int) -> Row:
    user = add_login_user(
        conn, directory, f"m{uid_number}", uid_number, password=f"Pw-{uid_number}!", key=KEY
    )
    _membership(MODIFY_ADD)(conn, directory, user)
    stacks = [
        ClientStack(
            profile.kind, directory, profile.config(directory, action.layer), pam=profile.pam
        )
        for profile in PROFILES
    ]
    try:
        with ThreadPoolExecutor(len(stacks)) as pool:
            list(pool.map(ClientStack.start, stacks))

            def run_all(*, disabled: bool) -> list[Result]:
                return list(
                    pool.map(
                        lambda stack, profile: check(
                            stack,
                            user,
                            flush=profile.flush or not disabled,
                            settle=profile.settle if disabled else 0.0,
                        ),
                        stacks,
                        PROFILES,
                    )
                )

            def recheck(stack: ClientStack, profile: Profile, result: Result) -> Result:
                if all(result.values()) or profile.flush:
                    return result
                return check(stack, user, flush=True, settle=NEGATIVE_TIMEOUT)

            before = run_all(disabled=False)
            action.apply(conn, directory, user)
            disabled = run_all(disabled=True)
            action.undo(conn, directory, user)
            after = run_all(disabled=False)
            late = list(pool.map(recheck, stacks, PROFILES, after))
    finally:
        for stack in stacks:
            stack.stop()
        _membership(MODIFY_DELETE)(conn, directory, user)
        remove_login_user(conn, directory, user)
    return Row(action, before, disabled, after, late)


def _cell(result: Result) -> str:
    return " ".join(f"{name}{'✓' if result[name] else '✗'}" for name in CHECKS)


def _verdict(result: Result) -> str:
    password = result["nss"] and result["pw"] and result["acct"]
    key = result["nss"] and result["key"] and result["acct"]
    if not password and not key:
        return "**blocked**"
    if password and key:
        return "open"
    return "key only" if key else "password only"


def table(rows: Sequence[Row]) -> str:
    names = [profile.name for profile in PROFILES]
    header = ["action", *names, "baseline ok", "undo ok"]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    for row in rows:
        cells = [_cell(result) for result in row.disabled]
        lines.append(
            "| "
            + " | ".join(
                [
                    f"{row.action.key} {row.action.title}",
                    *cells,
                    _reversed(row.before),
                    _reversed(row.after, row.late),
                ]
            )
            + " |"
        )
    lines += ["", "| action | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for row in rows:
        verdicts = [_verdict(result) for result in row.disabled]
        lines.append(f"| {row.action.key} {row.action.title} | " + " | ".join(verdicts) + " |")
    return "\n".join(lines)


def _setup(conn: Connection, directory: SandboxDirectory) -> None:
    if not conn.add(
        _disabled_dn(directory), ["organizationalUnit"], {"ou": "disabled"}
    ) or not conn.add(
        _login_group_dn(directory),
        ["posixGroup"],
        {"cn": LOGIN_GROUP, "gidNumber": LOGIN_GROUP_GID},
    ):
        raise ClientError(f"setup failed: {conn.result}")


def show_configs() -> str:
    """Every profile's client files, for a host whose directory is ldap.example.org."""
    directory = SandboxDirectory(
        url="ldap://ldap.example.org",
        base_dn="dc=example,dc=org",
        bind_dn="cn=admin,dc=example,dc=org",
        bind_password="SECRET",
        users_dn="ou=people,dc=example,dc=org",
        groups_dn="ou=groups,dc=example,dc=org",
    )
    parts = []
    for profile in PROFILES:
        stack = ClientStack(profile.kind, directory, profile.config(directory, ""), pam=profile.pam)
        name = "sssd.conf" if profile.kind == "sssd" else "nslcd.conf"
        parts.append(f"### {profile.name}\n\n{name}:\n{stack.config}")
        for layer in ("group", "nss"):
            config = profile.config(directory, layer)
            if config != stack.config:
                parts.append(f"{name} with layer {layer}:\n{config}")
        parts.append(f"pam.d/{SERVICE}:\n{stack.pam}\nnsswitch.conf:\n{stack.nsswitch}")
    return "\n".join(parts)


def stock_cache(argv: Sequence[str]) -> int:
    import subprocess
    import tempfile

    from tests.e2e.cachewatch import measure as measure_cache

    numbers = [float(arg) for arg in argv]
    duration = numbers[0] if numbers else 420.0
    interval = numbers[1] if len(numbers) > 1 else 10.0
    install_packages()
    with tempfile.TemporaryDirectory() as tmp, Sandbox(tls=True) as sandbox:
        identity = Path(tmp) / "id"
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(identity)],
            check=True,
            capture_output=True,
        )
        print(measure_cache(sandbox.directory, identity, duration, interval))
    return 0


def main(argv: Sequence[str]) -> int:
    if "--configs" in argv:
        print(show_configs())
        return 0
    if argv and argv[0] == "--stock-cache":
        return stock_cache(argv[1:])
    try:
        installed = install_packages()
    except ClientError as exc:
        print(f"cannot install the client packages: {exc}", file=sys.stderr)
        return 1
    if installed:
        print(f"installed {' '.join(installed)}", file=sys.stderr)
    wanted = set(argv)
    actions = [action for action in ACTIONS if not wanted or action.key in wanted]
    with Sandbox() as sandbox:
        directory = sandbox.directory
        conn = Connection(directory.url, directory.bind_dn, directory.bind_password, auto_bind=True)
        _setup(conn, directory)
        rows = []
        for number, action in enumerate(actions, FIRST_UID_NUMBER):
            print(f"measuring {action.key}: {action.title}", file=sys.stderr)
            rows.append(measure(action, directory, conn, number))
        conn.unbind()
    print(table(rows))
    print()
    print("✓ still works, ✗ refused. pw: PAM auth with the right password; acct: PAM account")
    print("phase; key: AuthorizedKeysCommand returns the key; nss: getent passwd finds the user.")
    print("Verdicts: a password login needs nss+pw+acct, a key login nss+key+acct.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
