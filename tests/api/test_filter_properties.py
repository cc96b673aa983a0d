"""Property: every SCIM filter answers what the directory's matching rules say (issue 7).

A fixed set of users holds values full of LDAP and DN metacharacters,
whitespace at either end, tabs, newlines and non-ASCII letters. Hypothesis
generates filters over them; the ids GET /Users answers must equal the ids a
Python model of the attributes' LDAP matching rules selects, and nothing may
answer 5xx or take long. The model is the directory's, not the server's: the
server must send each value unchanged and let the matching rule decide.

The model of OpenLDAP's caseIgnoreMatch / caseExactMatch and their substring
rules (RFC 4517 §4.2, RFC 4518):

- case: caseIgnore compares case-folded values; caseExact compares as is;
- insignificant space (RFC 4518 §2.6.1): only SPACE is insignificant (tabs and
  newlines are not); a stored value and an equality assertion lose their
  leading and trailing spaces and every inner run of spaces counts as one;
  a substring ``initial`` keeps its trailing space, a ``final`` its leading
  one, an ``any`` both, each with runs collapsed;
- an ``initial`` with nothing left after that is not a valid assertion: it
  evaluates to Undefined (RFC 4511 §4.5.1.7), which ``not`` keeps Undefined;
  an equality assertion with nothing left matches nothing, and an empty
  ``final`` matches every value;
- the server's own decisions: ``eq ""`` matches nobody and ``ne ""``
  everybody (no stored value is empty), and an empty ``co``/``sw``/``ew``
  every user with the attribute;
- ``and``/``or``/``not`` follow the three-valued logic of RFC 4511 §4.5.1.
"""

from __future__ import annotations

import json
import re
import time
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.api.helpers import USERS, assert_error, delete_quietly, new_user, unique

VALUES: list[str | None] = [
    'a*b(c)d\\e/f,g=h+i<j>k#l;m"n',
    " lead  and trail ",
    "EXT-1",
    "EXT-1\t",
    "\tEXT-1",
    "EXT  1",
    "ext-1",
    "\u00dcn\u00efcode \u00c9t\u00e9",
    "\u00fcn\u00efcode \u00e9t\u00e9",
    "*",
    "\\",
    "()",
    "#;+=,",
    "line\nbreak",
    None,
]
ATTRIBUTES = {"title": False, "displayName": False, "externalId": True}
"""SCIM attribute -> whether its matching rule is case exact."""
USERS_MADE = 12
ALPHABET = 'aAbBeEtTxX1- *()\\/,=+<>#;"\t\n\x00\u00dc\u00fc\u00c9\u00e9\u00ef'
SUBSTRING_OPS = ("co", "sw", "ew")
ORDERING_OPS = ("gt", "ge", "lt", "le")

Truth = bool | None


@dataclass
class Person:
    id: str
    values: dict[str, str | None]


def _fold(text: str, exact: bool) -> str:
    text = unicodedata.normalize("NFKC", text)
    return text if exact else text.casefold()


def _spaces(text: str, *, lead: bool, trail: bool) -> str:
    text = re.sub(" +", " ", text)
    if lead:
        text = text.lstrip(" ")
    if trail:
        text = text.rstrip(" ")
    return text


def _stored(value: str, exact: bool) -> str:
    return _spaces(_fold(value, exact), lead=True, trail=True)


def compare(stored: str | None, op: str, asserted: str, exact: bool) -> Truth:
    """One comparison on one entry, as the directory evaluates it."""
    if op in SUBSTRING_OPS and asserted == "":
        return stored is not None
    if op in ("eq", "ne") and asserted == "":
        return op == "ne"
    if op == "ne":
        inner = compare(stored, "eq", asserted, exact)
        return None if inner is None else not inner
    value = _fold(asserted, exact)
    if op == "eq":
        piece = _spaces(value, lead=True, trail=True)
    elif op == "sw":
        piece = _spaces(value, lead=True, trail=False)
    elif op == "ew":
        piece = _spaces(value, lead=False, trail=True)
    else:
        piece = _spaces(value, lead=False, trail=False)
    if piece == "" and op == "sw":
        return None
    if stored is None:
        return False
    have = _stored(stored, exact)
    if op == "eq":
        return have == piece
    if op == "sw":
        return have.startswith(piece)
    if op == "ew":
        return have.endswith(piece)
    return piece in have


