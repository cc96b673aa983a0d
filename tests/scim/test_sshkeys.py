"""SSH public key validation (authorized_keys format), without a directory."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scim2_models import InvalidValueException

from app.scim.sshkeys import KEY_TYPES, validate_key, validate_keys
from tests.keys import blob, fields, public_key, rsa_key, sk_key

ED25519 = public_key("ed25519")
OTHER_ED25519 = public_key("ed25519", index=1)
ECDSA = public_key("ecdsa")
ECDSA_384 = public_key("ecdsa", 384)
ECDSA_521 = public_key("ecdsa", 521)
RSA = public_key("rsa", 2048)
RSA_3072 = public_key("rsa", 3072)
SK_ED25519 = sk_key("ed25519")
SK_ECDSA = sk_key("ecdsa")
NO_MODULUS = blob(b"ssh-rsa", b"\x01\x00\x01")
ED25519_POINT = fields(ED25519)[1]
P256_POINT = fields(ECDSA)[2]
P384_POINT = fields(ECDSA_384)[2]
NOT_ON_P256 = b"\x04" + b"\x01" * 64
COMPRESSED = bytes([2 + P256_POINT[-1] % 2]) + P256_POINT[1:33]
EVEN_EXPONENT = blob(b"ssh-rsa", b"\x02", ((1 << 2047) | 1).to_bytes(257, "big"))


def refused(value: object) -> str:
    with pytest.raises(InvalidValueException) as caught:
        validate_keys(value)
    assert caught.value.scim_type == "invalidValue"
    return str(caught.value.detail)


@pytest.mark.parametrize(
    "key",
    [ED25519, ECDSA, ECDSA_384, ECDSA_521, RSA, RSA_3072, rsa_key(2048), rsa_key(4096)],
)
def test_real_keys_are_accepted(key: str) -> None:
    assert validate_key(key) == key
    assert validate_key(f"{key} alice@laptop") == f"{key} alice@laptop"


@pytest.mark.parametrize("comment", ["José Müller", "pat 🔑 laptop", "北京", "a=b;c"])
def test_a_comment_may_hold_any_printable_text(comment: str) -> None:
    assert validate_key(f"{ED25519} {comment}") == f"{ED25519} {comment}"


def test_whitespace_around_the_fields_is_normalised() -> None:
    kind, encoded = ED25519.split()
    assert validate_key(f"  {kind}\t {encoded}   pat  laptop \r") == f"{ED25519} pat  laptop"


def test_a_list_and_a_string_of_lines_give_the_same_keys() -> None:
    lines = [ED25519 + " one", RSA + " two", ECDSA]
    assert validate_keys(lines) == tuple(lines)
    assert validate_keys("\n".join(lines)) == tuple(lines)
    assert validate_keys(f"\r\n{lines[0]}\r\n\r\n{lines[1]}\n{lines[2]}\n") == tuple(lines)
    assert validate_keys([f"{lines[0]}\n{lines[1]}", lines[2]]) == tuple(lines)


def test_the_same_key_twice_is_kept_once() -> None:
    assert validate_keys([ED25519, OTHER_ED25519, ED25519]) == (ED25519, OTHER_ED25519)
    assert validate_keys([f"{ED25519} first", f"{ED25519} second"]) == (f"{ED25519} first",)


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (f"ssh-dss {ED25519.split()[1]}", "unknown key type"),
        (f"SSH-ED25519 {ED25519.split()[1]}", "unknown key type"),
        (f'command="/bin/sh" {ED25519}', "option prefix"),
        (f'from="10.0.0.0/8",no-pty {ED25519}', "option prefix"),
        (f"no-port-forwarding {ED25519}", "option prefix"),
        ("ssh-ed25519 AAAA!!!!", "not valid base64"),
        ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH", "not valid base64"),
        (f"{ED25519[:-6]}", "not valid base64"),
        (f"ssh-ed25519 {blob(b'ssh-ed25519')[:-4]}", "cut short"),
        (f"ssh-ed25519 {blob(b'ssh-ed25519', b'12345')}", "32 bytes"),
        (f"ssh-ed25519 {blob(b'ssh-ed25519', ED25519_POINT + b'0')}", "32 bytes"),
        (f"ssh-ed25519 {blob(b'ssh-ed25519')}", "not a well-formed ssh-ed25519 key"),
        (f"ssh-ed25519 {blob(b'ssh-ed25519', ED25519_POINT[:20])[:-4]}", "well-formed"),
        (f"ssh-ed25519 {blob(b'ssh-ed25519', ED25519_POINT, b'junk')}", "unparsed data"),
        (
            f"ssh-ed25519 {base64.b64encode(base64.b64decode(ED25519.split()[1]) + b'0').decode()}",
            "unparsed data",
        ),
        (
            f"ecdsa-sha2-nistp256 {blob(b'ecdsa-sha2-nistp256', b'nistp256', P384_POINT)}",
            "not a well-formed ecdsa-sha2-nistp256 key",
        ),
        (
            f"ecdsa-sha2-nistp256 {blob(b'ecdsa-sha2-nistp256', b'nistp384', P384_POINT)}",
            "Curve name mismatch",
        ),
        (
            f"ecdsa-sha2-nistp256 {blob(b'ecdsa-sha2-nistp256', b'nistp256', NOT_ON_P256)}",
            "Invalid EC key",
        ),
        (
            f"ecdsa-sha2-nistp256 {blob(b'ecdsa-sha2-nistp256', b'nistp256', P256_POINT[:-1])}",
            "Invalid EC key",
        ),
        (
            f"ecdsa-sha2-nistp256 {blob(b'ecdsa-sha2-nistp256', b'nistp256', COMPRESSED)}",
            "Need uncompressed point",
        ),
        (sk_key("ed25519", b"web:example"), "does not start with b'ssh:'"),
        (sk_key("ecdsa", b""), "does not start with b'ssh:'"),
        (
            f"sk-ssh-ed25519@openssh.com {blob(b'sk-ssh-ed25519@openssh.com', ED25519_POINT)}",
            "not a well-formed sk-ssh-ed25519@openssh.com key",
        ),
        (
            f"sk-ssh-ed25519@openssh.com {blob(b'sk-ssh-ed25519@openssh.com', b'12345', b'ssh:')}",
            "32 bytes",
        ),
        (f"ssh-rsa {EVEN_EXPONENT}", "not a well-formed ssh-rsa key"),
        (f"ssh-rsa {ED25519.split()[1]}", "is not a ssh-rsa key"),
        (f"ssh-ed25519 {RSA.split()[1]}", "is not a ssh-ed25519 key"),
        (f"ecdsa-sha2-nistp384 {ECDSA.split()[1]}", "is not a ecdsa-sha2-nistp384 key"),
        (f"ssh-ed25519 {blob(b'ssh-ed2551')}", "is not a ssh-ed25519 key"),
        (public_key("rsa", 1024), "1024-bit RSA key"),
        (rsa_key(2047), "2047-bit RSA key"),
        (f"ssh-rsa {NO_MODULUS}", "not a well-formed ssh-rsa key"),
        (f"{ED25519} pat\x1b[31m", "control characters"),
        (f"{ED25519} pat\x07", "control characters"),
        (f"{ED25519} pat\tlaptop", "control characters"),
        (f"{ED25519} pat\x7f", "control characters"),
        (f"{ED25519} pat\x9b", "control characters"),
        (f"{ED25519} pat\x00", "control characters"),
        (f"{ED25519} pat\ud800", "control characters"),
        (ED25519.split()[0], "must be '<type> <base64> [comment]'"),
    ],
)
def test_a_bad_key_is_refused_and_named(line: str, reason: str) -> None:
    detail = refused([ED25519, line])
    assert reason in detail
    assert "SSH key 2 " in detail
    assert repr(line.strip()[:37]).rstrip("'") in detail


@pytest.mark.parametrize("key", [SK_ED25519, SK_ECDSA])
def test_fido_keys_are_accepted(key: str) -> None:
    assert validate_key(f"{key} pat@yubikey") == f"{key} pat@yubikey"


def test_a_malformed_key_is_named_without_its_data() -> None:
    encoded = blob(b"ssh-ed25519", b"\x07" * 3000)
    detail = refused(f"ssh-ed25519 {encoded} pat@laptop")
    assert detail.startswith("SSH key 1 ('ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAALu...')")
    assert "32 bytes" in detail
    assert len(detail) < 200
    assert "memory at" not in refused(sk_key("ed25519", b"web:"))


def test_a_long_key_is_shortened_in_the_message() -> None:
    line = f"ssh-ed25519 {'A' * 200}!"
    detail = refused(line)
    assert "SSH key 1 ('ssh-ed25519 AAAAAAAAAAAAAAAAAAAAAAAAA...')" in detail
    assert "A" * 60 not in detail


def test_a_huge_key_is_refused() -> None:
    assert "too long" in refused(f"{ED25519} {'x' * 20000}")


@pytest.mark.parametrize("value", [42, {"value": ED25519}, [ED25519, 42], [[ED25519]], True])
def test_a_value_that_is_not_strings_is_refused(value: object) -> None:
    assert "list of strings" in refused(value)


FIELD = st.one_of(
    st.sampled_from([b"nistp256", b"nistp384", b"nistp521", b"ssh:", b"\x01\x00\x01", b""]),
    st.builds(
        lambda prefix, body: bytes([prefix]) + body,
        st.sampled_from([0, 2, 3, 4]),
        st.binary(max_size=140),
    ),
)


@settings(max_examples=300, deadline=None)
@given(
    key_type=st.sampled_from(sorted(KEY_TYPES)),
    fields=st.lists(FIELD, max_size=4),
    tail=st.binary(max_size=6),
)
def test_any_key_data_is_accepted_or_refused_clearly(
    key_type: str, fields: list[bytes], tail: bytes
) -> None:
    """Whatever follows a known type name, the answer is a key or a 400, never a crash."""
    encoded = base64.b64encode(base64.b64decode(blob(key_type.encode(), *fields)) + tail).decode()
    try:
        validate_key(f"{key_type} {encoded}")
    except InvalidValueException as exc:
        assert exc.scim_type == "invalidValue"
        assert len(str(exc.detail)) < 250
        assert "memory at" not in str(exc.detail)
