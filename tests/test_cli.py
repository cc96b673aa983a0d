"""The command line: clear messages, never a traceback."""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from app.clientsecrets import matches
from app.ldap.sandbox import Sandbox

ROOT = Path(__file__).resolve().parent.parent


def run(
    *args: str, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SCIM_LDAP_")}
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        cwd=ROOT,
        env={**clean, **(env or {})},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_bad_setting_stops_with_the_field_name() -> None:
    result = run("serve", env={"SCIM_LDAP_HTTP__MAX_PAGE_SIZE": "-3"})
    assert result.returncode == 2
    assert "http.max_page_size" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_needs_a_token() -> None:
    result = run("serve")
    assert result.returncode == 2
    assert "auth.tokens" in result.stderr


def test_missing_config_file() -> None:
    result = run("serve", "--config", "/nonexistent/scim.toml")
    assert result.returncode == 2
    assert "/nonexistent/scim.toml" in result.stderr


def test_check_reports_a_refused_bind_without_the_password(sandbox: Sandbox) -> None:
    directory = sandbox.directory
    secret = "wrong-password-value"
    result = run(
        "check",
        env={
            "SCIM_LDAP_LDAP__URLS": f'["{directory.url}"]',
            "SCIM_LDAP_LDAP__BIND_DN": directory.bind_dn,
            "SCIM_LDAP_LDAP__BIND_PASSWORD": secret,
        },
    )
    assert result.returncode == 2
    assert "refused the bind" in result.stderr
    assert secret not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


def test_check_accepts_the_right_bind(sandbox: Sandbox) -> None:
    directory = sandbox.directory
    result = run(
        "check",
        env={
            "SCIM_LDAP_LDAP__URLS": f'["{directory.url}"]',
            "SCIM_LDAP_LDAP__BIND_DN": directory.bind_dn,
            "SCIM_LDAP_LDAP__BIND_PASSWORD": directory.bind_password,
            "SCIM_LDAP_AUTH__TOKENS": '["test-token-0123456789abcdef"]',
        },
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "configuration is valid" in result.stdout
    assert f"{directory.url}: serverID none; single provider" in result.stdout


def test_check_without_a_token_fails(sandbox: Sandbox) -> None:
    """Every request would be 401: check says so instead of "configuration is valid"."""
    result = run("check", env=sandbox.directory.environment())
    assert result.returncode == 1, result.stdout + result.stderr
    assert (
        "error: auth.tokens is empty and auth.oauth.clients too: every request would be answered "
        "401" in result.stdout
    )
    assert "configuration is valid" not in result.stdout
    assert "Traceback" not in result.stderr


def test_check_accepts_oauth_clients_instead_of_tokens(sandbox: Sandbox, tmp_path: Path) -> None:
    key = tmp_path / "signing-key"
    key.write_text("k" * 40 + "\n")
    hashed = run("hash-secret", stdin="a-client-secret-0123456789\n").stdout.strip()
    clients = json.dumps([{"client_id": "entra", "secret_hashes": [hashed]}])
    env = {
        **sandbox.directory.environment(),
        "SCIM_LDAP_AUTH__OAUTH__CLIENTS": clients,
        "SCIM_LDAP_AUTH__OAUTH__SIGNING_KEY_FILE": str(key),
    }
    result = run("check", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "configuration is valid" in result.stdout


def test_hash_secret_reads_standard_input() -> None:
    secret = "a-client-secret-0123456789"
    result = run("hash-secret", stdin=secret + "\n")
    assert result.returncode == 0, result.stderr
    hashed = result.stdout.strip()
    assert hashed.startswith("$pbkdf2-sha256$600000$")
    assert matches(secret, [hashed])
    assert secret not in result.stdout + result.stderr
    for weak in ("short", "has+plus-0123456789"):
        refused = run("hash-secret", stdin=weak)
        assert refused.returncode == 2
        assert refused.stdout == ""
        assert weak not in refused.stderr


def test_a_plain_secret_where_a_hash_belongs_is_not_shown() -> None:
    secret = "a-plain-client-secret-0123456789"
    clients = json.dumps([{"client_id": "entra", "secret_hashes": [secret]}])
    result = run(
        "serve",
        env={
            "SCIM_LDAP_AUTH__OAUTH__CLIENTS": clients,
            "SCIM_LDAP_AUTH__OAUTH__SIGNING_KEY": "k" * 32,
        },
    )
    assert result.returncode == 2
    assert "auth.oauth.clients.0.secret_hashes" in result.stderr
    assert "hash-secret" in result.stderr
    assert secret not in result.stderr


def test_an_unreadable_secret_file_stops_the_start(tmp_path: Path) -> None:
    missing = tmp_path / "bind-password"
    result = run("serve", env={"SCIM_LDAP_LDAP__BIND_PASSWORD_FILE": str(missing)})
    assert result.returncode == 2
    assert f"ldap.bind_password_file: cannot read {missing}" in result.stderr
    assert "Traceback" not in result.stderr


def test_client_config_for_a_directory_without_tls_is_refused(sandbox: Sandbox) -> None:
    """Printed as is, the sssd configuration would lock every user out (sssd forces TLS)."""
    env = {"SCIM_LDAP_LDAP__URLS": f'["{sandbox.directory.url}"]'}
    for kind in ("sssd", "nslcd"):
        result = run("client-config", "--for", kind, env=env)
        assert result.returncode == 2, result.stdout
        assert result.stdout == ""
        assert "ldap.start_tls = true" in result.stderr
        assert "offers no StartTLS" in result.stderr
        assert "Traceback" not in result.stderr
    lab = run("client-config", "--for", "sssd", "--allow-plain-ldap", env=env)
    assert lab.returncode == 0, lab.stderr
    assert "LAB ONLY" in lab.stdout


def test_version_and_help() -> None:
    from app.version import VERSION

    run = [sys.executable, "-m", "app"]
    shown = subprocess.run([*run, "--version"], capture_output=True, text=True, check=True)
    assert shown.stdout.strip() == f"scim-ldap {VERSION}"
    helped = subprocess.run([*run, "--help"], capture_output=True, text=True, check=True)
    assert "``" not in helped.stdout
    commands = ("serve", "demo", "check", "adoption-report", "client-config", "hash-secret")
    for command in (*commands, "openapi"):
        assert command in helped.stdout


def test_every_command_and_option_has_help() -> None:
    from app.cli import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helped = {choice.dest for choice in commands._choices_actions if choice.help}
    assert helped == set(commands.choices)
    for name, command in commands.choices.items():
        options = [a for a in command._actions if not isinstance(a, argparse._HelpAction)]
        for option in options:
            assert option.help and option.help != argparse.SUPPRESS, (name, option.option_strings)
        usage = run(name, "--help")
        assert usage.returncode == 0
        assert "``" not in usage.stdout


def test_directory_ldif_prepares_a_bare_directory_that_check_passes(tmp_path: Path) -> None:
    """Every part of ``directory-ldif``, applied as docs/directory.md says, to a slapd with
    nothing of ours; then ``check`` bound as the server's account exits 0."""
    secrets = {"server": "server-secret-0123456789", "hosts": "hosts-secret-0123456789"}
    files = {}
    for name, value in secrets.items():
        files[name] = tmp_path / f"{name}.pw"
        files[name].write_text(value + "\n", encoding="utf-8")
    with Sandbox(bare=True) as sandbox:
        directory = sandbox.directory
        assert directory.ldapi_url is not None
        settings = {
            "SCIM_LDAP_LDAP__URLS": f'["{directory.url}"]',
            "SCIM_LDAP_LDAP__BASE_DN": directory.base_dn,
            "SCIM_LDAP_ACCOUNTS__DISABLE": '["lock", "expire", "hide", "remove-group"]',
        }
        options = ["--server-password-file", str(files["server"])]
        options += ["--hosts-password-file", str(files["hosts"])]
        generated = run("directory-ldif", *options, env=settings)
        assert generated.returncode == 0, generated.stderr
        assert all(value not in generated.stdout for value in secrets.values())
        assert generated.stdout.lower().count("userpassword: {ssha}") == 2
        for part in ("schema", "modules", "config", "database", "overlays", "data"):
            assert f"# ==> {part} <==" in generated.stdout
        parts = {}
        for part in ("schema", "modules", "config", "database", "overlays", "data"):
            printed = run("directory-ldif", "--part", part, *options, env=settings)
            assert printed.returncode == 0, printed.stderr
            parts[part] = tmp_path / f"{part}.ldif"
            parts[part].write_text(printed.stdout, encoding="utf-8")
        for part in ("schema", "modules", "config", "database", "overlays"):
            tool = "ldapmodify" if part in ("config", "database") else "ldapadd"
            command = [tool, "-Q", "-Y", "EXTERNAL", "-H", directory.ldapi_url, "-f"]
            applied = subprocess.run(
                [*command, str(parts[part])], capture_output=True, text=True, check=False
            )
            assert applied.returncode == 0, f"{part}: {applied.stderr}"
        rootpw = tmp_path / "rootpw"
        rootpw.write_text(directory.admin_password, encoding="utf-8")
        rootdn = ["-D", directory.admin_dn, "-y", str(rootpw)]
        data = subprocess.run(
            ["ldapadd", "-x", "-H", directory.url, *rootdn, "-f", str(parts["data"])],
            capture_output=True,
            text=True,
            check=False,
        )
        assert data.returncode == 0, data.stderr
        checked = run(
            "check",
            env={
                **settings,
                "SCIM_LDAP_LDAP__BIND_DN": f"cn=scim-ldap,ou=services,{directory.base_dn}",
                "SCIM_LDAP_LDAP__BIND_PASSWORD": secrets["server"],
                "SCIM_LDAP_AUTH__TOKENS": '["a-token-of-at-least-sixteen-chars"]',
            },
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert "configuration is valid" in checked.stdout
        assert "warning" not in checked.stdout


def test_directory_ldif_names_a_password_file_it_cannot_read(tmp_path: Path) -> None:
    result = run("directory-ldif", "--server-password-file", str(tmp_path / "absent"))
    assert result.returncode == 2
    assert str(tmp_path / "absent") in result.stderr
    assert "Traceback" not in result.stderr


def test_directory_ldif_without_passwords_leaves_them_to_ldappasswd() -> None:
    result = run("directory-ldif", "--part", "data")
    assert result.returncode == 0, result.stderr
    assert "userPassword:" not in result.stdout
    assert "set its password with ldappasswd -S" in result.stdout
    slapd = run("directory-ldif", "--style", "slapd-conf", "--part", "database")
    assert slapd.stdout.startswith("index ")
    assert "access to attrs=userPassword" in slapd.stdout
