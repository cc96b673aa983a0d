"""Setting a user's password so that no plaintext ever lands in the directory.

``exop`` uses the LDAP Password Modify extended operation (RFC 3062): the
directory hashes with its own policy (olcPasswordHash, ppolicy). ``ssha512``
and ``crypt-sha512`` hash in the server and write ``userPassword`` in the same
operation as the rest of the change; slapd verifies ``{SSHA512}`` with its
pw-sha2 module and ``{CRYPT}`` with the system's crypt(3).
"""

from __future__ import annotations

import secrets

from passlib.hash import ldap_salted_sha512, sha512_crypt

from app.config import AccountSettings

CRYPT_ROUNDS = 100_000
RANDOM_BYTES = 24


class PasswordPolicy:
    """Which password an account gets, and how it is stored."""

    def __init__(self, accounts: AccountSettings) -> None:
        self.source = accounts.password
        self.storage = accounts.password_storage

    def at_creation(self, requested: str | None) -> str | None:
        """The password a new account gets: the one sent, a random one, or none."""
        if self.source == "none":
            return None
        if self.source == "random":
            return secrets.token_urlsafe(RANDOM_BYTES)
        return requested

    def on_update(self, requested: str | None) -> str | None:
        """A password sent later is set only under the ``request`` policy."""
        return requested if self.source == "request" else None

    @property
    def by_exop(self) -> bool:
        return self.storage == "exop"

    def hashed(self, plaintext: str) -> str:
        """The ``userPassword`` value for server-side hashing."""
        if self.storage == "ssha512":
            return str(ldap_salted_sha512.hash(plaintext))
        return "{CRYPT}" + str(sha512_crypt.using(rounds=CRYPT_ROUNDS).hash(plaintext))
