"""Home directories no two entries share, against the sandbox directory."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
from ldap3 import Connection
from scim2_models import UniquenessException

from app.attributes import POSIX_USER
from app.config import UserSettings
from app.ldap.connection import Directory
from app.ldap.dn import child_dn
from app.ldap.homes import HomeClaims, HomeCollision, home_candidates
from app.ldap.logins import digest
from app.ldap.mapping import UserMapping
from app.ldap.sandbox import Sandbox
from app.ldap.users import UserDirectory
from tests.conftest import make_settings
from tests.ldap.scratch import Scratch

_numbers = itertools.count(5_100_000)


@pytest.fixture
def scratch(sandbox: Sandbox, ldap: Connection) -> Iterator[Scratch]:
    box = Scratch(ldap, sandbox.directory.base_dn, "homes")
    for ou in ("people", "disabled", "archive"):
        assert ldap.add(child_dn("ou", ou, box.dn), ["organizationalUnit"], {"ou": ou})
    yield box
    box.remove()


def account(ldap: Connection, parent: str, rdn: str, login: str, home: str) -> str:
    dn = f"{rdn},{parent}"
    attributes = {
        "uid": login,
        "cn": login,
        "uidNumber": str(next(_numbers)),
        "gidNumber": "4242",
        "homeDirectory": home,
    }
    assert ldap.add(dn, ["account", "posixAccount"], attributes), ldap.result
    return dn


def homes(scratch: Scratch, policy: HomeCollision = "suffix") -> HomeClaims:
    return HomeClaims(policy, base_dn=scratch.dn, attribute="homeDirectory", rdn="uid")


def test_candidates() -> None:
    hashed = digest("Jane.Doe@contoso.com")
    assert home_candidates("/home/jane.doe", "jane.doe@CONTOSO.com") == (
        "/home/jane.doe",
        f"/home/jane.doe-{hashed[:6]}",
        f"/home/jane.doe-{hashed[6:12]}",
        f"/home/jane.doe-{hashed[12:18]}",
    )
    assert home_candidates("/home/x/", "x")[1] == f"/home/x-{digest('x')[:6]}"


def test_a_free_home_is_kept(scratch: Scratch, pool: Directory) -> None:
    with pool.session() as session:
        assert homes(scratch).settle(session, "/home/free", "free", explicit=False) == "/home/free"
        assert homes(scratch, "refuse").settle(session, "/home/free", "f", explicit=True)


@pytest.mark.parametrize("where", ["people", "disabled", "archive"])
def test_homes_held_anywhere_are_avoided(
    scratch: Scratch, ldap: Connection, pool: Directory, where: str
) -> None:
    parent = f"ou={where},{scratch.dn}"
    rdn = "uid=jane.smith+cn=archived" if where == "archive" else "uid=jane.smith"
    account(ldap, parent, rdn, "jane.smith", "/home/jane.doe")
    user_name = "Jane.Doe@contoso.com"
    with pool.session() as session:
        chosen = homes(scratch).settle(session, "/home/jane.doe", user_name, explicit=False)
        assert chosen == f"/home/jane.doe-{digest(user_name)[:6]}"
        with pytest.raises(UniquenessException) as refused:
            homes(scratch, "refuse").settle(session, "/home/jane.doe", user_name, explicit=False)
        assert "/home/jane.doe" in str(refused.value.detail)
        assert "jane.smith" in str(refused.value.detail)
        with pytest.raises(UniquenessException) as sent:
            homes(scratch).settle(session, "/home/jane.doe", user_name, explicit=True)
        assert "homeDirectory /home/jane.doe is already the home of jane.smith" in str(
            sent.value.detail
        )


def test_the_entry_itself_does_not_collide(
    scratch: Scratch, ldap: Connection, pool: Directory
) -> None:
    dn = account(ldap, f"ou=people,{scratch.dn}", "uid=pat", "pat", "/home/pat")
    with pool.session() as session:
        settled = homes(scratch, "refuse").settle(
            session, "/home/pat", "pat", explicit=True, exclude_dn=dn
        )
        assert settled == "/home/pat"


def test_every_alternative_held_is_a_409(
    scratch: Scratch, ldap: Connection, pool: Directory
) -> None:
    people = f"ou=people,{scratch.dn}"
    for number, path in enumerate(home_candidates("/home/x", "x@contoso.com")):
        account(ldap, people, f"uid=x{number}", f"x{number}", path)
    with pool.session() as session, pytest.raises(UniquenessException, match="all held"):
        homes(scratch).settle(session, "/home/x", "x@contoso.com", explicit=False)


def test_paths_are_matched_exactly(scratch: Scratch, ldap: Connection, pool: Directory) -> None:
    people = f"ou=people,{scratch.dn}"
    account(ldap, people, "uid=up", "up", "/home/Upper")
    account(ldap, people, "uid=sp", "sp", "/home/spaced ")
    with pool.session() as session:
        held = homes(scratch).holders(session, ["/home/upper", "/home/Upper", "/home/spaced"])
        assert held == {"/home/Upper": "up", "/home/spaced": "sp"}
        assert homes(scratch).settle(session, "/home/spaced", "x", explicit=False) != (
            "/home/spaced"
        )
        assert homes(scratch).holders(session, ["/home/*"]) == {}


def test_preflight_wants_the_home_directory_indexed(sandbox: Sandbox) -> None:
    ldap = make_settings(sandbox.directory).ldap
    home = f"{POSIX_USER}:homeDirectory"
    for users, expected in (
        (UserSettings(), []),
        (
            UserSettings(mapping={home: "description"}),
            ["the directory does not index description eq: add olcDbIndex: description eq"],
        ),
        (UserSettings(mapping={home: ""}), []),
    ):
        directory = Directory(ldap)
        try:
            warnings = UserDirectory(directory, UserMapping(users, ldap)).preflight_warnings()
        finally:
            directory.close()
        assert warnings == expected
