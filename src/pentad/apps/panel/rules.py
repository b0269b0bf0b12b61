"""The subset of Laravel validation rules that Pterodactyl/Pelican eggs put on startup variables
(`required|string|max:20`, `regex:/^[a-z]+$/i`, `in:a,b`, …), parsed once and checked against values.

A rule string is split on `|`, except inside a `regex:`/`not_regex:` pattern (`regex:/^(a|b)$/` stays one
rule). Pelican eggs may give the rules as a list. Rules outside the subset are reported as `unknown` (an egg
import lists them as warnings and ignores them); a known rule with a bad argument (`max:abc`, a regex
that does not compile) is an InvalidRule error. Sizes (`min`, `max`, `between`, `size`) compare the number
when the variable is `integer` or `numeric`, the length otherwise, as Laravel does. Regexes are PCRE
(`/pattern/flags`) run with Python's `re`; values are at most MAX_VALUE_LENGTH characters.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from pentad.apps.panel.exceptions import InvalidRule

MAX_VALUE_LENGTH = 4096
INTEGER = re.compile(r"^[+-]?\d+$")
NUMERIC = re.compile(r"^\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*$")
BOOLEANS = {"1", "0", "true", "false"}
FLAG_MAP = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL, "x": re.VERBOSE, "u": 0, "D": 0}
REGEX_RULES = ("regex", "not_regex")
NO_ARGUMENT = {"required", "nullable", "sometimes", "string", "integer", "numeric", "boolean", "alpha",
               "alpha_num", "alpha_dash", "url", "bail"}  # fmt: skip
WITH_ARGUMENT = {"min", "max", "between", "size", "in", "not_in", "digits", "digits_between", *REGEX_RULES}


@dataclass(frozen=True)
class Rule:
    name: str
    arguments: tuple[str, ...] = ()
    pattern: re.Pattern[str] | None = None


@dataclass(frozen=True)
class Rules:
    """A variable's parsed rules; `unknown` names the rules outside the subset (ignored)."""

    rules: tuple[Rule, ...] = ()
    unknown: tuple[str, ...] = ()
    names: frozenset[str] = field(default_factory=frozenset)

    @property
    def numeric(self) -> bool:
        return bool(self.names & {"integer", "numeric"})


def split_rules(text: str) -> list[str]:
    """`required|regex:/^(a|b)$/|max:3` → its rules, a regex pattern kept whole."""
    parts: list[str] = []
    rest = text.strip()
    while rest:
        name = rest.split(":", 1)[0] if ":" in rest.split("|", 1)[0] else ""
        if name in REGEX_RULES and len(rest) > len(name) + 1:
            delimiter = rest[len(name) + 1]
            closing = re.compile(rf"(?<!\\){re.escape(delimiter)}[a-zA-Z]*(\||$)")
            match = closing.search(rest, len(name) + 2)
            if match is not None:
                end = match.end(0) - (1 if match.group(1) == "|" else 0)
                parts.append(rest[:end])
                rest = rest[end + 1 :] if match.group(1) == "|" else ""
                continue
        head, _, rest = rest.partition("|")
        if head.strip():
            parts.append(head.strip())
    return parts


def compile_pcre(expression: str) -> re.Pattern[str]:
    """A PCRE `/pattern/flags` (any non-alphanumeric delimiter) as a Python pattern; InvalidRule if not."""
    if len(expression) < 2 or expression[0].isalnum() or expression[0] in "\\ ":
        raise InvalidRule(f"regex {expression!r}: write it between delimiters, e.g. /^[a-z]+$/")
    opening = expression[0]
    closing = {"(": ")", "[": "]", "{": "}", "<": ">"}.get(opening, opening)
    end = expression.rfind(closing)
    if end <= 0:
        raise InvalidRule(f"regex {expression!r}: no closing {closing}")
    pattern, flags_text = expression[1:end], expression[end + 1 :]
    flags = 0
    for flag in flags_text:
        if flag not in FLAG_MAP:
            raise InvalidRule(f"regex {expression!r}: unsupported flag {flag!r}")
        flags |= FLAG_MAP[flag]
    try:
        return re.compile(pattern, flags)
    except re.error as exc:
        raise InvalidRule(f"regex {expression!r}: {exc}") from None


def _integers(rule: str, arguments: Sequence[str], count: int) -> None:
    if len(arguments) != count or not all(INTEGER.match(argument) for argument in arguments):
        raise InvalidRule(f"{rule}: needs {count} integer argument(s)")


def _numbers(rule: str, arguments: Sequence[str], count: int) -> None:
    if len(arguments) != count or not all(NUMERIC.match(argument) for argument in arguments):
        raise InvalidRule(f"{rule}: needs {count} number argument(s)")


