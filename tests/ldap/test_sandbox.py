import itertools
import ssl
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from ldap3 import (
    BASE,
    HASHED_SALTED_SHA,
    MODIFY_DELETE,
    MODIFY_REPLACE,
    SUBTREE,
    Connection,
    Server,
    Tls,
)
from ldap3.core.exceptions import LDAPException
from ldap3.utils.hashed import hashed

from app.ldap.sandbox import Sandbox, SandboxDirectory, SandboxError

SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGJ1c3kgYmVlcyBidXp6IGFsbCBkYXkgbG9uZw test@example"


def connect(directory: SandboxDirectory) -> Connection:
    return Connection(
        Server(directory.url, connect_timeout=2),
        user=directory.admin_dn,
        password=directory.admin_password,
        auto_bind=True,
        receive_timeout=5,
    )


@pytest.fixture
def conn(directory: SandboxDirectory) -> Iterator[Connection]:
    connection = connect(directory)
    try:
        yield connection
    finally:
        connection.unbind()


_NUMBERS = itertools.count(400_000 + uuid.uuid4().int % 100_000)
"""uidNumbers no other test of the session holds (the directory's unique overlay refuses twins)."""


def add_user(conn: Connection, directory: SandboxDirectory, uid: str) -> str:
    dn = f"uid={uid},{directory.users_dn}"
    number = next(_NUMBERS)
    ok = conn.add(
        dn,
        ["inetOrgPerson", "posixAccount", "shadowAccount", "scimUser", "ldapPublicKey"],
        {
            "cn": "Alice Smith",
            "sn": "Smith",
            "givenName": "Alice",
            "uidNumber": number,
            "gidNumber": number,
            "homeDirectory": f"/home/{uid}",
            "loginShell": "/bin/bash",
            "scimUserName": f"{uid}.Smith@Example.COM",
            "scimExternalId": f"AbC-{uid}",
            "scimActive": "TRUE",
            "scimFormattedName": "Ms. Alice Smith",
            "co": "Netherlands",
            "sshPublicKey": SSH_KEY,
        },
    )
    assert ok, conn.result
    return dn


def search_uids(conn: Connection, directory: SandboxDirectory, ldap_filter: str) -> list[str]:
    conn.search(directory.users_dn, ldap_filter, SUBTREE, attributes=["uid"])
    assert conn.result["description"] == "success", conn.result
    return [str(entry.uid) for entry in conn.entries]


def test_bind_accepts_generated_password(directory: SandboxDirectory) -> None:
    connection = connect(directory)
    try:
        assert connection.bound
        assert connection.extend.standard.who_am_i() == f"dn:{directory.admin_dn}"
    finally:
        connection.unbind()


def test_bind_refuses_wrong_password(directory: SandboxDirectory) -> None:
    connection = Connection(
        Server(directory.url), user=directory.bind_dn, password=directory.bind_password + "x"
    )
    assert not connection.bind()
    assert connection.result["description"] == "invalidCredentials"


def test_base_entries_exist(conn: Connection, directory: SandboxDirectory) -> None:
    for dn, object_class in (
        (directory.base_dn, "organization"),
        (directory.users_dn, "organizationalUnit"),
        (directory.groups_dn, "organizationalUnit"),
    ):
        assert conn.search(dn, "(objectClass=*)", BASE, attributes=["objectClass"]), dn
        assert object_class in conn.entries[0].objectClass.values


def test_scim_user_entry_round_trips(conn: Connection, directory: SandboxDirectory) -> None:
    dn = add_user(conn, directory, "roundtrip")
    try:
        assert conn.search(dn, "(objectClass=*)", BASE, attributes=["*", "entryUUID"])
        entry = conn.entries[0]
        assert entry.scimUserName.value == "roundtrip.Smith@Example.COM"
        assert entry.scimExternalId.value == "AbC-roundtrip"
        assert entry.scimActive.value is True
        assert entry.scimFormattedName.value == "Ms. Alice Smith"
        assert entry.co.value == "Netherlands"
        assert entry.sshPublicKey.raw_values == [SSH_KEY.encode()]
        assert entry.entryUUID.value
    finally:
        conn.delete(dn)


def test_scim_user_name_matches_case_insensitively(
    conn: Connection, directory: SandboxDirectory
) -> None:
    dn = add_user(conn, directory, "caseuser")
    try:
        assert search_uids(conn, directory, "(scimUserName=CASEUSER.smith@example.com)") == [
            "caseuser"
        ]
        assert search_uids(conn, directory, "(scimUserName=caseuser.sm*)") == ["caseuser"]
    finally:
        conn.delete(dn)


