"""Pentad: a self-hosted real-time platform."""

__version__ = "0.1.0"
