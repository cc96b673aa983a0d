"""Entra groups on Linux hosts: NSS shows them, they decide who may log in and who may sudo.

The server runs with ``groups.login = ["Linux Users"]`` and ``groups.sudo = {"Linux
Admins": ["ALL"]}`` against a TLS sandbox that has sudo's schema. Every setup of the
lifecycle matrix (``setups.setups``, the generated ones asked of client-config with these
settings) plus a stock sssd whose ``ldap_access_filter`` asks for ``memberOf`` runs at
once, and:

1. measurement: two groups written straight to LDAP, one listing the user only as
   ``memberUid``, one only as ``member`` (DN); each setup's ``getent group`` and ``id``
   say which it resolves;
2. Entra's requests: ``POST /Groups`` of three empty groups ("Linux Users", "Linux
   Admins", "Project Blue"), ``PATCH`` add of the user to each -> every setup shows the
   groups in ``getent group`` and ``id``; the generated setups let the user in by every
   login path; generated sssd lists the sudo role in ``sudo -ll -U``;
3. ``PATCH`` displayName "Project Blue" -> "Project Green": the group keeps its gidNumber
   and member under its new name, the old name is gone;
4. ``PATCH`` remove of the user from every group -> gone from ``getent group`` and
   ``id``; the generated setups refuse every login path but the lookups (``getent
   passwd``, ``id``, the password check of PAM's auth phase and the key lookup, which
   no access rule governs); no sudo rule;
5. ``DELETE`` of the groups: the sudoRole is gone.

Stock and hand-hardened setups are flushed after each change (``sss_cache -E`` and a
restart), generated ones polled within the cache bound, as in test_matrix.py.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from ldap3 import BASE, SUBTREE, Connection
from pydantic import SecretStr

from app.config import AuthSettings, GroupSettings, Settings
from app.ldap.sandbox import Sandbox, SandboxDirectory, SandboxError
from app.main import create_app
from tests.conftest import TOKEN
from tests.e2e.clients import ClientStack
from tests.e2e.hostfiles import NSSWITCH_DEBIAN_SSSD, PAM_SSSD, SSHD_STOCK
from tests.e2e.matrix import PATHS, REPORTS, Login
from tests.e2e.processes import ClientError
from tests.e2e.setups import Setup, setups, stock_sssd_config

USERS = "/scim/v2/Users"
GROUPS = "/scim/v2/Groups"
CORE = "urn:ietf:params:scim:schemas:core:2.0:User"
CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
MICROSOFT = "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"
POSIX = "urn:ietf:params:scim:schemas:extension:posix:2.0:User"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
PASSWORD = "Correct-Horse-7"

LOGIN_GROUP = "Linux Users"
SUDO_GROUP = "Linux Admins"
RENAMED = ("Project Blue", "Project Green")
SUDO_COMMANDS = ["ALL"]
SERVER_SETTINGS = {
    "SCIM_LDAP_GROUPS__LOGIN": json.dumps([LOGIN_GROUP]),
    "SCIM_LDAP_GROUPS__SUDO": json.dumps({SUDO_GROUP: SUDO_COMMANDS}),
}

CACHE_TIMEOUT = int(os.environ.get("SCIM_E2E_CACHE_TIMEOUT", "20"))
POLL_BOUND = 2 * CACHE_TIMEOUT + 15
POLL_INTERVAL = 0.5

IDENTITY_PATHS = ("getent passwd", "id", "PAM password", "key lookup")
"""Paths no access rule governs: lookups, and PAM's auth phase alone (a right password)."""
LOGIN_PATHS = tuple(path for path in PATHS if path not in IDENTITY_PATHS)
"""Paths through PAM's account phase, where the login groups are checked."""

MEMBER, RENAME, REMOVED = "member", "renamed", "removed"
MEMBER_OF = "sssd memberOf filter"


def _member_of_sssd(directory: SandboxDirectory, workdir: Path) -> ClientStack:
    """Stock sssd whose access filter asks the user entry for memberOf of the login group."""
    access = {
        "access_provider": "ldap",
        "ldap_access_order": "filter",
        "ldap_access_filter": f"(memberOf=cn=linux_users,{directory.groups_dn})",
    }
    return ClientStack(
        "sssd",
        directory,
        stock_sssd_config(directory, access),
        NSSWITCH_DEBIAN_SSSD,
        PAM_SSSD,
        sshd=SSHD_STOCK["sssd"],
    )


