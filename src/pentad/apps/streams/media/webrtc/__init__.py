"""WebRTC out (WHEP playback) and in (WHIP ingest) with aiortc, on the media plane's relays.

- h264.py: FLV/AVCC <-> Annex-B access units (no decoding, no re-encoding).
- ice.py: which host candidates are offered (WEBRTC__HOST_ADDRESSES) and which remote ones accepted.
- tracks.py: aiortc tracks fed from a StreamRelay: H.264 forwarded as `av.Packet`s, AAC -> Opus once per
  stream (PyAV) and shared by every viewer.
- hub.py: the peer connections of one node (WHEP viewers, WHIP publishers), driven by relay messages
  (`streams.media@<node>`) from whichever worker took the HTTP request (webrtc_endpoints.py)."""
