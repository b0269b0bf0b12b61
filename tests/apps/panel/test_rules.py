"""The egg rule subset (apps/panel/rules.py): how rule strings split, what each rule accepts and refuses,
and which rules are reported as unknown or malformed."""

from __future__ import annotations

import pytest

from pentad.apps.panel.exceptions import InvalidRule
from pentad.apps.panel.rules import MAX_VALUE_LENGTH, check, parse_rules, split_rules


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("required|string|max:20", ["required", "string", "max:20"]),
        ("required|regex:/^(true|false)$/", ["required", "regex:/^(true|false)$/"]),
        ("regex:/^(a|b)$/i|max:3", ["regex:/^(a|b)$/i", "max:3"]),
        ("nullable|regex:#^[a-z|]+$#", ["nullable", "regex:#^[a-z|]+$#"]),
        ("required||string|", ["required", "string"]),
        ("", []),
    ],
)
def test_rule_strings_split_on_bars_but_not_inside_a_regex(text: str, parts: list[str]) -> None:
    assert split_rules(text) == parts


CASES = [
    ("required|string|max:5", "abc", []),
    ("required|string|max:5", "abcdef", ["must be at most 5 characters"]),
    ("required|string", "", ["is required"]),
    ("nullable|integer", "", []),
    ("string|max:3", None, []),
    ("required|integer", "12", []),
    ("required|integer", "-12", []),
    ("required|integer", "1.5", ["must be an integer"]),
    ("required|numeric|min:0.5", "0.75", []),
    ("required|numeric|min:0.5", "0.25", ["must be at least 0.5"]),
    ("required|numeric", "1e3", []),
    ("required|numeric", "ten", ["must be a number"]),
    ("required|integer|between:1024,65535", "80", ["must be between 1024 and 65535"]),
    ("required|integer|between:1024,65535", "25565", []),
    ("required|string|between:2,4", "abcde", ["must be between 2 and 4 characters"]),
    ("required|integer|size:3", "3", []),
    ("required|string|size:3", "abc", []),
    ("required|string|size:3", "3", ["must be 3 characters"]),
    ("required|boolean", "true", []),
    ("required|boolean", "0", []),
    ("required|boolean", "yes", ["must be true, false, 1 or 0"]),
    ("required|in:survival,creative", "creative", []),
    ("required|in:survival,creative", "hardcore", ["must be one of: survival, creative"]),
    ("required|not_in:root,admin", "root", ["may not be one of: root, admin"]),
    ("required|regex:/^[a-z]+$/", "abc", []),
    ("required|regex:/^[a-z]+$/", "ab1", ["is not in the expected format"]),
    ("required|regex:/^[a-z]+$/i", "ABC", []),
    ("required|regex:/^(true|false)$/", "false", []),
    ("required|not_regex:/\\s/", "no space", ["is in a format that is not allowed"]),
    ("required|alpha", "abcé", []),
    ("required|alpha", "abc1", ["may contain letters only"]),
    ("required|alpha_num", "abc1", []),
    ("required|alpha_dash", "my-world_2", []),
    ("required|alpha_dash", "my world", ["may contain letters, digits, `-` and `_` only"]),
    ("required|digits:4", "1234", []),
    ("required|digits:4", "123", ["must be 4 digits"]),
    ("required|digits_between:2,4", "12345", ["must be 2 to 4 digits"]),
    ("required|url", "https://example.com/x.jar", []),
    ("required|url", "example.com", ["must be a URL"]),
    ("required|integer|max:10", "abc", ["must be an integer"]),
    ("bail|required|integer|max:10", "abc", ["must be an integer"]),
]


@pytest.mark.parametrize(("rules", "value", "problems"), CASES)
def test_each_rule_accepts_and_refuses(rules: str, value: str | None, problems: list[str]) -> None:
    assert check(parse_rules(rules), value) == problems


def test_rules_may_come_as_a_list_as_pelican_writes_them() -> None:
    parsed = parse_rules(["required", "integer", "between:1,16"])
    assert check(parsed, "8") == []
    assert check(parsed, "17") == ["must be between 1 and 16"]


def test_a_value_longer_than_the_limit_is_refused_before_any_rule_runs() -> None:
    assert check(parse_rules("regex:/^a+$/"), "a" * (MAX_VALUE_LENGTH + 1)) == [
        f"must be at most {MAX_VALUE_LENGTH} characters"
    ]


def test_rules_outside_the_subset_are_reported_not_applied() -> None:
    parsed = parse_rules("required|string|max:20|confirmed|starts_with:a")
    assert parsed.unknown == ("confirmed", "starts_with:a")
    assert check(parsed, "zzz") == []


@pytest.mark.parametrize(
    "rules", ["max:abc", "between:1", "digits:x", "in", "regex:/[a-z/", "regex:abc", "regex:/a/q"]
)
def test_a_malformed_known_rule_is_an_error(rules: str) -> None:
    with pytest.raises(InvalidRule):
        parse_rules(rules)
