"""Login policies: the derive rule as a table, start-up checks, the search for taken logins."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from ldap3 import Connection
from pydantic import ValidationError
from scim2_models import InvalidValueException, UniquenessException

from app.config import PosixSettings
from app.ldap.connection import Directory
from app.ldap.dn import child_dn
from app.ldap.logins import LoginClaims, LoginRule, assertion_value, digest, has_blank
from app.ldap.sandbox import Sandbox
from tests.ldap.scratch import Scratch

README = Path(__file__).resolve().parents[2] / "README.md"
DEFAULTS = PosixSettings()


def rule(**settings: object) -> LoginRule:
    posix = PosixSettings.model_validate(settings)
    return LoginRule(
        posix.login_pattern, posix.login_max_length, posix.login_policy, posix.login_prefix
    )


def hex6(user_name: str, index: int = 0) -> str:
    return digest(user_name)[index * 6 : index * 6 + 6]


LONG = "christopher.alexander.montgomery-smithson@contoso.com"
UUID_NAME = "3f2504e0-4f89-11d3-9a0c-0305e82c3301"

TABLE = [
    ("jane.doe@contoso.com", "jane.doe"),
    ("Jane.Doe@Contoso.com", "jane.doe"),
    ("alice_fabrikam.com#EXT#@contoso.onmicrosoft.com", "alice_fabrikam.com"),
    ("Bob.Smith_outlook.com#ext#@contoso.onmicrosoft.com", "bob.smith_outlook.com"),
    ("İlkay_x.com#EXT#@contoso.onmicrosoft.com", "ilkay_x.com"),
    ("jürgen.müller@contoso.com", "jurgen.muller"),
    ("François.Lefèvre@contoso.com", "francois.lefevre"),
    ("Łukasz.Żółw@contoso.com", "lukasz.zolw"),
    ("Дмитрий.Иванов@contoso.com", "dmitriy.ivanov"),
    ("Αλέξανδρος@contoso.com", "alexandros"),
    ("李小龍@contoso.com", "lixiaolong"),
    ("たなか@contoso.com", "tanaka"),
    ("o'neil@contoso.com", "oneil"),
    ("d\u2019angelo@contoso.com", "dangelo"),
    ("1stuser@contoso.com", "u1stuser"),
    ("007@contoso.com", "u007"),
    ("mary ann.smith@contoso.com", "mary_ann.smith"),
    ("a+tag@contoso.com", "a_tag"),
    ("a..b__c--d@contoso.com", "a..b__c--d"),
    ("-x-.y.@contoso.com", "x-y"),
    ("😀@contoso.com", "grinning"),
    ("first@second@contoso.com", "first"),
    ("first@sec#ond@contoso.com", "first"),
    ("fir#st@second@contoso.com", "fir_st_second"),
    ("host$", "host$"),
    ("plain", "plain"),
    (LONG, f"christopher.alexander.mon-{hex6(LONG)}"),
    (UUID_NAME, f"u3f2504e0-4f89-11d3-9a0c-{hex6(UUID_NAME)}"),
    ("!!!@contoso.com", f"u-{hex6('!!!@contoso.com')}"),
    ("@contoso.com", f"u-{hex6('@contoso.com')}"),
    ("\tjane\r@contoso.com", "jane"),
]


@pytest.mark.parametrize(("user_name", "login"), TABLE)
def test_derive_table(user_name: str, login: str) -> None:
    derive = rule()
    assert derive.login_for(user_name) == login
    for candidate in derive.candidates(user_name):
        assert derive.is_valid(candidate), candidate
        assert re.fullmatch(DEFAULTS.login_pattern, candidate)
        assert len(candidate) <= DEFAULTS.login_max_length


def test_derive_is_strict_whenever_strict_gives_a_login() -> None:
    derive, strict = rule(), rule(login_policy="strict")
    for user_name in ("alice", "host$", "_svc@contoso.com", "a..b@x", "Jane.Doe@contoso.com"):
        assert derive.login_for(user_name) == strict.login_for(user_name)


def test_the_same_local_part_in_two_domains() -> None:
    derive = rule()
    contoso = derive.candidates("jane.doe@contoso.com")
    fabrikam = derive.candidates("jane.doe@fabrikam.com")
    assert contoso[0] == fabrikam[0] == "jane.doe"
    assert contoso[1] == f"jane.doe-{hex6('jane.doe@contoso.com')}"
    assert fabrikam[1] == f"jane.doe-{hex6('jane.doe@fabrikam.com')}"
    assert set(contoso[1:]).isdisjoint(fabrikam[1:])


def test_candidates_are_stable_and_ignore_case() -> None:
    derive = rule()
    assert derive.candidates("Jane.Doe@Contoso.COM") == derive.candidates("jane.doe@contoso.com")
    names = derive.candidates("jane.doe@contoso.com")
    assert names == (
        "jane.doe",
        f"jane.doe-{hex6('jane.doe@contoso.com', 0)}",
        f"jane.doe-{hex6('jane.doe@contoso.com', 1)}",
        f"jane.doe-{hex6('jane.doe@contoso.com', 2)}",
    )


def test_long_names_are_cut_before_the_suffix() -> None:
    derive = rule(login_max_length=16)
    login = derive.login_for("abcdefgh.ijklmnop@contoso.com")
    assert login == f"abcdefgh-{hex6('abcdefgh.ijklmnop@contoso.com')}"
    assert len(login) == 15
    assert len(derive.candidates("abcdefgh.ijklmnop@contoso.com")) == 3


def test_uuid_user_names_differ() -> None:
    derive = rule()
    logins = {derive.login_for(str(uuid.uuid4())) for _ in range(200)}
    assert len(logins) == 200


def test_a_configured_prefix() -> None:
    assert rule(login_prefix="x_").login_for("42@contoso.com") == "x_42"


@pytest.mark.parametrize(
    "user_name", ["!!!", "@example.com", "Ünïcode@example.com", "x" * 40, "9lives", "a b"]
)
def test_strict_refuses_what_it_cannot_use(user_name: str) -> None:
    with pytest.raises(InvalidValueException, match="valid Linux login name"):
        rule(login_policy="strict").login_for(user_name)


@pytest.mark.parametrize("user_name", ["\talice", "alice\t", "alice\r", "al\x85ice", "ali\u200bce"])
def test_no_policy_gives_a_login_with_blanks(user_name: str) -> None:
    permissive = {"login_pattern": r"^.+$"}
    with pytest.raises(InvalidValueException):
        rule(login_policy="strict", **permissive).login_for(user_name)
    for derive in (rule(), rule(**permissive)):
        login = derive.login_for(user_name)
        assert not has_blank(login)
        assert login in ("alice", "al_ice")


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"login_pattern": "^[a-z]+$"}, "jane.doe"),
        ({"login_max_length": 7}, "u-"),
        ({"login_prefix": "9"}, "91stuser"),
    ],
)
def test_a_pattern_refusing_derived_logins_stops_the_start(
    settings: dict[str, object], named: str
) -> None:
    with pytest.raises(ValidationError) as error:
        PosixSettings.model_validate(settings)
    message = str(error.value)
    assert "refuses logins the derive policy makes" in message
    assert named in message
    assert "login_policy" in message


def test_strict_accepts_any_pattern() -> None:
    PosixSettings(login_policy="strict", login_pattern="^[a-z]+$", login_max_length=7)


def test_assertion_values_escape_what_a_parser_would_strip() -> None:
    assert assertion_value("a\tb ") == "a\\09b\\20"
    assert assertion_value("x*(y)") == "x\\2a\\28y\\29"


# ---- the README table


def readme_rows() -> list[tuple[str, str, str]]:
    """(userName, login, login when that is taken) of the README's login table."""
    text = README.read_text(encoding="utf-8")
    section = text.split("## Login names and home directories", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].startswith("`") and cells[1].startswith("`"):
            rows.append(tuple(c.strip("`") for c in cells))
    return rows  # type: ignore[return-value]


