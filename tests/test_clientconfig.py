"""The client configuration follows the directory settings, its TLS and the disable profile."""

import subprocess
from pathlib import Path

import pytest

from app.clientconfig import SYSTEM_CA_BUNDLE, ClientConfigError, ClientOptions, render
from app.config import AccountSettings, GroupSettings, LdapSettings, Settings, UserSettings

TLS = {"start_tls": True, "ca_file": Path("/etc/scim-ldap/ca.pem")}


def settings(*actions: str, **ldap: object) -> Settings:
    return Settings(
        ldap=LdapSettings(base_dn="dc=corp,dc=example", **ldap),
        accounts=AccountSettings(disable=list(actions)),
    )


def tls_settings(*actions: str) -> Settings:
    return settings(*actions, **TLS)


def test_sssd_follows_the_profile() -> None:
    text = render(tls_settings("lock", "expire"), "sssd", ClientOptions(), "sssd.conf")
    assert "ldap_access_order = filter, ppolicy, expire" in text
    assert "ldap_access_filter = (!(scimActive=FALSE))" in text
    assert "ldap_account_expire_policy = shadow" in text
    assert (
        "ldap_user_search_base = ou=people,dc=corp,dc=example?subtree?(!(scimActive=FALSE))" in text
    )
    assert "cache_credentials = false" in text
    assert "pam_id_timeout = 5" in text
    plain = render(tls_settings("nologin"), "sssd", ClientOptions(), "sssd.conf")
    assert "ldap_access_order = filter\n" in plain
    assert "ldap_account_expire_policy" not in plain


def test_sssd_login_group_uses_the_simple_provider() -> None:
    text = render(tls_settings("remove-group"), "sssd", ClientOptions(), "sssd.conf")
    assert "access_provider = simple" in text
    assert "simple_allow_groups = linux-login" in text
    assert "ldap_access_filter" not in text


@pytest.mark.parametrize("kind", ["sssd", "nslcd"])
def test_plain_ldap_is_refused_with_the_fix(kind: str) -> None:
    with pytest.raises(ClientConfigError) as refused:
        render(settings("lock"), kind, ClientOptions(), None)  # type: ignore[arg-type]
    message = str(refused.value)
    assert "ldap://127.0.0.1:389" in message
    assert "ldap.start_tls = true" in message
    assert "--allow-plain-ldap" in message


def test_plain_ldap_for_a_lab_says_so() -> None:
    lab = render(settings("lock"), "sssd", ClientOptions(allow_plain_ldap=True), "sssd.conf")
    assert "ldap_auth_disable_tls_never_use_in_production = true" in lab
    assert "LAB ONLY" in lab
    assert "ldap_tls_cacert" not in lab
    nslcd = render(settings("lock"), "nslcd", ClientOptions(allow_plain_ldap=True), "nslcd.conf")
    assert "LAB ONLY" in nslcd
    assert "ssl start_tls" not in nslcd


def test_tls_uses_the_configured_ca() -> None:
    options = ClientOptions(bind_dn="cn=reader,dc=corp,dc=example", bind_password="pw")
    sssd = render(tls_settings("lock"), "sssd", options, "sssd.conf")
    assert "ldap_id_use_start_tls = true" in sssd
    assert "ldap_tls_reqcert = demand" in sssd
    assert "ldap_tls_cacert = /etc/scim-ldap/ca.pem" in sssd
    assert "ldap_default_bind_dn = cn=reader,dc=corp,dc=example" in sssd
    assert "ldap_auth_disable_tls_never_use_in_production" not in sssd
    assert "LAB ONLY" not in sssd
    nslcd = render(tls_settings("lock"), "nslcd", options, "nslcd.conf")
    assert "ssl start_tls" in nslcd
    assert "tls_cacertfile /etc/scim-ldap/ca.pem" in nslcd
    assert "binddn cn=reader,dc=corp,dc=example" in nslcd
    keys = render(tls_settings(), "nslcd", options, "ldap-ssh-keys")
    assert "LDAPTLS_CACERT=/etc/scim-ldap/ca.pem LDAPTLS_REQCERT=demand" in keys
    assert " -ZZ " in keys


