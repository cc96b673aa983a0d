"""What ``check`` predicts of the first writes: a prepared directory is ready, and each
missing prerequisite is named with its fix."""

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from ldap3 import BASE, Connection
from pydantic import SecretStr

from app.clientsecrets import hash_secret
from app.config import (
    AccountSettings,
    AuthSettings,
    GroupSettings,
    LdapSettings,
    OAuthClient,
    OAuthSettings,
    PosixSettings,
    Settings,
    UserSettings,
)
from app.ldap.connection import Directory
from app.ldap.dn import first_rdn
from app.ldap.mapping import read_schema
from app.ldap.readiness import PROBE_PREFIX, Readiness, assess, connection_findings, leftovers
from app.ldap.sandbox import Sandbox, SandboxDirectory
from tests.test_cli import run

TOKEN = "test-token-0123456789abcdef"
READER_PASSWORD = "reader-password-0123"
EVERYTHING = ["lock", "expire", "hide", "nologin", "strip-keys", "move", "remove-group"]


@pytest.fixture(scope="module")
def server() -> Iterator[Sandbox]:
    """StartTLS, sudo's schema, ou=disabled, ou=archive, the login group and a reader; the
    counters and the default group the preparation made are taken away, so the server (here
    the rootdn) has to make them."""
    reader = 'dn.exact="cn=reader,dc=example,dc=org"'
    with Sandbox(sudo=True, tls=True, access=[f"to * by {reader} read by * break"]) as sandbox:
        directory = sandbox.directory
        base = directory.base_dn
        conn = admin(directory)
        try:
            for made in (
                f"cn=scim-ldap-ids,{base}",
                f"cn=scim-ldap-gids,{base}",
                f"cn=scim-users,{directory.groups_dn}",
            ):
                assert conn.delete(made), conn.result
            for ou in ("disabled", "archive"):
                conn.add(f"ou={ou},{base}", ["top", "organizationalUnit"], {"ou": ou})
                assert conn.result["result"] == 0, conn.result
            conn.add(
                f"cn=linux-login,{directory.groups_dn}",
                ["top", "posixGroup"],
                {"cn": "linux-login", "gidNumber": "5000"},
            )
            conn.add(
                f"cn=reader,{base}",
                ["top", "person"],
                {"cn": "reader", "sn": "reader", "userPassword": READER_PASSWORD},
            )
            assert conn.result["result"] == 0, conn.result
        finally:
            conn.unbind()
        yield sandbox


@pytest.fixture(scope="module")
def without_ppolicy() -> Iterator[Sandbox]:
    with Sandbox(ppolicy=False) as sandbox:
        yield sandbox


def admin(directory: SandboxDirectory) -> Connection:
    """A plain connection as the rootdn, to prepare and inspect (the sandbox allows it)."""
    return Connection(directory.url, directory.admin_dn, directory.admin_password, auto_bind=True)


def settings_for(
    directory: SandboxDirectory,
    *,
    ldap: dict[str, Any] | None = None,
    tokens: list[str] | None = None,
    **sections: Any,
) -> Settings:
    base = directory.admin_settings()
    return Settings(
        ldap=LdapSettings(**{**base.model_dump(), **(ldap or {})}),
        auth=AuthSettings(tokens=[SecretStr(t) for t in ([TOKEN] if tokens is None else tokens)]),
        **sections,
    )


def assess_with(settings: Settings) -> Readiness:
    directory = Directory(settings.ldap)
    try:
        return assess(settings, directory, read_schema(directory))
    finally:
        directory.close()


def probe_entries(directory: SandboxDirectory) -> list[str]:
    pool = Directory(directory.admin_settings())
    try:
        with pool.session() as session:
            found = leftovers(session, directory.base_dn)
    finally:
        pool.close()
    conn = admin(directory)
    try:
        conn.search(
            f"cn=linux-login,{directory.groups_dn}",
            "(objectClass=*)",
            BASE,
            attributes=["memberUid"],
        )
        members = [str(v) for v in conn.entries[0].entry_attributes_as_dict.get("memberUid", [])]
    finally:
        conn.unbind()
    return found + [m for m in members if m.startswith(PROBE_PREFIX)]


