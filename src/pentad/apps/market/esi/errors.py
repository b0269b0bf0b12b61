"""What can go wrong talking to ESI, as the client reports it.

Every error says whether and when to try again (`retry_after`, seconds): a job turns that into
`RetryLater`, so waiting for ESI never spends the job's attempts. None of them carries a token or a full
URL with a query string; their text is safe to store as an ingest run's detail."""

from __future__ import annotations


class EsiError(Exception):
    """ESI could not give an answer now. `retry_after`: seconds until trying again makes sense (None:
    the request itself is wrong and retrying will not help). `code`: a short stable name for status rows."""

    code = "esi_error"

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class EsiUnavailable(EsiError):
    """ESI answered 5xx, timed out or could not be reached, on every attempt."""

    code = "esi_unavailable"


class EsiRateLimited(EsiError):
    """A route group's floating window is spent: ESI answered 429, or our own ledger says the next request
    would make it answer 429."""

    code = "esi_rate_limited"


class EsiErrorLimited(EsiError):
    """The error limit is (nearly) spent: ESI answered 420, or `X-ESI-Error-Limit-Remain` fell to the floor.
    Every request waits until `X-ESI-Error-Limit-Reset`."""

    code = "esi_error_limited"


class EsiBudgetExhausted(EsiError):
    """This lane may not spend more now: the rest of the group's window is kept for the platform's ingest,
    or this user already used their share of it."""

    code = "esi_budget_exhausted"


class EsiMalformed(EsiError):
    """ESI answered 200 with a body that is not the JSON the route promises, on every attempt."""

    code = "esi_malformed"


class EsiInconsistentPages(EsiError):
    """The pages of one paginated resource came from different generations (their `Last-Modified` or
    `X-Pages` differ) every time we restarted."""

    code = "esi_inconsistent_pages"


class EsiRequestFailed(EsiError):
    """ESI refused the request itself (4xx other than 420/429): retrying the same request will not help."""

    code = "esi_request_failed"

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message, retry_after=None)
        self.status = status
