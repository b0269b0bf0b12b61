"""The Python SDK of Pentad streams: typed sync and async clients for the REST API and live events.

It speaks the public wire protocols only (the REST API under /api/streams, the media routes, the /ws
realtime socket) and needs nothing of the Pentad server: httpx, websockets and pydantic.
See docs/streams-sdk-python.md.
"""

from __future__ import annotations

from pentad_streams._http import (
    StreamsAPIError,
    StreamsClosedError,
    StreamsError,
    StreamsRealtimeError,
    TokenProvider,
)
from pentad_streams.client import AsyncStreamsClient, EventCallback, EventStream, ProgressCallback
from pentad_streams.models import (
    Camera,
    CameraChangedEvent,
    CameraLiveEvent,
    DirectoryEntry,
    Export,
    ExportProgressEvent,
    Grant,
    GrantEvent,
    KeyEvent,
    PlaybackToken,
    PlaybackUrls,
    Recording,
    RecordingEvent,
    Segment,
    StreamKey,
    StreamKeyCreated,
    StreamsEvent,
    Timeline,
    TimelineSpan,
    UnknownEvent,
    parse_event,
)
from pentad_streams.sync import StreamsClient, SyncEventStream

__all__ = [
    "AsyncStreamsClient",
    "Camera",
    "CameraChangedEvent",
    "CameraLiveEvent",
    "DirectoryEntry",
    "EventCallback",
    "EventStream",
    "Export",
    "ExportProgressEvent",
    "Grant",
    "GrantEvent",
    "KeyEvent",
    "PlaybackToken",
    "PlaybackUrls",
    "ProgressCallback",
    "Recording",
    "RecordingEvent",
    "Segment",
    "StreamKey",
    "StreamKeyCreated",
    "StreamsAPIError",
    "StreamsClient",
    "StreamsClosedError",
    "StreamsError",
    "StreamsEvent",
    "StreamsRealtimeError",
    "SyncEventStream",
    "Timeline",
    "TimelineSpan",
    "TokenProvider",
    "UnknownEvent",
    "parse_event",
]