def readme_table(user_names: list[str]) -> str:
    """The README table the derive rule gives for ``user_names``."""
    derive = rule()
    lines = ["| userName | login | when that login is taken |", "|---|---|---|"]
    for user_name in user_names:
        first, second = derive.candidates(user_name)[:2]
        lines.append(f"| `{user_name}` | `{first}` | `{second}` |")
    return "\n".join(lines)


def test_the_readme_table_is_what_the_rule_gives() -> None:
    rows = readme_rows()
    assert len(rows) >= 10
    expected = readme_table([user_name for user_name, _, _ in rows])
    derive = rule()
    for user_name, login, taken in rows:
        assert derive.candidates(user_name)[:2] == (login, taken), f"README should be:\n{expected}"


# ---- the search for taken logins


@pytest.fixture
def scratch(sandbox: Sandbox, ldap: Connection) -> Iterator[Scratch]:
    box = Scratch(ldap, sandbox.directory.base_dn, "logins")
    for ou in ("people", "disabled", "archive"):
        assert ldap.add(child_dn("ou", ou, box.dn), ["organizationalUnit"], {"ou": ou})
    yield box
    box.remove()


def person(ldap: Connection, parent: str, login: str, user_name: str | None = None) -> str:
    dn = child_dn("uid", login, parent)
    attributes: dict[str, object] = {"uid": login, "cn": login, "sn": login}
    classes = ["inetOrgPerson"]
    if user_name:
        attributes["scimUserName"] = user_name
        classes.append("scimUser")
    assert ldap.add(dn, classes, attributes), ldap.result
    return dn


