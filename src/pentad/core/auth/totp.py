"""TOTP (RFC 6238) two-factor authentication and single-use recovery codes."""

from __future__ import annotations

import secrets
import time

import pyotp

RECOVERY_CODE_COUNT = 10
_VALID_WINDOW = 1


def new_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(secret: str, *, account: str, issuer: str) -> str:
    return str(pyotp.TOTP(secret).provisioning_uri(name=account, issuer_name=issuer))


def qr_svg(uri: str) -> str:
    """An inline SVG QR code of the otpauth URI for authenticator apps."""
    import segno  # 0.2 s of imports, for the one page that shows a QR code

    return str(segno.make(uri, error="m").svg_inline(scale=4, dark="#111", light="#fff"))


def matching_step(secret: str, code: str, *, now: float | None = None) -> int | None:
    """The time step the code belongs to (±1 step for clock drift), or None if it matches none."""
    code = code.strip().replace(" ", "")
    if not (code.isdigit() and len(code) == 6):
        return None
    totp = pyotp.TOTP(secret)
    current = int((now if now is not None else time.time()) // totp.interval)
    for step in range(current - _VALID_WINDOW, current + _VALID_WINDOW + 1):
        if secrets.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def new_recovery_codes() -> list[str]:
    return [f"{secrets.token_hex(4)}-{secrets.token_hex(4)}" for _ in range(RECOVERY_CODE_COUNT)]


def normalise_recovery_code(code: str) -> str:
    return code.strip().lower().replace(" ", "")
