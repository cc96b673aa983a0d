from collections.abc import Iterator

import pytest

from app.ldap.sandbox import Sandbox, SandboxDirectory, SandboxError


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Sandbox]:
    server = Sandbox()
    try:
        server.start()
    except SandboxError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def directory(sandbox: Sandbox) -> SandboxDirectory:
    return sandbox.directory