def claims(scratch: Scratch, policy: str = "derive") -> LoginClaims:
    return LoginClaims(
        rule(login_policy=policy),
        base_dn=scratch.dn,
        rdn="uid",
        user_name_attribute="scimUserName",
        visible=(f"ou=people,{scratch.dn}", f"ou=disabled,{scratch.dn}"),
        hidden=(f"ou=archive,{scratch.dn}",),
    )


def test_active_disabled_and_archived_logins_are_taken(
    scratch: Scratch, ldap: Connection, pool: Directory
) -> None:
    people, disabled, archive = (
        f"ou={ou},{scratch.dn}" for ou in ("people", "disabled", "archive")
    )
    user_name = "jane.doe@fabrikam.com"
    names = rule().candidates(user_name)
    person(ldap, people, names[0], "jane.doe@contoso.com")
    person(ldap, disabled, names[1], "someone@contoso.com")
    archived = f"uid={names[2]}+cn=x,{archive}"
    assert ldap.add(archived, ["inetOrgPerson"], {"uid": names[2], "cn": "x", "sn": "x"})
    with pool.session() as session:
        assert claims(scratch).choose(session, user_name) == names[3]
        with pytest.raises(UniquenessException, match="no free login name"):
            claims(scratch).choose(session, user_name, skip=[names[3]])
        strict = claims(scratch, "strict")
        with pytest.raises(UniquenessException, match="already exists"):
            strict.choose(session, "jane.doe@fabrikam.com")


def test_every_candidate_taken_is_a_409_naming_them(
    scratch: Scratch, ldap: Connection, pool: Directory
) -> None:
    people = f"ou=people,{scratch.dn}"
    user_name = "jane.doe@fabrikam.com"
    names = rule().candidates(user_name)
    for number, login in enumerate(names):
        person(ldap, people, login, f"other{number}@contoso.com")
    with pool.session() as session, pytest.raises(UniquenessException) as error:
        claims(scratch).choose(session, user_name)
    assert all(login in str(error.value.detail) for login in names)


def test_an_archived_login_is_free_again_when_strict(
    scratch: Scratch, ldap: Connection, pool: Directory
) -> None:
    archive = f"ou=archive,{scratch.dn}"
    assert ldap.add(f"uid=jane+cn=x,{archive}", ["inetOrgPerson"], {"cn": "x", "sn": "x"})
    with pool.session() as session:
        assert claims(scratch, "strict").choose(session, "jane@contoso.com") == "jane"
        assert claims(scratch).choose(session, "jane@contoso.com") != "jane"


def test_the_same_user_name_is_a_409_unless_archived(
    scratch: Scratch, ldap: Connection, pool: Directory
) -> None:
    people, disabled, archive = (
        f"ou={ou},{scratch.dn}" for ou in ("people", "disabled", "archive")
    )
    person(ldap, people, "jane.doe-0", "Jane.Doe@Contoso.com")
    person(ldap, disabled, "bob", None)
    person(ldap, archive, "carol", "carol@contoso.com")
    with pool.session() as session:
        box = claims(scratch)
        for user_name in ("jane.doe@contoso.com", "JANE.DOE@CONTOSO.COM", "Bob"):
            with pytest.raises(UniquenessException, match="already exists"):
                box.choose(session, user_name)
        assert box.choose(session, "carol@contoso.com") != "carol"
        mine = f"uid=jane.doe-0,{people}"
        box.check_user_name(session, "jane.doe@contoso.com", exclude_dn=mine)
        with pytest.raises(UniquenessException):
            box.check_user_name(session, "bob")


def test_the_search_finds_values_with_blanks_exactly(
    scratch: Scratch, ldap: Connection, pool: Directory
) -> None:
    people = f"ou=people,{scratch.dn}"
    person(ldap, people, "tabbed", "tab\t@contoso.com")
    with pool.session() as session:
        box = claims(scratch)
        found = box.holders(session, [], "tab\t@contoso.com")
        assert [h.user_name for h in found] == ["tab\t@contoso.com"]
        assert box.holders(session, ["tabbed\t"], "nobody") == []
        assert [h.dn for h in box.holders(session, ["tabbed"], "nobody")] == [
            f"uid=tabbed,{people}"
        ]
