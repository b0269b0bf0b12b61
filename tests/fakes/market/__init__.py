"""Fakes of the outside services the market app talks to (EVE SSO, ESI), on loopback."""
