"""The SDK for Pentad panel plugins: a plugin runs in its own process and talks to the panel over JSON-RPC.

It needs nothing of the Pentad server. See docs/panel.md (Plugins).
"""
