"""Prometheus metrics for ops: a text exposition on a local port, off by default.

Two kinds of series:

* event counters (refusals, seals applied, signing latency, config reloads, tokens not
  returned at the end of the day), counted on the event loop as things happen; they
  start at 0 with each daemon process, as Prometheus counters do;
* state gauges (requests by state, pending approvals, token presence/unlock/overdue, audit
  chain length, last checkpoint age), read fresh at each scrape: the scrape thread asks
  the event loop for a snapshot, so a scrape right after a change already shows it.

The endpoint is ``prometheus_client.start_http_server`` on the address of
``[metrics] listen`` (loopback only, see seald.config). It serves numbers only: no
principal names, document names or hashes ever become label values; labels are seal
ids, request states and refusal reason codes, all from closed sets.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from seald.domain.model import RequestState
from seald.runtime.logs import get_logger

log = get_logger("seald.metrics")

# Seconds from the committed intent record to the committed result record of a request.
SIGNING_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
SCRAPE_SNAPSHOT_TIMEOUT_S = 5.0


@dataclass
class Snapshot:
    """The state gauges at one instant, read on the event loop."""

    requests_by_state: dict[str, int] = field(default_factory=dict)
    pending_by_seal: dict[str, int] = field(default_factory=dict)
    token_present: dict[str, bool] = field(default_factory=dict)
    token_unlocked: dict[str, bool] = field(default_factory=dict)
    token_return_overdue: dict[str, bool] = field(default_factory=dict)
    audit_records: int = 0
    last_checkpoint_age_s: float = math.nan
    open_streams: int = 0  # server-streaming calls open now, all principals (issue 8)
    # Issue 17: the webhook outbox (deliveries still to make, oldest of them, dead letters).
    notify_queue_depth: int = 0
    notify_oldest_undelivered_s: float = 0.0
    notify_dead_letters: int = 0


class SnapshotSource(Protocol):
    """What the collector needs from the daemon: a fresh Snapshot, read on the loop."""

    async def snapshot(self) -> Snapshot: ...


class _StateCollector(Collector):
    """Gauges built at scrape time from a snapshot taken on the event loop."""

    def __init__(self, metrics: SealMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterable[Metric]:
        snap = self._metrics.scrape_snapshot()
        if snap is None:
            return []
        return list(self._families(snap))

    def _families(self, snap: Snapshot) -> Iterator[Metric]:
        seals = self._metrics.seal_ids
        by_state = GaugeMetricFamily(
            "seald_requests", "Seal requests in the store, by lifecycle state", labels=["state"]
        )
        for state in RequestState:
            by_state.add_metric([state.value], snap.requests_by_state.get(state.value, 0))
        yield by_state
        pending = GaugeMetricFamily(
            "seald_pending_approvals",
            "Requests waiting for approvals (state pending), by seal",
            labels=["seal"],
        )
        present = GaugeMetricFamily(
            "seald_token_present", "1 if the seal's token is inserted", labels=["seal"]
        )
        unlocked = GaugeMetricFamily(
            "seald_token_unlocked", "1 if the seal's token is unlocked", labels=["seal"]
        )
        overdue = GaugeMetricFamily(
            "seald_token_return_overdue",
            "1 while the seal's token is still inserted after its hours end plus the grace (R08)",
            labels=["seal"],
        )
        for seal_id in seals:
            pending.add_metric([seal_id], snap.pending_by_seal.get(seal_id, 0))
            present.add_metric([seal_id], 1.0 if snap.token_present.get(seal_id) else 0.0)
            unlocked.add_metric([seal_id], 1.0 if snap.token_unlocked.get(seal_id) else 0.0)
            overdue.add_metric([seal_id], 1.0 if snap.token_return_overdue.get(seal_id) else 0.0)
        yield pending
        yield present
        yield unlocked
        yield overdue
        yield GaugeMetricFamily(
            "seald_audit_chain_length", "Records in the hash-chained audit log", value=snap.audit_records
        )
        yield GaugeMetricFamily(
            "seald_audit_last_checkpoint_age_seconds",
            "Seconds since the newest audit checkpoint; NaN while none exists",
            value=snap.last_checkpoint_age_s,
        )
        yield GaugeMetricFamily(
            "seald_open_streams",
            "Server-streaming calls (watches, downloads, ...) open now, all principals together",
            value=snap.open_streams,
        )
        yield GaugeMetricFamily(
            "seald_notify_queue_depth",
            "Webhook deliveries not yet made (pending), all webhooks",
            value=snap.notify_queue_depth,
        )
        yield GaugeMetricFamily(
            "seald_notify_oldest_undelivered_seconds",
            "Age of the oldest pending webhook delivery; 0 when none is pending",
            value=snap.notify_oldest_undelivered_s,
        )
        yield GaugeMetricFamily(
            "seald_notify_dead_letters",
            "Webhook deliveries given up (dead letters) until sealctl notify replay",
            value=snap.notify_dead_letters,
        )


class SealMetrics:
    """The daemon's metrics: one registry per daemon (tests may run several in a process)."""

    def __init__(self, seal_ids: Iterable[str] = ()) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.seal_ids: list[str] = sorted(seal_ids)
        self.refusals = Counter(
            "seald_refusals",
            "Calls refused, by reason code (see the API's seal-error-reason)",
            ["reason"],
            registry=self.registry,
        )
        self.seals_applied = Counter(
            "seald_seals_applied",
            "Documents sealed (a released signature), by seal",
            ["seal"],
            registry=self.registry,
        )
        self.signing_seconds = Histogram(
            "seald_signing_seconds",
            "Seconds from the committed intent record to the committed result, per request",
            ["seal"],
            buckets=SIGNING_BUCKETS,
            registry=self.registry,
        )
        self.config_reloads = Counter(
            "seald_config_reloads",
            "SIGHUP reloads, by outcome (reloaded or refused)",
            ["outcome"],
            registry=self.registry,
        )
        self.token_not_returned = Counter(
            "seald_token_not_returned_alerts",
            "Same-day-return alerts (R08): the token was still inserted after hours + grace",
            ["seal"],
            registry=self.registry,
        )
        for seal_id in self.seal_ids:
            self.seals_applied.labels(seal_id)
            self.signing_seconds.labels(seal_id)
            self.token_not_returned.labels(seal_id)
        for outcome in ("reloaded", "refused"):
            self.config_reloads.labels(outcome)
        self._source: SnapshotSource | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._intent_started: dict[str, float] = {}
        self._server: Any = None
        self._thread: Any = None
        self.registry.register(_StateCollector(self))

    # -- events, called on the event loop ---------------------------------------------------
    def refused(self, reason: str) -> None:
        self.refusals.labels(reason or "unknown").inc()

    def request_event(self, event: str, seal_id: str, request_id: str, documents: int) -> None:
        """Fed from SealService.request_events (published after each commit)."""
        if event == "seal.sign_intent":
            self._intent_started[request_id] = time.monotonic()
        elif event in ("seal.signed", "seal.recovered_signed"):
            self.seals_applied.labels(seal_id).inc(documents)
            started = self._intent_started.pop(request_id, None)
            if started is not None:
                self.signing_seconds.labels(seal_id).observe(time.monotonic() - started)
        elif event in ("seal.sign_interrupted", "seal.sign_failed"):
            self._intent_started.pop(request_id, None)

    def not_returned_alert(self, seal_id: str) -> None:
        self.token_not_returned.labels(seal_id).inc()

    def config_reload(self, outcome: str) -> None:
        self.config_reloads.labels(outcome).inc()

    # -- state gauges ------------------------------------------------------------------------
    def attach(self, source: SnapshotSource, loop: asyncio.AbstractEventLoop) -> None:
        self._source, self._loop = source, loop

    def scrape_snapshot(self) -> Snapshot | None:
        """From the HTTP thread: ask the loop for a fresh snapshot (None if it cannot)."""
        if self._source is None or self._loop is None or self._loop.is_closed():
            return None
        future = asyncio.run_coroutine_threadsafe(self._source.snapshot(), self._loop)
        try:
            return future.result(timeout=SCRAPE_SNAPSHOT_TIMEOUT_S)
        except Exception as ex:  # a stuck loop or a closed store: serve the counters only
            future.cancel()
            log.warning("metrics.snapshot_failed", error=type(ex).__name__)
            return None

    # -- endpoint ------------------------------------------------------------------------------
    def serve(self, host: str, port: int) -> int:
        """Start the HTTP endpoint in a daemon thread; returns the bound port."""
        self._server, self._thread = start_http_server(port, addr=host, registry=self.registry)
        return int(self._server.server_address[1])

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self._source = None


def split_listen(listen: str) -> tuple[str, int]:
    """'127.0.0.1:9464' or '[::1]:9464' -> (host, port)."""
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)