def test_scim_external_id_matches_case_sensitively(
    conn: Connection, directory: SandboxDirectory
) -> None:
    dn = add_user(conn, directory, "extid")
    try:
        assert search_uids(conn, directory, "(scimExternalId=AbC-extid)") == ["extid"]
        assert search_uids(conn, directory, "(scimExternalId=abc-extid)") == []
    finally:
        conn.delete(dn)


def test_scim_group_class_is_available(conn: Connection, directory: SandboxDirectory) -> None:
    dn = f"cn=scimgroup,{directory.groups_dn}"
    assert conn.add(
        dn,
        ["posixGroup", "scimGroup"],
        {"cn": "scimgroup", "gidNumber": 20001, "scimExternalId": "Group-1"},
    ), conn.result
    try:
        assert conn.search(directory.groups_dn, "(scimExternalId=Group-1)", attributes=["cn"])
        assert [str(entry.cn) for entry in conn.entries] == ["scimgroup"]
    finally:
        conn.delete(dn)


def test_schema_rejects_unknown_attribute(conn: Connection, directory: SandboxDirectory) -> None:
    ok = conn.add(
        f"uid=bad,{directory.users_dn}",
        ["inetOrgPerson"],
        {"cn": "Bad", "sn": "Bad", "co": "Netherlands"},
    )
    assert not ok
    assert conn.result["description"] == "objectClassViolation"


def test_outage_keeps_data(tmp_path: Path) -> None:
    with Sandbox(workdir=tmp_path) as sandbox:
        directory = sandbox.directory
        connection = connect(directory)
        dn = add_user(connection, directory, "survivor")
        connection.unbind()

        sandbox.stop_server()
        with pytest.raises(LDAPException):
            connect(directory)

        sandbox.start_server()
        connection = connect(directory)
        try:
            assert connection.search(dn, "(objectClass=*)", BASE, attributes=["scimExternalId"])
            assert connection.entries[0].scimExternalId.value == "AbC-survivor"
        finally:
            connection.unbind()


def test_stop_removes_files_and_is_idempotent(tmp_path: Path) -> None:
    sandbox = Sandbox(workdir=tmp_path)
    directory = sandbox.start()
    root = sandbox.root
    assert (root / "slapd.d").is_dir()
    for secret in (directory.admin_password, directory.bind_password, directory.nss_password):
        password = secret.encode()
        assert all(password not in p.read_bytes() for p in root.rglob("*") if p.is_file())
    sandbox.stop()
    assert not root.exists()
    assert list(tmp_path.iterdir()) == []
    sandbox.stop()
    with pytest.raises(LDAPException):
        connect(directory)


def test_start_failure_reports_slapd_log_and_cleans_up(
    directory: SandboxDirectory, tmp_path: Path
) -> None:
    busy_port = int(directory.url.rsplit(":", 1)[1])
    sandbox = Sandbox(port=busy_port, workdir=tmp_path)
    with pytest.raises(SandboxError, match="slapd"):
        sandbox.start()
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(SandboxError, match="not started"):
        _ = sandbox.directory


def user_bind(directory: SandboxDirectory, dn: str, password: str) -> str:
    """The result of a simple bind as ``dn``: "success", "invalidCredentials", ..."""
    connection = Connection(Server(directory.url, connect_timeout=2), user=dn, password=password)
    try:
        connection.bind()
        return str(connection.result["description"])
    finally:
        connection.unbind()


def test_user_binds_with_password_until_locked(
    conn: Connection, directory: SandboxDirectory
) -> None:
    dn = add_user(conn, directory, "lockme")
    try:
        assert conn.modify(
            dn, {"userPassword": [(MODIFY_REPLACE, [hashed(HASHED_SALTED_SHA, "pw-1")])]}
        )
        assert user_bind(directory, dn, "pw-1") == "success"
        assert user_bind(directory, dn, "wrong") == "invalidCredentials"

        assert conn.modify(dn, {"pwdAccountLockedTime": [(MODIFY_REPLACE, ["000001010000Z"])]})
        assert user_bind(directory, dn, "pw-1") == "invalidCredentials"

        assert conn.modify(dn, {"pwdAccountLockedTime": [(MODIFY_DELETE, [])]})
        assert user_bind(directory, dn, "pw-1") == "success"
    finally:
        conn.delete(dn)


def test_anonymous_reads_nothing(conn: Connection, directory: SandboxDirectory) -> None:
    dn = add_user(conn, directory, "hidden")
    try:
        anonymous = Connection(Server(directory.url, connect_timeout=2), auto_bind=True)
        anonymous.search(directory.base_dn, "(objectClass=*)", SUBTREE, attributes=["uid"])
        assert anonymous.entries == []
    finally:
        conn.delete(dn)


