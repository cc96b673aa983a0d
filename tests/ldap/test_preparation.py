"""The generated preparation applied to a bare slapd of each configuration style.

Bare: the system schemas, an mdb database with a rootdn and the base entry,
nothing of the project. The cn=config form is applied with the commands
docs/directory.md gives (ldapadd/ldapmodify over ldapi:// with SASL EXTERNAL,
the data as the rootdn); the slapd.conf form is included where its fragments
belong. Then ``check`` passes bound as the server's account, the server
provisions through it, the hosts' account reads what NSS needs and nothing of
the server's own, and neither account writes where it must not.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from ldap3 import BASE, MODIFY_ADD, MODIFY_REPLACE, SUBTREE, Connection
from pydantic import SecretStr

from app.config import (
    AccountSettings,
    AuthSettings,
    GroupSettings,
    IdProvider,
    LdapSettings,
    PosixSettings,
    Settings,
    UserSettings,
)
from app.ldap.connection import Directory
from app.ldap.mapping import read_schema
from app.ldap.preparation import Accounts, Preparation, default_accounts
from app.ldap.readiness import assess, leftovers
from app.ldap.sandbox import Sandbox, SandboxDirectory
from app.main import create_app
from tests.keys import public_key

TOKEN = "prepared-token-0123456789abcdef"
SERVER_PASSWORD = "server-password-0123456789"
HOSTS_PASSWORD = "hosts-password-0123456789"
CORE = "urn:ietf:params:scim:schemas:core:2.0:User"
POSIX = "urn:ietf:params:scim:schemas:extension:posix:2.0:User"
INSUFFICIENT_ACCESS = 50


def server_settings(directory: SandboxDirectory, **sections: object) -> Settings:
    """The server's settings: every feature that needs a container, a group or a policy."""
    ldap = LdapSettings(
        urls=[directory.url],
        base_dn=directory.base_dn,
        bind_dn=f"cn=scim-ldap,ou=services,{directory.base_dn}",
        bind_password=SecretStr(SERVER_PASSWORD),
    )
    return Settings(
        ldap=ldap,
        auth=AuthSettings(tokens=[SecretStr(TOKEN)]),
        accounts=AccountSettings(
            disable=["lock", "expire", "hide", "move", "remove-group"], delete="archive"
        ),
        groups=GroupSettings(sudo={"Admins": ["ALL"]}),
        **sections,  # type: ignore[arg-type]
    )


def preparation(directory: SandboxDirectory) -> Preparation:
    accounts = default_accounts(directory.base_dn)
    return Preparation(
        server_settings(directory),
        Accounts(accounts.server_dn, accounts.hosts_dn, SERVER_PASSWORD, HOSTS_PASSWORD),
        sort_values=True,
    )


