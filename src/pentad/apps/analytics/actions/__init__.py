"""What the analytics app does, one module per area: check, do, notify."""
