"""The panel app's errors: what a client can act on, with stable codes."""

from __future__ import annotations

from typing import Any

from pentad.core.errors import AppError, BadRequest, Conflict, NotAuthenticated, NotFound, PermissionDenied


class NodeNotFound(NotFound):
    code = "node_not_found"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("No such node.", **kwargs)


class NodeNameTaken(Conflict):
    code = "node_name_taken"

    def __init__(self, name: str, **kwargs: Any) -> None:
        super().__init__(f"A node named {name!r} exists already; pick another name.", **kwargs)


class NodeInUse(Conflict):
    code = "node_in_use"

    def __init__(self, servers: int, **kwargs: Any) -> None:
        super().__init__(
            f"The node still has {servers} server(s); delete or transfer them first.",
            servers=servers,
            **kwargs,
        )


class EnrolmentTokenInvalid(NotAuthenticated):
    code = "enrolment_token_invalid"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            "The enrolment token is unknown, used or expired; ask an admin for a new one "
            "(`pentad panel node-token NAME`).",
            **kwargs,
        )


class AllocationNotFound(NotFound):
    code = "allocation_not_found"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("No such allocation on this node.", **kwargs)


class AllocationTaken(Conflict):
    code = "allocation_taken"

    def __init__(self, message: str = "The allocation is in use by a server.", **kwargs: Any) -> None:
        super().__init__(message, **kwargs)


class AllocationExists(Conflict):
    code = "allocation_exists"

    def __init__(self, ports: list[str], **kwargs: Any) -> None:
        shown = ", ".join(ports[:10]) + (" …" if len(ports) > 10 else "")
        super().__init__(f"These allocations exist already: {shown}.", existing=ports, **kwargs)


class TemplateNotFound(NotFound):
    code = "template_not_found"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("No such template.", **kwargs)


class TemplateSlugTaken(Conflict):
    code = "template_slug_taken"

    def __init__(self, slug: str, **kwargs: Any) -> None:
        super().__init__(
            f"A template {slug!r} exists already; import with `replace` to update it, or pick another slug.",
            **kwargs,
        )


class TemplateInUse(Conflict):
    code = "template_in_use"

    def __init__(self, servers: int, **kwargs: Any) -> None:
        super().__init__(f"{servers} server(s) use this template; delete them first.", **kwargs)


class InvalidEgg(AppError):
    """An egg that is not one: 422 with the JSON pointers of what is wrong (`errors[].loc`)."""

    status, code = 422, "invalid_egg"

    def __init__(self, errors: list[dict[str, Any]], **kwargs: Any) -> None:
        super().__init__("The egg is not a valid Pterodactyl/Pelican egg export.", errors=errors, **kwargs)


class InvalidRule(BadRequest):
    code = "invalid_rule"


class ServerNotFound(NotFound):
    code = "server_not_found"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("No such server, or it is not shared with you.", **kwargs)


class ServerPermission(PermissionDenied):
    code = "server_permission"

    def __init__(
        self, message: str = "Your permissions on this server do not allow this.", **kwargs: Any
    ) -> None:
        super().__init__(message, **kwargs)


class VariablesInvalid(AppError):
    """Startup variables that break their rules: 422 with one issue per variable."""

    status, code = 422, "variables_invalid"

    def __init__(self, errors: list[dict[str, Any]], **kwargs: Any) -> None:
        super().__init__("Some startup variables are not valid.", errors=errors, **kwargs)


class InsufficientCapacity(Conflict):
    code = "insufficient_capacity"

    def __init__(self, message: str, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)


class EnrolmentTokenNotFound(NotFound):
    code = "enrolment_token_not_found"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("No such enrolment token (or it was used or has expired).", **kwargs)


class SubuserNotFound(NotFound):
    code = "subuser_not_found"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("That account is not a subuser of this server.", **kwargs)


class SubuserExists(Conflict):
    code = "subuser_exists"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("That account holds keys on this server already; change its keys instead.", **kwargs)


class ServerOwnerKeys(Conflict):
    code = "server_owner"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("The server's owner holds every key; it is not a subuser.", **kwargs)


class KeysNotHeld(PermissionDenied):
    code = "subuser_keys_not_held"

    def __init__(self, keys: list[str], **kwargs: Any) -> None:
        super().__init__(
            f"You can only give or take keys you hold yourself; you do not hold: {', '.join(keys)}.",
            keys=keys,
            **kwargs,
        )


class OwnKeys(PermissionDenied):
    code = "subuser_self"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("You cannot change your own keys on a server.", **kwargs)


class ScheduleNotFound(NotFound):
    code = "schedule_not_found"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("No such schedule on this server.", **kwargs)


class ScheduleInvalid(AppError):
    """A schedule that cannot run as asked (too frequent, a task kind not installed): 422."""

    status, code = 422, "schedule_invalid"

    def __init__(self, message: str, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)


class ServerTransferring(Conflict):
    code = "server_transferring"

    def __init__(self) -> None:
        super().__init__("The server is being moved to another node; try again once it has moved.")
