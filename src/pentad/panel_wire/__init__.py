"""What the panel and the agent share: wire frames, config-file rewriting, confined paths. Imports nothing
from the rest of pentad (stdlib and pydantic only), so both sides and their tests may use it."""
