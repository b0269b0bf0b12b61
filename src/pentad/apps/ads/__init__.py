"""Ads: advertisers, campaigns, creatives and zones on publishers' sites; targeting, pacing and signed
ad tokens.

The package is kept light (the command line reads its settings and CLI without loading the routers):
its AppSpec is `spec.APP`."""
