"""The sweep runs when the server starts: a write left unfinished is finished without a request."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient
from ldap3 import MODIFY_REPLACE, Connection

from app.config import AccountSettings, PosixSettings
from app.ldap.pending import Pending
from app.ldap.sandbox import Sandbox
from app.main import create_app
from tests.api.helpers import CORE, USERS, by_login, ensure_entry, unique
from tests.conftest import TOKEN, make_settings

LONG_AGO = "20200101000000Z"
HEADERS = {"Authorization": f"Bearer {TOKEN}"}


def test_the_start_up_sweep_finishes_and_takes_back(sandbox: Sandbox, ldap: Connection) -> None:
    directory = sandbox.directory
    group = f"cn=sweep-login,{directory.groups_dn}"
    ensure_entry(ldap, group, ["top", "posixGroup"], cn="sweep-login", gidNumber="4712")
    settings = make_settings(directory)
    settings.accounts = AccountSettings(
        disable=["lock", "remove-group"], login_group="sweep-login", pending_grace=60
    )
    settings.posix = PosixSettings(gid_strategy="private-group")
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with TestClient(create_app(settings), headers=headers) as client:
        made = [
            client.post(USERS, json={"schemas": [CORE], "userName": unique("sw")}) for _ in "abc"
        ]
        assert [r.status_code for r in made] == [201] * 3
    logins = [r.json()["userName"] for r in made]
    entries = [by_login(ldap, login) for login in logins]
    assert all(entries)
    dns = [e["dn"][0] for e in entries if e]
    markers = [
        Pending(op="update", login=logins[0], dn=dns[0], leave=("sweep-login",), at=LONG_AGO),
        Pending(op="create", login=logins[1], dn=dns[1], private_gid=0, at=LONG_AGO),
        Pending(op="create", login=logins[2], dn=dns[2]),
    ]
    for dn, marker in zip(dns, markers, strict=True):
        assert ldap.modify(dn, {"scimPending": [(MODIFY_REPLACE, [marker.encode()])]}), ldap.result

    with TestClient(create_app(settings), headers=headers):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and by_login(ldap, logins[1]) is not None:
            time.sleep(0.1)
    finished = by_login(ldap, logins[0])
    assert finished is not None
    assert "scimPending" not in finished
    members = ldap.search(group, "(objectClass=*)", attributes=["memberUid"]) and ldap.entries
    assert members and logins[0] not in members[0].entry_attributes_as_dict.get("memberUid", [])
    assert by_login(ldap, logins[1]) is None, "a create nobody retried is taken back"
    young = by_login(ldap, logins[2])
    assert young is not None and "scimPending" in young, "a recent create waits for its retry"
    assert ldap.modify(dns[2], {"scimPending": [(MODIFY_REPLACE, [])]}), ldap.result
    with TestClient(create_app(settings), headers=headers) as client:
        for response in (made[0], made[2]):
            assert client.delete(f"{USERS}/{response.json()['id']}").status_code == 204


def test_a_round_that_cannot_reach_the_directory_is_skipped() -> None:
    with Sandbox() as crashable:
        directory = crashable.directory
        with TestClient(create_app(make_settings(directory)), headers=HEADERS) as client:
            made = client.post(USERS, json={"schemas": [CORE], "userName": unique("down")})
            assert made.status_code == 201, made.text
            sweeper = client.app.state.sweeper  # type: ignore[attr-defined]
            login = made.json()["userName"]
            conn = Connection(
                directory.url, directory.admin_dn, directory.admin_password, auto_bind=True
            )
            dn = f"uid={login},{directory.users_dn}"
            marker = Pending(op="update", login=login, dn=dn, at=LONG_AGO)
            assert conn.modify(dn, {"scimPending": [(MODIFY_REPLACE, [marker.encode()])]})
            conn.unbind()
            crashable.kill_server()
            assert sweeper.once() == 0
            crashable.start_server()
            assert sweeper.once() == 1
