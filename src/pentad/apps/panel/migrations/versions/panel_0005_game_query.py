"""panel: the shipped Teeworlds template asks the game for its players (feature `query:teeworlds`)

Revision ID: panel_0005
Revises: panel_0004
Create Date: 2026-12-05 11:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "panel_0005"
down_revision: str | Sequence[str] | None = "panel_0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FEATURE = "query:teeworlds"
TEMPLATES = sa.table(
    "panel_templates",
    sa.column("id", sa.Uuid()),
    sa.column("slug"),
    sa.column("source"),
    sa.column("features", sa.JSON()),
)


def _change(*, add: bool) -> None:
    """The builtin `teeworlds` template's features with FEATURE added (or taken away); a database whose
    panel_0001 read a template file that already had it is left as it is."""
    bind = op.get_bind()
    found = bind.execute(
        sa.select(TEMPLATES.c.id, TEMPLATES.c.features).where(
            TEMPLATES.c.slug == "teeworlds", TEMPLATES.c.source == "builtin"
        )
    ).all()
    for template_id, features in found:
        current = [item for item in (features or []) if item != FEATURE]
        bind.execute(
            TEMPLATES.update()
            .where(TEMPLATES.c.id == template_id)
            .values(features=[*current, FEATURE] if add else current)
        )


def upgrade() -> None:
    _change(add=True)


def downgrade() -> None:
    _change(add=False)
