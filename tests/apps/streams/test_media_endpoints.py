"""Live HLS over HTTP (/streams/media/{camera}/…): who may play which camera, the playlists' token
rewriting, cache headers and content types, path confinement and offline cameras. The HLS is real
(ffmpeg packages the synthetic camera into a temporary media dir), the media plane is not needed."""

from __future__ import annotations

import shutil
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from pentad.apps.streams.actions.publish import authorize_publish, end_session, start_session
from pentad.apps.streams.media_endpoints import camera_hls_dir, rewrite_playlist
from pentad.apps.streams.playback import issue_token
from pentad.core.platform import Platform
from tests.apps.streams.support import (
    make_camera,
    make_hls,
    make_key,
    needs_ffmpeg,
    playlist_uris,
    probe_streams,
    share,
    snapshot,
    starts_on_keyframe,
)
from tests.factories import DEFAULT_PASSWORD, Account, account, bearer

pytestmark = needs_ffmpeg

PLAYLIST_TYPE = "application/vnd.apple.mpegurl"
ORIGIN = {"Origin": "https://embed.example"}


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three seconds of the synthetic camera as HLS (1-s segments), made once for the module."""
    directory = tmp_path_factory.mktemp("hls")
    make_hls(directory, seconds=3.0)
    return directory


async def _live_camera(
    client: httpx.AsyncClient, platform: Platform, owner: Account, sample: Path, **fields: Any
) -> tuple[str, uuid.UUID]:
    """A camera with a live session and the sample's HLS where the media plane writes it."""
    camera = await make_camera(client, owner, **fields)
    key = await make_key(client, owner, camera["id"])
    grant = await authorize_publish(platform, key["key"])
    assert grant is not None
    session_id = await start_session(platform, grant, engine="builtin")
    shutil.copytree(sample, camera_hls_dir(platform, uuid.UUID(camera["id"])))
    return camera["id"], session_id


def _segment(playlist: str) -> str:
    return playlist_uris(playlist)[0]


# ------------------------------------------------------------------ unit: the playlist rewrite


def test_every_relative_uri_of_a_playlist_carries_the_token_and_no_other_server_gets_it() -> None:
    master = (
        "#EXTM3U\n"
        '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="a",NAME="en",URI="audio/index.m3u8"\n'
        "#EXT-X-STREAM-INF:BANDWIDTH=2800000,RESOLUTION=1280x720\n"
        "720p/index.m3u8\n"
        '#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=100000,URI="720p/iframes.m3u8?x=1"\n'
        '#EXT-X-MAP:URI="https://cdn.example/init.mp4"\n'
        "#EXTINF:1.0,\n"
        "https://elsewhere.example/seg_1.ts\n"
        "/absolute/seg_2.ts\n"
    )
    rewritten = rewrite_playlist(master, "token=psp_abc")
    assert rewritten.splitlines() == [
        "#EXTM3U",
        '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="a",NAME="en",URI="audio/index.m3u8?token=psp_abc"',
        "#EXT-X-STREAM-INF:BANDWIDTH=2800000,RESOLUTION=1280x720",
        "720p/index.m3u8?token=psp_abc",
        '#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=100000,URI="720p/iframes.m3u8?x=1&token=psp_abc"',
        '#EXT-X-MAP:URI="https://cdn.example/init.mp4"',
        "#EXTINF:1.0,",
        "https://elsewhere.example/seg_1.ts",
        "/absolute/seg_2.ts",
    ]
    assert rewrite_playlist(master, "") == master


# ------------------------------------------------------------------ open cameras


