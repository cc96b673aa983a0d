"""Validation of SSH public keys in the OpenSSH ``authorized_keys`` format.

Keys land in ``sshPublicKey`` and reach sshd through ``AuthorizedKeysCommand``
(sss_ssh_authorizedkeys), so a malformed value would silently lock a user out,
and an option prefix (``command=...``, ``from=...``) would change what a key
may do: both are refused with a 400 naming the key.

The key material is read by ``cryptography``'s OpenSSH loader, which holds each
type to its wire format (RFC 4253 §6.6, RFC 5656 §3.1, RFC 8709 §4, OpenSSH
PROTOCOL.u2f): a 32-byte Ed25519 key, an EC point on the curve the type names,
an RSA exponent below the modulus, a FIDO application string starting with
``ssh:``, and nothing after the last field.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_ssh_public_key
from scim2_models import InvalidValueException

KEY_TYPES = frozenset(
    {
        "ssh-ed25519",
        "ssh-rsa",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "sk-ssh-ed25519@openssh.com",
        "sk-ecdsa-sha2-nistp256@openssh.com",
    }
)
MIN_RSA_BITS = 2048
MAX_KEY_LENGTH = 16384
MAX_REASON_LENGTH = 80
_COMMENT = re.compile("^[^\x00-\x1f\x7f-\x9f\ud800-\udfff]*$")


def _declared_type(blob: bytes) -> bytes | None:
    """The key type the wire format names in its first string (RFC 4253 §6.6)."""
    if len(blob) < 4:
        return None
    length = int.from_bytes(blob[:4], "big")
    return blob[4 : 4 + length] if 4 + length <= len(blob) else None


def _reason(exc: Exception) -> str:
    """The library's reason, cut before any repr of the key bytes and kept short."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    text = text.split(" (<", 1)[0].rstrip(". ")
    return text if len(text) <= MAX_REASON_LENGTH else f"{text[: MAX_REASON_LENGTH - 3]}..."


def _describe(position: int, line: str) -> str:
    shown = line if len(line) <= 40 else f"{line[:37]}..."
    return f"SSH key {position} ({shown!r})"


def identity(key: str) -> str:
    """A key without its comment (type and key data): the same key under another comment."""
    return " ".join(key.split()[:2])


def unique_keys(keys: Iterable[str]) -> tuple[str, ...]:
    """The keys in order, each key once: a repeat under another comment is dropped."""
    kept: dict[str, str] = {}
    for key in keys:
        kept.setdefault(identity(key), key)
    return tuple(kept.values())


def validate_key(line: str, position: int = 1) -> str:
    """One key, normalised to ``type base64 [comment]``; 400 ``invalidValue`` naming a bad one."""
    text = line.strip()
    name = _describe(position, text)
    if len(text) > MAX_KEY_LENGTH:
        raise InvalidValueException(detail=f"{name} is too long")
    parts = text.split(None, 2)
    if len(parts) < 2:
        raise InvalidValueException(detail=f"{name} must be '<type> <base64> [comment]'")
    key_type, encoded = parts[0], parts[1]
    comment = parts[2].strip() if len(parts) == 3 else ""
    if key_type not in KEY_TYPES:
        known = ", ".join(sorted(KEY_TYPES))
        raise InvalidValueException(
            detail=f"{name} has an unknown key type or an option prefix; known types: {known}"
        )
    try:
        blob = base64.b64decode(encoded, validate=True)
    except binascii.Error:
        raise InvalidValueException(detail=f"{name} is not valid base64 key data") from None
    declared = _declared_type(blob)
    if declared is None:
        raise InvalidValueException(
            detail=f"{name} is not a well-formed {key_type} key (the key data is cut short)"
        )
    if declared != key_type.encode():
        raise InvalidValueException(detail=f"{name}: the key data is not a {key_type} key")
    try:
        key = load_ssh_public_key(f"{key_type} {encoded}".encode("ascii"))
    except (ValueError, UnsupportedAlgorithm, NotImplementedError) as exc:
        raise InvalidValueException(
            detail=f"{name} is not a well-formed {key_type} key ({_reason(exc)})"
        ) from None
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < MIN_RSA_BITS:
        raise InvalidValueException(
            detail=f"{name} is a {key.key_size}-bit RSA key; at least {MIN_RSA_BITS} bits are "
            "required"
        )
    if not _COMMENT.match(comment):
        raise InvalidValueException(detail=f"{name} has control characters in its comment")
    return " ".join(part for part in (key_type, encoded, comment) if part)


def validate_keys(value: object) -> tuple[str, ...]:
    """Keys given as a list of strings or as one string with one key per line."""
    if isinstance(value, str):
        lines = [line for line in value.splitlines() if line.strip()]
    elif isinstance(value, list) and all(isinstance(item, str) for item in value):
        lines = [line for item in value for line in item.splitlines() if line.strip()]
    else:
        raise InvalidValueException(detail="sshPublicKeys must be a list of strings")
    keys = [validate_key(line, position) for position, line in enumerate(lines, start=1)]
    return unique_keys(keys)
