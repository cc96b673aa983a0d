from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from ldap3 import Connection
from pydantic import SecretStr

from app.config import AuthSettings, HttpSettings, Settings
from app.ldap.sandbox import Sandbox, SandboxDirectory, SandboxError
from app.main import create_app


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


TOKEN = "test-token-0123456789abcdef"


def make_settings(directory: SandboxDirectory, **http: object) -> Settings:
    return Settings(
        ldap=directory.ldap_settings(),
        auth=AuthSettings(tokens=[SecretStr(TOKEN)]),
        http=HttpSettings(**http),
    )


@pytest.fixture(scope="session")
def app(sandbox: Sandbox) -> FastAPI:
    return create_app(make_settings(sandbox.directory))


@pytest.fixture(scope="session")
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, headers={"Authorization": f"Bearer {TOKEN}"}) as test_client:
        yield test_client


@pytest.fixture
def ldap(sandbox: Sandbox) -> Iterator[Connection]:
    """A raw admin connection, to assert what landed in the directory."""
    directory = sandbox.directory
    conn = Connection(directory.url, directory.admin_dn, directory.admin_password, auto_bind=True)
    try:
        yield conn
    finally:
        conn.unbind()
