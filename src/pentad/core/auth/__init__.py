"""Accounts, sessions, tokens, API keys, two-factor authentication and authorisation."""
