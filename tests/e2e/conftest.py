import itertools
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from _pytest.terminal import TerminalReporter
from ldap3 import Connection

from app.ldap.sandbox import Sandbox, SandboxDirectory, SandboxError
from tests.e2e.clients import (
    ClientStack,
    LoginUser,
    StackKind,
    add_login_user,
    remove_login_user,
)
from tests.e2e.hostfiles import (
    nslcd_config,
    sssd_config,
)
from tests.e2e.matrix import REPORTS
from tests.e2e.packages import (
    PACKAGES,
    install_packages,
    missing_packages,
)
from tests.e2e.processes import ClientError

_uid_numbers = itertools.count(30001)


@pytest.fixture(scope="session")
def client_packages() -> None:
    """The sssd and nslcd stacks and pamtester, installed (as root) when missing."""
    if os.geteuid() != 0:
        missing = " ".join(missing_packages()) or "none"
        pytest.fail(
            "the e2e tests run real sssd/nslcd stacks in private mount namespaces and need "
            f"root (missing packages: {missing})",
            pytrace=False,
        )
    try:
        installed = install_packages(PACKAGES)
    except ClientError as exc:
        pytest.fail(f"cannot install the Linux client packages: {exc}", pytrace=False)
    if installed:
        print(f"installed {' '.join(installed)}")


def default_config(kind: StackKind, directory: SandboxDirectory) -> str:
    return sssd_config(directory) if kind == "sssd" else nslcd_config(directory)


@pytest.fixture(scope="module", params=["sssd", "nslcd"])
def stack(
    request: pytest.FixtureRequest, client_packages: None, sandbox: Sandbox
) -> Iterator[ClientStack]:
    kind: StackKind = request.param
    client = ClientStack(kind, sandbox.directory, default_config(kind, sandbox.directory))
    try:
        client.start()
    except ClientError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield client
    finally:
        client.stop()


@pytest.fixture
def login_user(ldap: Connection, sandbox: Sandbox, ssh_identity: Path) -> Iterator[LoginUser]:
    """A user added straight to LDAP whose key is ``ssh_identity``'s public half."""
    number = next(_uid_numbers)
    key = Path(f"{ssh_identity}.pub").read_text().strip()
    user = add_login_user(
        ldap, sandbox.directory, f"e2e{number}", number, password=f"pw-{number}!", key=key
    )
    try:
        yield user
    finally:
        remove_login_user(ldap, sandbox.directory, user)


@pytest.fixture(scope="session")
def tls_sandbox() -> Iterator[Sandbox]:
    """A sandbox directory with StartTLS and ldaps:// under a private CA (kept out of
    pytest's private temporary directories, so that nslcd can read the CA)."""
    server = Sandbox(tls=True)
    try:
        server.start()
    except SandboxError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield server
    finally:
        server.stop()


def make_identity(path: Path) -> Path:
    """A new private ed25519 key at ``path``, its public half beside it as ``.pub``."""
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "e2e", "-f", str(path)],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return path


@pytest.fixture(scope="session")
def ssh_identity(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The private key whose public half the provisioned users carry."""
    return make_identity(tmp_path_factory.mktemp("ssh") / "id_ed25519")


@pytest.fixture(scope="session")
def stranger_identity(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private key nobody's account carries."""
    return make_identity(tmp_path_factory.mktemp("ssh") / "id_stranger")


def pytest_terminal_summary(terminalreporter: TerminalReporter) -> None:
    for title, text in REPORTS:
        terminalreporter.write_sep("=", title)
        for line in text.splitlines():
            terminalreporter.write_line(line)
