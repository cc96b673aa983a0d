"""PATCH and POST/PUT bodies applied to slots, without a directory (ENTRA.md §2)."""

from __future__ import annotations

from typing import Any

import pytest
from scim2_models import SCIMException

from app.attributes import (
    ACTIVE,
    CORE_USER,
    ECMA2HOST_USER,
    ENTERPRISE_USER,
    EXTERNAL_ID,
    GID_NUMBER,
    HOME_DIRECTORY,
    MANAGER,
    PASSWORD,
    POSIX_USER,
    UID_NUMBER,
    USER_NAME,
    Catalog,
    Slot,
    SlotValue,
)
from app.config import UserSettings
from app.scim import patch as documents
from app.scim.patch import PATCH_OP, parse_patch
from app.scim.storage import State, Storage

CATALOG = Catalog(
    UserSettings().attribute_map(),
    ecma2host=["uid", "cn", "sn", "mail", "gidNumber", "homeDirectory", "userPassword"],
)
"""The default mapping without the unmapped attribute: only mapped values are kept."""
STORAGE = Storage(CATALOG)


def _slot(path: str) -> Slot:
    slot = CATALOG.by_path(path)
    assert slot is not None, path
    return slot


BY_PATH = {s.path: s for s in CATALOG.by_slot}


def patched(state: State, body: Any) -> State:
    """PATCH through the document, as the service applies it."""
    document = STORAGE.join(state, login="pat", dn="uid=pat,ou=people", users_url="/Users")
    return STORAGE.split(documents.patched(CATALOG.schemas, document, body), document)


def loaded(body: Any) -> State:
    return STORAGE.split(documents.loaded(CATALOG.schemas, body))


WORK_EMAIL = BY_PATH['emails[type eq "work"].value']
GIVEN = BY_PATH["name.givenName"]
FAMILY = BY_PATH["name.familyName"]
DISPLAY = BY_PATH["displayName"]
TITLE = BY_PATH["title"]
LOCALITY = BY_PATH['addresses[type eq "work"].locality']
POSTAL = BY_PATH['addresses[type eq "work"].postalCode']
STREET = BY_PATH['addresses[type eq "work"].streetAddress']
MOBILE = BY_PATH['phoneNumbers[type eq "mobile"].value']
WORK_PHONE = BY_PATH['phoneNumbers[type eq "work"].value']
EMPLOYEE = BY_PATH[f"{ENTERPRISE_USER}:employeeNumber"]
DEPARTMENT = BY_PATH[f"{ENTERPRISE_USER}:department"]

BASE: State = {USER_NAME: "pat@example.com", ACTIVE: True, UID_NUMBER: 1000, TITLE: "Eng"}


def run(state: State, *operations: dict[str, Any]) -> State:
    return patched(state, {"schemas": [PATCH_OP], "Operations": list(operations)})


def refused(scim_type: str, state: State, *operations: dict[str, Any]) -> SCIMException:
    with pytest.raises(SCIMException) as caught:
        run(state, *operations)
    assert caught.value.scim_type == scim_type, caught.value.detail
    return caught.value


# ---- ENTRA.md §2, legacy


@pytest.mark.parametrize(
    ("value", "expected"),
    [("False", False), ("True", True), ("false", False), ("TRUE", True), (False, False)],
)
def test_active_strings(value: object, expected: bool) -> None:
    state = {**BASE, ACTIVE: not expected}
    assert run(state, {"op": "Replace", "path": "active", "value": value})[ACTIVE] is expected


@pytest.mark.parametrize("value", ["maybe", 1, "", "yes"])
def test_active_garbage(value: object) -> None:
    operation = {"op": "replace", "path": "active", "value": value}
    if value == "":
        assert ACTIVE not in run(BASE, operation)
        return
    refused("invalidValue", BASE, operation)


def test_add_nick_name_is_ignored() -> None:
    assert run(BASE, {"op": "Add", "path": "nickName", "value": "Babs"}) == BASE