@dataclass
class Filter:
    text: str
    node: tuple[Any, ...]


def evaluate(node: tuple[Any, ...], person: Person) -> Truth:
    kind = node[0]
    if kind == "cmp":
        _, attribute, op, value = node
        return compare(person.values[attribute], op, value, ATTRIBUTES[attribute])
    if kind == "pr":
        return person.values[node[1]] is not None
    if kind == "not":
        inner = evaluate(node[1], person)
        return None if inner is None else not inner
    results = [evaluate(child, person) for child in node[1:]]
    if kind == "and":
        if False in results:
            return False
        return None if None in results else True
    if True in results:
        return True
    return None if None in results else False


def _literal(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def _pieces() -> list[str]:
    pieces = {""}
    for value in VALUES:
        if value:
            for size in (1, 2, 3, len(value)):
                pieces.add(value[:size])
                pieces.add(value[-size:])
            pieces.add(value[1:-1])
    return sorted(pieces)


values = st.one_of(st.sampled_from(_pieces()), st.text(alphabet=ALPHABET, max_size=6))


@st.composite
def comparisons(draw: st.DrawFn) -> Filter:
    attribute = draw(st.sampled_from(sorted(ATTRIBUTES)))
    if draw(st.integers(0, 9)) == 0:
        return Filter(f"{attribute} pr", ("pr", attribute))
    rare = draw(st.integers(0, 29)) == 0
    op = draw(st.sampled_from(ORDERING_OPS if rare else ("eq", "ne", *SUBSTRING_OPS)))
    value = draw(values)
    return Filter(f"{attribute} {op} {_literal(value)}", ("cmp", attribute, op, value))


def _combine(children: st.SearchStrategy[Filter]) -> st.SearchStrategy[Filter]:
    def join(op: str) -> st.SearchStrategy[Filter]:
        return st.lists(children, min_size=2, max_size=3).map(
            lambda parts: Filter(
                f" {op} ".join(f"({p.text})" for p in parts), (op, *(p.node for p in parts))
            )
        )

    negated = children.map(lambda f: Filter(f"not ({f.text})", ("not", f.node)))
    return st.one_of(join("and"), join("or"), negated)


filters = st.recursive(comparisons(), _combine, max_leaves=5)


def _ordering(node: tuple[Any, ...]) -> bool:
    if node[0] == "cmp":
        return bool(node[2] in ORDERING_OPS)
    if node[0] == "pr":
        return False
    return any(_ordering(child) for child in node[1:])


@pytest.fixture(scope="module")
def people(client: TestClient) -> Iterator[tuple[str, list[Person]]]:
    tag = unique("prop")
    made: list[Person] = []
    try:
        for i in range(USERS_MADE):
            chosen = {
                "title": VALUES[i % len(VALUES)],
                "displayName": VALUES[(i * 3 + 1) % len(VALUES)],
                "externalId": VALUES[(i * 5 + 2) % len(VALUES)],
            }
            body: dict[str, Any] = {k: v for k, v in chosen.items() if v is not None}
            created = new_user(client, name={"familyName": tag}, **body)
            for attribute, value in chosen.items():
                assert created.get(attribute) == value, (attribute, created)
            made.append(Person(created["id"], chosen))
        yield tag, made
    finally:
        delete_quietly(client, *(p.id for p in made))


@settings(
    max_examples=200,
    deadline=timedelta(seconds=2),
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(generated=filters)
def test_filters_answer_what_the_matching_rules_select(
    client: TestClient, people: tuple[str, list[Person]], generated: Filter
) -> None:
    tag, persons = people
    text = f'({generated.text}) and name.familyName eq "{tag}"'
    started = time.monotonic()
    response = client.get(USERS, params={"filter": text, "count": 100, "attributes": "id"})
    assert time.monotonic() - started < 1.0, text
    assert response.status_code < 500, (text, response.text)
    if _ordering(generated.node):
        assert_error(response, 400, "invalidFilter")
        return
    assert response.status_code == 200, (text, response.text)
    answered = {r["id"] for r in response.json()["Resources"]}
    expected = {p.id for p in persons if evaluate(generated.node, p) is True}
    assert answered == expected, (
        text,
        {p.id: p.values for p in persons if p.id in answered ^ expected},
    )
