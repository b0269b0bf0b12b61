"""Every cross-app query (AppSpec.queries) of every installed app, compared with the reviewed table below:
adding, renaming or removing one shows up in review, as the public routes do in the route-table test. A
query is a contract with apps that cannot import its models, so each must also describe its input and
output as JSON Schema (what a caller reads to build its dict)."""

from __future__ import annotations

from pentad.core.queries import QuerySpec
from tests.conftest import ALL_APPS

REVIEWED: dict[str, tuple[str, str]] = {
    "analytics.page_traffic": ("PageTrafficIn", "PageTrafficOut"),
}
"""Query name: (input model, output model)."""


def _declared() -> dict[str, QuerySpec]:
    return {query.name: query for spec in ALL_APPS for query in spec.queries}


def test_the_installed_apps_declare_exactly_the_reviewed_queries() -> None:
    declared = {name: (q.input.__name__, q.output.__name__) for name, q in _declared().items()}
    assert declared == REVIEWED


def test_every_query_describes_its_input_and_output() -> None:
    for name, query in _declared().items():
        for model in (query.input, query.output):
            schema = model.model_json_schema()
            assert schema.get("type") == "object", name
            assert query.name.partition(".")[0] in {spec.name for spec in ALL_APPS}, name
