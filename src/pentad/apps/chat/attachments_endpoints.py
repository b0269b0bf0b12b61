"""Chat attachments (upload, delete before sending) and Web Push subscriptions, under /api/chat."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, File, Path, Response, UploadFile, status

from pentad.apps.chat import schemas
from pentad.apps.chat.actions.context import ChatContext
from pentad.apps.chat.attachments import AttachmentService
from pentad.apps.chat.dependencies import chat_context
from pentad.apps.chat.push import PushService, PushSubscription, PushSubscriptionDelete
from pentad.core.errors import problem_responses
from pentad.core.policy import route_policy
from pentad.core.push import PushSubscriptionCreate, VapidPublicKey

router = APIRouter(
    prefix="/api/chat",
    tags=["chat"],
    responses=problem_responses(400, 401, 403, 404, 409, 413, 415, 422, 429),
)

Chat = Annotated[ChatContext, Depends(chat_context)]


def attachment_service(chat: Chat) -> AttachmentService:
    return AttachmentService(chat)


def push_service(chat: Chat) -> PushService:
    return PushService(chat.session, chat.platform, chat.actor)


Attachments = Annotated[AttachmentService, Depends(attachment_service)]
Push = Annotated[PushService, Depends(push_service)]


@router.post(
    "/channels/{channel_id}/attachments",
    response_model=schemas.AttachmentRef,
    status_code=status.HTTP_201_CREATED,
    summary="Upload an attachment",
    description="Multipart form with one `file`. Send its id in a message's `attachment_ids` to attach it; "
    "until then only you see it. Images (PNG, JPEG, GIF, WebP) get a thumbnail and their size. At most "
    "PENTAD_CHAT__UPLOAD_MAX_BYTES (413); a file whose content contradicts its declared type is refused "
    "(415).",
)
@route_policy(body_limit="upload")
async def upload_attachment(
    channel_id: Annotated[uuid.UUID, Path(description="Channel id.")],
    file: Annotated[UploadFile, File(description="The file, with its content type and name.")],
    attachments: Attachments,
) -> schemas.AttachmentRef:
    return await attachments.upload(channel_id, file)


@router.delete(
    "/attachments/{attachment_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete an attachment you uploaded and have not sent",
)
async def delete_attachment(
    attachment_id: Annotated[uuid.UUID, Path(description="Attachment id.")], attachments: Attachments
) -> Response:
    await attachments.delete(attachment_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/push/vapid-public-key",
    response_model=VapidPublicKey,
    summary="The server's Web Push (VAPID) public key",
)
async def vapid_public_key(push: Push) -> VapidPublicKey:
    return await push.public_key()


@router.post(
    "/push/subscriptions",
    response_model=PushSubscription,
    status_code=status.HTTP_201_CREATED,
    summary="Receive Web Push notifications on this device",
    description="Body: the browser's PushSubscription JSON. New messages in your direct and group channels, "
    "and mentions, are pushed to it. Subscribing the same endpoint again answers 200. The push payload is "
    "JSON: {title, body, url, channel_id, message_id}.",
)
async def subscribe(data: PushSubscriptionCreate, push: Push, response: Response) -> PushSubscription:
    subscription, created = await push.subscribe(data)
    if not created:
        response.status_code = status.HTTP_200_OK
    return subscription


@router.delete(
    "/push/subscriptions",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Stop Web Push notifications to a device",
)
async def unsubscribe(data: PushSubscriptionDelete, push: Push) -> Response:
    await push.unsubscribe(data.endpoint)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
