"""The streams app's errors: what a client can act on, with stable codes."""

from __future__ import annotations

from typing import Any

from pentad.core.errors import BadRequest, Conflict, NotAuthenticated, NotFound, PermissionDenied


class CameraNotFound(NotFound):
    code = "camera_not_found"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("No such camera, or it is not shared with you.", **kwargs)


class CameraPermission(PermissionDenied):
    code = "camera_permission"

    def __init__(self, message: str = "Your role on this camera does not allow this.", **kwargs: Any) -> None:
        super().__init__(message, **kwargs)


class KeyNotFound(NotFound):
    code = "stream_key_not_found"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("No such stream key on this camera.", **kwargs)


class GrantNotFound(NotFound):
    code = "camera_grant_not_found"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("This account holds no role on this camera.", **kwargs)


class RtspTargetNotAllowed(BadRequest):
    code = "rtsp_target_not_allowed"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            "Only streams admins may add cameras on private, loopback or link-local addresses.", **kwargs
        )


class PlaybackTokenRequired(NotAuthenticated):
    code = "playback_token_required"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("This camera is private: play it with a playback token.", **kwargs)


class PlaybackTokenInvalid(NotAuthenticated):
    code = "playback_token_invalid"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("The playback token is not valid or has expired; ask for a new one.", **kwargs)


class PlaybackTokenScope(PermissionDenied):
    code = "playback_token_scope"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("This playback token is for another camera.", **kwargs)


class RangeInvalid(BadRequest):
    code = "range_invalid"

    def __init__(self, message: str, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)


class RangeEmpty(NotFound):
    code = "range_empty"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("Nothing was recorded in this range.", **kwargs)


class SegmentNotFound(NotFound):
    code = "segment_not_found"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("No such recorded segment of this camera.", **kwargs)


class ExportNotFound(NotFound):
    code = "export_not_found"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("No such export, or it is not yours to see.", **kwargs)


class ExportNotReady(Conflict):
    code = "export_not_ready"

    def __init__(self, status: str, **kwargs: Any) -> None:
        super().__init__(f"The export is {status}, there is no file to download.", **kwargs)