def everything(directory: SandboxDirectory, **ldap: Any) -> Settings:
    """Every feature that needs a container, a group or the counters."""
    return settings_for(
        directory,
        ldap=ldap or None,
        accounts=AccountSettings(disable=EVERYTHING, delete="archive"),
        groups=GroupSettings(sudo={"Admins": ["ALL"]}, sudoers_dn=directory.sudoers_dn),
    )


def errors_naming(found: Readiness, *parts: str) -> list[str]:
    return [e for e in found.errors if all(p in e for p in parts)]


def test_a_prepared_directory_is_ready_and_keeps_nothing(server: Sandbox) -> None:
    directory = server.directory
    found = assess_with(everything(directory))
    assert found.errors == []
    assert probe_entries(directory) == []
    conn = admin(directory)
    try:
        for counter in ("scim-ldap-ids", "scim-ldap-gids"):
            conn.search(directory.base_dn, f"(cn={counter})", attributes=["1.1"])
            assert conn.entries == [], f"the probe left the counter {counter}"
    finally:
        conn.unbind()


def test_existing_counters_are_written_back_unchanged(server: Sandbox) -> None:
    directory = server.directory
    base = directory.base_dn
    conn = admin(directory)
    try:
        conn.add(
            f"cn=scim-ldap-ids,{base}",
            ["top", "scimIdPool"],
            {"cn": "scim-ldap-ids", "uidNumber": "10042"},
        )
        conn.add(f"cn=scim-ldap-gids,{base}", ["top", "scimIdPool"], {"cn": "scim-ldap-gids"})
        try:
            found = assess_with(settings_for(directory))
            assert found.errors == []
            conn.search(
                f"cn=scim-ldap-ids,{base}", "(objectClass=*)", BASE, attributes=["uidNumber"]
            )
            assert conn.entries[0].uidNumber.values == [10042]
            conn.search(
                f"cn=scim-ldap-gids,{base}", "(objectClass=*)", BASE, attributes=["gidNumber"]
            )
            assert conn.entries[0].entry_attributes_as_dict.get("gidNumber", []) == []
        finally:
            conn.delete(f"cn=scim-ldap-ids,{base}")
            conn.delete(f"cn=scim-ldap-gids,{base}")
    finally:
        conn.unbind()


def test_a_read_only_bind_is_refused_everywhere(server: Sandbox) -> None:
    directory = server.directory
    reader = f"cn=reader,{directory.base_dn}"
    found = assess_with(
        everything(directory, bind_dn=reader, bind_password=SecretStr(READER_PASSWORD))
    )
    fix = f"grant {reader} write access below"
    assert errors_naming(found, "cannot create a user below ldap.users_dn", fix)
    assert errors_naming(found, "cannot create a group below ldap.groups_dn", fix)
    assert errors_naming(found, "cannot write a sudo role below groups.sudoers_dn", fix)
    assert errors_naming(found, "cannot add a member to the login group", fix)
    counter = f"grant {reader} write access to the counter"
    assert errors_naming(found, "cannot create the uidNumber counter", "posix.id_pool_dn", counter)
    assert errors_naming(found, "cannot create the gidNumber counter", "groups.id_pool_dn", counter)
    assert probe_entries(directory) == []


def test_a_missing_login_group_is_named(server: Sandbox) -> None:
    directory = server.directory
    found = assess_with(
        settings_for(
            directory,
            accounts=AccountSettings(disable=["remove-group"], login_group="nobody-logs-in"),
        )
    )
    assert found.errors == [
        f"the login group cn=nobody-logs-in,{directory.groups_dn} does not exist "
        "(accounts.login_group; remove-group in accounts.disable adds every new user to it): "
        "create it (a posixGroup) or change accounts.login_group"
    ]


def test_a_missing_disabled_container_is_named(server: Sandbox) -> None:
    directory = server.directory
    gone = f"ou=gone,{directory.base_dn}"
    found = assess_with(
        settings_for(
            directory, ldap={"disabled_dn": gone}, accounts=AccountSettings(disable=["move"])
        )
    )
    assert found.errors == [
        f"ldap.disabled_dn {gone} (where the move action puts disabled users) does not exist: "
        "create it (an organizationalUnit) or change ldap.disabled_dn"
    ]


