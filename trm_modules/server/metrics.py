"""Prometheus metrics of a server: an observer plugin on the host's hooks, plus swap and HTTP counters.

Each server has its own ``CollectorRegistry`` (several apps may live in one process, e.g. tests).
"""

from __future__ import annotations

from typing import Any, Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from ..hookspecs import hookimpl
from ..records import FeedbackEvent, SolveRecord

LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
STEP_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32)


class ServerMetrics:
    """The server's metrics; register the instance as a plugin so it observes solves and feedback."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.solves = Counter(
            "trm_solves",
            "Solves answered, by module, version and validity.",
            ["module", "version", "valid"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "trm_solve_latency_seconds",
            "Host latency of a solve (queue + compute + decode).",
            ["module"],
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self.steps = Histogram(
            "trm_solve_steps",
            "Supervision steps used before halting.",
            ["module"],
            buckets=STEP_BUCKETS,
            registry=self.registry,
        )
        self.feedback = Counter(
            "trm_feedback", "Feedback events accepted, by kind and source.", ["kind", "source"], registry=self.registry
        )
        self.swaps = Counter(
            "trm_swaps",
            "Version changes made through the admin API, by module and action.",
            ["module", "action"],
            registry=self.registry,
        )
        self.problems = Counter(
            "trm_http_problems",
            "Requests answered with a problem document, by status.",
            ["status"],
            registry=self.registry,
        )
        self.rate_limited = Counter(
            "trm_rate_limited",
            "Requests refused with 429: their token was over its rate limit.",
            registry=self.registry,
        )

    def watch_recorder(self, recorder: Any) -> None:
        """Expose the store recorder's counts (written, journaled, dead letters, writer restarts) at scrape time."""
        self.registry.register(_RecorderCollector(recorder))

    @hookimpl
    def trm_on_solve(self, record: SolveRecord) -> None:
        """Count the solve and observe its latency and steps."""
        self.solves.labels(record.module, record.version, str(record.valid).lower()).inc()
        self.latency.labels(record.module).observe(record.latency_ms / 1000.0)
        self.steps.labels(record.module).observe(record.steps)

    @hookimpl
    def trm_on_feedback(self, event: FeedbackEvent) -> None:
        """Count the feedback event."""
        self.feedback.labels(event.kind, event.source).inc()

    def exposition(self) -> bytes:
        """The metrics in Prometheus text format."""
        return generate_latest(self.registry)


class _RecorderCollector:
    """Reads ``Recorder.stats`` when scraped (no bookkeeping on the write path)."""

    def __init__(self, recorder: Any) -> None:
        self.recorder = recorder

    def describe(self) -> list:
        return []

    def collect(self) -> Iterator[Any]:
        stats = self.recorder.stats
        for name, value, help_text in (
            ("trm_store_written", stats.written, "Items committed to the database."),
            ("trm_store_journaled", stats.journaled, "Items put in the local journal while the database was away."),
            ("trm_store_replayed", stats.replayed, "Journaled items replayed into the database."),
            ("trm_store_dead_letters", stats.rejected, "Items the database refused for good (dead_letters table)."),
            (
                "trm_store_writer_restarts",
                stats.writer_restarts,
                "Times the store writer was restarted after an error.",
            ),
        ):
            yield CounterMetricFamily(name, help_text, value=value)
        yield GaugeMetricFamily("trm_store_pending", "Items accepted but not yet durable.", value=self.recorder.pending)
        yield GaugeMetricFamily(
            "trm_store_database_up",
            "1 while the last database write succeeded.",
            value=1.0 if self.recorder.database_available else 0.0,
        )
