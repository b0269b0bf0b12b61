"""API views of the panel's rows: nodes, enrolment tokens, templates, servers."""

from __future__ import annotations

from collections.abc import Sequence

from pentad.apps.panel.models import (
    PanelAllocation,
    PanelEnrolmentToken,
    PanelNode,
    PanelServer,
    PanelTemplate,
    PanelTemplateVariable,
)
from pentad.apps.panel.schemas import (
    AllocationRead,
    EnrolmentTokenRead,
    NodeRead,
    ServerRead,
    TemplateRead,
    TemplateVariableRead,
)
from pentad.core.crypto import column_context


def variable_context(row_id: object) -> str:
    return column_context("panel_server_variables", "value_enc", row_id)


def node_read(node: PanelNode, usage: tuple[int, int, int, int]) -> NodeRead:
    servers, memory, disk, cpu = usage
    return NodeRead(
        id=node.id,
        name=node.name,
        description=node.description,
        public_host=node.public_host,
        status=node.status,
        draining=node.draining,
        last_seen_at=node.last_seen_at,
        enrolled_at=node.enrolled_at,
        memory_mb=node.memory_mb,
        disk_mb=node.disk_mb,
        cpu_percent=node.cpu_percent,
        overalloc_percent=node.overalloc_percent,
        facts=node.facts,
        servers=servers,
        allocated_memory_mb=memory,
        allocated_disk_mb=disk,
        allocated_cpu_percent=cpu,
        created_at=node.created_at,
    )


def enrolment_token_read(token: PanelEnrolmentToken) -> EnrolmentTokenRead:
    return EnrolmentTokenRead(
        id=token.id,
        hint=token.hint,
        node_name=token.node_name,
        node_id=token.node_id,
        expires_at=token.expires_at,
        created_at=token.created_at,
    )


def template_read(template: PanelTemplate, variables: Sequence[PanelTemplateVariable]) -> TemplateRead:
    return TemplateRead(
        id=template.id,
        slug=template.slug,
        name=template.name,
        description=template.description,
        author=template.author,
        source=template.source,
        egg_uuid=template.egg_uuid,
        egg_format=template.egg_format,
        startup=template.startup,
        stop=template.stop,
        done=template.done,
        config_files=template.config_files,
        install_script=template.install_script,
        install_entrypoint=template.install_entrypoint,
        file_denylist=template.file_denylist,
        console_input=template.console_input,
        docker_images=template.docker_images,
        features=template.features,
        warnings=template.warnings,
        variables=[TemplateVariableRead.model_validate(variable) for variable in variables],
        created_at=template.created_at,
        updated_at=template.updated_at,
    )


def server_read(
    server: PanelServer, allocations: Sequence[PanelAllocation], permissions: Sequence[str]
) -> ServerRead:
    views = [AllocationRead.model_validate(allocation) for allocation in allocations]
    primary = next((view for view in views if view.id == server.allocation_id), None)
    return ServerRead(
        id=server.id,
        short_id=server.short_id,
        name=server.name,
        description=server.description,
        owner_id=server.owner_id,
        node_id=server.node_id,
        template_id=server.template_id,
        status=server.status,
        state=server.state,
        state_reason=server.state_reason,
        memory_mb=server.memory_mb,
        disk_mb=server.disk_mb,
        cpu_percent=server.cpu_percent,
        restart_on_crash=server.restart_on_crash,
        allocation=primary,
        allocations=views,
        permissions=list(permissions),
        installed_at=server.installed_at,
        suspended_at=server.suspended_at,
        created_at=server.created_at,
    )
