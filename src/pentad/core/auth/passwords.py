"""Password hashing with argon2id (pwdlib), and the password rules."""

from __future__ import annotations

import asyncio
from functools import cache

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

_hasher = PasswordHash((Argon2Hasher(),))

MAX_PASSWORD_LENGTH = 1024


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hasher.hash, password)


@cache
def _dummy_hash() -> str:
    """Verified against when the account does not exist, so both paths cost the same time. Made on first
    use: an argon2 hash costs a few hundred milliseconds, which every `pentad` process would pay at import."""
    return _hasher.hash("pentad-timing-equaliser")


async def verify_password(password: str, password_hash: str | None) -> bool:
    """Constant-work check; argon2 runs in a thread so it does not stall the event loop."""
    target = password_hash if password_hash else await asyncio.to_thread(_dummy_hash)
    valid = await asyncio.to_thread(_hasher.verify, password, target)
    return valid and password_hash is not None


def password_problem(password: str, *, min_length: int, email: str = "") -> str | None:
    """What is wrong with a new password, or None (ASVS 2.1: length, not composition rules)."""
    if len(password) < min_length:
        return f"Password must be at least {min_length} characters long."
    if len(password) > MAX_PASSWORD_LENGTH:
        return f"Password must be at most {MAX_PASSWORD_LENGTH} characters long."
    if email and password.lower() == email.lower():
        return "Password must not be your e-mail address."
    if len(set(password)) < 4:
        return "Password is too repetitive."
    return None