def ldap_tool(*args: str) -> None:
    result = subprocess.run(list(args), capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, f"{' '.join(args)}: {result.stderr or result.stdout}"


def apply_data(directory: SandboxDirectory, prepared: Preparation, workdir: Path) -> None:
    """``ldapadd -x -D <rootdn> -y <file> -f data.ldif``, as the documentation says."""
    secret = workdir / "rootpw"
    secret.write_text(directory.admin_password, encoding="utf-8")
    secret.chmod(0o600)
    data = workdir / "data.ldif"
    data.write_text(prepared.render("cn-config", "data"), encoding="utf-8")
    ldap_tool(
        "ldapadd", "-x", "-H", directory.url, "-D", directory.admin_dn, "-y", str(secret),
        "-f", str(data),
    )  # fmt: skip


@pytest.fixture(scope="module")
def cn_config(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxDirectory]:
    workdir = tmp_path_factory.mktemp("cn-config")
    with Sandbox(bare=True) as sandbox:
        directory = sandbox.directory
        assert directory.ldapi_url is not None
        prepared = preparation(directory)
        for part in ("schema", "modules", "sortvals", "config", "database", "overlays"):
            path = workdir / f"{part}.ldif"
            path.write_text(prepared.render("cn-config", part), encoding="utf-8")
            tool = "ldapmodify" if part in ("sortvals", "config", "database") else "ldapadd"
            ldap_tool(tool, "-Q", "-Y", "EXTERNAL", "-H", directory.ldapi_url, "-f", str(path))
        apply_data(directory, prepared, workdir)
        yield directory


@pytest.fixture(scope="module")
def slapd_conf(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxDirectory]:
    workdir = tmp_path_factory.mktemp("slapd-conf")
    fragments = {
        "global": ("modules", "sortvals", "schema"),
        "config": ("config",),
        "database": ("database", "overlays"),
    }
    prepared = Preparation(
        server_settings(_placeholder()),
        Accounts(*_accounts(_placeholder()), SERVER_PASSWORD, HOSTS_PASSWORD),
        sort_values=True,
    )
    includes = {}
    for name, parts in fragments.items():
        path = workdir / f"{name}.conf"
        path.write_text(
            "\n".join(prepared.render("slapd-conf", part) for part in parts), encoding="utf-8"
        )
        includes[name] = path
    with Sandbox(bare=True, config_style="slapd-conf", includes=includes) as sandbox:
        apply_data(sandbox.directory, prepared, workdir)
        yield sandbox.directory


def _placeholder() -> SandboxDirectory:
    """The directory's names before it runs (the URL does not enter the fragments)."""
    base = "dc=example,dc=org"
    return SandboxDirectory(
        url="ldap://127.0.0.1:389",
        base_dn=base,
        bind_dn="",
        bind_password="",
        users_dn=f"ou=people,{base}",
        groups_dn=f"ou=groups,{base}",
    )


def _accounts(directory: SandboxDirectory) -> tuple[str, str]:
    accounts = default_accounts(directory.base_dn)
    return accounts.server_dn, accounts.hosts_dn


@pytest.fixture(params=["cn-config", "slapd-conf"])
def prepared(request: pytest.FixtureRequest) -> SandboxDirectory:
    directory: SandboxDirectory = request.getfixturevalue(request.param.replace("-", "_"))
    return directory


def bound(directory: SandboxDirectory, dn: str, password: str) -> Connection:
    return Connection(directory.url, dn, password, auto_bind=True, raise_exceptions=False)


def test_check_passes_bound_as_the_server_account(prepared: SandboxDirectory) -> None:
    settings = server_settings(prepared)
    directory = Directory(settings.ldap)
    try:
        found = assess(settings, directory, read_schema(directory))
        with directory.session() as session:
            left = leftovers(session, prepared.base_dn)
    finally:
        directory.close()
    assert found.errors == []
    assert left == []


def test_check_reads_the_configuration_it_verifies(cn_config: SandboxDirectory) -> None:
    """On cn=config the server's account reads the indexes and the ppolicy default, so check
    verifies them instead of warning that it cannot."""
    settings = server_settings(cn_config)
    directory = Directory(settings.ldap)
    try:
        found = assess(settings, directory, read_schema(directory))
    finally:
        directory.close()
    assert found.warnings == []
    with bound(cn_config, settings.ldap.bind_dn, SERVER_PASSWORD) as conn:
        conn.search("cn=config", "(olcRootPW=*)", SUBTREE, attributes=["olcRootPW"])
        assert conn.entries == []
        conn.search("cn=config", "(olcAccess=*)", SUBTREE, attributes=["olcAccess"])
        assert all(not e.entry_attributes_as_dict.get("olcAccess") for e in conn.entries)


@pytest.fixture
def provisioned(prepared: SandboxDirectory) -> Iterator[tuple[SandboxDirectory, str]]:
    """A user made through SCIM by the server bound as its account, with a password, an SSH
    key, a second e-mail (kept in scimUnmapped) and membership of a group."""
    settings = server_settings(prepared)
    with TestClient(create_app(settings), headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        name = f"gina{id(prepared) % 100000}@example.com"
        created = client.post(
            "/scim/v2/Users",
            json={
                "schemas": [CORE, POSIX],
                "userName": name,
                "password": "Gina-password-42!",
                "emails": [
                    {"type": "work", "value": name, "primary": True},
                    {"type": "home", "value": "gina@home.example"},
                ],
                POSIX: {"sshPublicKeys": [public_key()]},
            },
        )
        assert created.status_code == 201, created.text
        user = created.json()
        group = client.post(
            "/scim/v2/Groups",
            json={
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                "displayName": f"Team {user['id'][:8]}",
                "members": [{"value": user["id"]}],
            },
        )
        assert group.status_code == 201, group.text
        try:
            yield prepared, user["id"]
        finally:
            assert client.delete(f"/scim/v2/Groups/{group.json()['id']}").status_code == 204
            assert client.delete(f"/scim/v2/Users/{user['id']}").status_code == 204


def _entry(conn: Connection, base: str, ldap_filter: str, *attributes: str) -> dict[str, list[str]]:
    assert conn.search(base, ldap_filter, SUBTREE, attributes=list(attributes)), conn.result
    assert len(conn.entries) == 1, conn.entries
    found = conn.entries[0].entry_attributes_as_dict
    return {
        k: [v.decode() if isinstance(v, bytes) else str(v) for v in values]
        for k, values in found.items()
    }


def test_the_hosts_read_what_nss_needs_and_nothing_of_the_servers(
    provisioned: tuple[SandboxDirectory, str],
) -> None:
    directory, user_id = provisioned
    users, groups = f"ou=people,{directory.base_dn}", f"ou=groups,{directory.base_dn}"
    with bound(directory, directory.admin_dn, directory.admin_password) as admin:
        full = _entry(admin, users, f"(entryUUID={user_id})", "*", "+")
    login = full["uid"][0]
    assert full.get("userPassword") and full.get("scimUnmapped") and full.get("scimUserName")
    hosts_dn = f"cn=nss,ou=services,{directory.base_dn}"
    with bound(directory, hosts_dn, HOSTS_PASSWORD) as hosts:
        seen = _entry(hosts, users, f"(&(objectClass=posixAccount)(uid={login}))", "*", "+")
        for attribute in ("uid", "uidNumber", "gidNumber", "homeDirectory", "loginShell"):
            assert seen.get(attribute) == full[attribute], attribute
        assert seen["sshPublicKey"] == [public_key()]
        assert seen.get("scimActive") == full.get("scimActive")
        for hidden in ("userPassword", "scimUnmapped", "scimUserName", "scimExternalId", "mail"):
            assert hidden not in seen, hidden
        team = _entry(hosts, groups, f"(&(cn=team*)(memberUid={login}))", "gidNumber", "memberUid")
        assert team["memberUid"] == [login]
        assert team["gidNumber"] == ["70001"]  # after the login group's, the first of the range
        linux = _entry(hosts, groups, f"(&(cn=linux-login)(memberUid={login}))", "gidNumber")
        assert linux["gidNumber"] == ["70000"]
        hosts.search(users, "(userPassword=*)", SUBTREE, attributes=["1.1"])
        assert hosts.entries == []
        hosts.search(users, "(scimUnmapped=*)", SUBTREE, attributes=["1.1"])
        assert hosts.entries == []
        sudo = f"ou=sudoers,{directory.base_dn}"
        hosts.search(sudo, "(objectClass=sudoRole)", SUBTREE, attributes=["sudoUser"])
        assert hosts.result["result"] == 0, hosts.result
        hosts.search(f"cn=scim-ldap-ids,{directory.base_dn}", "(objectClass=*)", BASE)
        assert hosts.entries == []


def test_a_user_binds_with_their_password_and_the_server_reads_no_hash(
    provisioned: tuple[SandboxDirectory, str],
) -> None:
    directory, user_id = provisioned
    users = f"ou=people,{directory.base_dn}"
    server_dn = f"cn=scim-ldap,ou=services,{directory.base_dn}"
    with bound(directory, server_dn, SERVER_PASSWORD) as server:
        seen = _entry(server, users, f"(entryUUID={user_id})", "*")
        assert "userPassword" not in seen
        assert seen.get("scimUnmapped")
    user_dn = f"uid={seen['uid'][0]},{users}"
    with bound(directory, user_dn, "Gina-password-42!") as user:
        assert user.bound
        user.search(user_dn, "(objectClass=*)", BASE, attributes=["*"])
        assert [e.entry_dn for e in user.entries] == [user_dn]
        own = user.entries[0].entry_attributes_as_dict
        assert own["uid"] == seen["uid"]
        assert "scimUnmapped" not in own and "userPassword" not in own
        user.search(users, "(uid=*)", SUBTREE, attributes=["uid"])
        assert [e.entry_dn for e in user.entries] in ([], [user_dn])


def test_the_server_account_writes_only_below_its_containers(prepared: SandboxDirectory) -> None:
    base = prepared.base_dn
    server_dn = f"cn=scim-ldap,ou=services,{base}"
    hosts_dn = f"cn=nss,ou=services,{base}"
    with bound(prepared, server_dn, SERVER_PASSWORD) as server:
        server.add(f"ou=elsewhere,{base}", ["organizationalUnit"], {"ou": "elsewhere"})
        assert server.result["result"] == INSUFFICIENT_ACCESS, server.result
        server.add(f"cn=intruder,ou=services,{base}", ["person"], {"cn": "x", "sn": "x"})
        assert server.result["result"] == INSUFFICIENT_ACCESS, server.result
        for dn, change in (
            (base, {"o": [(MODIFY_REPLACE, ["changed"])]}),
            (hosts_dn, {"userPassword": [(MODIFY_REPLACE, ["stolen"])]}),
            (hosts_dn, {"description": [(MODIFY_REPLACE, ["changed"])]}),
            (f"cn=default,ou=policies,{base}", {"pwdMaxFailure": [(MODIFY_REPLACE, ["1000"])]}),
        ):
            server.modify(dn, change)
            assert server.result["result"] == INSUFFICIENT_ACCESS, (dn, server.result)
        server.delete(hosts_dn)
        assert server.result["result"] == INSUFFICIENT_ACCESS, server.result
    with bound(prepared, hosts_dn, HOSTS_PASSWORD) as hosts:
        hosts.add(f"uid=sneaky,ou=people,{base}", ["account"], {"uid": "sneaky"})
        assert hosts.result["result"] == INSUFFICIENT_ACCESS, hosts.result
        hosts.modify(f"ou=people,{base}", {"description": [(MODIFY_REPLACE, ["x"])]})
        assert hosts.result["result"] == INSUFFICIENT_ACCESS, hosts.result


def test_anonymous_clients_see_nothing(prepared: SandboxDirectory) -> None:
    conn = Connection(prepared.url, auto_bind=True, raise_exceptions=False)
    try:
        conn.search(prepared.base_dn, "(objectClass=*)", SUBTREE, attributes=["*"])
        assert conn.entries == []
    finally:
        conn.unbind()


def test_group_members_are_kept_sorted(prepared: SandboxDirectory) -> None:
    """sortvals: slapd stores memberUid and member values in order, whatever order they come
    in (a bare slapd keeps them as added)."""
    dn = f"cn=sorted,ou=groups,{prepared.base_dn}"
    with bound(prepared, prepared.admin_dn, prepared.admin_password) as admin:
        members = {"memberUid": ["carol", "alice", "bob"]}
        admin.add(dn, ["posixGroup"], {"cn": "sorted", "gidNumber": "4711", **members})
        assert admin.result["result"] == 0, admin.result
        try:
            admin.modify(dn, {"memberUid": [(MODIFY_ADD, ["abe"])]})
            assert admin.result["result"] == 0, admin.result
            admin.search(dn, "(objectClass=*)", BASE, attributes=["memberUid"])
            stored = list(admin.entries[0].memberUid.values)
            assert stored == ["abe", "bob", "alice", "carol"]  # by length, then by octets
        finally:
            admin.delete(dn)


def rendered(**sections: object) -> Preparation:
    settings = Settings(**sections)  # type: ignore[arg-type]
    return Preparation(settings, default_accounts(settings.ldap.base_dn))


def test_indexes_follow_the_mapping() -> None:
    moved = rendered(
        users=UserSettings(
            mapping={'emails[type eq "work"].value': "description"}, pending_attribute=None
        )
    )
    indexed = " ".join(moved.indexes)
    assert "description" in indexed
    assert "mail" not in indexed.split(" ")[0].split(",")
    assert "scimPending" not in indexed
    assert any(line.endswith(" eq") and "uidNumber" in line for line in moved.indexes)


def test_what_the_profile_does_not_use_is_left_out() -> None:
    plain = rendered(accounts=AccountSettings(disable=["expire", "hide"]))
    assert "ppolicy" not in plain.modules
    assert all(overlay.name != "ppolicy" for overlay in plain.overlays())
    assert "pwdAccountLockedTime" not in plain.render("cn-config", "database")
    assert "pwdPolicy" not in plain.render("cn-config", "data")
    assert "ou=disabled" not in plain.render("cn-config")
    assert "sudo" not in plain.render("slapd-conf", "schema")
    assert "linux-login" not in plain.render("cn-config", "data")


def test_what_the_settings_use_is_put_in() -> None:
    full = rendered(
        accounts=AccountSettings(
            disable=["lock", "move", "remove-group"], delete="archive", password_storage="ssha512"
        ),
        groups=GroupSettings(sudo={"Admins": ["ALL"]}),
        posix=PosixSettings(
            providers=[
                IdProvider(url="ldap://a.example.org", uid_range=(10000, 19999)),
                IdProvider(url="ldap://b.example.org", uid_range=(20000, 29999)),
            ]
        ),
    )
    assert full.modules == ["sssvlv", "ppolicy", "pw-sha2", "unique"]
    data = full.render("cn-config", "data")
    for dn in (
        "ou=disabled,dc=example,dc=org",
        "ou=archive,dc=example,dc=org",
        "ou=sudoers,dc=example,dc=org",
        "cn=linux-login,ou=groups,dc=example,dc=org",
        "cn=scim-ldap-ids-10000,dc=example,dc=org",
        "cn=scim-ldap-ids-20000,dc=example,dc=org",
        "cn=default,ou=policies,dc=example,dc=org",
    ):
        assert f"dn: {dn}\n" in data, dn
    access = full.render("slapd-conf", "database")
    assert 'to dn.base="cn=scim-ldap-ids-20000,dc=example,dc=org"' in access
    assert 'to dn.subtree="ou=archive,dc=example,dc=org" by' in access
    assert "sudoCommand" in full.render("slapd-conf", "schema")
    assert all(rule.reason for rule in full.access())


def test_no_password_is_printed_that_was_not_given() -> None:
    settings = Settings()
    secret = "a-secret-never-printed"
    given = Preparation(
        settings, Accounts("cn=a,ou=s,dc=example,dc=org", "cn=b,ou=s,dc=example,dc=org", secret)
    )
    text = given.render("cn-config")
    assert secret not in text
    assert text.lower().count("userpassword: {ssha}") == 1
