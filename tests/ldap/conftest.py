from collections.abc import Iterator

import pytest

from app.ldap.connection import Directory
from app.ldap.sandbox import Sandbox


@pytest.fixture
def pool(sandbox: Sandbox) -> Iterator[Directory]:
    """A connection pool of the server's own, bound as the sandbox administrator."""
    directory = Directory(sandbox.directory.ldap_settings())
    yield directory
    directory.close()