def test_ca_file_option_and_system_bundle() -> None:
    own = ClientOptions(ca_file="/etc/ssl/hosts-ca.pem")
    assert "ldap_tls_cacert = /etc/ssl/hosts-ca.pem" in render(
        tls_settings(), "sssd", own, "sssd.conf"
    )
    ldaps = settings(urls=["ldaps://ldap.corp.example"])
    text = render(ldaps, "sssd", ClientOptions(), "sssd.conf")
    assert f"ldap_tls_cacert = {SYSTEM_CA_BUNDLE}" in text
    assert "ldap_id_use_start_tls" not in text


def test_uri_option_points_the_hosts_at_a_replica() -> None:
    options = ClientOptions(uris=("ldaps://replica1.corp.example", "ldaps://replica2.corp.example"))
    sssd = render(settings(), "sssd", options, "sssd.conf")
    assert "ldap_uri = ldaps://replica1.corp.example,ldaps://replica2.corp.example" in sssd
    nslcd = render(settings(), "nslcd", options, "nslcd.conf")
    assert "uri ldaps://replica1.corp.example ldaps://replica2.corp.example" in nslcd
    keys = render(settings(), "nslcd", options, "ldap-ssh-keys")
    assert '-H "ldaps://replica1.corp.example ldaps://replica2.corp.example"' in keys
    with pytest.raises(ClientConfigError):
        render(settings(), "sssd", ClientOptions(uris=("http://x",)), None)
    with pytest.raises(ClientConfigError):
        render(settings(), "sssd", ClientOptions(uris=("ldap://replica.corp.example",)), None)


def test_nslcd_refuses_and_hides_disabled_accounts() -> None:
    text = render(tls_settings("lock", "remove-group"), "nslcd", ClientOptions(), "nslcd.conf")
    assert "base passwd ou=people,dc=corp,dc=example" in text
    assert "filter passwd (&(objectClass=posixAccount)(!(scimActive=FALSE)))" in text
    assert (
        "pam_authz_search (&(objectClass=posixAccount)(uid=$username)(!(scimActive=FALSE)))" in text
    )
    assert (
        "pam_authz_search (&(objectClass=posixGroup)(cn=linux-login)(memberUid=$username))" in text
    )
    keys = render(tls_settings(), "nslcd", ClientOptions(), "ldap-ssh-keys")
    assert keys.startswith("#!/bin/sh")
    assert "(!(scimActive=FALSE))" in keys


def test_pam_matches_debian_but_refuses_unknown_users() -> None:
    sss = render(tls_settings(), "sssd", ClientOptions(), "pam")
    assert "account\t[default=bad success=ok]\tpam_sss.so" in sss
    assert "user_unknown=ignore" not in sss
    assert sss.index("pam_localuser.so") < sss.index("account\t[default=bad")
    assert "session\toptional\t\t\tpam_sss.so" in sss
    assert "pam_mkhomedir" not in sss
    for name in ("common-auth", "common-account", "common-session"):
        assert f"# /etc/pam.d/{name}" in sss
    home = render(tls_settings(), "sssd", ClientOptions(mkhomedir=True), "pam")
    assert home.rstrip().endswith("session\toptional\t\t\tpam_mkhomedir.so umask=0077")
    assert "pam-auth-update --enable sss mkhomedir" in home
    ldap = render(tls_settings(), "nslcd", ClientOptions(mkhomedir=True), "pam")
    assert "pam_ldap.so minimum_uid=1000 use_first_pass" in ldap
    assert "pam_mkhomedir.so" in ldap


@pytest.mark.parametrize(("kind", "source"), [("sssd", "sss"), ("nslcd", "ldap")])
def test_nsswitch_keeps_the_hosts_sources(kind: str, source: str) -> None:
    text = render(tls_settings(), kind, ClientOptions(), "nsswitch.conf")  # type: ignore[arg-type]
    for database in ("passwd", "group", "shadow"):
        assert f"{database}:" in text
        line = next(x for x in text.splitlines() if x.startswith(f"{database}:"))
        assert line.split()[1:] == ["files", "systemd", source]


def test_all_parts_and_unknown_part() -> None:
    everything = render(tls_settings(), "nslcd", ClientOptions(), None)
    for part in ("nslcd.conf", "nsswitch.conf", "pam", "sshd_config", "ldap-ssh-keys"):
        assert f"# ==> {part} <==" in everything
    with pytest.raises(KeyError):
        render(tls_settings(), "sssd", ClientOptions(), "nslcd.conf")


