"""The installed version of scim-ldap (its package metadata), for ``--version`` and OpenAPI."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    VERSION = version("scim-ldap")
except PackageNotFoundError:
    VERSION = "0.0.0+unknown"