SETUPS = (
    *setups(CACHE_TIMEOUT, SERVER_SETTINGS),
    Setup(MEMBER_OF, "sssd", _member_of_sssd, flushes=True),
)
NSS_SETUPS = ("stock sssd", "stock nslcd", "generated sssd", "generated nslcd")
"""The setups whose getent/id the task asks for (every setup is checked and reported)."""
LOGIN_SETUPS = ("generated sssd", "generated nslcd")
SUDO_SETUPS = ("generated sssd",)


@dataclass
class Host:
    setup: Setup
    stack: ClientStack | None = None


@dataclass(frozen=True)
class Probe:
    """One thing a host shows: ``check`` says whether it is there, ``expected`` whether it
    should be."""

    label: str
    check: Callable[[], bool]
    expected: bool


@dataclass(frozen=True)
class Seen:
    present: bool
    expected: bool
    seconds: float | None

    @property
    def ok(self) -> bool:
        return self.present is self.expected

    def render(self) -> str:
        text = "yes" if self.present else "no"
        if not self.ok:
            return f"{text.upper()}!"
        if self.seconds is not None and self.seconds >= 1:
            return f"{text} {self.seconds:.0f}s"
        return text


@dataclass
class Results:
    membership: dict[str, dict[str, bool]] = field(default_factory=dict)
    """By setup: whether memberUid and member groups resolved (getent group and id)."""
    seen: dict[tuple[str, str, str], Seen] = field(default_factory=dict)
    """By (setup, phase, probe label)."""
    errors: dict[str, str] = field(default_factory=dict)
    directory: list[str] = field(default_factory=list)
    """Failures of the directory-side checks (groups, sudoRoles)."""
    closing: dict[tuple[str, str], float | None] = field(default_factory=dict)

    def failures(self, setup: str) -> list[str]:
        return [
            f"{phase} / {label}: {seen.render()} (expected {'yes' if seen.expected else 'no'})"
            for (name, phase, label), seen in self.seen.items()
            if name == setup and not seen.ok
        ]

    def render(self) -> str:
        lines = ["membership attribute each setup resolves (getent group / id):"]
        for setup, found in self.membership.items():
            shown = ", ".join(f"{attr} {'yes' if ok else 'no'}" for attr, ok in found.items())
            lines.append(f"  {setup}: {shown}")
        lines += ["", "what each setup showed, by phase (probe: result):"]
        for setup in [s.name for s in SETUPS]:
            if setup in self.errors:
                lines.append(f"  {setup}: not run: {self.errors[setup].splitlines()[0][:100]}")
                continue
            for phase in (MEMBER, RENAME, REMOVED):
                cells = [
                    f"{label}: {seen.render()}"
                    for (name, p, label), seen in self.seen.items()
                    if name == setup and p == phase
                ]
                took = self.closing.get((setup, phase))
                after = f" (settled {took:.1f} s)" if took is not None else ""
                lines.append(f"  {setup} / {phase}{after}: " + "; ".join(cells))
        lines.append("UPPER CASE! = not what was expected; 'Ns' = seconds after the SCIM change")
        return "\n".join(lines)


def settle(host: Host, probes: list[Probe], started: float) -> tuple[dict[str, Seen], float | None]:
    """Flushed setups: restart, then check once. Polled setups: each probe in its own
    thread until it shows what is expected (at most ``POLL_BOUND`` s after ``started``),
    then all once more. Returns the probes by label and the seconds until the last
    settled (None when one never did, or when flushed)."""
    assert host.stack is not None
    if host.setup.flushes:
        host.stack.restart()

    def until(probe: Probe) -> float | None:
        while True:
            if probe.check() is probe.expected:
                return time.monotonic() - started
            if host.setup.flushes or time.monotonic() - started > POLL_BOUND:
                return None
            time.sleep(POLL_INTERVAL)

    with ThreadPoolExecutor(len(probes)) as pool:
        reached = dict(zip([p.label for p in probes], pool.map(until, probes), strict=True))
        final = dict(
            zip([p.label for p in probes], pool.map(lambda p: p.check(), probes), strict=True)
        )
    seen = {}
    for probe in probes:
        polled = None if host.setup.flushes else reached[probe.label]
        seen[probe.label] = Seen(
            final[probe.label],
            probe.expected,
            polled if final[probe.label] is probe.expected else None,
        )
    times = [s.seconds for s in seen.values()]
    closing = None
    if not host.setup.flushes and all(s.ok for s in seen.values()):
        closing = max((t or 0.0) for t in times)
    return seen, closing


