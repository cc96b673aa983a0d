"""The client harness itself, against users written straight to LDAP."""

from pathlib import Path

import pytest
from ldap3 import MODIFY_REPLACE, Connection

from app.ldap.sandbox import Sandbox
from tests.e2e.clients import (
    ClientStack,
    LoginUser,
    StackKind,
)
from tests.e2e.hostfiles import (
    PAM_SSSD_STRICT,
    nslcd_config,
    nslcd_disable_lines,
    sssd_config,
    sssd_disable_options,
)


def test_user_is_visible_to_nss(stack: ClientStack, login_user: LoginUser) -> None:
    passwd = stack.getent_passwd(login_user.uid)
    assert passwd is not None, stack.log_tail()
    name, _, uid, gid, _, home, shell = passwd.split(":")
    assert (name, uid, gid, home, shell) == (
        login_user.uid,
        str(login_user.uid_number),
        str(login_user.uid_number),
        f"/home/{login_user.uid}",
        "/bin/bash",
    )
    number = login_user.uid_number
    identity = stack.id(login_user.uid)
    assert identity is not None
    assert identity.startswith(f"uid={number}({login_user.uid}) gid={number}({login_user.uid})")


def test_right_password_authenticates(stack: ClientStack, login_user: LoginUser) -> None:
    assert stack.authenticate(login_user.uid, login_user.password), stack.log_tail()


def test_wrong_password_fails(stack: ClientStack, login_user: LoginUser) -> None:
    assert not stack.authenticate(login_user.uid, login_user.password + "x")


def test_account_phase_lets_the_user_in(stack: ClientStack, login_user: LoginUser) -> None:
    assert stack.account(login_user.uid), stack.log_tail()


def test_key_lookup_returns_the_key(stack: ClientStack, login_user: LoginUser) -> None:
    assert stack.ssh_keys(login_user.uid) == [login_user.key], stack.log_tail()


def test_su_and_sshd_let_the_user_in(
    stack: ClientStack, login_user: LoginUser, ssh_identity: Path
) -> None:
    assert stack.su_from_root(login_user.uid)
    assert stack.su_with_password(login_user.uid, login_user.password)
    assert stack.ssh_key_login(login_user.uid, ssh_identity), stack.sshd_log_tail()
    assert stack.ssh_password_login(login_user.uid, login_user.password), stack.sshd_log_tail()


def test_su_and_sshd_refuse_wrong_credentials(
    stack: ClientStack, login_user: LoginUser, stranger_identity: Path
) -> None:
    assert not stack.su_with_password(login_user.uid, login_user.password + "x")
    assert not stack.ssh_key_login(login_user.uid, stranger_identity)
    assert not stack.ssh_password_login(login_user.uid, login_user.password + "x")


def test_unknown_user_is_refused(stack: ClientStack) -> None:
    assert stack.getent_passwd("e2e-nobody") is None
    assert not stack.authenticate("e2e-nobody", "anything")
    assert stack.ssh_keys("e2e-nobody") == []
    assert not stack.su_from_root("e2e-nobody")


def test_deleted_user_disappears(
    stack: ClientStack, login_user: LoginUser, ldap: Connection, ssh_identity: Path
) -> None:
    assert stack.getent_passwd(login_user.uid) is not None
    assert stack.authenticate(login_user.uid, login_user.password)

    assert ldap.delete(login_user.dn), ldap.result
    stack.flush()

    assert stack.getent_passwd(login_user.uid) is None
    assert stack.id(login_user.uid) is None
    assert not stack.authenticate(login_user.uid, login_user.password)
    assert not stack.account(login_user.uid)
    assert stack.ssh_keys(login_user.uid) == []
    assert not stack.su_from_root(login_user.uid)
    assert not stack.su_with_password(login_user.uid, login_user.password)
    assert not stack.ssh_key_login(login_user.uid, ssh_identity)
    assert not stack.ssh_password_login(login_user.uid, login_user.password)


@pytest.mark.parametrize("kind", ["sssd", "nslcd"])
def test_recommended_profile_shuts_out_inactive_users(
    kind: StackKind,
    client_packages: None,
    sandbox: Sandbox,
    login_user: LoginUser,
    ldap: Connection,
) -> None:
    directory = sandbox.directory
    if kind == "sssd":
        client = ClientStack(
            kind,
            directory,
            sssd_config(directory, sssd_disable_options(directory)),
            pam=PAM_SSSD_STRICT,
        )
    else:
        client = ClientStack(kind, directory, nslcd_config(directory, nslcd_disable_lines()))
    with client:
        assert client.authenticate(login_user.uid, login_user.password), client.log_tail()
        for active, works in (("FALSE", False), ("TRUE", True)):
            assert ldap.modify(login_user.dn, {"scimActive": [(MODIFY_REPLACE, [active])]})
            client.flush()
            assert (client.getent_passwd(login_user.uid) is not None) is works
            assert (client.ssh_keys(login_user.uid) == [login_user.key]) is works
            assert client.account(login_user.uid) is works
            assert client.authenticate(login_user.uid, login_user.password) is works
