"""Templates: import eggs (new or replacing one of the same slug), the shipped ones, list, read, delete."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from pentad.apps.panel import repository
from pentad.apps.panel.actions.context import PanelContext
from pentad.apps.panel.eggs import ParsedEgg, parse_egg
from pentad.apps.panel.exceptions import InvalidEgg, TemplateInUse, TemplateNotFound, TemplateSlugTaken
from pentad.apps.panel.models import PanelTemplate, PanelTemplateVariable
from pentad.apps.panel.schemas import TemplateImport, TemplateImported, TemplateRead
from pentad.apps.panel.views import template_read
from pentad.core import audit
from pentad.core.db.base import uuid7

TEMPLATE_RESOURCE = "panel.template"
BUILTIN_DIR = Path(__file__).parent.parent / "builtin_templates"


def builtin_eggs() -> list[ParsedEgg]:
    """The templates the panel ships (teeworlds, minetest, generic), parsed."""
    return [parse_egg(json.loads(path.read_text())) for path in sorted(BUILTIN_DIR.glob("*.json"))]


def read_egg_file(text: str) -> ParsedEgg:
    """An egg file's text, parsed; InvalidEgg when it is not JSON or not an egg."""
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise InvalidEgg(
            [{"loc": ["body", "egg"], "msg": f"/: not valid JSON ({exc})", "type": "json_invalid"}]
        ) from None
    return parse_egg(document)


async def _template(panel: PanelContext, template_id: uuid.UUID) -> PanelTemplate:
    template = await repository.get_template(panel.session, template_id)
    if template is None:
        raise TemplateNotFound()
    return template


async def get_template(panel: PanelContext, template_id: uuid.UUID) -> TemplateRead:
    template = await _template(panel, template_id)
    variables = await repository.list_template_variables(panel.session, [template.id])
    return template_read(template, variables)


async def list_templates(panel: PanelContext) -> list[TemplateRead]:
    templates = await repository.list_templates(panel.session)
    variables = await repository.list_template_variables(panel.session, [t.id for t in templates])
    return [template_read(t, [v for v in variables if v.template_id == t.id]) for t in templates]


async def do_import_template(panel: PanelContext, data: TemplateImport) -> TemplateImported:
    """Import an egg: a new template, or (with `replace`) the template of the same slug updated in place —
    its variables kept by environment name, so servers keep their values; variables the egg no longer has
    are dropped. TemplateSlugTaken (409) for an existing slug without `replace`; InvalidEgg (422)."""
    parsed = parse_egg(data.egg)
    if data.slug is not None:
        parsed.slug = data.slug
    template, created = await do_save_egg(panel, parsed, replace=data.replace, source="egg")
    variables = await repository.list_template_variables(panel.session, [template.id])
    return TemplateImported(
        template=template_read(template, variables), created=created, warnings=list(parsed.warnings)
    )


async def do_save_egg(
    panel: PanelContext, parsed: ParsedEgg, *, replace: bool, source: str
) -> tuple[PanelTemplate, bool]:
    existing = await repository.get_template_by_slug(panel.session, parsed.slug)
    if existing is not None and not replace:
        raise TemplateSlugTaken(parsed.slug)
    fields = parsed.template_fields()
    if existing is None:
        template = PanelTemplate(id=uuid7(), source=source, **fields)
        panel.session.add(template)
        await panel.session.flush()
        current: dict[str, PanelTemplateVariable] = {}
    else:
        template = existing
        for name, value in fields.items():
            setattr(template, name, value)
        current = {
            v.env_name: v for v in await repository.list_template_variables(panel.session, [template.id])
        }
    wanted = {variable.env_name for variable in parsed.variables}
    await repository.delete_template_variables(
        panel.session, [v.id for name, v in current.items() if name not in wanted]
    )
    for variable in parsed.variables:
        row = current.get(variable.env_name)
        values = {
            "name": variable.name,
            "description": variable.description,
            "default_value": variable.default_value,
            "user_viewable": variable.user_viewable,
            "user_editable": variable.user_editable,
            "rules": variable.rules,
            "sort": variable.sort,
        }
        if row is None:
            panel.session.add(
                PanelTemplateVariable(
                    id=uuid7(), template_id=template.id, env_name=variable.env_name, **values
                )
            )
        else:
            for name, value in values.items():
                setattr(row, name, value)
    await panel.session.flush()
    audit.record(
        panel.session, panel.audit_actor, "panel.template.import", resource_type=TEMPLATE_RESOURCE,
        resource_id=str(template.id), slug=template.slug, created=existing is None,
        egg_format=parsed.egg_format, warnings=len(parsed.warnings),
    )  # fmt: skip
    return template, existing is None


async def do_import_builtin_templates(panel: PanelContext) -> list[str]:
    """Import the shipped templates whose slug is free (an existing template of that slug, perhaps edited
    by an admin, is left alone); the slugs imported."""
    imported = []
    for parsed in builtin_eggs():
        if await repository.get_template_by_slug(panel.session, parsed.slug) is None:
            await do_save_egg(panel, parsed, replace=False, source="builtin")
            imported.append(parsed.slug)
    return imported


async def do_delete_template(panel: PanelContext, template_id: uuid.UUID) -> None:
    template = await _template(panel, template_id)
    servers = await repository.count_servers(panel.session, template_id=template.id)
    if servers:
        raise TemplateInUse(servers)
    await panel.session.delete(template)
    await panel.session.flush()
    audit.record(
        panel.session, panel.audit_actor, "panel.template.delete", resource_type=TEMPLATE_RESOURCE,
        resource_id=str(template_id), slug=template.slug,
    )  # fmt: skip