def test_password_policy_is_the_default(conn: Connection, directory: SandboxDirectory) -> None:
    assert conn.search(
        "cn=config", "(objectClass=olcPPolicyConfig)", SUBTREE, attributes=["olcPPolicyDefault"]
    )
    assert conn.entries[0].olcPPolicyDefault.value == directory.password_policy_dn
    assert conn.search(
        directory.password_policy_dn, "(objectClass=pwdPolicy)", BASE, attributes=["pwdMaxFailure"]
    )
    assert conn.entries[0].pwdMaxFailure.value == 5


@pytest.fixture(scope="module")
def tls_directory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxDirectory]:
    with Sandbox(tls=True, workdir=tmp_path_factory.mktemp("tls")) as sandbox:
        yield sandbox.directory


def tls_connection(url: str, ca_file: str) -> Connection:
    tls = Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=ca_file, version=ssl.PROTOCOL_TLS_CLIENT)
    return Connection(
        Server(url, connect_timeout=2, tls=tls, use_ssl=url.startswith("ldaps://")),
        receive_timeout=5,
    )


def test_start_tls_verifies_against_the_sandbox_ca(tls_directory: SandboxDirectory) -> None:
    assert tls_directory.ca_file is not None
    connection = tls_connection(tls_directory.url, tls_directory.ca_file)
    try:
        connection.open()
        assert connection.start_tls()
        assert connection.tls_started
        assert connection.rebind(tls_directory.bind_dn, tls_directory.bind_password)
        assert connection.extend.standard.who_am_i() == f"dn:{tls_directory.bind_dn}"
    finally:
        connection.unbind()


def test_ldaps_verifies_against_the_sandbox_ca(tls_directory: SandboxDirectory) -> None:
    assert tls_directory.ca_file is not None and tls_directory.ldaps_url is not None
    connection = tls_connection(tls_directory.ldaps_url, tls_directory.ca_file)
    try:
        assert connection.rebind(tls_directory.bind_dn, tls_directory.bind_password)
        assert connection.extend.standard.who_am_i() == f"dn:{tls_directory.bind_dn}"
    finally:
        connection.unbind()


def test_start_tls_fails_against_another_ca(
    tls_directory: SandboxDirectory, tmp_path: Path
) -> None:
    wrong = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(wrong))
    for url in (tls_directory.url, tls_directory.ldaps_url):
        assert url is not None
        connection = tls_connection(url, str(wrong))
        with pytest.raises(LDAPException, match="certificate verify failed"):
            connection.open()
            connection.start_tls()
        assert not connection.tls_started


def test_tls_settings_point_at_the_sandbox_ca(tls_directory: SandboxDirectory) -> None:
    settings = tls_directory.ldap_settings()
    assert settings.start_tls is True
    assert str(settings.ca_file) == tls_directory.ca_file
    environment = tls_directory.environment()
    assert environment["SCIM_LDAP_LDAP__START_TLS"] == "true"
    assert environment["SCIM_LDAP_LDAP__CA_FILE"] == tls_directory.ca_file


def test_plain_sandbox_has_no_tls(directory: SandboxDirectory) -> None:
    assert directory.ca_file is None and directory.ldaps_url is None
    assert directory.ldap_settings().start_tls is False
    assert "SCIM_LDAP_LDAP__START_TLS" not in directory.environment()
    connection = Connection(Server(directory.url, connect_timeout=2), receive_timeout=5)
    try:
        connection.open()
        with pytest.raises(LDAPException):
            connection.start_tls()
    finally:
        connection.unbind()


def test_a_sandbox_configured_by_slapd_conf_is_prepared_alike(tmp_path: Path) -> None:
    """slapd -f with the generated fragments included: the server's account may write its
    containers, the hosts' account reads accounts, neither reads a password."""
    with Sandbox(config_style="slapd-conf", workdir=tmp_path) as sandbox:
        directory = sandbox.directory
        assert (sandbox.root / "slapd.conf").is_file()
        assert not (sandbox.root / "slapd.d").exists()
        server = Connection(directory.url, directory.bind_dn, directory.bind_password)
        assert server.bind()
        dn = f"uid=conf-style,{directory.users_dn}"
        attributes = {"cn": "c", "sn": "c", "uid": "conf-style", "userPassword": "pw-1234"}
        assert server.add(dn, ["inetOrgPerson"], attributes), server.result
        hosts = Connection(directory.url, directory.nss_dn, directory.nss_password)
        assert hosts.bind()
        hosts.search(dn, "(objectClass=*)", BASE, attributes=["uid", "userPassword"])
        seen = {k: v for k, v in hosts.entries[0].entry_attributes_as_dict.items() if v}
        assert seen == {"uid": ["conf-style"]}
        assert server.delete(dn), server.result
        server.unbind()
        hosts.unbind()