def test_a_missing_archive_is_named(server: Sandbox) -> None:
    directory = server.directory
    gone = f"ou=gone,{directory.base_dn}"
    found = assess_with(
        settings_for(
            directory, ldap={"archive_dn": gone}, accounts=AccountSettings(delete="archive")
        )
    )
    assert len(found.errors) == 1
    assert found.errors[0].startswith(f"ldap.archive_dn {gone} ")
    assert "does not exist" in found.errors[0]


def test_no_token_is_an_error(server: Sandbox) -> None:
    found = assess_with(settings_for(server.directory, tokens=[]))
    assert len(found.errors) == 1
    assert found.errors[0].startswith(
        "auth.tokens is empty and auth.oauth.clients too: every request would be answered 401"
    )


def test_oauth_clients_without_a_token_are_enough(server: Sandbox) -> None:
    settings = settings_for(server.directory, tokens=[])
    settings.auth = AuthSettings(
        oauth=OAuthSettings(
            clients=[
                OAuthClient(
                    client_id="entra", secret_hashes=[SecretStr(hash_secret(TOKEN, rounds=1000))]
                )
            ],
            signing_key=SecretStr("k" * 32),
        )
    )
    found = connection_findings(settings)
    assert found.errors == []
    assert found.warnings == [
        "auth.oauth.clients entra: secret hash 1 has 1000 PBKDF2 rounds; python -m app "
        "hash-secret makes one of 600000"
    ]


def test_an_unknown_object_class_is_an_error(server: Sandbox) -> None:
    classes = [*UserSettings().object_classes, "noSuchClass"]
    found = assess_with(settings_for(server.directory, users=UserSettings(object_classes=classes)))
    assert errors_naming(found, "the directory schema has no object class noSuchClass")
    assert probe_entries(server.directory) == []


def test_lock_needs_the_ppolicy_overlay(without_ppolicy: Sandbox) -> None:
    directory = without_ppolicy.directory
    found = assess_with(settings_for(directory))
    assert found.errors == [
        "the directory schema has no pwdAccountLockedTime, which the lock action of "
        "accounts.disable writes: disabling a user would fail; load the ppolicy overlay on the "
        "database holding ldap.users_dn (olcModuleLoad: ppolicy; an olcPPolicyConfig overlay "
        "with olcPPolicyDefault naming a pwdPolicy entry), or remove lock from accounts.disable"
    ]
    assert probe_entries_without_login_group(directory) == []
    quiet = assess_with(
        settings_for(directory, accounts=AccountSettings(disable=["expire", "hide"]))
    )
    assert quiet.errors == []


def test_a_default_group_of_another_gid_is_named(server: Sandbox) -> None:
    directory = server.directory
    dn = f"cn=scim-users,{directory.groups_dn}"
    conn = admin(directory)
    try:
        conn.add(dn, ["top", "posixGroup"], {"cn": "scim-users", "gidNumber": "4242"})
        try:
            found = assess_with(
                settings_for(directory, posix=PosixSettings(default_gid_number=10000))
            )
        finally:
            conn.delete(dn)
    finally:
        conn.unbind()
    assert errors_naming(found, dn, "posix.default_gid_number 10000")


def probe_entries_without_login_group(directory: SandboxDirectory) -> list[str]:
    pool = Directory(directory.admin_settings())
    try:
        with pool.session() as session:
            return leftovers(session, directory.base_dn)
    finally:
        pool.close()


def test_a_certificate_that_does_not_verify_names_the_ca_setting(
    server: Sandbox, tmp_path: Path
) -> None:
    wrong = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(wrong))
    directory = server.directory
    assert connection_findings(settings_for(directory)).errors == []
    found = connection_findings(settings_for(directory, ldap={"ca_file": wrong}))
    assert errors_naming(found, directory.url, "TLS certificate verification failed")
    assert errors_naming(found, f"ldap.ca_file = {wrong}", "set ldap.ca_file to the CA bundle")
    env = {**directory.environment(), "SCIM_LDAP_AUTH__TOKENS": json.dumps([TOKEN])}
    result = run("check", env={**env, "SCIM_LDAP_LDAP__CA_FILE": str(wrong)})
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"error: {directory.url}: TLS certificate verification failed" in result.stdout


