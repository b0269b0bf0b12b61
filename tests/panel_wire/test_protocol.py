"""The agent <-> panel frames: round trips, and garbage refused as FrameError (never a crash)."""

from __future__ import annotations

import pytest

from pentad.panel_wire import protocol as wire


def test_every_agent_frame_round_trips() -> None:
    frames: list[wire.Frame] = [
        wire.Hello(
            node_id="n1", agent_version="0.1", servers=[wire.ServerReport(server_id="s", state="running")]
        ),
        wire.Heartbeat(at=1.5),
        wire.ok_reply(3, wire.ServerReport(server_id="s", state="offline")),
        wire.error_reply(4, "not_installed", "install first"),
        wire.ConsoleBatch(server_id="s", lines=["a", "b"], dropped=2),
        wire.Stats(server_id="s", state="running", cpu_percent=1.5, players=0),
        wire.StateChange(server_id="s", state="running", previous="starting", reason="done"),
        wire.Error(code="bad_frame", message="x"),
    ]
    for frame in frames:
        assert wire.decode_agent_frame(wire.encode(frame)) == frame


def test_calls_carry_typed_params() -> None:
    spec = wire.ServerSpec(server_id="s", startup="./run {{PORT}}", env={"PORT": "8303"})
    call = wire.Call(id=7, method="start", server_id="s", params={"spec": spec.model_dump(mode="json")})
    decoded = wire.decode_panel_frame(wire.encode(call))
    assert isinstance(decoded, wire.Call)
    params = decoded.typed_params()
    assert isinstance(params, wire.StartParams)
    assert params.spec == spec
    assert set(wire.CALL_PARAMS) == set(wire.CallMethod.__args__)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("not json", "bad_json"),
        ("[1, 2]", "bad_frame"),
        ('{"t": "nope"}', "bad_frame"),
        ('{"t": "console", "server_id": "s", "lines": "x"}', "bad_frame"),
        ('{"t": "hello"}', "bad_frame"),
        ("x" * (wire.MAX_FRAME_BYTES + 1), "frame_too_large"),
    ],
)
def test_garbage_is_a_frame_error(text: str, code: str) -> None:
    with pytest.raises(wire.FrameError) as raised:
        wire.decode_agent_frame(text)
    assert raised.value.code == code


def test_bad_call_params_are_a_frame_error() -> None:
    call = wire.Call(id=1, method="send_command", server_id="s", params={"command": ""})
    with pytest.raises(wire.FrameError) as raised:
        call.typed_params()
    assert raised.value.code == "bad_params"
    with pytest.raises(wire.FrameError):
        wire.decode_panel_frame('{"t": "call", "id": 1, "method": "format_disk"}')
