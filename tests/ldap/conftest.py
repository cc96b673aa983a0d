from collections.abc import Iterator

import pytest

from app.ldap.connection import Directory
from app.ldap.sandbox import Sandbox


@pytest.fixture
def pool(sandbox: Sandbox) -> Iterator[Directory]:
    """A connection pool of the server's own, bound as the sandbox administrator (the tests
    below write in scratch containers of their own, outside the server's)."""
    directory = Directory(sandbox.directory.admin_settings())
    yield directory
    directory.close()