def group_members(stack: ClientStack, name: str) -> tuple[int, list[str]] | None:
    """The gidNumber and members ``getent group NAME`` shows, None when it knows no such group."""
    line = stack.getent_group(name)
    if line is None:
        return None
    fields = line.split(":")
    return int(fields[2]), [m for m in fields[3].split(",") if m]


def supplementary(stack: ClientStack, login: str) -> list[str]:
    """The group names ``id LOGIN`` lists after ``groups=``."""
    identity = stack.id(login) or ""
    if "groups=" not in identity:
        return []
    part = identity.split("groups=", 1)[1]
    return [entry.split("(", 1)[1].rstrip(")") for entry in part.split(",") if "(" in entry]


def sudo_allowed(stack: ClientStack, login: str, role: str) -> bool:
    """Whether ``sudo -ll -U`` lists the LDAP role ``role`` for ``login``."""
    text = stack.sudo_list(login)
    return "may run the following commands" in text and f"LDAP Role: {role}\n" in text


@pytest.fixture(scope="module")
def sudo_sandbox() -> Iterator[Sandbox]:
    """A TLS sandbox that also has sudo's schema and ou=sudoers."""
    server = Sandbox(tls=True, sudo=True)
    try:
        server.start()
    except SandboxError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield server
    finally:
        server.stop()


def connect(directory: SandboxDirectory) -> Connection:
    return Connection(directory.url, directory.admin_dn, directory.admin_password, auto_bind=True)


def entry_of(
    conn: Connection, base: str, ldap_filter: str, attributes: list[str]
) -> dict[str, list[str]] | None:
    conn.search(base, ldap_filter, SUBTREE, attributes=attributes)
    if not conn.entries:
        return None
    entry = conn.entries[0]
    found = {k: [str(v) for v in vs] for k, vs in entry.entry_attributes_as_dict.items()}
    found["dn"] = [str(entry.entry_dn)]
    return found


def start_hosts(directory: SandboxDirectory, workdir: Path, results: Results) -> list[Host]:
    hosts = [Host(setup) for setup in SETUPS]

    def start(host: Host) -> None:
        try:
            host.stack = host.setup.build(directory, workdir).start()
        except (ClientError, OSError) as exc:
            results.errors[host.setup.name] = str(exc)

    with ThreadPoolExecutor(len(hosts)) as pool:
        list(pool.map(start, hosts))
    return hosts


def measure_membership(
    hosts: list[Host],
    conn: Connection,
    directory: SandboxDirectory,
    login: str,
    user_dn: str,
    tag: str,
) -> dict[str, dict[str, bool]]:
    """Two groups straight in LDAP, listing ``login`` one way each; what each setup resolves."""
    groups = {
        "memberUid": (f"by-uid-{tag}", 69001, {"memberUid": login}, ["posixGroup"]),
        "member": (f"by-dn-{tag}", 69002, {"member": user_dn}, ["posixGroup", "scimGroup"]),
    }
    for name, number, values, classes in groups.values():
        assert conn.add(
            f"cn={name},{directory.groups_dn}", classes, {"cn": name, "gidNumber": number, **values}
        ), conn.result

    def one(host: Host) -> tuple[str, dict[str, bool]]:
        assert host.stack is not None
        host.stack.restart()
        ids = supplementary(host.stack, login)
        found = {}
        for attribute, (name, _, _, _) in groups.items():
            listed = group_members(host.stack, name)
            found[attribute] = bool(listed and login in listed[1]) and name in ids
        return host.setup.name, found

    try:
        with ThreadPoolExecutor(len(hosts)) as pool:
            return dict(pool.map(one, [h for h in hosts if h.stack is not None]))
    finally:
        for name, _, _, _ in groups.values():
            conn.delete(f"cn={name},{directory.groups_dn}")


def listed_in(stack: ClientStack, group: str, login: str) -> Callable[[], bool]:
    return lambda: login in (group_members(stack, group) or (0, []))[1]


def in_id(stack: ClientStack, group: str, login: str) -> Callable[[], bool]:
    return lambda: group in supplementary(stack, login)


def path_check(stack: ClientStack, path: str, login: Login) -> Callable[[], bool]:
    return lambda: PATHS[path](stack, login)


