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


def rsa_key(bits: int) -> str:
    """An ``ssh-rsa`` line whose modulus has exactly ``bits`` bits."""
    modulus = (1 << (bits - 1)) | 1
    encoded = blob(b"ssh-rsa", b"\x01\x00\x01", modulus.to_bytes(bits // 8 + 1, "big"))
    return f"ssh-rsa {encoded}"
