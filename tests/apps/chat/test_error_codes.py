"""docs/chat.md's error-code table lists exactly the codes the chat app raises, with their statuses."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pentad.apps.chat
from pentad.core import errors
from pentad.core.netguard import DestinationNotAllowed

CHAT_SOURCE = Path(pentad.apps.chat.__file__).parent
CHAT_DOCS = Path(__file__).parents[3] / "docs" / "chat.md"
TABLE_ROW = re.compile(r"^\| `([a-z_]+)` \| ([0-9 /]+) \| .+ \|$")
CORE_ERRORS = {
    name: cls
    for name, cls in vars(errors).items()
    if isinstance(cls, type) and issubclass(cls, errors.AppError)
}
CORE_STATUSES = {name: cls.status for name, cls in CORE_ERRORS.items()}
SURFACED_CORE_ERRORS = (DestinationNotAllowed("a push endpoint on a private network"),)
"""Errors of core helpers chat's routes call and let through (GuardedClient.check of a push endpoint)."""


def _bases(tree: ast.Module) -> dict[str, str]:
    return {
        node.name: node.bases[0].id
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef) and node.bases and isinstance(node.bases[0], ast.Name)
    }


def raised_codes() -> dict[str, set[int]]:
    """Each `code=` of an error built in the chat app, and the default code of a core error it raises
    without one, with the statuses they come with."""
    trees = {path: ast.parse(path.read_text()) for path in sorted(CHAT_SOURCE.rglob("*.py"))}
    bases: dict[str, str] = {}
    for tree in trees.values():
        bases |= _bases(tree)

    def status_of(name: str) -> int:
        while name not in CORE_STATUSES:
            name = bases[name]
        return CORE_STATUSES[name]

    found: dict[str, set[int]] = {}
    for error in SURFACED_CORE_ERRORS:
        found.setdefault(error.code, set()).add(error.status)
    for tree in trees.values():
        enclosing = {
            child: node
            for node in ast.walk(tree)
            if isinstance(node, ast.ClassDef)
            for child in ast.walk(node)
        }
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            keywords = {keyword.arg: keyword.value for keyword in node.keywords}
            code = keywords.get("code")
            callee = node.func
            if code is None and isinstance(callee, ast.Name) and callee.id in CORE_ERRORS:
                default = CORE_ERRORS[callee.id]
                found.setdefault(default.code, set()).add(default.status)
                continue
            if not isinstance(code, ast.Constant) or not isinstance(code.value, str):
                continue
            status = keywords.get("status")
            if isinstance(status, ast.Constant) and isinstance(status.value, int):
                found.setdefault(code.value, set()).add(status.value)
                continue
            if isinstance(callee, ast.Attribute) and callee.attr == "__init__":
                cls = enclosing[node]
                assert isinstance(cls, ast.ClassDef)
                name = bases[cls.name]
            else:
                assert isinstance(callee, ast.Name), ast.unparse(node)
                name = callee.id
            found.setdefault(code.value, set()).add(status_of(name))
    return found


def documented_codes() -> dict[str, set[int]]:
    text = CHAT_DOCS.read_text()
    section = text.split("### Error codes", 1)[1].split("\n## ", 1)[0]
    rows = (TABLE_ROW.match(line) for line in section.splitlines())
    return {row[1]: {int(status) for status in row[2].split("/")} for row in rows if row}


def test_the_extractor_sees_the_errors_of_every_kind() -> None:
    codes = raised_codes()
    assert codes["slow_mode"] == {429}  # an AppError subclass of exceptions.py
    assert codes["chat_user_deactivated"] == {403, 404}  # raised directly, with two statuses
    assert codes["webhook_destination_refused"] == {400}  # a subclass in a feature module
    assert codes["payload_too_large"] == {400, 413}  # with a code of its own, and a core error's default


def test_every_error_code_of_chat_is_documented_with_its_statuses() -> None:
    assert documented_codes() == raised_codes()
