"""Playback tokens handed to players (playback.py has the token format)."""

from __future__ import annotations

import uuid

from pentad.apps.streams.actions.context import StreamsContext
from pentad.apps.streams.playback import issue_token, read_token
from pentad.apps.streams.schemas import PlaybackToken, PlaybackUrls


def media_base(streams: StreamsContext) -> str:
    return (streams.settings.public_media_url or streams.platform.base_url).rstrip("/")


async def do_issue_token(streams: StreamsContext, camera_id: uuid.UUID) -> PlaybackToken:
    """A token that plays this camera (and only it) for PLAYBACK_TOKEN_TTL seconds, for anyone who may view
    it. Public and unlisted cameras play without one; a token is handed out for them as well, so players
    need no special case."""
    camera = (await streams.access(camera_id)).camera
    token = issue_token(streams.platform.signing_secret, camera.id, streams.settings.playback_token_ttl)
    grant = read_token(streams.platform.signing_secret, token)
    assert grant is not None
    return PlaybackToken(
        token=token,
        expires_at=grant.expires_at,
        urls=PlaybackUrls(
            hls=f"{media_base(streams)}/streams/media/{camera.id}/index.m3u8?token={token}",
            whep=f"{streams.platform.base_url.rstrip('/')}/api/streams/cameras/{camera.id}/whep",
        ),
    )
