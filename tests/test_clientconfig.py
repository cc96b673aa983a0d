"""The client configuration follows the directory settings and the disable profile."""

import pytest

from app.clientconfig import ClientOptions, render
from app.config import AccountSettings, LdapSettings, Settings


def settings(*actions: str, **ldap: object) -> Settings:
    return Settings(
        ldap=LdapSettings(base_dn="dc=corp,dc=example", **ldap),
        accounts=AccountSettings(disable=list(actions)),
    )


def test_sssd_follows_the_profile() -> None:
    text = render(settings("lock", "expire"), "sssd", ClientOptions(), "sssd.conf")
    assert "ldap_access_order = filter, ppolicy, expire" in text
    assert "ldap_access_filter = (!(scimActive=FALSE))" in text
    assert "ldap_account_expire_policy = shadow" in text
    assert (
        "ldap_user_search_base = ou=people,dc=corp,dc=example?subtree?(!(scimActive=FALSE))" in text
    )
    assert "cache_credentials = false" in text
    plain = render(settings("nologin"), "sssd", ClientOptions(), "sssd.conf")
    assert "ldap_access_order = filter\n" in plain
    assert "ldap_account_expire_policy" not in plain
    assert "refuses password logins over plain ldap://" in plain


def test_sssd_login_group_uses_the_simple_provider() -> None:
    text = render(settings("remove-group"), "sssd", ClientOptions(), "sssd.conf")
    assert "access_provider = simple" in text
    assert "simple_allow_groups = linux-login" in text
    assert "ldap_access_filter" not in text


def test_tls_and_credentials() -> None:
    options = ClientOptions(bind_dn="cn=reader,dc=corp,dc=example", bind_password="pw")
    tls = settings("lock", urls=["ldaps://ldap.corp.example"])
    text = render(tls, "sssd", options, "sssd.conf")
    assert "ldap_tls_reqcert = demand" in text
    assert "ldap_default_bind_dn = cn=reader,dc=corp,dc=example" in text
    assert "ldap_auth_disable_tls_never_use_in_production" not in text
    lab = render(settings("lock"), "sssd", ClientOptions(allow_plain_ldap=True), "sssd.conf")
    assert "ldap_auth_disable_tls_never_use_in_production = true" in lab
    nslcd = render(settings("lock", start_tls=True), "nslcd", options, "nslcd.conf")
    assert "ssl start_tls" in nslcd
    assert "binddn cn=reader,dc=corp,dc=example" in nslcd


def test_nslcd_refuses_and_hides_disabled_accounts() -> None:
    text = render(settings("lock", "remove-group"), "nslcd", ClientOptions(), "nslcd.conf")
    assert "base passwd ou=people,dc=corp,dc=example" in text
    assert "filter passwd (&(objectClass=posixAccount)(!(scimActive=FALSE)))" in text
    assert (
        "pam_authz_search (&(objectClass=posixAccount)(uid=$username)(!(scimActive=FALSE)))" in text
    )
    assert (
        "pam_authz_search (&(objectClass=posixGroup)(cn=linux-login)(memberUid=$username))" in text
    )
    keys = render(settings(), "nslcd", ClientOptions(), "ldap-ssh-keys")
    assert keys.startswith("#!/bin/sh")
    assert "(!(scimActive=FALSE))" in keys


def test_all_parts_and_unknown_part() -> None:
    everything = render(settings(), "nslcd", ClientOptions(), None)
    for part in ("nslcd.conf", "nsswitch.conf", "pam", "sshd_config", "ldap-ssh-keys"):
        assert f"# ==> {part} <==" in everything
    with pytest.raises(KeyError):
        render(settings(), "sssd", ClientOptions(), "nslcd.conf")
