"""The analytics app: cookieless first-party web analytics. Settings-only imports stay light (this module
imports nothing)."""
