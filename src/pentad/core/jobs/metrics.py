"""The job queue's Prometheus series, recorded by every worker (in `pentad serve` and `pentad worker`).

- `pentad_jobs_finished_total{job, outcome}`: attempts that ended, by job kind and outcome: `succeeded`,
  `retry` (failed, queued again with backoff), `dead` (failed its last attempt: dead-lettered), `later`
  (the handler asked to run again later), `requeued` (given back at shutdown), `abandoned` (cancelled:
  lease lost).
- `pentad_jobs_duration_seconds{job}`: how long an attempt ran, whatever its outcome.
- `pentad_jobs_running`: attempts running now in this process (summed over live workers).
- `pentad_jobs_due{queue}` and `pentad_jobs_oldest_due_seconds{queue}`: jobs waiting to run and the age
  of the oldest one, read from the database by each worker at most every REFRESH_SECONDS; every worker
  reads the same rows, so dashboards take `max by (queue)` across processes.

The label `job` is a job kind (a name an app registers), never an id, so the series stay few.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime

from prometheus_client import Counter, Gauge, Histogram

from pentad.core.metrics import Metrics

REFRESH_SECONDS = 15.0
DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300, 1800, 7200)
OUTCOMES = ("succeeded", "retry", "dead", "later", "requeued", "abandoned")


class JobMetrics:
    """The series of one process, made with the platform (`Jobs.metrics`); its workers share them."""

    def __init__(self, metrics: Metrics) -> None:
        self.finished: Counter = metrics.counter(
            "pentad_jobs_finished_total",
            "Job attempts that ended, by job kind and outcome.",
            ("job", "outcome"),
        )
        self.duration: Histogram = metrics.histogram(
            "pentad_jobs_duration_seconds", "How long a job attempt ran.", ("job",), buckets=DURATION_BUCKETS
        )
        self.running: Gauge = metrics.gauge("pentad_jobs_running", "Job attempts running now.")
        self.due: Gauge = metrics.gauge(
            "pentad_jobs_due",
            "Jobs due and waiting for a worker, by queue.",
            ("queue",),
            multiprocess_mode="max",
        )
        self.oldest_due: Gauge = metrics.gauge(
            "pentad_jobs_oldest_due_seconds",
            "Age of the oldest job due and waiting for a worker, by queue (0: none waiting).",
            ("queue",),
            multiprocess_mode="max",
        )
        self._refreshed = float("-inf")

    def ended(self, job: str, outcome: str, seconds: float) -> None:
        self.finished.labels(job, outcome).inc()
        self.duration.labels(job).observe(seconds)

    def refresh_due(self) -> bool:
        """Whether the backlog figures are due for a refresh (then they count as refreshed now)."""
        now = time.monotonic()
        if now - self._refreshed < REFRESH_SECONDS:
            return False
        self._refreshed = now
        return True

    def set_due(
        self,
        backlog: Mapping[str, tuple[int, datetime]],
        queue_of: Mapping[str, str],
        queues: frozenset[str],
        now: datetime,
    ) -> None:
        """`backlog`: job kind → (jobs due, oldest run_at); every queue in `queues` gets a value (0 when
        none wait), so a drained queue drops to zero instead of keeping its last figure."""
        count = dict.fromkeys(queues, 0)
        oldest: dict[str, float] = dict.fromkeys(queues, 0.0)
        for name, (due, first) in backlog.items():
            queue = queue_of.get(name)
            if queue is None or queue not in count:
                continue
            count[queue] += due
            oldest[queue] = max(oldest[queue], (now - first).total_seconds())
        for queue in queues:
            self.due.labels(queue).set(count[queue])
            self.oldest_due.labels(queue).set(oldest[queue])
