"""Durable background jobs: enqueued in the caller's transaction, run by workers with retries."""
