"""Settings from the environment and TOML, and their validation."""

from pathlib import Path

import pytest
from pydantic import ValidationError

from app.clientsecrets import hash_secret
from app.config import SecretFileError, load_settings, unknown_environment


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


# ---- named tokens and OAuth clients

HASH = hash_secret("a-client-secret-0123456789", rounds=1000)
KEY = "k" * 32


def test_tokens_are_named_by_position_or_by_their_name(tmp_path: Path) -> None:
    config = tmp_path / "scim-ldap.toml"
    config.write_text(
        f"""
[auth]
tokens = ["0123456789abcdef0", {{ name = "monitoring", token = "fedcba98765432100" }}]

[[auth.oauth.clients]]
client_id = "entra-prod"
secret_hashes = ["{HASH}"]

[[auth.oauth.clients]]
client_id = "3f1c-client"
name = "entra-staging"
secret_hashes = ["{HASH}", "{HASH}"]

[auth.oauth]
signing_key = "{KEY}"
token_lifetime = 7200
""",
        encoding="utf-8",
    )
    auth = load_settings(config).auth
    assert [t.name for t in auth.tokens] == ["token-1", "monitoring"]
    assert [c.name for c in auth.oauth.clients] == ["entra-prod", "entra-staging"]
    assert auth.oauth.token_lifetime == 7200
    assert auth.configured
    for secret in ("0123456789abcdef0", "fedcba98765432100", HASH, KEY):
        assert secret not in repr(auth)


