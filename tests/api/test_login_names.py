"""Login names and home directories through the HTTP API: every real userName provisions.

userNames arrive as Entra sends them (guests, non-ASCII, apostrophes, digits
first, long, UUIDs, the same local part in several domains); each must answer
201 with userName exactly as sent, a login that matches the pattern, and a
home no other entry holds, also after renames, re-creates and concurrent
creates.
"""

from __future__ import annotations

import re
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient
from ldap3 import SUBTREE, Connection
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import escape_rdn

from app.config import AccountSettings, PosixSettings
from app.ldap.logins import LoginClaims, digest
from app.ldap.sandbox import Sandbox
from tests.api.helpers import (
    POSIX,
    USERS,
    assert_error,
    configured_client,
    delete_quietly,
    ensure_entry,
    entry,
    new_user,
    patch,
    unique,
    user_body,
)
from tests.ldap.test_logins import readme_rows

PATTERN = re.compile(PosixSettings().login_pattern)


def stored(ldap: Connection, user_id: str) -> dict[str, list[str]]:
    found = entry(ldap, user_id)
    assert found is not None, user_id
    return found


def login_of(ldap: Connection, user_id: str) -> str:
    uids = stored(ldap, user_id)["uid"]
    assert len(uids) == 1, uids
    return uids[0]


def home_of(ldap: Connection, user_id: str) -> str:
    return stored(ldap, user_id)["homeDirectory"][0]


def hex6(user_name: str, index: int = 0) -> str:
    return digest(user_name)[index * 6 : index * 6 + 6]


def holders_of_home(ldap: Connection, base: str, home: str) -> list[str]:
    ldap.search(base, f"(homeDirectory={escape_filter_chars(home)})", SUBTREE, attributes=["1.1"])
    return [str(e["dn"]) for e in ldap.response or [] if e.get("type") == "searchResEntry"]


def rename(client: TestClient, user_id: str, user_name: str) -> dict[str, Any]:
    response = patch(client, user_id, {"op": "replace", "path": "userName", "value": user_name})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.fixture
def blockers(sandbox: Sandbox, ldap: Connection) -> Iterator[list[str]]:
    """DNs of entries made by hand to hold logins; removed afterwards."""
    made: list[str] = []
    yield made
    for dn in reversed(made):
        ldap.delete(dn)


def block(ldap: Connection, parent: str, made: list[str], login: str) -> None:
    """An entry made by hand holding ``login`` below ``parent``."""
    dn = f"uid={escape_rdn(login)},{parent}"
    assert ldap.add(dn, ["inetOrgPerson"], {"uid": login, "cn": login, "sn": login}), ldap.result
    made.append(dn)


def hand_made(ldap: Connection, sandbox: Sandbox, made: list[str]) -> str:
    """A container of hand-made entries below the base DN, outside what SCIM sees."""
    name = unique("hand")
    dn = f"ou={name},{sandbox.directory.base_dn}"
    assert ldap.add(dn, ["organizationalUnit"], {"ou": name}), ldap.result
    made.append(dn)
    return dn


# ---- the README table


@pytest.mark.parametrize(("user_name", "login", "taken"), readme_rows())
def test_each_readme_user_name_provisions(
    client: TestClient,
    ldap: Connection,
    sandbox: Sandbox,
    blockers: list[str],
    user_name: str,
    login: str,
    taken: str,
) -> None:
    created = new_user(client, user_name)
    try:
        assert created["userName"] == user_name
        assert login_of(ldap, created["id"]) == login
        assert home_of(ldap, created["id"]) == f"/home/{login}"
        fetched = client.get(f"{USERS}/{created['id']}").json()
        assert fetched["userName"] == user_name
    finally:
        delete_quietly(client, created["id"])
    block(ldap, hand_made(ldap, sandbox, blockers), blockers, login)
    second = new_user(client, user_name)
    try:
        assert login_of(ldap, second["id"]) == taken
        assert second["userName"] == user_name
    finally:
        delete_quietly(client, second["id"])


