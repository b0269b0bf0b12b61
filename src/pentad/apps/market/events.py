"""The market's domain events (core/events.py): emitted in the transaction that stores the data, delivered
after its commit through the job outbox.

- `market.snapshot_stored`: a region's new order book became current (ingest/orders.py). The market's
  own subscriber evaluates the alerts that read that book (price crossing, margin opportunity, and the
  undercut rules of characters with open orders in the region) right after the commit, not on a timer;
  other apps may observe it too.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from pentad.core.events import DomainEvent


class SnapshotStored(BaseModel):
    region_id: int
    snapshot_id: int
    captured_at: datetime
    orders: int


SNAPSHOT_STORED = DomainEvent(
    "market.snapshot_stored", SnapshotStored, "A region's new order book snapshot became current."
)

EVENTS = [SNAPSHOT_STORED]
