"""The client harness itself, against users written straight to LDAP."""

from ldap3 import Connection

from tests.e2e.clients import ClientStack, LoginUser


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


def test_unknown_user_is_refused(stack: ClientStack) -> None:
    assert stack.getent_passwd("e2e-nobody") is None
    assert not stack.authenticate("e2e-nobody", "anything")
    assert stack.ssh_keys("e2e-nobody") == []


def test_deleted_user_disappears(
    stack: ClientStack, login_user: LoginUser, admin: Connection
) -> None:
    assert stack.getent_passwd(login_user.uid) is not None
    assert stack.authenticate(login_user.uid, login_user.password)

    assert admin.delete(login_user.dn), admin.result
    stack.flush()

    assert stack.getent_passwd(login_user.uid) is None
    assert stack.id(login_user.uid) is None
    assert not stack.authenticate(login_user.uid, login_user.password)
    assert not stack.account(login_user.uid)
    assert stack.ssh_keys(login_user.uid) == []
