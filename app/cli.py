"""The scim-ldap command line (``python -m app``): the server, its checks and what it generates."""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import os
import secrets
import sys
from collections.abc import Sequence
from pathlib import Path

import uvicorn
from pydantic import SecretStr, ValidationError
from scim2_models import SCIMException

from app import logs
from app.attributes import CORE_USER, POSIX_USER
from app.audit import AuditSinkError
from app.clientconfig import PARTS, ClientConfigError, ClientOptions, render
from app.clientsecrets import hash_secret, secret_problem
from app.config import AuthSettings, Settings, load_settings
from app.ldap.connection import Directory, DirectoryConfigError
from app.ldap.groupentries import GroupDirectory
from app.ldap.mapping import MappingError, UserMapping, read_schema
from app.ldap.preparation import (
    DEFAULT_DATABASE,
    DEFAULT_MODULE_PATH,
    STYLES,
    Accounts,
    Preparation,
    default_accounts,
)
from app.ldap.preparation import PARTS as PREPARATION_PARTS
from app.ldap.readiness import Readiness, assess, connection_findings
from app.ldap.rootdse import offers_start_tls
from app.ldap.topology import read_topology, replication_warnings
from app.ldap.users import UserDirectory
from app.version import VERSION

log = logging.getLogger("app")


def _fail(message: str) -> int:
    print(f"scim-ldap: {message}", file=sys.stderr)
    return 2


def _settings(config: Path | None) -> Settings | str:
    if config is not None and not config.is_file():
        return f"configuration file {config} not found"
    try:
        return load_settings(config)
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            field = ".".join(str(part) for part in error["loc"]) or "settings"
            lines.append(f"  {field}: {error['msg']}")
        return "invalid configuration:\n" + "\n".join(lines)
    except (OSError, ValueError) as exc:
        return f"cannot read configuration: {exc}"


def _serve(settings: Settings, host: str, port: int) -> int:
    from app.main import create_app

    log_config = logs.configure(settings.log_format, settings.log_level)
    try:
        app = create_app(settings)
    except (MappingError, AuditSinkError) as exc:
        return _fail(str(exc))
    directory: Directory = app.state.directory
    try:
        directory.check()
    except DirectoryConfigError as exc:
        return _fail(str(exc))
    _warn_about_directory(app.state.users.users, app.state.groups.groups)
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=settings.log_level,
        log_config=log_config,
        access_log=False,
        proxy_headers=False,
        server_header=False,
    )
    return 0


def _warn_about_directory(users: UserDirectory, groups: GroupDirectory) -> None:
    try:
        warnings = [*users.preflight_warnings(), *groups.preflight_warnings()]
    except SCIMException:
        return
    for warning in warnings:
        log.warning("%s", warning)


def cmd_serve(args: argparse.Namespace) -> int:
    settings = _settings(args.config)
    if isinstance(settings, str):
        return _fail(settings)
    if not settings.auth.configured:
        return _fail(
            "auth.tokens or auth.oauth.clients: at least one bearer token or OAuth client is "
            "required (SCIM_LDAP_AUTH__TOKENS='[\"<token>\"]', or see docs/oauth.md)"
        )
    return _serve(settings, args.host, args.port)


def cmd_hash_secret(_args: argparse.Namespace) -> int:
    """Read a client secret from standard input and print its hash, for secret_hashes."""
    if sys.stdin.isatty():
        secret = getpass.getpass("client secret (not shown): ")
    else:
        secret = sys.stdin.read().rstrip("\r\n")
    problem = secret_problem(secret)
    if problem:
        return _fail(problem)
    print(hash_secret(secret))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from app.ldap.sandbox import Sandbox, SandboxError

    token = secrets.token_urlsafe(32)
    sandbox = Sandbox()
    try:
        directory = sandbox.start()
    except SandboxError as exc:
        return _fail(str(exc))
    try:
        settings = Settings(
            ldap=directory.ldap_settings(),
            auth=AuthSettings(tokens=[SecretStr(token)]),
        )
        base = f"http://{args.host}:{args.port}{settings.http.base_path}"
        example = json.dumps(
            {
                "schemas": [CORE_USER],
                "userName": "alice@example.com",
                POSIX_USER: {"uidNumber": 10001},
            }
        )
        print(
            f"""
scim-ldap demo: a throwaway OpenLDAP at {directory.url} (base {directory.base_dn})
  Directory data: {sandbox.root} (removed on exit)
  SCIM base URL : {base}
  Bearer token  : {token}
Try:
  curl -s -H "Authorization: Bearer {token}" -H "Content-Type: application/scim+json" \\
    -d '{example}' \\
    {base}/Users
Ctrl-C stops the server and removes the directory.
""",
            flush=True,
        )
        return _serve(settings, args.host, args.port)
    finally:
        sandbox.stop()