def parse_rules(source: str | Sequence[str]) -> Rules:
    """Parse an egg variable's rules (a `|` string or a list); InvalidRule for a malformed known rule."""
    texts = (
        split_rules(source) if isinstance(source, str) else [text.strip() for text in source if text.strip()]
    )
    rules: list[Rule] = []
    unknown: list[str] = []
    for text in texts:
        name, _, argument = text.partition(":")
        name = name.strip()
        if name in NO_ARGUMENT:
            rules.append(Rule(name))
        elif name in REGEX_RULES:
            rules.append(Rule(name, (argument,), compile_pcre(argument)))
        elif name in WITH_ARGUMENT:
            arguments = tuple(part.strip() for part in argument.split(",")) if argument else ()
            if name in ("min", "max", "size"):
                _numbers(name, arguments, 1)
            elif name == "between":
                _numbers(name, arguments, 2)
            elif name == "digits":
                _integers(name, arguments, 1)
            elif name == "digits_between":
                _integers(name, arguments, 2)
            elif not arguments:
                raise InvalidRule(f"{name}: needs a list of values")
            rules.append(Rule(name, arguments))
        else:
            unknown.append(text)
    return Rules(tuple(rules), tuple(unknown), frozenset(rule.name for rule in rules))


def _size(rules: Rules, value: str) -> float:
    return float(value) if rules.numeric and NUMERIC.match(value) else float(len(value))


def _unit(rules: Rules) -> str:
    return "" if rules.numeric else " characters"


def check(rules: Rules, value: str | None) -> list[str]:
    """What is wrong with `value` (None or "" is no value) under `rules`: messages, empty when valid."""
    if value is not None and len(value) > MAX_VALUE_LENGTH:
        return [f"must be at most {MAX_VALUE_LENGTH} characters"]
    empty = value is None or value == ""
    if empty:
        return ["is required"] if "required" in rules.names else []
    assert value is not None
    problems: list[str] = []
    for rule in rules.rules:
        problem = _check_one(rules, rule, value)
        if problem is not None:
            problems.append(problem)
            if "bail" in rules.names:
                break
    return problems


def _check_one(rules: Rules, rule: Rule, value: str) -> str | None:
    name, arguments = rule.name, rule.arguments
    if name == "integer" and not INTEGER.match(value):
        return "must be an integer"
    if name == "numeric" and not NUMERIC.match(value):
        return "must be a number"
    if name == "boolean" and value.lower() not in BOOLEANS:
        return "must be true, false, 1 or 0"
    if name in ("min", "max", "size", "between"):
        if rules.numeric and not NUMERIC.match(value):
            return None  # `integer` / `numeric` says what is wrong
        size = _size(rules, value)
        bounds = [float(argument) for argument in arguments]
        if name == "min" and size < bounds[0]:
            return f"must be at least {arguments[0]}{_unit(rules)}"
        if name == "max" and size > bounds[0]:
            return f"must be at most {arguments[0]}{_unit(rules)}"
        if name == "size" and size != bounds[0]:
            return f"must be {arguments[0]}{_unit(rules)}"
        if name == "between" and not bounds[0] <= size <= bounds[1]:
            return f"must be between {arguments[0]} and {arguments[1]}{_unit(rules)}"
        return None
    if name == "in" and value not in arguments:
        return f"must be one of: {', '.join(arguments)}"
    if name == "not_in" and value in arguments:
        return f"may not be one of: {', '.join(arguments)}"
    if name in REGEX_RULES:
        assert rule.pattern is not None
        found = rule.pattern.search(value) is not None
        if found != (name == "regex"):
            return (
                "is not in the expected format" if name == "regex" else "is in a format that is not allowed"
            )
        return None
    if name == "alpha" and not all(char.isalpha() for char in value):
        return "may contain letters only"
    if name == "alpha_num" and not all(char.isalnum() for char in value):
        return "may contain letters and digits only"
    if name == "alpha_dash" and not all(char.isalnum() or char in "_-" for char in value):
        return "may contain letters, digits, `-` and `_` only"
    if name == "digits" and (not value.isascii() or not value.isdigit() or len(value) != int(arguments[0])):
        return f"must be {arguments[0]} digits"
    if name == "digits_between" and (
        not value.isascii() or not value.isdigit() or not int(arguments[0]) <= len(value) <= int(arguments[1])
    ):
        return f"must be {arguments[0]} to {arguments[1]} digits"
    if name == "url":
        parts = urlsplit(value)
        if not parts.scheme or not parts.netloc:
            return "must be a URL"
    return None