# ---- clashes


def test_the_same_local_part_in_two_domains(client: TestClient, ldap: Connection) -> None:
    local = unique("jane.")
    contoso, fabrikam = f"{local}@contoso.com", f"{local}@fabrikam.com"
    first = new_user(client, contoso)
    second = new_user(client, fabrikam)
    try:
        assert login_of(ldap, first["id"]) == local
        assert login_of(ldap, second["id"]) == f"{local}-{hex6(fabrikam)}"
        assert home_of(ldap, second["id"]) == f"/home/{local}-{hex6(fabrikam)}"
        assert second["userName"] == fabrikam
        for duplicate in (contoso, contoso.upper(), fabrikam):
            body = assert_error(client.post(USERS, json=user_body(duplicate)), 409, "uniqueness")
            assert "already exists" in body["detail"]
    finally:
        delete_quietly(client, first["id"], second["id"])


def test_a_derived_login_taken_by_a_disabled_account(sandbox: Sandbox, ldap: Connection) -> None:
    disabled = f"ou=disabled,{sandbox.directory.base_dn}"
    ensure_entry(ldap, disabled, ["top", "organizationalUnit"], ou="disabled")
    local = unique("dis.")
    with configured_client(sandbox, accounts=AccountSettings(disable=["move"])) as client:
        first = new_user(client, f"{local}@contoso.com", active=False)
        try:
            assert stored(ldap, first["id"])["dn"] == [f"uid={local},{disabled}"]
            second = new_user(client, f"{local}@fabrikam.com")
            try:
                assert login_of(ldap, second["id"]) == f"{local}-{hex6(f'{local}@fabrikam.com')}"
            finally:
                delete_quietly(client, second["id"])
        finally:
            delete_quietly(client, first["id"])


def test_an_archived_account_keeps_its_login_and_home(sandbox: Sandbox, ldap: Connection) -> None:
    archive = f"ou=archive,{sandbox.directory.base_dn}"
    ensure_entry(ldap, archive, ["top", "organizationalUnit"], ou="archive")
    user_name = f"{unique('arch.')}@contoso.com"
    login = user_name.split("@", maxsplit=1)[0]
    with configured_client(sandbox, accounts=AccountSettings(delete="archive")) as client:
        first = new_user(client, user_name)
        archived = ""
        try:
            assert client.delete(f"{USERS}/{first['id']}").status_code == 204
            archived = stored(ldap, first["id"])["dn"][0]
            again = new_user(client, user_name)
            try:
                assert login_of(ldap, again["id"]) == f"{login}-{hex6(user_name)}"
                assert home_of(ldap, again["id"]) == f"/home/{login}-{hex6(user_name)}"
            finally:
                delete_quietly(client, again["id"])
        finally:
            if archived:
                ldap.delete(archived)