def probes(host: Host, phase: str, login: Login, names: dict[str, str], gid: int) -> list[Probe]:
    """What ``host`` should show in ``phase`` of the user ``login`` and the groups
    ``names`` (by displayName: POSIX name); ``gid`` is the renamed group's gidNumber."""
    stack = host.stack
    assert stack is not None
    member = phase != REMOVED
    found: list[Probe] = []
    renamed = names[RENAMED[1]] if phase != MEMBER else names[RENAMED[0]]
    for name in (names[LOGIN_GROUP], names[SUDO_GROUP], renamed):
        found.append(Probe(f"getent group {name}", listed_in(stack, name, login.name), member))
        found.append(Probe(f"id lists {name}", in_id(stack, name, login.name), member))
    if phase == RENAME:
        old, new = names[RENAMED[0]], names[RENAMED[1]]
        found.append(
            Probe(f"getent group {old}", lambda: stack.getent_group(old) is not None, False)
        )
        found.append(
            Probe(
                f"{new} keeps gid {gid}",
                lambda: (group_members(stack, new) or (0, []))[0] == gid,
                True,
            )
        )
    name = host.setup.name
    if name in LOGIN_SETUPS or name == MEMBER_OF:
        allowed = member and name != MEMBER_OF
        for path in IDENTITY_PATHS:
            found.append(Probe(path, path_check(stack, path, login), True))
        for path in LOGIN_PATHS:
            found.append(Probe(path, path_check(stack, path, login), allowed))
    if name in SUDO_SETUPS:
        role = names[SUDO_GROUP]
        found.append(Probe("sudo -ll", lambda: sudo_allowed(stack, login.name, role), member))
    return found


def observe(
    hosts: list[Host],
    results: Results,
    phase: str,
    make: Callable[[Host], list[Probe]],
    started: float,
) -> None:
    def one(host: Host) -> None:
        if host.stack is None:
            return
        seen, closing = settle(host, make(host), started)
        for label, cell in seen.items():
            results.seen[(host.setup.name, phase, label)] = cell
        results.closing[(host.setup.name, phase)] = closing

    with ThreadPoolExecutor(len(hosts)) as pool:
        list(pool.map(one, hosts))


def patch_group(server: TestClient, group_id: str, *operations: dict[str, object]) -> None:
    response = server.patch(
        f"{GROUPS}/{group_id}", json={"schemas": [PATCH_OP], "Operations": list(operations)}
    )
    assert response.status_code == 204, response.text


