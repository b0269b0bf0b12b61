"""The realtime hub: topics over one WebSocket per client, with ordering, resume, presence and acks."""