def test_legacy_multi_replace() -> None:
    state = run(
        BASE,
        {"op": "Replace", "path": "displayName", "value": "Pat Lee"},
        {"op": "Replace", "path": 'emails[type eq "work"].value', "value": "pat@example.com"},
        {"op": "Replace", "path": "name.givenName", "value": "Pat"},
        {"op": "Replace", "path": "name.familyName", "value": "Lee"},
        {"op": "Replace", "path": "externalId", "value": "plee"},
        {"op": "Replace", "path": f"{ENTERPRISE_USER}:employeeNumber", "value": "4711"},
    )
    assert state == {
        **BASE,
        DISPLAY: "Pat Lee",
        WORK_EMAIL: "pat@example.com",
        GIVEN: "Pat",
        FAMILY: "Lee",
        EXTERNAL_ID: "plee",
        EMPLOYEE: "4711",
    }


def test_filtered_path_merges_into_one_new_element() -> None:
    state = run(
        BASE,
        {"op": "add", "path": 'addresses[type eq "work"].locality', "value": "Redmond"},
        {"op": "add", "path": 'addresses[type eq "work"].postalCode', "value": "98052"},
    )
    assert state == {**BASE, LOCALITY: "Redmond", POSTAL: "98052"}


def test_filtered_path_with_and_creates_the_typed_element() -> None:
    path = 'phoneNumbers[type eq "mobile" and primary eq true].value'
    assert run(BASE, {"op": "add", "path": path, "value": "1"}) == {**BASE, MOBILE: "1"}


def test_filtered_path_without_type_needs_a_target() -> None:
    refused("noTarget", BASE, {"op": "replace", "path": 'emails[value eq "x"].value', "value": "y"})


def test_filtered_path_of_unstored_type_is_ignored() -> None:
    path = 'emails[type eq "home"].value'
    assert run(BASE, {"op": "add", "path": path, "value": "h@x"}) == BASE


def test_filtered_path_whole_element() -> None:
    state = run(
        {**BASE, STREET: "1 Main"},
        {"op": "replace", "path": 'addresses[type eq "work"]', "value": {"locality": "L"}},
    )
    assert state == {**BASE, STREET: "1 Main", LOCALITY: "L"}
    state = run(state, {"op": "remove", "path": 'addresses[type eq "work"]'})
    assert state == BASE


# ---- compliant


def test_path_less_keys_are_paths() -> None:
    state = run(
        BASE,
        {
            "op": "replace",
            "value": {
                "displayName": "Pat Lee",
                "name.givenName": "Pat",
                "name.familyName": "Lee",
                f"{ENTERPRISE_USER}:employeeNumber": "4711",
                "active": False,
            },
        },
    )
    assert state == {
        **BASE,
        DISPLAY: "Pat Lee",
        GIVEN: "Pat",
        FAMILY: "Lee",
        EMPLOYEE: "4711",
        ACTIVE: False,
    }


def test_path_less_extension_object_merges() -> None:
    state = run(
        {**BASE, DEPARTMENT: "Ops"},
        {"op": "add", "value": {ENTERPRISE_USER: {"employeeNumber": "1"}}},
    )
    assert state == {**BASE, DEPARTMENT: "Ops", EMPLOYEE: "1"}


def test_schemas_inside_an_extension_object_are_skipped() -> None:
    value = {"schemas": [ENTERPRISE_USER], "employeeNumber": "1"}
    for operation in (
        {"op": "add", "path": ENTERPRISE_USER, "value": value},
        {"op": "replace", "value": {ENTERPRISE_USER: value}},
    ):
        assert run(BASE, operation) == {**BASE, EMPLOYEE: "1"}
    assert loaded({"userName": "a", ENTERPRISE_USER: value}) == {USER_NAME: "a", EMPLOYEE: "1"}


def test_path_less_remove_is_refused() -> None:
    refused("noTarget", BASE, {"op": "remove"})


def test_path_less_value_must_be_an_object() -> None:
    refused("invalidValue", BASE, {"op": "add", "value": ["title"]})


# ---- manager