def cmd_check(args: argparse.Namespace) -> int:
    settings = _settings(args.config)
    if isinstance(settings, str):
        return _fail(settings)
    directory = Directory(settings.ldap)
    try:
        problem = directory.check()
        if problem:
            found = connection_findings(settings)
            if found.errors:
                return _report(found)
            return _fail(f"cannot reach the directory: {problem}")
        schema = read_schema(directory)
        try:
            found = assess(settings, directory, schema)
        except MappingError as exc:
            return _fail(str(exc))
        topology = read_topology(settings.ldap)
        for line in topology.describe():
            print(line)
        found.warnings += replication_warnings(
            topology, settings.posix, settings.accounts, settings.ldap.base_dn
        )
    except DirectoryConfigError as exc:
        return _fail(str(exc))
    except SCIMException as exc:
        return _fail(f"the directory cannot be checked: {exc.detail}")
    finally:
        directory.close()
    return _report(found)


def _report(found: Readiness) -> int:
    """Print warnings and errors; 0 and "configuration is valid" when there is no error."""
    for warning in found.warnings:
        print(f"warning: {warning}")
    for error in found.errors:
        print(f"error: {error}")
    if found.errors:
        count = len(found.errors)
        print(
            f"scim-ldap: {count} problem{'s' if count > 1 else ''} would fail requests",
            file=sys.stderr,
        )
        return 1
    print("configuration is valid")
    return 0


def cmd_adoption_report(args: argparse.Namespace) -> int:
    """Print, read-only, what adoption (users.adopt) would match, claim and skip."""
    from app.ldap.adoption import report

    settings = _settings(args.config)
    if isinstance(settings, str):
        return _fail(settings)
    directory = Directory(settings.ldap)
    try:
        problem = directory.check()
        if problem:
            return _fail(f"cannot reach the directory: {problem}")
        mapping = UserMapping(
            settings.users, settings.ldap, settings.posix, settings.accounts, read_schema(directory)
        )
        with directory.session() as session:
            lines = report(session, mapping, settings.posix, settings.ldap.base_dn)
    except DirectoryConfigError as exc:
        return _fail(str(exc))
    except SCIMException as exc:
        return _fail(f"the directory cannot be read: {exc.detail}")
    finally:
        directory.close()
    for line in lines:
        print(line)
    return 0


def _secret_file(path: str | None) -> str | int | None:
    """The first line of ``path`` (None without one); an exit code when it cannot be read."""
    if not path:
        return None
    try:
        return Path(path).read_text(encoding="utf-8").strip() or None
    except OSError as exc:
        return _fail(f"cannot read {path}: {exc.strerror}")


def cmd_directory_ldif(args: argparse.Namespace) -> int:
    """Print what prepares a directory for the current settings (docs/directory.md)."""
    settings = _settings(args.config)
    if isinstance(settings, str):
        return _fail(settings)
    defaults = default_accounts(settings.ldap.base_dn)
    server_password = _secret_file(args.server_password_file)
    hosts_password = _secret_file(args.hosts_password_file)
    if isinstance(server_password, int):
        return server_password
    if isinstance(hosts_password, int):
        return hosts_password
    accounts = Accounts(
        args.server_dn or defaults.server_dn,
        args.hosts_dn or defaults.hosts_dn,
        server_password,
        hosts_password,
    )
    try:
        preparation = Preparation(
            settings,
            accounts,
            database=args.database,
            module_path=args.module_path,
            sort_values=args.sort_values,
        )
        text = preparation.render(args.style, args.part)
    except ValueError as exc:
        return _fail(str(exc))
    sys.stdout.write(text)
    return 0


