"""The chat rules, one module per area, in Zulip's verbs.

- `check_*` validates input and permissions and raises (AppError); it changes nothing.
- `do_*` performs a change: rows, audit records, jobs and domain events, all in the caller's transaction,
  then calls the matching `notify_*`.
- `notify_*` queues the realtime events of a change with core `publish`, which sends them only once the
  transaction commits (nothing on rollback).
- `get_*` / `list_*` read, as everywhere in Pentad.

Every function takes the `ChatContext` (context.py) of the request or job: the session, the platform and
who acts. Nothing here commits; the request (or job) owns the transaction. Every channel operation starts
with `chat.access(channel_id)`, so no path skips the rules in access.py.
"""
