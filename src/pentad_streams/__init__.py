"""The Python SDK of Pentad streams: typed sync and async clients for the REST API and live events.

It needs nothing of the Pentad server. See docs/streams-sdk-python.md.
"""
