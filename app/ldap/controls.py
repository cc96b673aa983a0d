"""LDAP request/response controls that ldap3 does not provide.

* Assertion control, RFC 4528.
* Server-side sorting request and response controls, RFC 2891.
* Virtual List View request and response controls,
  draft-ietf-ldapext-ldapv3-vlv-09.
* Matched values control, RFC 3876.

Request builders return ``(oid, criticality, value)`` tuples accepted by the
``controls`` argument of ldap3 operations. ldap3 hands back the value of any
response control it does not know as raw bytes under
``result["controls"][oid]["value"]``; the ``read_*`` helpers decode those.

Values are encoded with the pyasn1 DER encoder: DER satisfies the BER
restrictions of RFC 4511 section 5.1 (definite lengths, primitive octet
strings, BOOLEAN TRUE as 0xFF) and omits ``DEFAULT`` components.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ldap3.core.exceptions import LDAPInvalidFilterError
from ldap3.core.results import RESULT_CODES
from ldap3.operation.search import compile_filter, parse_filter
from pyasn1.codec.ber import decoder
from pyasn1.codec.der import encoder
from pyasn1.error import PyAsn1Error
from pyasn1.type import constraint, namedtype, tag, univ

ASSERTION_OID = "1.3.6.1.1.12"
SORT_REQUEST_OID = "1.2.840.113556.1.4.473"
SORT_RESPONSE_OID = "1.2.840.113556.1.4.474"
VLV_REQUEST_OID = "2.16.840.1.113730.3.4.9"
VLV_RESPONSE_OID = "2.16.840.1.113730.3.4.10"
MATCHED_VALUES_OID = "1.2.826.0.1.3344810.2.3"

ASSERTION_FAILED = 122
"""LDAP result code ``assertionFailed`` (RFC 4528 section 3)."""
SORT_CONTROL_MISSING = 60
"""VLV result code ``sortControlMissing`` (draft-ietf-ldapext-ldapv3-vlv-09 section 6.2)."""
OFFSET_RANGE_ERROR = 61
"""VLV result code ``offsetRangeError`` (draft-ietf-ldapext-ldapv3-vlv-09 section 6.2)."""
SLAPD_OFFSET_RANGE_ERROR = 77
"""What slapo-sssvlv puts in the VLV response instead of ``OFFSET_RANGE_ERROR``."""

VLV_ERROR = 76
"""LDAP result code ``virtualListViewError`` (draft-ietf-ldapext-ldapv3-vlv-09); slapd
ends a failed VLV search with it (offset out of range, sort control missing)."""

MAX_INT = 2147483647

Control = tuple[str, bool, bytes]

_BAD_ESCAPE = re.compile(r"\\(?![0-9A-Fa-f]{2})")


class ControlDecodingError(ValueError):
    """A response control value could not be decoded."""


def _register_vlv_error() -> None:
    """ldap3's fast decoder looks every result code up in ``RESULT_CODES`` and raises
    ``KeyError`` on one it does not know, such as ``VLV_ERROR``."""
    RESULT_CODES.setdefault(VLV_ERROR, "virtualListViewError")


_register_vlv_error()


def _int_range(low: int) -> constraint.ValueRangeConstraint:
    return constraint.ValueRangeConstraint(low, MAX_INT)


class _SortKey(univ.Sequence):  # type: ignore[misc]
    """RFC 2891 section 1.1, one element of ``SortKeyList``."""

    componentType = namedtype.NamedTypes(  # noqa: N815
        namedtype.NamedType("attributeType", univ.OctetString()),
        namedtype.OptionalNamedType(
            "orderingRule",
            univ.OctetString().subtype(
                implicitTag=tag.Tag(tag.tagClassContext, tag.tagFormatSimple, 0)
            ),
        ),
        namedtype.DefaultedNamedType(
            "reverseOrder",
            univ.Boolean(False).subtype(
                implicitTag=tag.Tag(tag.tagClassContext, tag.tagFormatSimple, 1)
            ),
        ),
    )


class _SortKeyList(univ.SequenceOf):  # type: ignore[misc]
    """RFC 2891 section 1.1 ``SortKeyList``."""

    componentType = _SortKey()  # noqa: N815


class _SortResult(univ.Sequence):  # type: ignore[misc]
    """RFC 2891 section 1.2 ``SortResult``."""

    componentType = namedtype.NamedTypes(  # noqa: N815
        namedtype.NamedType("sortResult", univ.Enumerated()),
        namedtype.OptionalNamedType(
            "attributeType",
            univ.OctetString().subtype(
                implicitTag=tag.Tag(tag.tagClassContext, tag.tagFormatSimple, 0)
            ),
        ),
    )


class _ByOffset(univ.Sequence):  # type: ignore[misc]
    """draft-ietf-ldapext-ldapv3-vlv-09 section 6.1, ``byOffset [0]``."""

    tagSet = univ.Sequence.tagSet.tagImplicitly(  # noqa: N815
        tag.Tag(tag.tagClassContext, tag.tagFormatConstructed, 0)
    )
    componentType = namedtype.NamedTypes(  # noqa: N815
        namedtype.NamedType("offset", univ.Integer().subtype(subtypeSpec=_int_range(1))),
        namedtype.NamedType("contentCount", univ.Integer().subtype(subtypeSpec=_int_range(0))),
    )


class _VlvTarget(univ.Choice):  # type: ignore[misc]
    """draft-ietf-ldapext-ldapv3-vlv-09 section 6.1, ``target`` CHOICE."""

    componentType = namedtype.NamedTypes(  # noqa: N815
        namedtype.NamedType("byOffset", _ByOffset()),
        namedtype.NamedType(
            "greaterThanOrEqual",
            univ.OctetString().subtype(
                implicitTag=tag.Tag(tag.tagClassContext, tag.tagFormatSimple, 1)
            ),
        ),
    )


class _VlvRequest(univ.Sequence):  # type: ignore[misc]
    """draft-ietf-ldapext-ldapv3-vlv-09 section 6.1 ``VirtualListViewRequest``."""

    componentType = namedtype.NamedTypes(  # noqa: N815
        namedtype.NamedType("beforeCount", univ.Integer().subtype(subtypeSpec=_int_range(0))),
        namedtype.NamedType("afterCount", univ.Integer().subtype(subtypeSpec=_int_range(0))),
        namedtype.NamedType("target", _VlvTarget()),
        namedtype.OptionalNamedType("contextID", univ.OctetString()),
    )


class _VlvResponse(univ.Sequence):  # type: ignore[misc]
    """draft-ietf-ldapext-ldapv3-vlv-09 section 6.2 ``VirtualListViewResponse``."""

    componentType = namedtype.NamedTypes(  # noqa: N815
        namedtype.NamedType("targetPosition", univ.Integer()),
        namedtype.NamedType("contentCount", univ.Integer()),
        namedtype.NamedType("virtualListViewResult", univ.Enumerated()),
        namedtype.OptionalNamedType("contextID", univ.OctetString()),
    )


@dataclass(frozen=True, slots=True)
class SortKey:
    """One RFC 2891 sort key."""

    attribute: str
    ordering_rule: str | None = None
    reverse: bool = False


@dataclass(frozen=True, slots=True)
class VlvResult:
    """Decoded ``VirtualListViewResponse``; ``target_position`` is 1-based."""

    target_position: int
    content_count: int
    result_code: int
    context_id: bytes | None


def encode_filter(filter_str: str) -> bytes:
    """BER-encode an RFC 4515 string filter as an RFC 4511 section 4.5.1 ``Filter``.

    Values must already be escaped as RFC 4515 section 3 requires (``\\2a`` for
    ``*`` and so on); they are sent as given, without ldap3's automatic escaping
    or schema checks.
    """
    if _BAD_ESCAPE.search(filter_str):
        raise LDAPInvalidFilterError(f"backslash not followed by two hex digits in {filter_str!r}")
    root = parse_filter(filter_str, None, False, True, None, False)
    try:
        return bytes(encoder.encode(compile_filter(root.elements[0])))
    except PyAsn1Error as exc:
        raise LDAPInvalidFilterError(f"cannot encode filter {filter_str!r}: {exc}") from exc


def assertion_control(filter_str: str) -> Control:
    """Critical RFC 4528 Assertion control; the operation fails with result code
    122 (assertionFailed) unless the target entry matches ``filter_str``."""
    return (ASSERTION_OID, True, encode_filter(filter_str))


def _der_length(size: int) -> bytes:
    if size < 0x80:
        return bytes([size])
    digits = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(digits)]) + digits


def matched_values_control(filters: Sequence[str], *, critical: bool = False) -> Control:
    """RFC 3876 matched values control: a search returns only the values matching ``filters``.

    Each filter must be a simple item (``(attr=value)``, RFC 3876 section 2).
    Not critical by default: a directory without it returns every value, so
    callers check the values they get.
    """
    items = b"".join(encode_filter(f) for f in filters)
    return (MATCHED_VALUES_OID, critical, b"\x30" + _der_length(len(items)) + items)


def sort_control(keys: Sequence[SortKey], *, critical: bool = True) -> Control:
    """RFC 2891 section 1.1 server-side sort request control."""
    if not keys:
        raise ValueError("at least one sort key is required")
    key_list = _SortKeyList()
    for idx, key in enumerate(keys):
        item = _SortKey()
        item["attributeType"] = key.attribute
        if key.ordering_rule is not None:
            item["orderingRule"] = key.ordering_rule
        item["reverseOrder"] = key.reverse
        key_list.setComponentByPosition(idx, item)
    return (SORT_REQUEST_OID, critical, bytes(encoder.encode(key_list)))


def vlv_control(
    offset: int,
    before: int,
    after: int,
    content_count: int = 0,
    context_id: bytes | None = None,
    *,
    critical: bool = True,
) -> Control:
    """draft-ietf-ldapext-ldapv3-vlv-09 section 6.1 request using ``byOffset``.

    ``offset`` is 1-based; ``content_count`` is the client's estimate of the
    list size (0 means "unknown", section 4.3). Must be sent with a sort control.
    """
    if offset < 1:
        raise ValueError("VLV offset is 1-based")
    if before < 0 or after < 0 or content_count < 0:
        raise ValueError("VLV counts must not be negative")
    by_offset = _ByOffset()
    by_offset["offset"] = offset
    by_offset["contentCount"] = content_count
    request = _VlvRequest()
    request["beforeCount"] = before
    request["afterCount"] = after
    request["target"]["byOffset"] = by_offset
    if context_id is not None:
        request["contextID"] = context_id
    return (VLV_REQUEST_OID, critical, bytes(encoder.encode(request)))


def _control_value(result: Mapping[str, Any] | None, oid: str) -> bytes | None:
    if not result:
        return None
    controls = result.get("controls") or {}
    control = controls.get(oid)
    if control is None:
        return None
    value = control.get("value")
    if value is None:
        raise ControlDecodingError(f"response control {oid} has no value")
    if not isinstance(value, bytes | bytearray):
        raise ControlDecodingError(f"response control {oid} was already decoded: {value!r}")
    return bytes(value)


def _decode(value: bytes, spec: univ.Sequence, oid: str) -> Any:
    try:
        decoded, rest = decoder.decode(value, asn1Spec=spec)
    except PyAsn1Error as exc:
        raise ControlDecodingError(f"malformed response control {oid}: {exc}") from exc
    if rest:
        raise ControlDecodingError(f"trailing data in response control {oid}")
    return decoded


def read_vlv_response(result: Mapping[str, Any] | None) -> VlvResult | None:
    """Decode the VLV response control (section 6.2) from an ldap3 result dict."""
    value = _control_value(result, VLV_RESPONSE_OID)
    if value is None:
        return None
    decoded = _decode(value, _VlvResponse(), VLV_RESPONSE_OID)
    context = decoded["contextID"]
    return VlvResult(
        target_position=int(decoded["targetPosition"]),
        content_count=int(decoded["contentCount"]),
        result_code=int(decoded["virtualListViewResult"]),
        context_id=bytes(context) if context.isValue else None,
    )


def read_sort_response(result: Mapping[str, Any] | None) -> int | None:
    """Result code of the RFC 2891 section 1.2 sort response control, if present."""
    value = _control_value(result, SORT_RESPONSE_OID)
    if value is None:
        return None
    return int(_decode(value, _SortResult(), SORT_RESPONSE_OID)["sortResult"])
