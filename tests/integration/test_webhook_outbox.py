"""Issue 17: the outbox and its deliverer against a real HTTPS receiver on loopback.

Real parts: SQLite on disk (the store the daemon uses), aiohttp over TLS with the test
PKI's server certificate, client authentication by a certificate from the test TLS CA,
and the receiver's documented HMAC recipe (sealclient.webhook_verify).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fixture_layout import SealFixtures

from seald.config import NotifyConfig, WebhookConfig
from seald.domain.outbox import Event, EventType
from seald.notify.deliverer import Deliverer, OutboxNotifier
from seald.store import outbox
from seald.store.database import Store
from seald.store.ledger import Ledger
from seald_testing.webhook_receiver import WebhookReceiver

SECRET = b"0123456789abcdef-webhook-secret"


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def receiver(seal_fixtures: SealFixtures) -> Iterator[WebhookReceiver]:
    r = WebhookReceiver(
        SECRET, seal_fixtures.server_cert, seal_fixtures.server_key, client_ca=seal_fixtures.tls_ca
    ).start()
    yield r
    r.stop()


def notify_config(fx: SealFixtures, url: str, **kw: float) -> NotifyConfig:
    client = fx.principals["chen.jie"]
    hook = WebhookConfig(
        name="oa", url=url, secret=SECRET, ca=fx.tls_ca, client_cert=client.cert, client_key=client.key
    )
    values = {"initial_backoff_seconds": 0.05, "max_backoff_seconds": 0.2, "dead_letter_hours": 1.0}
    values.update(kw)
    return NotifyConfig(webhooks=(hook,), **values)  # type: ignore[arg-type]


def events(n_requests: int, per_request: int, start: datetime) -> list[Event]:
    kinds = [EventType.APPROVAL_NEEDED, EventType.APPROVED, EventType.SEALED]
    out = []
    for k in range(per_request):
        for r in range(n_requests):
            out.append(
                Event(
                    event_id=f"ev-{r:03d}-{k}",
                    type=kinds[k % 3],
                    occurred_at=start,
                    seal_id="contract",
                    request_id=f"req-{r:03d}",
                    state="pending",
                )
            )
    return out


async def open_store(state_dir: Path, config: NotifyConfig, clock: Clock) -> Store:
    store = Store(state_dir, Ledger("seal-host-01", clock))
    await store.open()
    store.notifier = OutboxNotifier(config, lambda before, after: [])
    return store


async def enqueue_all(store: Store, items: list[Event]) -> None:
    def write(tx: object) -> None:
        for e in items:
            tx.emit(e)  # type: ignore[attr-defined]

    await store.write(write)  # type: ignore[arg-type]


async def run_until(receiver: WebhookReceiver, deliverer: Deliverer, count: int, timeout: float = 60) -> None:
    deliverer.start()
    try:
        await asyncio.to_thread(receiver.wait_for, count, timeout)
    finally:
        await deliverer.stop()


def test_webhook_receiver_down_then_up_every_event_once_in_order_per_request(
    seal_fixtures: SealFixtures, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    receiver.fail_next = 25  # down for the first 25 attempts
    receiver.redirect_next = 3  # and then redirects elsewhere three times (never followed)
    clock = Clock()
    config = notify_config(seal_fixtures, receiver.url)

    async def scenario() -> None:
        store = await open_store(tmp_path, config, clock)
        await enqueue_all(store, events(10, 3, clock.now))
        deliverer = Deliverer(store, config, lambda: datetime.now(UTC))
        await run_until(receiver, deliverer, 30)
        await asyncio.sleep(0.3)  # anything sent twice would show up now
        stats = await store.call(lambda: outbox.stats(store._connection()))
        assert (stats.pending, stats.delivered, stats.dead) == (0, 30, 0)
        await store.close()

    asyncio.run(scenario())
    ids = receiver.unique_ids()
    assert sorted(ids) == sorted(f"ev-{r:03d}-{k}" for r in range(10) for k in range(3))
    assert len(receiver.accepted) == 30  # exactly once by id
    for r in range(10):  # in order per request
        mine = [i for i in ids if i.startswith(f"ev-{r:03d}-")]
        assert mine == [f"ev-{r:03d}-0", f"ev-{r:03d}-1", f"ev-{r:03d}-2"]
    assert receiver.attempts >= 30 + 25 + 3
    first = receiver.accepted[0]
    assert first.headers["Idempotency-Key"] == first.event_id == first.headers["Seald-Event-Id"]
    assert not receiver.rejected


def test_webhook_dead_letter_then_replay(
    seal_fixtures: SealFixtures, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    receiver.fail_next = 10**6  # down for good
    clock = Clock()
    config = notify_config(seal_fixtures, receiver.url, dead_letter_hours=0.5 / 3600)  # 0.5 s

    async def scenario() -> None:
        store = await open_store(tmp_path, config, clock)
        await enqueue_all(store, events(2, 1, datetime.now(UTC)))
        deliverer = Deliverer(store, config, lambda: datetime.now(UTC))
        deliverer.start()
        for _ in range(200):
            await asyncio.sleep(0.05)
            stats = await store.call(lambda: outbox.stats(store._connection()))
            if stats.dead == 2:
                break
        await deliverer.stop()
        assert (stats.dead, stats.pending, receiver.unique_ids()) == (2, 0, [])
        rows = await store.call(lambda: outbox.deliveries(store._connection(), "dead"))
        assert {r[0] for r in rows} == {"ev-000-0", "ev-001-0"} and all("503" in r[4] for r in rows)
        receiver.fail_next = 0  # the receiver is back; an operator replays the dead letters
        replayed, _ = await store.write(lambda tx: outbox.replay(store._connection(), datetime.now(UTC)))
        assert replayed == 2
        await run_until(receiver, Deliverer(store, config, lambda: datetime.now(UTC)), 2)
        await store.close()

    asyncio.run(scenario())
    assert sorted(receiver.unique_ids()) == ["ev-000-0", "ev-001-0"]


def test_webhook_event_written_only_with_its_transaction(seal_fixtures: SealFixtures, tmp_path: Path) -> None:
    clock = Clock()
    config = notify_config(seal_fixtures, "https://127.0.0.1:1/x")

    async def scenario() -> None:
        store = await open_store(tmp_path, config, clock)

        def failing(tx: object) -> None:
            tx.emit(events(1, 1, clock.now)[0])  # type: ignore[attr-defined]
            raise RuntimeError("the state change failed after the event was written")

        with pytest.raises(RuntimeError):
            await store.write(failing)  # type: ignore[arg-type]
        await store.close()

    asyncio.run(scenario())
    with sqlite3.connect(tmp_path / "seald.sqlite3") as conn:
        assert conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == 0


def test_webhook_a_receiver_that_does_not_present_the_right_certificate_is_not_sent_to(
    seal_fixtures: SealFixtures, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """The deliverer verifies the receiver against the configured CA: with the foreign
    CA configured, TLS fails and the event stays queued (nothing leaks)."""
    clock = Clock()
    config = notify_config(seal_fixtures, receiver.url)
    wrong = NotifyConfig(
        webhooks=(WebhookConfig("oa", receiver.url, SECRET, ca=seal_fixtures.foreign_ca),),
        initial_backoff_seconds=0.05,
        max_backoff_seconds=0.1,
    )

    async def scenario() -> None:
        store = await open_store(tmp_path, config, clock)
        await enqueue_all(store, events(1, 1, clock.now))
        deliverer = Deliverer(store, wrong, lambda: datetime.now(UTC))
        deliverer.start()
        await asyncio.sleep(1.0)
        await deliverer.stop()
        rows = await store.call(lambda: outbox.deliveries(store._connection()))
        assert rows[0][2] == "pending" and rows[0][3] >= 1
        assert "SSL" in rows[0][4] or "certificate" in rows[0][4], rows[0][4]
        await store.close()

    asyncio.run(scenario())
    assert receiver.unique_ids() == []
    assert receiver.attempts == 0


def test_webhook_slow_receiver_is_a_failed_attempt_retried_then_delivered_once(
    seal_fixtures: SealFixtures, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    receiver.delay = 1.0  # slower than the 0.3 s timeout
    clock = Clock()
    config = notify_config(seal_fixtures, receiver.url, timeout_seconds=0.3)

    async def scenario() -> None:
        store = await open_store(tmp_path, config, clock)
        await enqueue_all(store, events(1, 1, clock.now))
        deliverer = Deliverer(store, config, lambda: datetime.now(UTC))
        deliverer.start()
        for _ in range(100):
            await asyncio.sleep(0.1)
            rows = await store.call(lambda: outbox.deliveries(store._connection()))
            if rows[0][3] >= 2:
                break
        assert rows[0][2] == "pending" and rows[0][3] >= 2 and "Timeout" in rows[0][4], rows
        receiver.delay = 0.0  # the receiver recovers
        await asyncio.to_thread(receiver.wait_for, 1, 30)
        await asyncio.sleep(0.5)
        await deliverer.stop()
        rows = await store.call(lambda: outbox.deliveries(store._connection()))
        assert rows[0][2] == "delivered"
        await store.close()

    asyncio.run(scenario())
    # The slow attempts may have finished at the receiver after seald gave up on them:
    # the receiver's recipe (act once per event id) keeps it to one.
    assert receiver.unique_ids() == ["ev-000-0"]


def test_webhook_delivered_marks_unsynced_then_every_write_is_synchronous_full_again(
    tmp_path: Path,
) -> None:
    """The deliverer's marks skip the fsync (a lost mark is a deduped redelivery); every
    other transaction, including one after a failed unsynced one, is synchronous=FULL."""

    async def scenario() -> tuple[int, int, int]:
        store = Store(tmp_path / "state", Ledger("t", lambda: datetime.now(UTC)))
        await store.open()

        def mode() -> int:
            return int(store._connection().execute("PRAGMA synchronous").fetchone()[0])

        await store.write(lambda tx: store._connection().execute("CREATE TABLE t(x)"), durable=False)

        def boom(tx: object) -> None:
            raise ValueError("no")

        with pytest.raises(ValueError):
            await store.write(boom, durable=False)
        after = await store.call(mode)
        await store.write(lambda tx: store._connection().execute("INSERT INTO t VALUES (1)"))
        during = await store.call(mode)
        await store.close()
        reopened = sqlite3.connect(tmp_path / "state" / "seald.sqlite3")
        rows = reopened.execute("SELECT COUNT(*) FROM t").fetchone()[0]
        reopened.close()
        return after, during, int(rows)

    after, during, rows = asyncio.run(scenario())
    assert (after, during, rows) == (2, 2, 1)  # 2 = FULL; the unsynced commit is kept
