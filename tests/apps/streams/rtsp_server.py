"""A small real RTSP server for the RTSP pull tests (RFC 2326 over TCP, interleaved RTP), run as its own
process: `python -m tests.apps.streams.rtsp_server --port P --path cam --user U --password W`.

It serves one live camera: a child ffmpeg encodes the synthetic camera (test picture + tone, H.264 GOP
30 + AAC) into MPEG-TS over RTP (payload type 33) to a loopback UDP port; every client that has PLAYed
gets each RTP packet as an interleaved frame (`$`, channel 0). DESCRIBE needs HTTP Basic credentials when
--user is given (401 with a challenge, as IP cameras do). Debian has no RTSP server that is installed here
by default (its rtsp-server-perl / gst-rtsp-server would do as well), and ffmpeg can only push to one."""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import signal
import sys

SDP = (
    "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=Pentad test camera\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n"
    "a=control:*\r\nm=video 0 RTP/AVP 33\r\na=rtpmap:33 MP2T/90000\r\na=control:trackID=0\r\n"
)


class Server:
    def __init__(self, path: str, user: str | None, password: str | None) -> None:
        self.path = path
        self.credentials = (
            base64.b64encode(f"{user}:{password}".encode()).decode() if user is not None else None
        )
        self.players: set[asyncio.StreamWriter] = set()
        self.session = 0

    def datagram(self, packet: bytes) -> None:
        frame = b"$\x00" + len(packet).to_bytes(2, "big") + packet
        for writer in list(self.players):
            if writer.is_closing():
                self.players.discard(writer)
                continue
            if writer.transport.get_write_buffer_size() < 4 * 1024 * 1024:
                writer.write(frame)

    async def client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                first = await reader.readexactly(1)
                if first == b"$":  # interleaved RTCP from the client
                    header = await reader.readexactly(3)
                    await reader.readexactly(int.from_bytes(header[1:3], "big"))
                    continue
                head = first + await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, url, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    name, sep, value = line.partition(":")
                    if sep:
                        headers[name.strip().lower()] = value.strip()
                if int(headers.get("content-length", "0")):
                    await reader.readexactly(int(headers["content-length"]))
                self.answer(writer, method, url, headers)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ValueError, asyncio.LimitOverrunError):
            pass
        finally:
            self.players.discard(writer)
            writer.close()

    def answer(self, writer: asyncio.StreamWriter, method: str, url: str, headers: dict[str, str]) -> None:
        cseq = headers.get("cseq", "0")
        extra: list[str] = []
        body = ""
        status = "200 OK"
        if self.path not in url:
            status = "404 Not Found"
        elif method == "OPTIONS":
            extra.append("Public: OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN, GET_PARAMETER")
        elif method == "DESCRIBE":
            given = headers.get("authorization", "")
            if self.credentials is not None and given != f"Basic {self.credentials}":
                status = "401 Unauthorized"
                extra.append('WWW-Authenticate: Basic realm="camera"')
            else:
                body = SDP
                base = url if url.endswith("/") else url + "/"
                extra += [f"Content-Base: {base}", "Content-Type: application/sdp"]
        elif method == "SETUP":
            if "interleaved" not in headers.get("transport", ""):
                status = "461 Unsupported Transport"
            else:
                self.session += 1
                extra += [
                    "Transport: RTP/AVP/TCP;unicast;interleaved=0-1",
                    f"Session: {10000000 + self.session};timeout=60",
                ]
        elif method == "PLAY":
            extra += [f"Session: {headers.get('session', '0')}", "Range: npt=0.000-"]
            self.players.add(writer)
        elif method == "TEARDOWN":
            self.players.discard(writer)
        elif method != "GET_PARAMETER":
            status = "405 Method Not Allowed"
        lines = [f"RTSP/1.0 {status}", f"CSeq: {cseq}", *extra]
        if body:
            lines.append(f"Content-Length: {len(body)}")
        writer.write(("\r\n".join(lines) + "\r\n\r\n" + body).encode())


class Receiver(asyncio.DatagramProtocol):
    def __init__(self, server: Server) -> None:
        self.server = server

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        self.server.datagram(data)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="cam")
    parser.add_argument("--user")
    parser.add_argument("--password")
    parser.add_argument("--size", default="320x180")
    args = parser.parse_args()
    server = Server(args.path, args.user, args.password)
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(lambda: Receiver(server), local_addr=("127.0.0.1", 0))
    udp_port = transport.get_extra_info("sockname")[1]
    encoder = await asyncio.create_subprocess_exec(
        "ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin",
        "-re", "-f", "lavfi", "-i", f"testsrc2=size={args.size}:rate=30",
        "-re", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
        "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-pix_fmt", "yuv420p",
        "-g", "30", "-keyint_min", "30", "-sc_threshold", "0", "-b:v", "600k",
        "-c:a", "aac", "-b:a", "64k", "-ar", "48000",
        "-f", "rtp_mpegts", f"rtp://127.0.0.1:{udp_port}?pkt_size=1316",
        stdin=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    listener = await asyncio.start_server(server.client, "127.0.0.1", args.port)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print(f"rtsp listening on {args.port}", flush=True)
    waiting = asyncio.ensure_future(encoder.wait())
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait({waiting, stopping}, return_when="FIRST_COMPLETED")
    listener.close()
    transport.close()
    if encoder.returncode is None:
        encoder.kill()
    with contextlib.suppress(ProcessLookupError):
        await encoder.wait()
    sys.exit(0)


if __name__ == "__main__":
    asyncio.run(main())
