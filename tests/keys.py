"""SSH public keys for tests: real ones made by ssh-keygen, and hand-built wire blobs."""

from __future__ import annotations

import base64
import functools
import struct
import subprocess
import tempfile
from pathlib import Path


@functools.cache
def public_key(kind: str = "ed25519", bits: int | None = None, index: int = 0) -> str:
    """``<type> <base64>`` of a fresh key pair; ``index`` tells apart keys of the same kind."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"key{index}"
        command = ["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", "", "-f", str(path)]
        if bits is not None:
            command += ["-b", str(bits)]
        subprocess.run(command, check=True, capture_output=True, timeout=30)
        text = Path(f"{path}.pub").read_text(encoding="ascii")
    return " ".join(text.split()[:2])


def blob(*fields: bytes) -> str:
    """Base64 of an SSH wire-format key made of these length-prefixed fields."""
    return base64.b64encode(b"".join(struct.pack(">I", len(f)) + f for f in fields)).decode()


def fields(line: str) -> list[bytes]:
    """The length-prefixed fields of the key data of an ``authorized_keys`` line."""
    data = base64.b64decode(line.split()[1])
    found = []
    while data:
        (length,) = struct.unpack(">I", data[:4])
        found.append(data[4 : 4 + length])
        data = data[4 + length :]
    return found


def sk_key(kind: str = "ed25519", application: bytes = b"ssh:") -> str:
    """A FIDO (``sk-``) key line built around a real key's public part (PROTOCOL.u2f).

    ssh-keygen makes ``-t ed25519-sk`` keys only with an authenticator present, so
    the wire format is assembled here from an ordinary key of the same curve.
    """
    if kind == "ed25519":
        key_type = b"sk-ssh-ed25519@openssh.com"
        _, point = fields(public_key("ed25519", index=7))
        return f"{key_type.decode()} {blob(key_type, point, application)}"
    key_type = b"sk-ecdsa-sha2-nistp256@openssh.com"
    _, curve, point = fields(public_key("ecdsa", 256, index=7))
    return f"{key_type.decode()} {blob(key_type, curve, point, application)}"


def rsa_key(bits: int) -> str:
    """An ``ssh-rsa`` line whose modulus has exactly ``bits`` bits."""
    modulus = (1 << (bits - 1)) | 1
    encoded = blob(b"ssh-rsa", b"\x01\x00\x01", modulus.to_bytes(bits // 8 + 1, "big"))
    return f"ssh-rsa {encoded}"