def test_a_login_taken_between_the_search_and_the_add(
    client: TestClient,
    ldap: Connection,
    sandbox: Sandbox,
    blockers: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A concurrent create winning the race: the directory refuses the add, the next is tried."""
    user_name = f"{unique('race.')}@contoso.com"
    original = LoginClaims.choose
    calls: list[str] = []

    def racing(self: LoginClaims, *args: Any, **kwargs: Any) -> str:
        chosen = original(self, *args, **kwargs)
        calls.append(chosen)
        if len(calls) == 1:
            block(ldap, sandbox.directory.users_dn, blockers, chosen)
        return chosen

    monkeypatch.setattr(LoginClaims, "choose", racing)
    created = new_user(client, user_name)
    try:
        local = user_name.split("@", maxsplit=1)[0]
        assert calls == [local, f"{local}-{hex6(user_name)}"]
        assert login_of(ldap, created["id"]) == calls[1]
    finally:
        delete_quietly(client, created["id"])


def test_a_login_taken_between_the_search_and_the_rename(
    client: TestClient,
    ldap: Connection,
    sandbox: Sandbox,
    blockers: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    created = new_user(client, f"{unique('was.')}@contoso.com", displayName="Pat")
    try:
        original = LoginClaims.choose
        calls: list[str] = []

        def racing(self: LoginClaims, *args: Any, **kwargs: Any) -> str:
            chosen = original(self, *args, **kwargs)
            calls.append(chosen)
            if len(calls) == 1:
                block(ldap, sandbox.directory.users_dn, blockers, chosen)
            return chosen

        monkeypatch.setattr(LoginClaims, "choose", racing)
        new_name = f"{unique('now.')}@contoso.com"
        response = patch(
            client,
            created["id"],
            {"op": "replace", "path": "userName", "value": new_name},
            {"op": "replace", "path": "displayName", "value": "Pat Lee"},
        )
        assert response.status_code == 200, response.text
        local = new_name.split("@", maxsplit=1)[0]
        assert calls == [local, f"{local}-{hex6(new_name)}"]
        after = stored(ldap, created["id"])
        assert after["uid"] == [calls[1]]
        assert after["dn"] == [f"uid={calls[1]},{sandbox.directory.users_dn}"]
        assert after["scimUserName"] == [new_name]
        assert after["displayName"] == ["Pat Lee"]
    finally:
        delete_quietly(client, created["id"])


def test_a_login_taken_between_the_search_and_the_add_under_strict_is_409(
    sandbox: Sandbox, ldap: Connection, blockers: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    original = LoginClaims.choose

    def racing(self: LoginClaims, *args: Any, **kwargs: Any) -> str:
        chosen = original(self, *args, **kwargs)
        block(ldap, sandbox.directory.users_dn, blockers, chosen)
        return chosen

    monkeypatch.setattr(LoginClaims, "choose", racing)
    with configured_client(sandbox, posix=PosixSettings(login_policy="strict")) as client:
        user_name = unique("strict")
        body = assert_error(client.post(USERS, json=user_body(user_name)), 409, "uniqueness")
        assert user_name in body["detail"]


def test_concurrent_creates_with_colliding_logins(client: TestClient, ldap: Connection) -> None:
    local = unique("crowd.")
    user_names = [f"{local}@d{n}.example.com" for n in range(8)]
    with ThreadPoolExecutor(len(user_names)) as pool:
        responses = list(pool.map(lambda u: client.post(USERS, json=user_body(u)), user_names))
    ids = [r.json()["id"] for r in responses if r.status_code == 201]
    try:
        assert [r.status_code for r in responses] == [201] * len(user_names), [
            r.text for r in responses
        ]
        logins = [login_of(ldap, i) for i in ids]
        homes = [home_of(ldap, i) for i in ids]
        assert len(set(logins)) == len(logins)
        assert len(set(homes)) == len(homes)
        assert local in logins
        assert all(PATTERN.fullmatch(login) for login in logins)
    finally:
        delete_quietly(client, *ids)


def test_concurrent_creates_of_one_user_name(client: TestClient) -> None:
    user_name = f"{unique('same.')}@contoso.com"
    with ThreadPoolExecutor(6) as pool:
        responses = list(
            pool.map(lambda _: client.post(USERS, json=user_body(user_name)), range(6))
        )
    ids = [r.json()["id"] for r in responses if r.status_code == 201]
    try:
        assert Counter(r.status_code for r in responses) == {201: 1, 409: 5}, [
            r.text for r in responses
        ]
    finally:
        delete_quietly(client, *ids)


def test_uuid_user_names(client: TestClient, ldap: Connection) -> None:
    user_names = [str(uuid.uuid4()) for _ in range(5)]
    made = [new_user(client, user_name) for user_name in user_names]
    try:
        assert [u["userName"] for u in made] == user_names
        logins = [login_of(ldap, u["id"]) for u in made]
        assert len(set(logins)) == 5
        assert all(PATTERN.fullmatch(login) and len(login) <= 32 for login in logins)
    finally:
        delete_quietly(client, *(u["id"] for u in made))


@pytest.mark.parametrize(
    "user_name",
    [
        "o'brien,ceo+1@example.com",
        "uid=admin,dc=example,dc=org",
        "#admin@example.com",
        " leading@example.com",
        '"quoted"@example.com',
        "back\\slash@example.com",
        "star*@example.com",
        "paren(s)@example.com",
        "tab\t@example.com",
        "cr\r@example.com",
    ],
)
def test_hostile_user_names_get_a_plain_login(
    client: TestClient, ldap: Connection, sandbox: Sandbox, user_name: str
) -> None:
    created = new_user(client, user_name)
    try:
        assert created["userName"] == user_name
        login = login_of(ldap, created["id"])
        assert PATTERN.fullmatch(login), login
        assert stored(ldap, created["id"])["dn"] == [f"uid={login},{sandbox.directory.users_dn}"]
    finally:
        delete_quietly(client, created["id"])


# ---- renames


def test_a_rename_onto_a_taken_login_gets_the_next_one(
    client: TestClient, ldap: Connection
) -> None:
    holder = new_user(client, f"{unique('hold.')}@contoso.com")
    mover = new_user(client, f"{unique('move.')}@contoso.com")
    try:
        taken = login_of(ldap, holder["id"])
        home = home_of(ldap, mover["id"])
        new_name = f"{taken}@fabrikam.com"
        body = rename(client, mover["id"], new_name)
        assert body["userName"] == new_name
        assert login_of(ldap, mover["id"]) == f"{taken}-{hex6(new_name)}"
        assert home_of(ldap, mover["id"]) == home, "a rename keeps the home"
        assert login_of(ldap, holder["id"]) == taken
        assert_error(
            patch(
                client,
                mover["id"],
                {"op": "replace", "path": "userName", "value": holder["userName"].upper()},
            ),
            409,
            "uniqueness",
        )
    finally:
        delete_quietly(client, holder["id"], mover["id"])


def test_a_change_of_letter_case_keeps_the_login(client: TestClient, ldap: Connection) -> None:
    user_name = f"{unique('case.')}@contoso.com"
    created = new_user(client, user_name)
    try:
        login = login_of(ldap, created["id"])
        body = rename(client, created["id"], user_name.upper())
        assert body["userName"] == user_name.upper()
        assert login_of(ldap, created["id"]) == login
        other = f"{user_name.split('@', maxsplit=1)[0]}@fabrikam.com"
        rename(client, created["id"], other)
        assert login_of(ldap, created["id"]) == login, "its own login is free for it"
    finally:
        delete_quietly(client, created["id"])


def test_blanks_never_reach_the_login_under_a_permissive_pattern(
    sandbox: Sandbox, ldap: Connection
) -> None:
    permissive = r"^.+$"
    with configured_client(
        sandbox, posix=PosixSettings(login_policy="strict", login_pattern=permissive)
    ) as strict:
        for user_name in (f"\t{unique('s')}", f"{unique('s')}\t", f"{unique('s')}\r"):
            assert_error(strict.post(USERS, json=user_body(user_name)), 400, "invalidValue")
    with configured_client(sandbox, posix=PosixSettings(login_pattern=permissive)) as client:
        login = unique("p")
        created = new_user(client, f"{login}\t")
        try:
            assert created["userName"] == f"{login}\t"
            assert stored(ldap, created["id"])["uid"] == [login]
            other = unique("p")
            rename(client, created["id"], f"\r{other}")
            assert stored(ldap, created["id"])["uid"] == [other]
        finally:
            delete_quietly(client, created["id"])


# ---- home directories


def test_a_new_account_never_gets_a_renamed_accounts_home(
    client: TestClient, ldap: Connection, sandbox: Sandbox
) -> None:
    first = new_user(client, "Jane.Doe@contoso.com")
    made = [first["id"]]
    try:
        assert login_of(ldap, first["id"]) == "jane.doe"
        assert home_of(ldap, first["id"]) == "/home/jane.doe"
        rename(client, first["id"], "Jane.Smith@contoso.com")
        assert login_of(ldap, first["id"]) == "jane.smith"
        assert home_of(ldap, first["id"]) == "/home/jane.doe", "a rename keeps the home"

        with configured_client(sandbox, posix=PosixSettings(home_collision="refuse")) as refusing:
            response = refusing.post(USERS, json=user_body("Jane.Doe@contoso.com"))
            body = assert_error(response, 409, "uniqueness")
            assert "/home/jane.doe" in body["detail"]
            assert "jane.smith" in body["detail"]

        second = new_user(client, "Jane.Doe@contoso.com")
        made.append(second["id"])
        assert login_of(ldap, second["id"]) == "jane.doe"
        assert home_of(ldap, second["id"]) == f"/home/jane.doe-{hex6('Jane.Doe@contoso.com')}"
        assert holders_of_home(ldap, sandbox.directory.base_dn, "/home/jane.doe") == [
            stored(ldap, first["id"])["dn"][0]
        ]
    finally:
        delete_quietly(client, *made)


def test_a_sent_home_another_account_holds_is_refused(client: TestClient, ldap: Connection) -> None:
    holder = new_user(client)
    other = new_user(client)
    try:
        home = home_of(ldap, holder["id"])
        login = login_of(ldap, holder["id"])
        body = user_body(**{POSIX: {"homeDirectory": home}})
        error = assert_error(client.post(USERS, json=body), 409, "uniqueness")
        assert home in error["detail"]
        assert login in error["detail"]

        before = stored(ldap, other["id"])
        response = patch(
            client,
            other["id"],
            {"op": "replace", "path": f"{POSIX}:homeDirectory", "value": home},
            {"op": "replace", "path": "displayName", "value": "Should not land"},
        )
        assert home in assert_error(response, 409, "uniqueness")["detail"]
        assert stored(ldap, other["id"]) == before

        own = home_of(ldap, other["id"])
        moved = patch(
            client,
            other["id"],
            {"op": "replace", "path": f"{POSIX}:homeDirectory", "value": own},
        )
        assert moved.status_code == 200, moved.text
    finally:
        delete_quietly(client, holder["id"], other["id"])


def test_a_removed_home_falls_back_to_a_free_one(client: TestClient, ldap: Connection) -> None:
    first = new_user(client)
    login = login_of(ldap, first["id"])
    second = new_user(client, **{POSIX: {"uidNumber": 7_777_000 + int(uuid.uuid4().int % 999)}})
    try:
        sent = {"op": "replace", "path": f"{POSIX}:homeDirectory", "value": f"/srv/{login}"}
        assert patch(client, first["id"], sent).status_code == 200
        squat = patch(
            client,
            second["id"],
            {"op": "replace", "path": f"{POSIX}:homeDirectory", "value": f"/home/{login}"},
        )
        assert squat.status_code == 200, squat.text
        removed = patch(client, first["id"], {"op": "remove", "path": f"{POSIX}:homeDirectory"})
        assert removed.status_code == 200, removed.text
        assert home_of(ldap, first["id"]) == f"/home/{login}-{hex6(first['userName'])}"
    finally:
        delete_quietly(client, first["id"], second["id"])


def test_a_disabled_accounts_home_is_still_held(client: TestClient, ldap: Connection) -> None:
    local = unique("off.")
    first = new_user(client, f"{local}@contoso.com")
    made = [first["id"]]
    try:
        rename(client, first["id"], f"{unique('off.')}@contoso.com")
        response = patch(client, first["id"], {"op": "replace", "path": "active", "value": "False"})
        assert response.status_code == 200, response.text
        assert home_of(ldap, first["id"]) == f"/home/{local}"
        second = new_user(client, f"{local}@contoso.com")
        made.append(second["id"])
        assert login_of(ldap, second["id"]) == local
        assert home_of(ldap, second["id"]) == f"/home/{local}-{hex6(f'{local}@contoso.com')}"
    finally:
        delete_quietly(client, *made)
