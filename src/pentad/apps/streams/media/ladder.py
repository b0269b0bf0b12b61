"""The adaptive-bitrate profile (a camera's `profile` = `ladder`): one ffmpeg decodes the stream once and
encodes one H.264 rendition per rung of PENTAD_STREAMS__LADDER (height:kbit/s, by default 720p 2800,
480p 1200, 360p 700), audio copied into each. ffmpeg's HLS muxer writes the master playlist (BANDWIDTH,
RESOLUTION, CODECS of each rendition) where a passthrough stream has its media playlist, so players open
the same URL either way:

    <MEDIA_DIR>/hls/<camera id>/index.m3u8              master playlist
    <MEDIA_DIR>/hls/<camera id>/<rung>/index.m3u8       a rendition's media playlist (<rung>: 720p, …)
    <MEDIA_DIR>/hls/<camera id>/<rung>/seg_000042.ts    its segments

Keyframes are forced every HLS_SEGMENT_SECONDS of stream time in every rendition (no scene-cut
keyframes), so the renditions' segments start on keyframes at the same instants and a player switches
between them at any segment boundary. The packager (packager.py) runs it as it runs the passthrough
ffmpeg (supervised child, fed FLV from the relay); it starts it once the stream's tracks are known,
since the rendition map names the audio only when there is some."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pentad.apps.streams.settings import StreamsSettings

HLS_FLAGS = "independent_segments+delete_segments+temp_file+append_list+program_date_time"
"""As the passthrough packager's: a restarted ffmpeg continues each rendition's numbering."""

LADDER = "ladder"
"""The profile value (models.PROFILES) that makes a ladder; anything else is passthrough."""


@dataclass(frozen=True)
class Rung:
    """One rendition: its folder name, picture height and video bit rate."""

    name: str
    height: int
    kbps: int


def rungs(settings: StreamsSettings) -> list[Rung]:
    """LADDER's rungs, highest first (the recorder keeps the first)."""
    return [Rung(f"{height}p", height, kbps) for height, kbps in settings.ladder_rungs]


def ladder_argv(settings: StreamsSettings, source: str, out_dir: Path, *, audio: bool) -> list[str]:
    """ffmpeg reading FLV from `source` and writing the ladder's renditions and master into `out_dir`."""
    ladder = rungs(settings)
    count = len(ladder)
    split = f"[0:v]split={count}" + "".join(f"[s{i}]" for i in range(count))
    scales = [f"[s{i}]scale=-2:{rung.height}[v{i}]" for i, rung in enumerate(ladder)]
    segment = f"{settings.hls_segment_seconds:g}"
    argv = [
        settings.ffmpeg,
        "-hide_banner",
        "-nostdin",
        "-loglevel",
        "warning",
        "-f",
        "flv",
        "-i",
        source,
        "-filter_complex",
        ";".join([split, *scales]),
    ]
    for i in range(count):
        argv += ["-map", f"[v{i}]"]
    if audio:
        for _ in range(count):
            argv += ["-map", "0:a"]
    argv += [
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-tune",
        "zerolatency",
        "-profile:v",
        "high",
        "-pix_fmt",
        "yuv420p",
        "-sc_threshold",
        "0",
        "-force_key_frames",
        f"expr:gte(t,n_forced*{segment})",
    ]
    for i, rung in enumerate(ladder):
        argv += [
            f"-b:v:{i}",
            f"{rung.kbps}k",
            f"-maxrate:v:{i}",
            f"{rung.kbps * 11 // 10}k",
            f"-bufsize:v:{i}",
            f"{rung.kbps * 2}k",
        ]
    if audio:
        argv += ["-c:a", "copy"]
    streams = " ".join(
        f"v:{i}" + (f",a:{i}" if audio else "") + f",name:{rung.name}" for i, rung in enumerate(ladder)
    )
    argv += [
        "-f",
        "hls",
        "-hls_time",
        segment,
        "-hls_list_size",
        str(settings.hls_list_size),
        "-hls_delete_threshold",
        "2",
        "-hls_flags",
        HLS_FLAGS,
        "-hls_segment_type",
        "mpegts",
        "-var_stream_map",
        streams,
        "-master_pl_name",
        "index.m3u8",
        "-hls_segment_filename",
        str(out_dir / "%v" / "seg_%06d.ts"),
        str(out_dir / "%v" / "index.m3u8"),
    ]
    return argv