@pytest.mark.parametrize(
    ("auth", "message"),
    [
        (
            {
                "tokens": ["0123456789abcdef0", "0123456789abcdef1"] * 1
                + [{"name": "token-1", "token": "0123456789abcdef2"}]
            },
            "'token-1' is given to two",
        ),
        (
            {
                "tokens": [{"name": "entra", "token": "0123456789abcdef0"}],
                "oauth": {
                    "clients": [{"client_id": "entra", "secret_hashes": [HASH]}],
                    "signing_key": KEY,
                },
            },
            "'entra' is given to two",
        ),
        ({"tokens": [{"name": "two words", "token": "0123456789abcdef0"}]}, "token name"),
        (
            {"oauth": {"clients": [{"client_id": "entra", "secret_hashes": [HASH]}]}},
            "need auth.oauth.signing_key",
        ),
        (
            {
                "oauth": {
                    "clients": [{"client_id": "entra", "secret_hashes": [HASH]}],
                    "signing_key": "k" * 31,
                }
            },
            "at least 32 bytes",
        ),
        (
            {
                "oauth": {
                    "clients": [{"client_id": "entra", "secret_hashes": ["plain-secret-text"]}],
                    "signing_key": KEY,
                }
            },
            "is not a $pbkdf2-sha256$ hash",
        ),
        (
            {
                "oauth": {
                    "clients": [{"client_id": "entra", "secret_hashes": []}],
                    "signing_key": KEY,
                }
            },
            "at least 1 item",
        ),
        (
            {
                "oauth": {
                    "clients": [
                        {"client_id": "a", "secret_hashes": [HASH]},
                        {"client_id": "a", "secret_hashes": [HASH]},
                    ],
                    "signing_key": KEY,
                }
            },
            "client_id 'a' is listed twice",
        ),
        (
            {
                "oauth": {
                    "clients": [{"client_id": "", "secret_hashes": [HASH]}],
                    "signing_key": KEY,
                }
            },
            "client_id",
        ),
        ({"oauth": {"token_lifetime": 299}}, "greater than or equal to 300"),
        ({"oauth": {"token_lifetime": 21601}}, "less than or equal to 21600"),
    ],
)
def test_bad_auth_settings_are_refused(auth: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        load_settings(auth=auth)
    assert message in str(caught.value)
    messages = " ".join(error["msg"] for error in caught.value.errors())
    assert "plain-secret-text" not in messages


# ---- secrets read from files


@pytest.fixture
def no_secrets_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    monkeypatch.delenv("SCIM_LDAP_SECRETS_DIR", raising=False)


def secret_file(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.usefixtures("no_secrets_dir")
def test_secrets_from_file_variables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    password = secret_file(tmp_path, "bind", "pass word with spaces \n")
    tokens = secret_file(tmp_path, "tokens", "0123456789abcdef0\n\n  fedcba98765432100 \r\n")
    key = secret_file(tmp_path, "key", KEY + "\n")
    monkeypatch.setenv("SCIM_LDAP_LDAP__BIND_PASSWORD_FILE", str(password))
    monkeypatch.setenv("SCIM_LDAP_AUTH__TOKENS_FILE", str(tokens))
    monkeypatch.setenv("SCIM_LDAP_AUTH__OAUTH__SIGNING_KEY_FILE", str(key))
    settings = load_settings()
    assert settings.ldap.bind_password.get_secret_value() == "pass word with spaces "
    assert [t.token.get_secret_value() for t in settings.auth.tokens] == [
        "0123456789abcdef0",
        "fedcba98765432100",
    ]
    assert [t.name for t in settings.auth.tokens] == ["token-1", "token-2"]
    signing_key = settings.auth.oauth.signing_key
    assert signing_key is not None
    assert signing_key.get_secret_value() == KEY


@pytest.mark.usefixtures("no_secrets_dir")
def test_secrets_from_file_keys_in_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hashes = secret_file(tmp_path, "hashes", f"{HASH}\n{HASH}\n")
    token = secret_file(tmp_path, "token", "0123456789abcdef0\n")
    key = secret_file(tmp_path, "key", KEY)
    config = secret_file(
        tmp_path,
        "scim-ldap.toml",
        f"""
[ldap]
bind_password = "from-the-file"

[[auth.tokens]]
name = "entra"
token_file = "{token}"

[auth.oauth]
signing_key_file = "{key}"

[[auth.oauth.clients]]
client_id = "entra-oauth"
secret_hashes_file = "{hashes}"
""",
    )
    password = secret_file(tmp_path, "bind", "from-the-environment\n")
    monkeypatch.setenv("SCIM_LDAP_LDAP__BIND_PASSWORD_FILE", str(password))
    settings = load_settings(config)
    assert settings.ldap.bind_password.get_secret_value() == "from-the-environment"
    assert settings.auth.tokens[0].name == "entra"
    assert settings.auth.tokens[0].token.get_secret_value() == "0123456789abcdef0"
    assert len(settings.auth.oauth.clients[0].secret_hashes) == 2


@pytest.mark.usefixtures("no_secrets_dir")
@pytest.mark.parametrize("variable", ["SCIM_LDAP_SECRETS_DIR", "CREDENTIALS_DIRECTORY"])
def test_secrets_from_a_secrets_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    secret_file(tmp_path, "SCIM_LDAP_LDAP__BIND_PASSWORD", "from-the-directory\n")
    secret_file(tmp_path, "scim_ldap_auth__tokens", "0123456789abcdef0\n")
    secret_file(tmp_path, "SCIM_LDAP_AUTH__OAUTH__SIGNING_KEY", KEY)
    secret_file(tmp_path, "tls.key", "not for this server")
    monkeypatch.setenv(variable, str(tmp_path))
    settings = load_settings()
    assert settings.ldap.bind_password.get_secret_value() == "from-the-directory"
    assert settings.auth.tokens[0].token.get_secret_value() == "0123456789abcdef0"
    assert settings.auth.oauth.signing_key is not None
    monkeypatch.setenv("SCIM_LDAP_LDAP__BIND_PASSWORD", "the-environment-wins")
    assert load_settings().ldap.bind_password.get_secret_value() == "the-environment-wins"


@pytest.mark.usefixtures("no_secrets_dir")
@pytest.mark.parametrize(
    ("name", "named"),
    [
        ("SCIM_LDAP_LDAP__BASE_DN", "ldap.base_dn is not a secret setting"),
        ("SCIM_LDAP_LDAP__BIND_PASWORD", "ldap.bind_pasword is not a secret setting"),
        ("SCIM_LDAP_LDAPP__BIND_PASSWORD", "ldapp.bind_password is not a secret setting"),
    ],
)
def test_a_secrets_directory_file_that_names_no_secret_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, named: str
) -> None:
    secret_file(tmp_path, name, "the-content")
    monkeypatch.setenv("SCIM_LDAP_SECRETS_DIR", str(tmp_path))
    with pytest.raises(SecretFileError) as caught:
        load_settings()
    assert named in str(caught.value)
    assert str(tmp_path / name) in str(caught.value)
    assert "the-content" not in str(caught.value)


@pytest.mark.usefixtures("no_secrets_dir")
def test_an_unreadable_secret_file_is_named_never_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "missing"
    monkeypatch.setenv("SCIM_LDAP_LDAP__BIND_PASSWORD_FILE", str(missing))
    with pytest.raises(SecretFileError, match=f"ldap.bind_password_file: cannot read {missing}"):
        load_settings()
    monkeypatch.setenv("SCIM_LDAP_LDAP__BIND_PASSWORD_FILE", str(tmp_path))
    with pytest.raises(SecretFileError, match="Is a directory"):
        load_settings()
    binary = tmp_path / "binary"
    binary.write_bytes(b"\xff\xfesecret-bytes")
    monkeypatch.setenv("SCIM_LDAP_LDAP__BIND_PASSWORD_FILE", str(binary))
    with pytest.raises(SecretFileError, match="is not UTF-8 text") as caught:
        load_settings()
    assert "secret-bytes" not in str(caught.value)
    empty = secret_file(tmp_path, "empty", "\n")
    monkeypatch.setenv("SCIM_LDAP_LDAP__BIND_PASSWORD_FILE", str(empty))
    with pytest.raises(SecretFileError, match="is empty"):
        load_settings()
    monkeypatch.setenv("SCIM_LDAP_SECRETS_DIR", str(missing))
    monkeypatch.delenv("SCIM_LDAP_LDAP__BIND_PASSWORD_FILE")
    with pytest.raises(SecretFileError, match=f"secrets directory {missing}"):
        load_settings()


@pytest.mark.usefixtures("no_secrets_dir")
def test_a_secret_and_its_file_in_one_place_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    password = secret_file(tmp_path, "bind", "from-the-file")
    monkeypatch.setenv("SCIM_LDAP_LDAP__BIND_PASSWORD", "from-the-variable")
    monkeypatch.setenv("SCIM_LDAP_LDAP__BIND_PASSWORD_FILE", str(password))
    with pytest.raises(SecretFileError, match=r"ldap\.bind_password and ldap\.bind_password_file"):
        load_settings()


@pytest.mark.usefixtures("no_secrets_dir")
@pytest.mark.parametrize(
    ("env", "named"),
    [
        ("SCIM_LDAP_LDAP__BIND_PASWORD_FILE", "bind_pasword_file"),
        ("SCIM_LDAP_LDAP__BASE_DN_FILE", "base_dn_file"),
        ("SCIM_LDAP_LOG_LEVEL_FILE", "SCIM_LDAP_LOG_LEVEL_FILE"),
        ("SCIM_LDAP_AUTH__OAUTH__SIGNING_KEYS_FILE", "signing_keys_file"),
    ],
)
def test_unknown_file_variables_are_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env: str, named: str
) -> None:
    monkeypatch.setenv(env, str(secret_file(tmp_path, "value", "x" * 40)))
    with pytest.raises((ValidationError, ValueError)) as caught:
        load_settings()
    assert named in str(caught.value)


def test_file_variables_of_known_secrets_are_not_unknown() -> None:
    environment = {
        "SCIM_LDAP_LDAP__BIND_PASSWORD_FILE": "/run/secrets/bind",
        "SCIM_LDAP_AUTH__TOKENS_FILE": "/run/secrets/tokens",
        "SCIM_LDAP_SECRETS_DIR": "/run/secrets",
        "SCIM_LDAP_LOG_LEVL_FILE": "/run/secrets/typo",
    }
    assert unknown_environment(environment) == ["SCIM_LDAP_LOG_LEVL_FILE"]