@pytest.mark.parametrize(
    ("login", "accepted"),
    [
        *[(login, True) for login in ("jane.doe", "jane.doe-24cbeb", "host$", "u-d8aea1")],
        *[(login, False) for login in ("bad;rm", "a b", "", "x)(uid=*")],
    ],
)
def test_the_key_helper_accepts_every_login_the_server_makes(login: str, accepted: bool) -> None:
    """Its guard runs in sh: ``$-`` there would be the shell's flags, not a dollar and a dash."""
    keys = render(tls_settings(), "nslcd", ClientOptions(), "ldap-ssh-keys")
    [guard] = [line for line in keys.splitlines() if line.startswith("case ")]
    script = f'user="$1"\n{guard}\necho accepted\n'
    result = subprocess.run(
        ["sh", "-c", script, "sh", login], capture_output=True, text=True, check=False
    )
    assert (result.stdout.strip() == "accepted") == accepted, (login, result)


def group_settings(*actions: str, **groups: object) -> Settings:
    return Settings(
        ldap=LdapSettings(base_dn="dc=corp,dc=example", **TLS),
        accounts=AccountSettings(disable=list(actions)),
        groups=GroupSettings(**groups),
    )


def test_login_groups_are_named_as_the_server_names_them() -> None:
    chosen = group_settings("lock", login=["Linux Users", "2nd Line"])
    sssd = render(chosen, "sssd", ClientOptions(), "sssd.conf")
    assert "# groups.login: the Entra group 'Linux Users' is the POSIX group linux_users" in sssd
    assert "access_provider = simple" in sssd
    assert "simple_allow_groups = linux_users, g2nd_line" in sssd
    assert "ldap_access_filter" not in sssd
    assert "?subtree?(!(scimActive=FALSE))" in sssd
    nslcd = render(chosen, "nslcd", ClientOptions(), "nslcd.conf")
    assert (
        "pam_authz_search (&(objectClass=posixGroup)(|(cn=linux_users)(cn=g2nd_line))"
        "(memberUid=$username))" in nslcd
    )
    assert (
        "pam_authz_search (&(objectClass=posixAccount)(uid=$username)(!(scimActive=FALSE)))"
        in nslcd
    )


def test_login_groups_replace_the_login_group_on_sssd_and_add_to_it_on_nslcd() -> None:
    chosen = group_settings("remove-group", login=["Linux Users"])
    sssd = render(chosen, "sssd", ClientOptions(), "sssd.conf")
    assert "simple_allow_groups = linux_users\n" in sssd
    nslcd = render(chosen, "nslcd", ClientOptions(), "nslcd.conf")
    assert "(cn=linux-login)(memberUid=$username)" in nslcd
    assert "(cn=linux_users)(memberUid=$username)" in nslcd


def test_login_groups_with_remove_group_need_the_active_attribute() -> None:
    chosen = group_settings("remove-group", login=["Linux Users"])
    chosen.users = UserSettings(active_attribute="")
    with pytest.raises(ClientConfigError, match=r"users\.active_attribute"):
        render(chosen, "sssd", ClientOptions(), None)


def test_a_login_group_strict_names_refuse_is_reported() -> None:
    chosen = group_settings(login=["Linux Users"], name_policy="strict")
    with pytest.raises(ClientConfigError, match=r"groups\.login"):
        render(chosen, "sssd", ClientOptions(), None)


def test_sudo_groups_configure_sssds_sudo_provider() -> None:
    chosen = group_settings(sudo={"Linux Admins": ["ALL"]})
    sssd = render(chosen, "sssd", ClientOptions(), "sssd.conf")
    assert "services = nss, pam, ssh, sudo\n" in sssd
    assert "\n[sudo]\n" in sssd
    assert "sudo_provider = ldap" in sssd
    assert "ldap_sudo_search_base = ou=sudoers,dc=corp,dc=example" in sssd
    nsswitch = render(chosen, "sssd", ClientOptions(), "nsswitch.conf")
    assert "sudoers:        files sss" in nsswitch
    nslcd = render(chosen, "nslcd", ClientOptions(), None)
    assert "sudo-ldap, which replaces sudo" in nslcd
    assert "sudoers:" not in nslcd
    plain = render(tls_settings(), "sssd", ClientOptions(), None)
    assert "sudo" not in plain
