"""Settings from the environment and TOML, and their validation."""

from pathlib import Path

import pytest
from pydantic import ValidationError

from app.config import load_settings


def test_environment_with_nested_sections(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCIM_LDAP_LDAP__URLS", '["ldap://a.example:389", "ldaps://b.example"]')
    monkeypatch.setenv("SCIM_LDAP_LDAP__BASE_DN", "dc=corp,dc=example")
    monkeypatch.setenv("SCIM_LDAP_AUTH__TOKENS", '["0123456789abcdef0", "fedcba98765432100"]')
    settings = load_settings()
    assert settings.ldap.urls == ["ldap://a.example:389", "ldaps://b.example"]
    assert settings.ldap.users_dn == "ou=people,dc=corp,dc=example"
    assert len(settings.auth.tokens) == 2
    assert "0123456789abcdef0" not in repr(settings)


def test_toml_file_and_environment_precedence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "scim-ldap.toml"
    config.write_text(
        """
[ldap]
base_dn = "dc=file,dc=example"
bind_dn = "cn=scim,dc=file,dc=example"

[posix]
login_shell = "/bin/zsh"

[users]
mapping = { "title" = "", "name.formatted" = "description" }

[http]
max_page_size = 50
""",
        encoding="utf-8",
    )
    monkeypatch.setenv("SCIM_LDAP_LDAP__BIND_DN", "cn=from-env,dc=example")
    settings = load_settings(config)
    assert settings.ldap.base_dn == "dc=file,dc=example"
    assert settings.ldap.bind_dn == "cn=from-env,dc=example"
    assert settings.posix.login_shell == "/bin/zsh"
    mapping = settings.users.attribute_map()
    assert "title" not in mapping
    assert mapping["name.formatted"] == "description"
    assert settings.http.max_page_size == 50
    assert settings.http.default_page_size == 50


@pytest.mark.parametrize(
    ("env", "value", "field"),
    [
        ("SCIM_LDAP_LDAP__URLS", '["http://x"]', "ldap.urls"),
        ("SCIM_LDAP_HTTP__BASE_PATH", "scim/", "http.base_path"),
        ("SCIM_LDAP_HTTP__MAX_PAGE_SIZE", "0", "http.max_page_size"),
        ("SCIM_LDAP_USERS__MAPPING", '{"nickNames": "x"}', "users.mapping"),
        ("SCIM_LDAP_USERS__MAPPING", '{"emails.value": "x"}', "users.mapping"),
        ("SCIM_LDAP_USERS__MAPPING", '{"title": "mail", "nickName": "Mail"}', "users"),
        ("SCIM_LDAP_USERS__MAPPING", '{"urn:acme:User:badge": "x"}', "users.mapping"),
        ("SCIM_LDAP_POSIX__HOME_DIRECTORY", "/home/{login}", "posix.home_directory"),
        ("SCIM_LDAP_POSIX__UID_RANGE", "[500, 2000]", "posix.uid_range"),
        ("SCIM_LDAP_POSIX__UID_RANGE", "[60000, 70000]", "posix.uid_range"),
        ("SCIM_LDAP_ACCOUNTS__DISABLE", '["lock", "explode"]', "accounts.disable"),
        ("SCIM_LDAP_AUTH__TOKENS", '["short"]', "auth.tokens"),
    ],
)
def test_bad_values_name_the_field(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str, field: str
) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(ValidationError) as caught:
        load_settings()
    locations = [".".join(str(p) for p in error["loc"]) for error in caught.value.errors()]
    assert any(loc.startswith(field) for loc in locations), locations


def test_group_settings_defaults_and_refusals() -> None:
    settings = load_settings()
    assert settings.groups.membership == "both"
    assert settings.groups.gid_range == (70000, 99999)
    assert settings.groups.id_pool_dn == f"cn=scim-ldap-gids,{settings.ldap.base_dn}"
    with pytest.raises(ValidationError, match="systemd"):
        load_settings(groups={"gid_range": (60000, 60100)})
    with pytest.raises(ValidationError, match=r"overlaps posix\.uid_range"):
        load_settings(
            posix={"gid_strategy": "private-group", "uid_range": (66000, 75000)},
        )
    load_settings(posix={"uid_range": (66000, 75000)})
    with pytest.raises(ValidationError, match="default_gid_number"):
        load_settings(posix={"default_gid_number": 70001})
    with pytest.raises(ValidationError, match="name_pattern"):
        load_settings(groups={"name_pattern": "^[A-Z]+$"})


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ("SCIM_LDAP_LDAP__BIND_PASWORD", "bind_pasword"),
        ("SCIM_LDAP_USERS__RDN", "rdn"),
        ("SCIM_LDAP_LOG_LEVL", "SCIM_LDAP_LOG_LEVL"),
        ("SCIM_LDAP_LDAPP__URLS", "SCIM_LDAP_LDAPP__URLS"),
    ],
)
def test_unknown_keys_in_the_environment_are_errors(
    monkeypatch: pytest.MonkeyPatch, env: str, named: str
) -> None:
    monkeypatch.setenv(env, "x")
    with pytest.raises((ValidationError, ValueError)) as caught:
        load_settings()
    assert named in str(caught.value)


@pytest.mark.parametrize(
    ("toml", "named"),
    [
        ('[ldap]\nbind_pasword = "x"\n', "ldap.bind_pasword"),
        ("[posix]\nuid_rnage = [1, 2]\n", "posix.uid_rnage"),
        ('[[posix.providers]]\nurl = "ldap://a"\nuid_range = [20000, 20010]\nslice = 1\n', "slice"),
        ('log_levl = "info"\n', "log_levl"),
    ],
)
def test_unknown_keys_in_the_file_are_errors(tmp_path: Path, toml: str, named: str) -> None:
    path = tmp_path / "settings.toml"
    path.write_text(toml)
    with pytest.raises(ValidationError) as caught:
        load_settings(path)
    assert named in str(caught.value)
