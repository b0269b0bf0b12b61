"""`pentad streams …` run as an operator runs it, against a fresh SQLite database."""

from __future__ import annotations

import re

from tests.test_cli import env
from tests.test_cli import pentad_here as pentad

__all__ = ["env"]

PASSWORD = "a long operator password"


def test_cameras_and_keys_from_the_command_line(env: dict[str, str]) -> None:
    pentad(env, "migrate")
    pentad(env, "user", "create", "--email", "owner@example.com", "--password", PASSWORD)

    created = pentad(
        env,
        "streams",
        "cameras",
        "create",
        "Front door",
        "--owner",
        "owner@example.com",
        "--visibility",
        "public",
    ).stdout
    found = re.search(
        r"Created camera 'Front door' \(([0-9a-f-]{36})\), owned by owner@example.com\.", created
    )
    assert found, created
    camera = found.group(1)
    (listed,) = pentad(env, "streams", "cameras", "list").stdout.splitlines()
    assert listed == f"{camera}\tpublic\trtmp\toffline\tFront door"

    made = pentad(env, "streams", "keys", "create", camera, "--name", "obs").stdout
    key = re.search(r"key:\s+(psk_[A-Za-z0-9_-]{43})$", made, re.MULTILINE)
    server = re.search(r"server:\s+(\S+)$", made, re.MULTILINE)
    assert key, made
    assert server, made
    assert server.group(1) == "rtmp://127.0.0.1:1935/live"
    key_id = re.search(r"Stream key ([0-9a-f-]{36})", made)
    assert key_id, made
    keys = pentad(env, "streams", "keys", "list", camera).stdout
    assert key.group(1) not in keys
    assert key.group(1)[4:] not in keys
    assert re.fullmatch(rf"{key_id.group(1)}\t…{key.group(1)[-4:]}\t[0-9 :-]+\tactive\tobs\n", keys), keys

    assert "Revoked key" in pentad(env, "streams", "keys", "revoke", camera, key_id.group(1)).stdout
    assert "\trevoked " in pentad(env, "streams", "keys", "list", camera).stdout

    for args, message in [
        (("cameras", "create", "X", "--owner", "nobody@example.com"), "user"),
        (("cameras", "create", " ", "--owner", "owner@example.com"), "name"),
        (("cameras", "delete", "not-an-id"), "not an id"),
        (("keys", "create", "00000000-0000-0000-0000-000000000000"), "No such camera"),
        (("keys", "revoke", camera, "00000000-0000-0000-0000-000000000000"), "No such stream key"),
    ]:
        refused = pentad(env, "streams", *args, check=False)
        assert refused.returncode != 0, args
        assert message in refused.stderr, (args, refused.stderr)

    assert f"Deleted camera {camera}" in pentad(env, "streams", "cameras", "delete", camera).stdout
    assert pentad(env, "streams", "cameras", "list").stdout == ""
