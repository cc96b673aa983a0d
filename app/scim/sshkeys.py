"""Validation of SSH public keys in the OpenSSH ``authorized_keys`` format.

Keys land in ``sshPublicKey`` and reach sshd through ``AuthorizedKeysCommand``
(sss_ssh_authorizedkeys), so a malformed value would silently lock a user out,
and an option prefix (``command=...``, ``from=...``) would change what a key
may do: both are refused with a 400 naming the key.
"""

from __future__ import annotations

import base64
import binascii
import re
import struct
from collections.abc import Iterable

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
_COMMENT = re.compile("^[^\x00-\x1f\x7f-\x9f\ud800-\udfff]*$")


def _strings(blob: bytes) -> list[bytes]:
    """The length-prefixed fields of an SSH wire-format key (RFC 4253 §6.6)."""
    fields = []
    offset = 0
    while offset < len(blob):
        if offset + 4 > len(blob):
            raise ValueError("truncated")
        (length,) = struct.unpack(">I", blob[offset : offset + 4])
        offset += 4
        if offset + length > len(blob):
            raise ValueError("truncated")
        fields.append(blob[offset : offset + length])
        offset += length
    return fields


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
        fields = _strings(blob)
    except (binascii.Error, ValueError):
        raise InvalidValueException(detail=f"{name} is not valid base64 key data") from None
    if not fields or fields[0] != key_type.encode():
        raise InvalidValueException(detail=f"{name}: the key data is not a {key_type} key")
    if key_type == "ssh-rsa":
        modulus = fields[2] if len(fields) > 2 else b""
        bits = int.from_bytes(modulus, "big").bit_length()
        if bits < MIN_RSA_BITS:
            raise InvalidValueException(
                detail=f"{name} is a {bits}-bit RSA key; at least {MIN_RSA_BITS} bits are required"
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
