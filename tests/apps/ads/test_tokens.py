"""Impression and click tokens: they round-trip, and tampering, the wrong kind, the wrong key and expiry
are refused."""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid

import pytest

from pentad.apps.ads.tokens import ExpiredToken, InvalidToken, TokenSigner, derive_key

SECRET = b"s" * 32
NOW = 1_800_000_000.0
IDS = {"impression_id": uuid.uuid4(), "creative_id": uuid.uuid4(), "zone_id": uuid.uuid4()}


def test_a_token_round_trips_compactly() -> None:
    signer = TokenSigner(SECRET)
    token = signer.sign("click", ttl=600, now=NOW, **IDS)
    found = signer.verify("click", token, now=NOW + 599)
    assert (found.impression_id, found.creative_id, found.zone_id) == tuple(IDS.values())
    assert found.expires == int(NOW) + 600
    assert len(token) == 94
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_the_key_is_derived_from_the_signing_secret_with_the_label() -> None:
    assert derive_key(SECRET, "click") == hmac.new(SECRET, b"ads.click", hashlib.sha256).digest()
    assert derive_key(SECRET, "click") != derive_key(SECRET, "impression")


def test_an_expired_token_is_refused() -> None:
    signer = TokenSigner(SECRET)
    token = signer.sign("impression", ttl=60, now=NOW, **IDS)
    with pytest.raises(ExpiredToken):
        signer.verify("impression", token, now=NOW + 61)


def test_every_flipped_bit_is_refused() -> None:
    signer = TokenSigner(SECRET)
    raw = bytearray(base64.urlsafe_b64decode(signer.sign("click", ttl=600, now=NOW, **IDS) + "=="))
    for index in range(len(raw)):
        for bit in (1, 128):
            tampered = bytearray(raw)
            tampered[index] ^= bit
            token = base64.urlsafe_b64encode(bytes(tampered)).rstrip(b"=").decode()
            with pytest.raises(InvalidToken):
                signer.verify("click", token, now=NOW)


def test_a_later_expiry_cannot_be_forged() -> None:
    signer = TokenSigner(SECRET)
    raw = bytearray(base64.urlsafe_b64decode(signer.sign("click", ttl=1, now=NOW, **IDS) + "=="))
    raw[2:6] = (int(NOW) + 10**6).to_bytes(4, "big")
    with pytest.raises(InvalidToken):
        signer.verify("click", base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode(), now=NOW)


def test_an_impression_token_is_not_a_click_token_and_another_secret_signs_nothing_of_ours() -> None:
    signer = TokenSigner(SECRET)
    impression = signer.sign("impression", ttl=600, now=NOW, **IDS)
    with pytest.raises(InvalidToken):
        signer.verify("click", impression, now=NOW)
    with pytest.raises(InvalidToken):
        TokenSigner(b"t" * 32).verify("impression", impression, now=NOW)


@pytest.mark.parametrize("garbage", ["", "abc", "!" * 94, "A" * 94, "é" * 94, "A" * 10_000, "A" * 95])
def test_garbage_is_refused_as_invalid(garbage: str) -> None:
    with pytest.raises(InvalidToken):
        TokenSigner(SECRET).verify("click", garbage, now=NOW)
