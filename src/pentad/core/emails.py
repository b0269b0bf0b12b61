"""The one e-mail address rule of the platform: the API, the web pages, the CLI and the settings all use it,
so an address accepted anywhere can sign in everywhere.

The rule is email-validator's syntax check for globally deliverable addresses, without a DNS look-up: the
domain needs a dot and must not be a special-use name (`.test`, `.local`, `.localhost`, `.invalid`, …).
Addresses are stored normalised: trimmed and lower-cased.
"""

from __future__ import annotations

from typing import Annotated

from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator, StringConstraints

MAX_EMAIL_LENGTH = 320


class InvalidEmail(ValueError):
    """The address breaks the rule; the message says why, for the person who typed it."""


def normalise_email(address: str) -> str:
    return address.strip().lower()


def check_email(address: str) -> str:
    """The normalised address, or InvalidEmail."""
    candidate = normalise_email(address)
    try:
        validate_email(candidate, check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidEmail(f"{address!r} is not a usable e-mail address: {exc}") from None
    return candidate


def _validate(address: str) -> str:
    try:
        return check_email(address)
    except InvalidEmail as exc:
        # pydantic turns a ValueError into a 422 entry for the field.
        raise ValueError(str(exc).split(": ", 1)[-1]) from None


Email = Annotated[str, StringConstraints(max_length=MAX_EMAIL_LENGTH), AfterValidator(_validate)]
"""A request field holding an e-mail address under the platform's rule, normalised."""
