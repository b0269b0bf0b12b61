"""The media plane of the streams app: ingest engines, the per-stream relay, the HLS packager.

It imports no repository or model: what it asks the control plane (may this key publish, a session
started or ended, is this key still good) arrives as callbacks (service.ControlPlane)."""