async def test_a_public_camera_plays_for_anyone_with_cacheable_segments_that_start_on_keyframes(
    client: httpx.AsyncClient, platform: Platform, owner: Account, sample: Path, tmp_path: Path
) -> None:
    camera_id, session_id = await _live_camera(client, platform, owner, sample, visibility="public")
    playlist = await client.get(f"/streams/media/{camera_id}/index.m3u8", headers=ORIGIN)
    assert playlist.status_code == 200, playlist.text
    assert playlist.headers["content-type"] == PLAYLIST_TYPE
    assert playlist.headers["cache-control"] == "no-cache"
    assert playlist.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in playlist.headers
    assert playlist.text.startswith("#EXTM3U")
    uris = playlist_uris(playlist.text)
    assert len(uris) >= 3
    # No token to carry; the live session, so a later stream's seg_000000.ts is another URL.
    assert all(uri.startswith("seg_") and uri.endswith(f".ts?s={session_id.hex}") for uri in uris)

    for index, uri in enumerate(uris):
        segment = await client.get(f"/streams/media/{camera_id}/{uri}", headers=ORIGIN)
        name = uri.split("?")[0]
        assert segment.status_code == 200, segment.text
        assert segment.headers["content-type"] == "video/mp2t"
        assert segment.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert segment.headers["access-control-allow-origin"] == "*"
        assert segment.content == (sample / name).read_bytes()
        served = tmp_path / f"served_{index}.ts"
        served.write_bytes(segment.content)
        assert starts_on_keyframe(served), name
    streams = probe_streams(str(tmp_path / "served_0.ts"))
    assert streams["video"]["codec_name"] == "h264"
    assert streams["audio"]["codec_name"] == "aac"

    # Unlisted plays the same way for whoever has the id.
    unlisted_id, _ = await _live_camera(client, platform, owner, sample, visibility="unlisted")
    assert (await client.get(f"/streams/media/{unlisted_id}/index.m3u8")).status_code == 200
    segment = await client.get(f"/streams/media/{unlisted_id}/{uris[0]}")
    assert segment.headers["cache-control"] == "public, max-age=31536000, immutable"


# ------------------------------------------------------------------ private cameras: the token


async def test_a_private_camera_plays_only_with_a_token_of_that_camera(
    client: httpx.AsyncClient, platform: Platform, owner: Account, sample: Path
) -> None:
    a_id, a_session = await _live_camera(client, platform, owner, sample, name="A")
    b_id, _ = await _live_camera(client, platform, owner, sample, name="B")
    issued = await client.post(f"/api/streams/cameras/{a_id}/playback-token", headers=owner.headers)
    assert issued.status_code == 200, issued.text
    token = issued.json()["token"]
    b_token = (
        await client.post(f"/api/streams/cameras/{b_id}/playback-token", headers=owner.headers)
    ).json()["token"]
    segment = _segment((sample / "index.m3u8").read_text())
    expired = issue_token(platform.signing_secret, uuid.UUID(a_id), 300, now=time.time() - 301)
    tampered = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    refusals = {
        None: (401, "playback_token_required"),
        b_token: (403, "playback_token_scope"),
        expired: (401, "playback_token_invalid"),
        tampered: (401, "playback_token_invalid"),
        "psp_garbage": (401, "playback_token_invalid"),
    }
    before = await snapshot(platform)
    for name in ("index.m3u8", segment):
        for bad, (status, code) in refusals.items():
            params = {} if bad is None else {"token": bad}
            # An account's API key opens the API, not the media routes: media takes only the token.
            refused = await client.get(f"/streams/media/{a_id}/{name}", params=params, headers=owner.headers)
            assert refused.status_code == status, (name, bad, refused.text)
            assert refused.headers["content-type"] == "application/problem+json"
            assert refused.json()["code"] == code
            assert "#EXTM3U" not in refused.text
    assert await snapshot(platform) == before

    playlist = await client.get(f"/streams/media/{a_id}/index.m3u8", params={"token": token})
    assert playlist.status_code == 200, playlist.text
    assert playlist.headers["cache-control"] == "no-cache"
    uris = playlist_uris(playlist.text)
    assert uris
    assert all(uri.endswith(f".ts?s={a_session.hex}&token={token}") for uri in uris)
    for uri in uris:  # the rewritten URIs are what hls.js asks for
        served = await client.get(f"/streams/media/{a_id}/{uri}")
        assert served.status_code == 200, served.text
        assert served.headers["cache-control"] == "private, max-age=31536000, immutable"
        assert served.headers["content-type"] == "video/mp2t"
    # B's own token opens B, still not A.
    assert (
        await client.get(f"/streams/media/{b_id}/index.m3u8", params={"token": b_token})
    ).status_code == 200


