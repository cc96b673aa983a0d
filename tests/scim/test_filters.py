"""Filter text read into a tree (RFC 7644 §3.4.2.2), within its size and term bounds."""

import pytest
from scim2_models import InvalidFilterException

from app.scim.filters import count_terms, parse_filter


def parse(text: str) -> str:
    return str(parse_filter(text, 10_000, 200))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('userName eq "alice"', 'userName eq "alice"'),
        ("userName eq alice", 'userName eq "alice"'),
        ("externalId eq alice@contoso.com", 'externalId eq "alice@contoso.com"'),
        ("active eq true", "active eq true"),
    ],
)
def test_unquoted_values_of_older_clients(text: str, expected: str) -> None:
    assert parse(text) == expected


@pytest.mark.parametrize(
    "text", ["userName eq", "userName eq a b", 'userName eq "a', "userName eq (x)", "eq alice"]
)
def test_other_syntax_errors_stay_errors(text: str) -> None:
    with pytest.raises(InvalidFilterException):
        parse(text)


@pytest.mark.parametrize(
    ("text", "terms"),
    [
        ('userName eq "a"', 1),
        ('userName eq "a or b eq c" and title pr', 2),
        ('emails[type eq "work" and value co "@"] or preferredLanguage pr', 3),
        ('title eq "\\" eq "', 1),
        ("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber gt 5", 1),
    ],
)
def test_terms_are_counted_outside_values(text: str, terms: int) -> None:
    assert count_terms(text) == terms


def test_a_filter_over_the_length_bound_is_refused_with_the_limit() -> None:
    text = 'title eq "' + "x" * 200 + '"'
    with pytest.raises(InvalidFilterException, match="at most 100 are accepted"):
        parse_filter(text, 100, 200)
    assert str(parse_filter(text, 300, 200)) == text


def test_a_filter_over_the_term_bound_is_refused_with_the_limit() -> None:
    text = " or ".join(f'title eq "{i}"' for i in range(11))
    with pytest.raises(InvalidFilterException, match="11 comparisons; at most 10"):
        parse_filter(text, 10_000, 10)
    parse_filter(text, 10_000, 11)
