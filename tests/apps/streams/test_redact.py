"""Stream keys scrubbed from text that came from outside, before it reaches a log line."""

from __future__ import annotations

from pentad.apps.streams.media.redact import REDACTED, RedactingLog, peer_text, redact, redact_processor

KEY = "psk_" + "Ab-_9" * 8 + "xyz"


def test_keys_are_redacted_wherever_they_are() -> None:
    assert redact(f"rtmp://host/live/{KEY}?vhost=x") == f"rtmp://host/live/{REDACTED}?vhost=x"
    assert redact("psk_abc") == REDACTED  # a cut key too
    assert redact("no key here") == "no key here"
    assert peer_text(f"\x00{KEY} " + "x" * 500) == "?" + REDACTED + " " + "x" * (200 - 2 - len(REDACTED))


def test_the_log_processor_scrubs_nested_values() -> None:
    event = {"event": f"refused {KEY}", "args": [KEY, 3], "extra": {"url": f"/live/{KEY}"}, "n": 1}
    scrubbed = redact_processor(None, "info", event)
    assert KEY not in repr(scrubbed)
    assert scrubbed["n"] == 1
    assert scrubbed["args"] == [REDACTED, 3]


def test_url_credentials_are_redacted() -> None:
    line = "[concat @ 0x1] Impossible to open 'rtsp://admin:it%27s%20secret@10.0.0.5:554/stream1'"
    assert redact(line) == "[concat @ 0x1] Impossible to open 'rtsp://****@10.0.0.5:554/stream1'"
    assert redact("rtsp://10.0.0.5/x and http://u@h/") == "rtsp://10.0.0.5/x and http://****@h/"


def test_the_redacting_log_scrubs_what_children_print() -> None:
    seen: list[tuple[str, dict[str, object]]] = []

    class Log:
        def bind(self, **values: object) -> Log:
            seen.append(("bind", values))
            return self

        def info(self, event: str, **values: object) -> None:
            seen.append((event, values))

    log = RedactingLog(Log()).bind(child="rtsp:1")
    log.info("service_output", line=f"rtsp://u:pw@h/x {KEY}")
    assert seen[-1] == ("service_output", {"line": f"rtsp://****@h/x {REDACTED}"})
