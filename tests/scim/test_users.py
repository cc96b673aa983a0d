"""Filter parsing in the SCIM user service."""

import pytest
from scim2_models import InvalidFilterException

from app.scim.users import parse_filter


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
    assert str(parse_filter(text)) == expected


@pytest.mark.parametrize(
    "text", ["userName eq", "userName eq a b", 'userName eq "a', "userName eq (x)", "eq alice"]
)
def test_other_syntax_errors_stay_errors(text: str) -> None:
    with pytest.raises(InvalidFilterException):
        parse_filter(text)
