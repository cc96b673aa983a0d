"""Value filters on elements, what a filter pins, and the one primary element."""

from __future__ import annotations

from scim2_models.path import Path, ValuePath

from app.scim.elements import ElementMatcher, default_element, one_primary, pinned


def value_filter(text: str) -> ValuePath:
    node = Path(text).ast
    assert isinstance(node, ValuePath)
    return node


def test_matching_is_case_insensitive_and_three_valued() -> None:
    node = value_filter('emails[type eq "WORK" and value ew "@x.org"]').val_filter
    assert ElementMatcher({"Type": "work", "value": "a@X.org"}).visit(node)
    assert not ElementMatcher({"type": "home", "value": "a@x.org"}).visit(node)


def test_pinned_values() -> None:
    assert pinned(value_filter('emails[type eq "work"]').val_filter) == {"type": "work"}
    both = value_filter('roles[type eq "x" and primary eq true]').val_filter
    assert pinned(both) == {"type": "x", "primary": True}
    assert pinned(value_filter('emails[value co "x"]').val_filter) == {}


def test_the_default_element() -> None:
    assert default_element([{"type": "home"}, {"type": "work"}]) == 1
    assert default_element([{"type": "home"}, {"value": "x"}]) == 1
    assert default_element([{"type": "home"}]) is None


def test_the_last_written_primary_wins() -> None:
    first, second = {"value": "a", "primary": True}, {"value": "b", "primary": True}
    elements = [first, second]
    one_primary(elements, [second])
    assert [e["primary"] for e in elements] == [False, True]
