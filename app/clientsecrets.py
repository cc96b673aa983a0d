"""OAuth client secrets: kept as PBKDF2-SHA256 hashes, checked at the cost of a hash.

The configuration holds only hashes (``python -m app hash-secret`` makes one);
checking a presented secret costs one PBKDF2 run per hash of the client, so
guessing a secret at the token endpoint is as slow as guessing it offline.
"""

from __future__ import annotations

from passlib.hash import pbkdf2_sha256

ROUNDS = 600_000
"""PBKDF2-HMAC-SHA256 iterations of a new hash (OWASP's figure; about 0.2 s per check)."""

MIN_LENGTH = 16

_CHANGED_BY_FORM_DECODING = "+%"
"""Form encoding (RFC 6749 §2.3.1) changes these: a client that forgets to encode a secret
holding them would present another secret."""


def secret_problem(secret: str) -> str | None:
    """Why ``secret`` cannot be a client secret, or None."""
    if len(secret) < MIN_LENGTH:
        return f"a client secret must be at least {MIN_LENGTH} characters long"
    if any(not "!" <= c <= "~" or c in _CHANGED_BY_FORM_DECODING for c in secret):
        return (
            "a client secret must be printable ASCII without spaces, '+' or '%' "
            "(form encoding changes those); `openssl rand -hex 32` makes a good one"
        )
    return None


def hash_secret(secret: str, rounds: int = ROUNDS) -> str:
    """The hash to put in ``auth.oauth.clients[].secret_hashes``."""
    hashed: str = pbkdf2_sha256.using(rounds=rounds).hash(secret)
    return hashed


def hash_problem(hashed: str) -> str | None:
    """Why ``hashed`` is not a hash ``hash_secret`` makes, or None (never shows the hash)."""
    if not pbkdf2_sha256.identify(hashed):
        return "is not a $pbkdf2-sha256$ hash (make one with `python -m app hash-secret`)"
    try:
        pbkdf2_sha256.from_string(hashed)
    except ValueError:
        return "is a malformed $pbkdf2-sha256$ hash"
    return None


def rounds_of(hashed: str) -> int:
    """The iterations of a hash ``hash_problem`` accepts."""
    rounds: int = pbkdf2_sha256.from_string(hashed).rounds
    return rounds


def matches(secret: str, hashes: list[str]) -> bool:
    """Whether ``secret`` matches one of ``hashes``; every hash is checked, whichever matches."""
    matched = False
    for hashed in hashes:
        matched |= bool(pbkdf2_sha256.verify(secret, hashed))
    return matched