@pytest.fixture(scope="module")
def run(
    client_packages: None,
    sudo_sandbox: Sandbox,
    ssh_identity: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Results]:
    directory = sudo_sandbox.directory
    results = Results()
    hosts = start_hosts(directory, tmp_path_factory.mktemp("group-hosts"), results)
    public_key = Path(f"{ssh_identity}.pub").read_text().strip()
    tag = uuid.uuid4().hex[:6]
    settings = Settings(
        ldap=directory.ldap_settings(),
        auth=AuthSettings(tokens=[SecretStr(TOKEN)]),
        groups=GroupSettings(login=[LOGIN_GROUP], sudo={SUDO_GROUP: SUDO_COMMANDS}),
    )
    conn = connect(directory)
    try:
        with TestClient(
            create_app(settings), headers={"Authorization": f"Bearer {TOKEN}"}
        ) as server:
            created = server.post(
                USERS,
                json={
                    "schemas": [CORE],
                    "userName": f"Kim.{tag}@Example.com",
                    "active": True,
                    "password": PASSWORD,
                    POSIX: {"sshPublicKeys": [public_key]},
                },
            )
            assert created.status_code == 201, created.text
            user_id = created.json()["id"]
            user = entry_of(conn, directory.base_dn, f"(entryUUID={user_id})", ["uid"])
            assert user is not None
            login = Login(user["uid"][0], PASSWORD, public_key, ssh_identity)
            results.membership = measure_membership(
                hosts, conn, directory, login.name, user["dn"][0], tag
            )

            group_ids: dict[str, str] = {}
            for display in (LOGIN_GROUP, SUDO_GROUP, RENAMED[0]):
                made = server.post(
                    GROUPS,
                    json={
                        "schemas": [CORE_GROUP, MICROSOFT],
                        "displayName": display,
                        "externalId": uuid.uuid4().hex,
                    },
                )
                assert made.status_code == 201, made.text
                assert made.json().get("members", []) == []
                group_ids[display] = made.json()["id"]
            for group_id in group_ids.values():
                patch_group(
                    server,
                    group_id,
                    {"op": "Add", "path": "members", "value": [{"value": user_id}]},
                )
            started = time.monotonic()
            names = {}
            for display, group_id in group_ids.items():
                found = entry_of(
                    conn,
                    directory.groups_dn,
                    f"(entryUUID={group_id})",
                    ["cn", "gidNumber", "memberUid", "member"],
                )
                assert found is not None
                names[display] = found["cn"][0]
                if found.get("memberUid") != [login.name] or found.get("member") != [user["dn"][0]]:
                    results.directory.append(f"{display}: members {found}")
            blue = entry_of(
                conn, directory.groups_dn, f"(entryUUID={group_ids[RENAMED[0]]})", ["gidNumber"]
            )
            assert blue is not None
            gid = int(blue["gidNumber"][0])
            role = entry_of(
                conn,
                directory.sudoers_dn,
                "(objectClass=sudoRole)",
                ["cn", "sudoUser", "sudoHost", "sudoCommand"],
            )
            expected_role = {
                "cn": [names[SUDO_GROUP]],
                "sudoUser": [f"%{names[SUDO_GROUP]}"],
                "sudoHost": ["ALL"],
                "sudoCommand": SUDO_COMMANDS,
            }
            if role is None or {k: v for k, v in role.items() if k != "dn"} != expected_role:
                results.directory.append(f"sudoRole after create: {role}, expected {expected_role}")
            observe(
                hosts,
                results,
                MEMBER,
                lambda host: probes(host, MEMBER, login, names, gid),
                started,
            )

            patch_group(
                server,
                group_ids[RENAMED[0]],
                {"op": "Replace", "path": "displayName", "value": RENAMED[1]},
            )
            started = time.monotonic()
            renamed = entry_of(
                conn,
                directory.groups_dn,
                f"(entryUUID={group_ids[RENAMED[0]]})",
                ["cn", "gidNumber", "memberUid"],
            )
            assert renamed is not None
            names[RENAMED[1]] = renamed["cn"][0]
            if renamed["gidNumber"] != [str(gid)] or renamed.get("memberUid") != [login.name]:
                results.directory.append(f"after the rename: {renamed}")
            observe(
                hosts,
                results,
                RENAME,
                lambda host: probes(host, RENAME, login, names, gid),
                started,
            )

            for group_id in group_ids.values():
                patch_group(
                    server,
                    group_id,
                    {"op": "Remove", "path": "members", "value": [{"value": user_id}]},
                )
            started = time.monotonic()
            observe(
                hosts,
                results,
                REMOVED,
                lambda host: probes(host, REMOVED, login, names, gid),
                started,
            )

            for group_id in group_ids.values():
                assert server.delete(f"{GROUPS}/{group_id}").status_code == 204
            conn.search(directory.sudoers_dn, "(objectClass=sudoRole)", SUBTREE, attributes=["cn"])
            if conn.entries:
                results.directory.append(
                    f"sudoRoles left after the groups were deleted: {conn.entries}"
                )
            assert server.delete(f"{USERS}/{user_id}").status_code == 204
        yield results
    finally:
        conn.unbind()
        REPORTS.append(("Entra groups on the hosts (membership, login, sudo)", results.render()))
        for host in hosts:
            if host.stack is not None:
                host.stack.stop()


def test_the_directory_holds_groups_and_sudo_roles_as_configured(run: Results) -> None:
    assert not run.directory, "\n".join(run.directory)


@pytest.mark.parametrize("setup", NSS_SETUPS)
def test_memberuid_groups_resolve(run: Results, setup: str) -> None:
    """What makes memberUid necessary: every stock and generated setup reads it."""
    assert setup not in run.errors, run.errors.get(setup)
    assert run.membership[setup]["memberUid"], run.membership


@pytest.mark.parametrize("setup", [setup.name for setup in SETUPS])
def test_entra_groups_follow_on_every_setup(run: Results, setup: str) -> None:
    assert setup not in run.errors, run.errors.get(setup)
    failures = run.failures(setup)
    assert not failures, "\n".join(failures)


def test_polled_setups_settle_within_the_cache_bound(run: Results) -> None:
    for setup in SETUPS:
        if setup.flushes or setup.name in run.errors:
            continue
        for phase in (MEMBER, RENAME, REMOVED):
            seconds = run.closing.get((setup.name, phase))
            assert seconds is not None and seconds <= POLL_BOUND, (setup.name, phase, seconds)


def test_member_of_cannot_decide_access_on_stock_openldap(sudo_sandbox: Sandbox) -> None:
    """Why sssd gets the simple provider: without the memberof overlay no user entry
    carries memberOf, so an ldap_access_filter on it matches nobody (the setup above
    shows sssd refusing a member)."""
    directory = sudo_sandbox.directory
    conn = connect(directory)
    try:
        conn.search("cn=Subschema", "(objectClass=*)", BASE, attributes=["attributeTypes"])
        types = " ".join(str(t) for t in conn.entries[0].attributeTypes.values).lower()
        assert "'memberof'" not in types
    finally:
        conn.unbind()
