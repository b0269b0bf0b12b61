"""The streams settings refuse what the media plane could not use, with a message naming the fix."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from pentad.apps.streams.settings import StreamsSettings


def test_defaults_are_usable() -> None:
    settings = StreamsSettings()
    assert settings.ladder_rungs == [(720, 2800), (480, 1200), (360, 700)]
    assert settings.nginx.callback_networks == ["127.0.0.0/8", "::1/128"]
    assert settings.latency_probe.protocols == ["webrtc", "hls"]


def test_a_ladder_is_height_and_rate_pairs_sorted_highest_first() -> None:
    assert StreamsSettings(ladder=" 360:700 , 1080:5000,").ladder_rungs == [(1080, 5000), (360, 700)]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"ladder": "720"}, "height:kbit/s"),
        ({"ladder": "720:fast"}, "height:kbit/s"),
        ({"ladder": " , "}, "at least one rung"),
        ({"ladder": "0:700"}, "height:kbit/s"),
        ({"engine": "srs"}, "builtin"),
        ({"rtmp_port": 70_000}, "less than or equal"),
        ({"nginx": {"callback_networks": "127.0.0.1/33"}}, "127.0.0.1/33"),
        ({"webrtc": {"allowed_peer_networks": "lan"}}, "lan"),
        ({"latency_probe": {"protocols": "webrtc,rtmp"}}, "rtmp"),
        ({"playback_token_ttl": 5}, "greater than or equal"),
    ],
)
def test_bad_values_are_refused(values: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        StreamsSettings.model_validate(values)
