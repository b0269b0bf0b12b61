"""The README documents every setting and the two set-up commands."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from pentad.core.config import ENV_PREFIX, NESTED_DELIMITER, Settings

README = (Path(__file__).parent.parent / "README.md").read_text()


def _setting_names(model: type[BaseModel], prefix: str) -> list[str]:
    names = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            names += _setting_names(annotation, prefix + name.upper() + NESTED_DELIMITER)
        else:
            names.append(prefix + name.upper())
    return names


def test_every_setting_is_documented() -> None:
    missing = [name for name in _setting_names(Settings, ENV_PREFIX) if f"`{name}`" not in README]
    assert missing == []


def test_set_up_commands_are_shown() -> None:
    assert "make run" in README
    assert "make test" in README