def cmd_client_config(args: argparse.Namespace) -> int:
    settings = _settings(args.config)
    if isinstance(settings, str):
        return _fail(settings)
    password = ""
    if args.bind_password_file:
        try:
            password = Path(args.bind_password_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            return _fail(f"cannot read {args.bind_password_file}: {exc.strerror}")
    options = ClientOptions(
        bind_dn=args.bind_dn or "",
        bind_password=password,
        cache_timeout=args.cache_timeout,
        allow_plain_ldap=args.allow_plain_ldap,
        ca_file=args.ca_file or "",
        uris=tuple(args.uri or ()),
        mkhomedir=args.mkhomedir,
    )
    try:
        text = render(settings, args.kind, options, args.part)
    except KeyError as exc:
        return _fail(str(exc.args[0]))
    except ClientConfigError as exc:
        return _fail(f"{exc}{_start_tls_hint(settings)}")
    sys.stdout.write(text)
    return 0


def _start_tls_hint(settings: Settings) -> str:
    plain = [u for u in settings.ldap.urls if u.startswith("ldap://")]
    if not plain or settings.ldap.start_tls:
        return ""
    offered = offers_start_tls(plain[0])
    if offered is None:
        return ""
    if offered:
        return f" ({plain[0]} offers StartTLS: ldap.start_tls = true is all it takes)"
    return (
        f" ({plain[0]} offers no StartTLS: give slapd olcTLSCertificateFile and "
        "olcTLSCertificateKeyFile first)"
    )


def cmd_openapi(args: argparse.Namespace) -> int:
    from app.main import create_app

    document = create_app(Settings(), read_directory_schema=False).openapi()
    text = json.dumps(document, indent=2, sort_keys=True) + "\n"
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``scim-ldap`` parser: every command and option carries its help text."""
    parser = argparse.ArgumentParser(
        prog="scim-ldap",
        description="SCIM 2.0 provisioning of Linux accounts into an LDAP directory: run the "
        "server, check a directory, report what adoption would do, print what prepares the "
        "directory, hash an OAuth client secret, print host or API configuration.",
    )
    parser.add_argument("--version", action="version", version=f"scim-ldap {VERSION}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the SCIM server against the configured LDAP")
    serve.add_argument("--config", type=Path, help="TOML configuration file")
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)"
    )
    serve.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("PORT") or 8080),
        help="port to listen on (default: $PORT, else 8080)",
    )
    serve.set_defaults(func=cmd_serve)

    demo = commands.add_parser("demo", help="run against a throwaway local OpenLDAP")
    demo.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)"
    )
    demo.add_argument("--port", type=int, default=8080, help="port to listen on (default: 8080)")
    demo.set_defaults(func=cmd_demo)

    check = commands.add_parser("check", help="validate the configuration and the directory")
    check.add_argument("--config", type=Path, help="TOML configuration file")
    check.set_defaults(func=cmd_check)

    adoption = commands.add_parser(
        "adoption-report",
        help="list, read-only, the existing accounts users.adopt would match and the conflicts",
    )
    adoption.add_argument("--config", type=Path, help="TOML configuration file")
    adoption.set_defaults(func=cmd_adoption_report)

    prepare = commands.add_parser(
        "directory-ldif",
        help="print what prepares the directory: schema, modules, indexes, access rules, "
        "overlays, containers, groups and counters (docs/directory.md)",
    )
    prepare.add_argument("--config", type=Path, help="TOML configuration file")
    prepare.add_argument(
        "--style",
        choices=STYLES,
        default="cn-config",
        help="cn-config: LDIF for ldapmodify/ldapadd (slapd -F); slapd-conf: directives to "
        "include in slapd.conf (slapd -f). The data part is LDIF in both (default cn-config)",
    )
    prepare.add_argument(
        "--part",
        choices=PREPARATION_PARTS,
        help="print only this part (default: every part, each under a '# ==> part <==' line)",
    )
    prepare.add_argument(
        "--server-dn",
        help="DN the SCIM server binds as (default cn=scim-ldap,ou=services,<base_dn>)",
    )
    prepare.add_argument(
        "--hosts-dn",
        help="DN the Linux hosts bind as to read accounts (default cn=nss,ou=services,<base_dn>)",
    )
    prepare.add_argument(
        "--server-password-file",
        help="file holding the server account's password: the data part then carries its "
        "salted hash (without it: set the password with ldappasswd)",
    )
    prepare.add_argument(
        "--hosts-password-file",
        help="file holding the hosts' account's password (as --server-password-file)",
    )
    prepare.add_argument(
        "--database",
        default=DEFAULT_DATABASE,
        help=f"cn=config DN of the database holding ldap.base_dn (default {DEFAULT_DATABASE})",
    )
    prepare.add_argument(
        "--module-path",
        default=DEFAULT_MODULE_PATH,
        help=f"where slapd's modules are (default {DEFAULT_MODULE_PATH}, Debian's)",
    )
    prepare.add_argument(
        "--sort-values",
        action="store_true",
        help="add the sortvals part (member and memberUid kept sorted): only for a database "
        "that holds no group yet, or followed by a reload (docs/directory.md)",
    )
    prepare.set_defaults(func=cmd_directory_ldif)

    client = commands.add_parser(
        "client-config", help="print the sssd or nslcd configuration for Linux hosts"
    )
    client.add_argument(
        "--for",
        dest="kind",
        choices=["sssd", "nslcd"],
        required=True,
        help="the client daemon the hosts run",
    )
    client.add_argument("--config", type=Path, help="TOML configuration file")
    client.add_argument("--part", choices=PARTS, help="print only this part")
    client.add_argument("--bind-dn", help="DN the hosts bind as (read-only account)")
    client.add_argument("--bind-password-file", help="file holding that DN's password")
    client.add_argument("--cache-timeout", type=int, default=60, help="seconds hosts cache")
    client.add_argument(
        "--allow-plain-ldap",
        action="store_true",
        help="let sssd send passwords over ldap:// (a lab on loopback only)",
    )
    client.add_argument(
        "--ca-file", help="CA bundle on the hosts (default ldap.ca_file, else the system's)"
    )
    client.add_argument(
        "--uri",
        action="append",
        help="LDAP URI the hosts use, e.g. a replica near them (repeat for several; "
        "default ldap.urls)",
    )
    client.add_argument(
        "--mkhomedir", action="store_true", help="add pam_mkhomedir to the session lines"
    )
    client.set_defaults(func=cmd_client_config)

    hashing = commands.add_parser(
        "hash-secret",
        help="read an OAuth client secret from standard input and print the hash to put in "
        "auth.oauth.clients[].secret_hashes",
    )
    hashing.set_defaults(func=cmd_hash_secret)

    openapi = commands.add_parser("openapi", help="print the OpenAPI document")
    openapi.add_argument("--output", help="write to this file instead of stdout")
    openapi.set_defaults(func=cmd_openapi)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    code: int = args.func(args)
    return code