def test_check_command_on_a_prepared_directory(server: Sandbox) -> None:
    directory = server.directory
    env = {
        **directory.environment(),
        "SCIM_LDAP_LDAP__BIND_DN": directory.admin_dn,
        "SCIM_LDAP_LDAP__BIND_PASSWORD": directory.admin_password,
        "SCIM_LDAP_AUTH__TOKENS": json.dumps([TOKEN]),
        "SCIM_LDAP_ACCOUNTS__DISABLE": json.dumps(EVERYTHING),
        "SCIM_LDAP_ACCOUNTS__DELETE": "archive",
        "SCIM_LDAP_GROUPS__SUDO": json.dumps({"Admins": ["ALL"]}),
    }
    result = run("check", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "error:" not in result.stdout
    assert result.stdout.rstrip().endswith("configuration is valid")
    assert probe_entries(directory) == []
    missing = run("check", env={**env, "SCIM_LDAP_ACCOUNTS__LOGIN_GROUP": "absent"})
    assert missing.returncode == 1
    assert (
        f"error: the login group cn=absent,{directory.groups_dn} does not exist" in missing.stdout
    )
    assert "configuration is valid" not in missing.stdout
    assert "1 problem would fail requests" in missing.stderr


@pytest.fixture(scope="module")
def device_writer() -> Iterator[Sandbox]:
    """cn=writer may add below ou=people only entries of class device, not accounts;
    cn=adder may add groups but neither rename nor delete them."""
    base = "dc=example,dc=org"
    writer, adder = f"cn=writer,{base}", f"cn=adder,{base}"
    rules = [
        f'to dn.base="ou=people,{base}" attrs=children by dn.exact="{writer}" write by * break',
        f'to dn.children="ou=people,{base}" filter=(objectClass=device) '
        f'by dn.exact="{writer}" write by * break',
        f'to dn.base="ou=groups,{base}" attrs=children by dn.exact="{adder}" =rscxa by * break',
        f'to dn.children="ou=groups,{base}" by dn.exact="{adder}" write by * break',
        f'to * by dn.exact="{writer}" read by dn.exact="{adder}" read by * break',
    ]
    with Sandbox(base_dn=base, access=rules) as sandbox:
        conn = admin(sandbox.directory)
        try:
            for dn in (writer, adder):
                name = first_rdn(dn).split("=")[1]
                conn.add(
                    dn,
                    ["top", "person"],
                    {"cn": name, "sn": name, "userPassword": READER_PASSWORD},
                )
                assert conn.result["result"] == 0, conn.result
        finally:
            conn.unbind()
        yield sandbox


def test_the_probe_is_an_entry_of_the_kind_the_server_writes(device_writer: Sandbox) -> None:
    """An ACL that lets the bind DN add some entries but not accounts fails the user probe."""
    directory = device_writer.directory
    writer = f"cn=writer,{directory.base_dn}"
    conn = Connection(directory.url, writer, READER_PASSWORD, auto_bind=True)
    try:
        conn.add(f"cn=a-device,{directory.users_dn}", ["top", "device"], {"cn": "a-device"})
        assert conn.result["result"] == 0, conn.result
        conn.delete(f"cn=a-device,{directory.users_dn}")
    finally:
        conn.unbind()
    found = assess_with(
        settings_for(directory, ldap={"bind_dn": writer, "bind_password": READER_PASSWORD})
    )
    assert errors_naming(
        found,
        f"cannot create a user below ldap.users_dn {directory.users_dn}: insufficientAccessRights",
        f"grant {writer} write access below {directory.users_dn}",
    )
    assert probe_entries_without_login_group(directory) == []


def test_a_probe_that_cannot_be_deleted_is_reported(device_writer: Sandbox) -> None:
    directory = device_writer.directory
    adder = f"cn=adder,{directory.base_dn}"
    found = assess_with(
        settings_for(directory, ldap={"bind_dn": adder, "bind_password": READER_PASSWORD})
    )
    left = probe_entries_without_login_group(directory)
    conn = admin(directory)
    try:
        for dn in left:
            conn.delete(dn)
    finally:
        conn.unbind()
    groups = [dn for dn in left if dn.endswith(f",{directory.groups_dn}")]
    assert len(groups) == 1, left
    assert errors_naming(found, "cannot rename a group (groups.rename)", "insufficientAccessRights")
    assert errors_naming(
        found,
        f"the probe entry {groups[0]} is left in the directory (cannot delete it: "
        "insufficientAccessRights",
        "delete it by hand",
    )