@pytest.mark.parametrize(
    "value", ["abc", {"value": "abc"}, {"value": "abc", "$ref": "../Users/abc", "displayName": "B"}]
)
def test_manager_shapes(value: object) -> None:
    path = f"{ENTERPRISE_USER}:manager"
    assert run(BASE, {"op": "add", "path": path, "value": value})[MANAGER] == "abc"


@pytest.mark.parametrize(
    "operation",
    [
        {"op": "remove", "path": f"{ENTERPRISE_USER}:manager"},
        {"op": "replace", "path": f"{ENTERPRISE_USER}:manager", "value": ""},
        {"op": "replace", "path": f"{ENTERPRISE_USER}:manager", "value": {"value": ""}},
        {"op": "replace", "path": f"{ENTERPRISE_USER}:manager", "value": None},
        {"op": "replace", "path": f"{ENTERPRISE_USER}:manager.value", "value": ""},
    ],
)
def test_manager_removal(operation: dict[str, Any]) -> None:
    assert run({**BASE, MANAGER: "abc"}, operation) == BASE


def test_manager_must_be_an_id() -> None:
    path = f"{ENTERPRISE_USER}:manager"
    refused("invalidValue", BASE, {"op": "add", "path": path, "value": 5})


# ---- values


@pytest.mark.parametrize("value", ["", None])
def test_empty_and_null_clear(value: object) -> None:
    assert TITLE not in run(BASE, {"op": "replace", "path": "title", "value": value})


def test_add_on_single_valued_replaces() -> None:
    assert run(BASE, {"op": "add", "path": "title", "value": "Lead"})[TITLE] == "Lead"


def test_integers_as_numbers_or_strings() -> None:
    path = f"{POSIX_USER}:gidNumber"
    assert run(BASE, {"op": "add", "path": path, "value": "20000"})[GID_NUMBER] == 20000
    assert run(BASE, {"op": "add", "path": path, "value": 20000})[GID_NUMBER] == 20000


@pytest.mark.parametrize("value", ["abc", True, 1.5, -1, 2**31, "1e3", [1]])
def test_bad_integers(value: object) -> None:
    error = refused(
        "invalidValue", BASE, {"op": "add", "path": f"{POSIX_USER}:uidNumber", "value": value}
    )
    assert "uidNumber" in error.detail


def test_strings_refuse_objects_and_nul() -> None:
    refused("invalidValue", BASE, {"op": "add", "path": "title", "value": {"a": 1}})
    refused("invalidValue", BASE, {"op": "add", "path": "title", "value": "a\x00b"})
    refused("invalidValue", BASE, {"op": "add", "path": "title", "value": "x" * 5000})


def test_remove_by_value_filter() -> None:
    state = {**BASE, WORK_EMAIL: "x@e.com"}
    assert run(state, {"op": "remove", "path": 'emails[value eq "y@e.com"]'}) == state
    assert run(state, {"op": "remove", "path": 'emails[value eq "X@E.com"]'}) == BASE


def test_remove_of_an_absent_element_is_not_an_error() -> None:
    assert run(BASE, {"op": "remove", "path": 'emails[type eq "work"]'}) == BASE


def test_multi_valued_replace_drops_other_types() -> None:
    state = {**BASE, WORK_PHONE: "1", MOBILE: "2"}
    result = run(state, {"op": "replace", "path": "phoneNumbers", "value": [{"value": "3"}]})
    assert result == {**BASE, WORK_PHONE: "3"}
    result = run(state, {"op": "add", "path": "phoneNumbers", "value": {"value": "3"}})
    assert result == state, "an untyped element is another number, not the work one"
    typed = {"value": "3", "type": "work"}
    result = run(state, {"op": "add", "path": "phoneNumbers", "value": typed})
    assert result == {**BASE, WORK_PHONE: "3", MOBILE: "2"}


def test_multi_valued_sub_attribute_without_filter() -> None:
    assert run(BASE, {"op": "add", "path": "emails.value", "value": "a@b"})[WORK_EMAIL] == "a@b"