async def test_viewers_get_playback_tokens_and_nobody_else_does(
    client: httpx.AsyncClient, platform: Platform, owner: Account, stranger: Account, sample: Path
) -> None:
    camera_id, _ = await _live_camera(client, platform, owner, sample)
    viewer = await account(platform)
    await share(client, owner, camera_id, viewer, "viewer")
    url = f"/api/streams/cameras/{camera_id}/playback-token"

    minted = await client.post(url, headers=viewer.headers)
    assert minted.status_code == 200, minted.text
    body = minted.json()
    assert body["urls"]["hls"].endswith(f"/streams/media/{camera_id}/index.m3u8?token={body['token']}")
    path = body["urls"]["hls"].split("://", 1)[1].split("/", 1)[1]
    assert (await client.get(f"/{path}")).status_code == 200

    assert (await client.post(url, headers=stranger.headers)).status_code == 404
    assert (await client.post(url)).status_code == 401
    # A playback token cannot renew itself (it would never expire).
    assert (await client.post(url, headers=bearer(body["token"]))).status_code == 403
    # Once the role is taken, no new token (the one handed out lives out its minutes).
    taken = await client.delete(f"/api/streams/cameras/{camera_id}/grants/{viewer.id}", headers=owner.headers)
    assert taken.status_code == 204
    assert (await client.post(url, headers=viewer.headers)).status_code == 404


# ------------------------------------------------------------------ what is never served


async def test_offline_cameras_and_paths_outside_the_camera_are_404(
    client: httpx.AsyncClient, platform: Platform, owner: Account, sample: Path, tmp_path: Path
) -> None:
    camera_id, session_id = await _live_camera(client, platform, owner, sample, visibility="public")
    other_id, _ = await _live_camera(client, platform, owner, sample, visibility="public")
    camera_dir = camera_hls_dir(platform, uuid.UUID(camera_id))
    secret = tmp_path / "secret.ts"
    secret.write_bytes(b"not yours")
    (camera_dir / "escape.ts").symlink_to(secret)
    (camera_dir / "index.m3u8.tmp").write_text("#EXTM3U\n")
    (camera_dir / "notes.txt").write_text("hello")
    other_segment = _segment((sample / "index.m3u8").read_text())
    for path in (
        "escape.ts",  # a symlink out of the camera's folder
        "index.m3u8.tmp",  # the packager's temporary file
        "notes.txt",
        "missing.ts",
        "%2e%2e/secret.ts",  # percent-encoded: the client sends it as is, the server decodes it
        "..%2F..%2Fpentad.db",
        "%2e%2e/%2e%2e/pentad.db",
        "sub/dir/seg_000000.ts",
        f"%2E%2E/{other_id}/{other_segment}",
        "seg_000000.ts%00.m3u8",  # the core refuses NUL in a path (422)
        "",
    ):
        response = await client.get(f"/streams/media/{camera_id}/{path}")
        expected = 422 if "%00" in path else 404
        assert response.status_code == expected, (path, response.status_code, response.text[:200])
        assert b"not yours" not in response.content
    assert (await client.get(f"/streams/media/{uuid.uuid4()}/index.m3u8")).status_code == 404
    assert (await client.get("/streams/media/not-a-uuid/index.m3u8")).status_code in (404, 422)

    # The stream ends: its files may linger, but nothing is served any more.
    assert await end_session(platform, session_id, "publisher_left")
    offline = await client.get(f"/streams/media/{camera_id}/index.m3u8")
    assert offline.status_code == 404
    assert offline.json()["code"] == "stream_offline"
    assert (await client.get(f"/streams/media/{camera_id}/{other_segment}")).status_code == 404
    # The camera streams again: the same segment names, other URLs (browsers keep segments forever).
    key = await make_key(client, owner, camera_id)
    grant = await authorize_publish(platform, key["key"])
    assert grant is not None
    again = await start_session(platform, grant, engine="builtin")
    replayed = await client.get(f"/streams/media/{camera_id}/index.m3u8")
    assert replayed.status_code == 200
    assert playlist_uris(replayed.text)[0] == f"{other_segment}?s={again.hex}"
    assert again != session_id
    # A deleted camera plays nowhere.
    assert (await client.delete(f"/api/streams/cameras/{other_id}", headers=owner.headers)).status_code == 204
    assert (await client.get(f"/streams/media/{other_id}/index.m3u8")).status_code == 404


