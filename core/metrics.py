"""Prometheus metrics of one Foyer process (its own registry, so tests can run several)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.received = Counter(
            "foyer_messages_received", "Messages received", ["transport"], registry=r
        )
        self.refused = Counter(
            "foyer_messages_refused", "Messages refused, by reason", ["transport", "reason"],
            registry=r,
        )  # fmt: skip
        self.stored = Counter("foyer_records_stored", "Records stored", ["measurement"], registry=r)
        self.ignored = Counter("foyer_records_ignored", "Unknown record names", registry=r)
        self.dropped = Counter(
            "foyer_records_dropped", "Records dropped from accepted packs", ["reason"], registry=r
        )
        self.unavailable = Counter(
            "foyer_messages_unavailable", "Messages answered 'retry later'", ["transport"],
            registry=r,
        )  # fmt: skip
        self.queue_depth = Gauge("foyer_write_queue_depth", "Messages awaiting storage", registry=r)
        self.spool_batches = Gauge("foyer_spool_batches", "Batches in the spool", registry=r)
        self.http_refused = Counter(
            "foyer_http_refused", "HTTP calls refused by authentication or roles", ["reason"],
            registry=r,
        )  # fmt: skip
        self.devices = Gauge("foyer_devices", "Devices by state", ["status"], registry=r)
        self.ack_latency = Histogram(
            "foyer_ack_latency_seconds", "Receive to durable storage", ["transport"], registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
        )  # fmt: skip
        self.job_runs = Counter(
            "foyer_job_runs", "Scheduled job runs, by job and outcome (ok, error, missed)",
            ["job", "outcome"], registry=r,
        )  # fmt: skip
        # 1 in the one scheduler that holds the lease (core/leader.py): summed, exactly 1.
        self.scheduler_leader = Gauge(
            "foyer_scheduler_leader", "1 while this process leads the registry-wide jobs",
            registry=r,
        )  # fmt: skip
        # core/ingest/adoption.py: a departed worker's MQTT session taken by this one
        self.adoptions = Counter(
            "foyer_mqtt_adoptions", "Departed workers' MQTT sessions adopted, by outcome",
            ["outcome"], registry=r,
        )  # fmt: skip
        self.sms = Counter(
            "foyer_sms", "SMS handed to the provider (sent) or refused by it (failed)",
            ["outcome"], registry=r,
        )  # fmt: skip

    def observe_spool(self, spooled: Callable[[], int], replayed: Callable[[], int]) -> None:
        """The spool counts its own batches; expose them as counters at scrape time."""
        self.registry.register(_SpoolCounters(spooled, replayed))


class _SpoolCounters(Collector):
    def __init__(self, spooled: Callable[[], int], replayed: Callable[[], int]) -> None:
        self._spooled = spooled
        self._replayed = replayed

    def collect(self) -> Iterator[CounterMetricFamily]:
        yield CounterMetricFamily(
            "foyer_spool_spooled_batches", "Batches written to the spool", value=self._spooled()
        )
        yield CounterMetricFamily(
            "foyer_spool_replayed_batches", "Spooled batches replayed", value=self._replayed()
        )