def test_multi_valued_elements_must_be_objects() -> None:
    refused("invalidValue", BASE, {"op": "add", "path": "emails", "value": ["a@b"]})


@pytest.mark.parametrize("op", ["ADD", "Add", "rEpLaCe"])
def test_op_case(op: str) -> None:
    assert run(BASE, {"op": op, "path": "title", "value": "X"})[TITLE] == "X"


def test_lower_case_operations_key() -> None:
    body = {"schemas": [PATCH_OP], "operations": [{"op": "remove", "path": "title"}]}
    assert TITLE not in patched(BASE, body)


def test_paths_are_case_insensitive() -> None:
    state = run(
        BASE,
        {"op": "add", "path": "NAME.givenname", "value": "P"},
        {"op": "add", "path": f"{ENTERPRISE_USER.upper()}:EMPLOYEENUMBER", "value": "7"},
    )
    assert state[GIVEN] == "P"
    assert state[EMPLOYEE] == "7"


@pytest.mark.parametrize(
    "operation",
    [
        {"op": "replace", "path": "id", "value": "x"},
        {"op": "replace", "path": "meta", "value": {}},
        {"op": "replace", "path": "meta.version", "value": "x"},
        {"op": "add", "path": "groups", "value": [{"value": "g"}]},
        {"op": "remove", "path": 'groups[value eq "g"]'},
        {"op": "replace", "value": {"id": "x"}},
    ],
)
def test_read_only(operation: dict[str, Any]) -> None:
    refused("mutability", BASE, operation)


def test_user_name_required() -> None:
    refused("mutability", BASE, {"op": "remove", "path": "userName"})
    refused("mutability", BASE, {"op": "remove", "path": CORE_USER})
    refused("invalidValue", BASE, {"op": "replace", "path": "userName", "value": ""})
    refused("invalidValue", BASE, {"op": "replace", "path": "userName", "value": None})


def test_nothing_applies_when_one_operation_fails() -> None:
    original = dict(BASE)
    refused(
        "invalidValue",
        original,
        {"op": "replace", "path": "title", "value": "Changed"},
        {"op": "replace", "path": f"{POSIX_USER}:uidNumber", "value": "abc"},
    )
    assert original == BASE


def test_unknown_attributes_are_accepted_and_not_stored() -> None:
    for path in (
        "noSuch",
        "NOSUCH.sub",
        "urn:x:y:User:title",
        'ims[type eq "aim"].value',
        'emails[type eq "home"].display',
        f"{ENTERPRISE_USER}:costCenter",
        f"{POSIX_USER}:nope",
        "urn:ietf:params:scim:schemas:extension:Acme:2.0:User:badge",
    ):
        for op in ("add", "replace", "remove"):
            assert run(BASE, {"op": op, "path": path, "value": "x"}) == BASE, (op, path)


def test_paths_that_do_not_parse_are_still_refused() -> None:
    refused("invalidPath", BASE, {"op": "add", "path": "title[", "value": "x"})
    refused("invalidPath", BASE, {"op": "add", "path": "title)(uid=*", "value": "x"})
    refused("invalidPath", BASE, {"op": "add", "path": 'title[type eq "x"]', "value": "x"})


def test_replace_through_a_filter_that_matches_nothing_needs_a_type() -> None:
    path = "roles[primary eq true].value"
    refused("noTarget", BASE, {"op": "replace", "path": path, "value": "admin"})
    assert run(BASE, {"op": "remove", "path": path}) == BASE


def test_ignored_core_sub_attributes() -> None:
    assert run(BASE, {"op": "add", "path": "name.middleName", "value": "Q"}) == BASE
    path = 'roles[primary eq "True"].value'
    assert run(BASE, {"op": "add", "path": path, "value": "admin"}) == BASE


def test_ecma2host_paths() -> None:
    state = run(
        BASE,
        {"op": "add", "path": f"{ECMA2HOST_USER}:gidNumber", "value": "5"},
        {"op": "add", "path": f"{ECMA2HOST_USER}:homeDirectory", "value": "/h"},
        {"op": "add", "path": f"{ECMA2HOST_USER}:userPassword", "value": "secret"},
    )
    assert state == {**BASE, GID_NUMBER: 5, HOME_DIRECTORY: "/h", PASSWORD: "secret"}


