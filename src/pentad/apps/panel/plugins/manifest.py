"""A plugin's manifest, `pentad-plugin.json` at the root of its package (and in the marketplace index).

    {"id": "webhook-notifier", "name": "Webhook notifier", "version": "1.0.0", "publisher": "pentad",
     "api_version": 1, "entry": "notifier:plugin", "capabilities": ["events.subscribe"],
     "description": "...", "ui": "ui/index.html"}

A manifest that is not one raises InvalidManifest (422) with one issue per problem, located by its JSON
pointer (`/capabilities/1`), as eggs do.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator

from pentad.apps.panel.plugins.capabilities import CAPABILITIES
from pentad.core.errors import AppError

MANIFEST_FILE = "pentad-plugin.json"
API_VERSION = 1

PluginId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")]
Version = Annotated[str, StringConstraints(pattern=r"^\d{1,6}\.\d{1,6}\.\d{1,6}$")]


class InvalidManifest(AppError):
    """A plugin manifest that is not one: 422 with the JSON pointers of what is wrong (`errors[].loc`)."""

    status, code = 422, "invalid_manifest"

    def __init__(self, errors: list[dict[str, Any]], **kwargs: Any) -> None:
        super().__init__("The plugin manifest is not valid.", errors=errors, **kwargs)


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: PluginId
    name: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    version: Version
    publisher: PluginId
    api_version: int = Field(API_VERSION, ge=1, le=API_VERSION)
    entry: Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_.]*(:[A-Za-z_][A-Za-z0-9_]*)?$")]
    capabilities: list[str] = Field(default_factory=list, max_length=len(CAPABILITIES))
    description: Annotated[str, StringConstraints(max_length=2000)] = ""
    ui: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_./-]*\.html$")] | None = None

    @field_validator("capabilities")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        unknown = [name for name in value if name not in CAPABILITIES]
        if unknown:
            raise ValueError(f"unknown capabilities {unknown}; known: {sorted(CAPABILITIES)}")
        if len(set(value)) != len(value):
            raise ValueError("a capability is listed twice")
        return sorted(value)

    @field_validator("ui")
    @classmethod
    def _inside(cls, value: str | None) -> str | None:
        if value is not None and ".." in value.split("/"):
            raise ValueError("the UI page must be inside the package")
        return value


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def _pointer(location: tuple[str | int, ...]) -> str:
    return "/" + "/".join(str(part).replace("~", "~0").replace("/", "~1") for part in location)


def parse_manifest(document: Any, where: tuple[str, ...] = ("body", "manifest")) -> Manifest:
    """The manifest `document` (parsed JSON); InvalidManifest (422) when it is not a manifest."""
    if not isinstance(document, dict):
        issue = {"loc": [*where], "msg": "/: a manifest is a JSON object", "type": "type_error"}
        raise InvalidManifest([issue])
    try:
        return Manifest.model_validate(document)
    except ValidationError as exc:
        raise InvalidManifest(
            [
                {
                    "loc": [*where, *error["loc"]],
                    "msg": f"{_pointer(tuple(error['loc']))}: {error['msg']}",
                    "type": error["type"],
                }
                for error in exc.errors()
            ]
        ) from None
