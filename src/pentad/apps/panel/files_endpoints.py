"""The file manager of a server (/api/panel/servers/{id}/files/…). Thin: one action call each
(actions/files.py decides, the node's agent does the work).

Every route needs `panel.use`, then the server's own key: listing `file.read`; reading and downloading
`file.read-content`; uploading and making folders `file.create`; writing and renaming/moving
`file.update`; deleting `file.delete`; archiving and extracting `file.archive`. A path outside the server's
folder is 400 `path_refused`; a write past the server's disk limit 409 `disk_quota` (nothing written); an
unsafe archive 400 `archive_refused`; an agent that is not connected 409 `node_offline`.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.panel.actions import files
from pentad.apps.panel.actions.context import PanelContext
from pentad.apps.panel.permissions import PANEL_USE
from pentad.core.auth.dependencies import db_session, request_actor, require
from pentad.core.auth.principal import Principal
from pentad.core.errors import problem_responses
from pentad.core.platform import get_platform
from pentad.core.policy import route_policy
from pentad.core.storage.base import content_disposition

router = APIRouter(
    prefix="/api/panel/servers",
    tags=["panel"],
    responses=problem_responses(400, 401, 403, 404, 409, 413, 422, 429, 504),
)

ServerId = Annotated[uuid.UUID, Path(description="The server's id.")]
Session = Annotated[AsyncSession, Depends(db_session)]
Member = Annotated[Principal, Depends(require(PANEL_USE))]
FolderPath = Annotated[str, Query(max_length=4096, description="a folder, relative to the server's folder")]
FilePath = Annotated[
    str, Query(min_length=1, max_length=4096, description="a file, relative to the server's folder")
]
RAW_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }
}


class RenameRequest(BaseModel):
    source: str = Field(min_length=1, max_length=4096, alias="from", description="the file or folder")
    destination: str = Field(min_length=1, max_length=4096, alias="to", description="its new path")


class DeleteRequest(BaseModel):
    paths: list[Annotated[str, Field(min_length=1, max_length=4096)]] = Field(min_length=1, max_length=1000)


class FolderRequest(BaseModel):
    path: str = Field(min_length=1, max_length=4096)


class ArchiveRequest(BaseModel):
    folder: str = Field("", max_length=4096, description="where the archive is made; names are inside it")
    names: list[Annotated[str, Field(min_length=1, max_length=4096)]] = Field(
        default_factory=list, max_length=1000, description="what to archive (empty: the whole folder)"
    )
    format: Literal["tar.gz", "tar", "zip"] = "tar.gz"


class ExtractRequest(BaseModel):
    path: str = Field(min_length=1, max_length=4096, description="the archive (tar, tar.gz or zip)")
    folder: str = Field("", max_length=4096, description="where to extract (merged with what is there)")


def _context(request: Request, session: AsyncSession, principal: Principal) -> PanelContext:
    return PanelContext(session, get_platform(request), principal, request_actor(request, principal))


@router.get("/{server_id}/files", summary="List a folder of the server (file.read)")
async def list_files(
    server_id: ServerId, request: Request, session: Session, principal: Member, path: FolderPath = ""
) -> files.FileListing:
    return await files.list_files(_context(request, session, principal), server_id, path)


@router.get(
    "/{server_id}/files/content",
    summary="A file's content, for the editor (file.read-content)",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}, "description": "The file's bytes."}},
)
async def read_file(
    server_id: ServerId, request: Request, session: Session, principal: Member, path: FilePath
) -> Response:
    data = await files.read_file(_context(request, session, principal), server_id, path)
    return Response(data, media_type="application/octet-stream")


@router.put(
    "/{server_id}/files/content",
    status_code=200,
    summary="Write a file (the body is its new content; file.update)",
    openapi_extra=RAW_BODY,
)
@route_policy(body_limit="upload")
async def write_file(
    server_id: ServerId, request: Request, session: Session, principal: Member, path: FilePath
) -> files.Uploaded:
    return await files.write_file(_context(request, session, principal), server_id, path, request.stream())


@router.post(
    "/{server_id}/files/upload",
    status_code=201,
    summary="Upload a file (the body is the file, streamed to the node; file.create)",
    openapi_extra=RAW_BODY,
)
@route_policy(body_limit="upload")
async def upload_file(
    server_id: ServerId, request: Request, session: Session, principal: Member, path: FilePath
) -> files.Uploaded:
    return await files.upload_file(_context(request, session, principal), server_id, path, request.stream())


@router.get(
    "/{server_id}/files/download",
    summary="Download a file, streamed from the node (file.read-content)",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/octet-stream": {}}, "description": "The file."}},
)
async def download_file(
    server_id: ServerId, request: Request, session: Session, principal: Member, path: FilePath
) -> StreamingResponse:
    name, size, stream = await files.download_file(_context(request, session, principal), server_id, path)
    return StreamingResponse(
        stream,
        media_type="application/octet-stream",
        headers={"Content-Length": str(size), "Content-Disposition": content_disposition(name)},
    )


@router.post(
    "/{server_id}/files/rename", status_code=204, summary="Rename or move a file or folder (file.update)"
)
async def rename_file(
    server_id: ServerId, data: RenameRequest, request: Request, session: Session, principal: Member
) -> Response:
    context = _context(request, session, principal)
    await files.rename_file(context, server_id, data.source, data.destination)
    return Response(status_code=204)


@router.post("/{server_id}/files/delete", status_code=204, summary="Delete files and folders (file.delete)")
async def delete_files(
    server_id: ServerId, data: DeleteRequest, request: Request, session: Session, principal: Member
) -> Response:
    await files.delete_files(_context(request, session, principal), server_id, data.paths)
    return Response(status_code=204)


@router.post("/{server_id}/files/folder", status_code=204, summary="Make a folder (file.create)")
async def make_folder(
    server_id: ServerId, data: FolderRequest, request: Request, session: Session, principal: Member
) -> Response:
    await files.make_folder(_context(request, session, principal), server_id, data.path)
    return Response(status_code=204)


@router.post(
    "/{server_id}/files/archive", status_code=201, summary="Archive files into a new archive (file.archive)"
)
async def make_archive(
    server_id: ServerId, data: ArchiveRequest, request: Request, session: Session, principal: Member
) -> files.ArchiveMade:
    context = _context(request, session, principal)
    return await files.make_archive(context, server_id, data.folder, data.names, data.format)


@router.post("/{server_id}/files/extract", summary="Extract an archive into a folder (file.archive)")
async def extract_archive(
    server_id: ServerId, data: ExtractRequest, request: Request, session: Session, principal: Member
) -> files.Extracted:
    context = _context(request, session, principal)
    return await files.extract_archive(context, server_id, data.path, data.folder)