@pytest.mark.parametrize(
    "body",
    [
        [],
        {"Operations": [{"op": "add", "path": "title", "value": "x"}]},
        {"schemas": PATCH_OP, "Operations": [{"op": "add", "path": "title", "value": "x"}]},
        {"schemas": [PATCH_OP], "Operations": []},
        {"schemas": [PATCH_OP], "Operations": ["add"]},
        {"schemas": [PATCH_OP], "Operations": [{"op": "copy", "path": "title"}]},
        {"schemas": [PATCH_OP], "Operations": [{"path": "title", "value": "x"}]},
    ],
)
def test_malformed_messages(body: object) -> None:
    with pytest.raises(SCIMException) as caught:
        parse_patch(body)
    assert caught.value.scim_type == "invalidSyntax"


def test_add_without_value_and_non_string_path() -> None:
    with pytest.raises(SCIMException) as caught:
        parse_patch({"schemas": [PATCH_OP], "Operations": [{"op": "add", "path": "title"}]})
    assert caught.value.scim_type == "invalidValue"
    with pytest.raises(SCIMException) as caught:
        parse_patch({"schemas": [PATCH_OP], "Operations": [{"op": "add", "path": 5, "value": 1}]})
    assert caught.value.scim_type == "invalidPath"


# ---- POST / PUT bodies


def test_loaded_full_body() -> None:
    body = {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "id": "ignored",
        "meta": {"version": "ignored"},
        "userName": "Pat@Example.com",
        "active": "False",
        "name": {"givenName": "Pat", "middleName": "Q"},
        "emails": [{"type": "work", "value": "p@e.com"}, {"type": "home", "value": "h@e.com"}],
        "addresses": [{"locality": "Redmond", "postalCode": "98052"}],
        ENTERPRISE_USER: {"manager": {"value": "abc"}},
        POSIX_USER: {"uidNumber": "1000"},
    }
    expected: dict[Any, SlotValue] = {
        USER_NAME: "Pat@Example.com",
        ACTIVE: False,
        GIVEN: "Pat",
        WORK_EMAIL: "p@e.com",
        LOCALITY: "Redmond",
        POSTAL: "98052",
        MANAGER: "abc",
        UID_NUMBER: 1000,
    }
    assert loaded(body) == expected


@pytest.mark.parametrize(
    ("body", "scim_type"),
    [
        ("x", "invalidSyntax"),
        ([], "invalidSyntax"),
        ({"userName": ""}, "invalidValue"),
        ({"displayName": "x"}, "invalidValue"),
        ({"schemas": ["urn:other"], "userName": "a"}, "invalidValue"),
        ({"schemas": "x", "userName": "a"}, "invalidValue"),
        ({"userName": "a", "active": "maybe"}, "invalidValue"),
    ],
)
def test_loaded_refusals(body: object, scim_type: str) -> None:
    with pytest.raises(SCIMException) as caught:
        loaded(body)
    assert caught.value.scim_type == scim_type


def test_values_of_an_unknown_custom_extension_are_ignored() -> None:
    custom = "urn:ietf:params:scim:schemas:extension:Custom:2.0:User"
    state = patched(
        {},
        {
            "schemas": [PATCH_OP],
            "Operations": [
                {"op": "add", "path": f"{custom}:costCode", "value": "42"},
                {"op": "replace", "value": {custom: {"costCode": "43"}, "displayName": "Kept"}},
            ],
        },
    )
    assert {slot.path: value for slot, value in state.items()} == {"displayName": "Kept"}


def test_a_known_schema_with_an_unknown_attribute_is_accepted() -> None:
    operation = {
        "op": "add",
        "path": "urn:ietf:params:scim:schemas:extension:posix:2.0:User:nope",
        "value": "1",
    }
    assert patched({}, {"schemas": [PATCH_OP], "Operations": [operation]}) == {}