async def test_a_ladder_master_playlist_carries_the_token_into_its_renditions(
    client: httpx.AsyncClient, platform: Platform, owner: Account, sample: Path
) -> None:
    camera_id, session_id = await _live_camera(client, platform, owner, sample)
    camera_dir = camera_hls_dir(platform, uuid.UUID(camera_id))
    shutil.copytree(sample, camera_dir / "360p")
    (camera_dir / "index.m3u8").write_text(
        "#EXTM3U\n#EXT-X-VERSION:3\n"
        '#EXT-X-STREAM-INF:BANDWIDTH=900000,RESOLUTION=320x180,CODECS="avc1.42c01e,mp4a.40.2"\n'
        "360p/index.m3u8\n"
    )
    token = (
        await client.post(f"/api/streams/cameras/{camera_id}/playback-token", headers=owner.headers)
    ).json()["token"]
    master = await client.get(f"/streams/media/{camera_id}/index.m3u8", params={"token": token})
    assert master.status_code == 200
    carried = f"s={session_id.hex}&token={token}"
    assert playlist_uris(master.text) == [f"360p/index.m3u8?{carried}"]
    rendition = await client.get(f"/streams/media/{camera_id}/360p/index.m3u8?{carried}")
    assert rendition.status_code == 200
    segment_uri = playlist_uris(rendition.text)[0]
    assert segment_uri.endswith(f".ts?{carried}")
    segment = await client.get(f"/streams/media/{camera_id}/360p/{segment_uri}")
    assert segment.status_code == 200
    assert segment.content == (sample / segment_uri.split("?")[0]).read_bytes()
    assert (await client.get(f"/streams/media/{camera_id}/360p/index.m3u8")).status_code == 401


# ------------------------------------------------------------------ the player page and hls.js


async def _sign_in(client: httpx.AsyncClient, who: Account) -> None:
    client.cookies.clear()
    response = await client.post("/login", data={"email": who.email, "password": DEFAULT_PASSWORD})
    assert response.status_code == 303, response.text


async def test_the_player_page_plays_open_cameras_for_anyone_and_private_ones_for_viewers_with_a_token(
    client: httpx.AsyncClient, platform: Platform, owner: Account, stranger: Account, sample: Path
) -> None:
    public_id, _ = await _live_camera(client, platform, owner, sample, visibility="public", name="Lobby")
    private_id, _ = await _live_camera(client, platform, owner, sample, name="Vault")

    page = await client.get(f"/streams/watch/{public_id}")
    assert page.status_code == 200, page.text
    assert "Lobby" in page.text
    assert f'data-src="/streams/media/{public_id}/index.m3u8"' in page.text
    assert "data-token=" not in page.text
    csp = page.headers["content-security-policy"]
    assert "media-src 'self' blob:" in csp
    assert "worker-src 'self' blob:" in csp
    assert "script-src 'self'" in csp
    script = page.text.split('<script type="module" src="', 1)[1].split('"', 1)[0]
    assert script.startswith("/static/streams/streams-player.js?v=")
    player = await client.get(script)
    assert player.status_code == 200
    assert 'from "./streams-sdk.js"' in player.text  # the browser SDK's player
    sdk = await client.get("/static/streams/streams-sdk.js")
    assert sdk.status_code == 200
    assert '"/streams/vendor/hls.min.mjs"' in sdk.text
    hls = await client.get("/streams/vendor/hls.min.mjs")
    assert hls.status_code == 200
    assert hls.headers["content-type"].startswith("text/javascript")
    assert "export" in hls.text[-2000:]
    assert (await client.get("/streams/vendor/hls.js")).status_code == 404
    assert (await client.get("/streams/vendor/..%2Fpackage.json")).status_code == 404

    anonymous = await client.get(f"/streams/watch/{private_id}")
    assert anonymous.status_code == 303
    assert anonymous.headers["location"].startswith("/login")
    assert (await client.get(f"/streams/watch/{uuid.uuid4()}")).status_code == 404

    await _sign_in(client, stranger)
    denied = await client.get(f"/streams/watch/{private_id}")
    assert denied.status_code == 404
    assert "data-src" not in denied.text

    viewer = await account(platform)
    await share(client, owner, private_id, viewer, "viewer")
    await _sign_in(client, viewer)
    watched = await client.get(f"/streams/watch/{private_id}")
    assert watched.status_code == 200, watched.text
    assert watched.headers["cache-control"] == "no-store"
    source = watched.text.split('data-src="', 1)[1].split('"', 1)[0]
    assert source.startswith(f"/streams/media/{private_id}/index.m3u8?token=psp_")
    assert f'data-camera-id="{private_id}"' in watched.text  # the player renews the token for it
    client.cookies.clear()
    assert (await client.get(source)).status_code == 200  # the page's token plays it
