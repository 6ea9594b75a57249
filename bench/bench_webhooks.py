"""Issue 17: webhook outbox throughput, and sealing latency with webhooks on vs off.

    .venv/bin/python bench/bench_webhooks.py [--events 2000] [--concurrency 16] [--rounds 10]

- **outbox throughput**: ``--events`` events (4 per request, so per-request ordering is in
  play) are committed to the real store (SQLite on disk, one transaction) and delivered by
  the daemon's Deliverer to a real HTTPS receiver on loopback that checks every HMAC
  signature with the documented recipe. Measured: first delivery attempt to the last
  event accepted. Target: >= 500 events/s.
- **baseline** (same run, same receiver process): a bare aiohttp POST loop in this
  process sends ``--events`` other signed events with the same concurrency over kept-alive
  connections and no store at all. ``outbox / baseline`` is the figure to compare across
  machines and loads: the cost of the outbox (SQLite reads, marks, ordering) over the
  cost of the HTTPS posts and the receiver's HMAC checks themselves.
- **sealing latency**: one approved one-document request, from the approval RPC to SIGNED
  on a watch stream, median of ``--rounds``, through a real seald without webhooks and
  then the same daemon state with a webhook to the loopback receiver (every request
  change then writes outbox rows in its transaction and the deliverer posts them).
  Target: unchanged within noise.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [
    str(ROOT / "softhsm-fixtures"),
    str(ROOT / "tests"),
    str(ROOT / "tests" / "assets"),
    str(ROOT / "bench"),
]

from bench_seal import PLACEMENT, prepared_approval, wait_signed  # noqa: E402
from build_fixtures import build_fixtures  # noqa: E402
from fixture_layout import SealFixtures, load_fixtures  # noqa: E402
from make_pdfs import valid_pdf  # noqa: E402

from seald.config import NotifyConfig, WebhookConfig  # noqa: E402
from seald.domain.outbox import Event, EventType, delivery_headers  # noqa: E402
from seald.notify.deliverer import Deliverer, OutboxNotifier, ssl_context  # noqa: E402
from seald.store.database import Store, Transaction  # noqa: E402
from seald.store.ledger import Ledger  # noqa: E402
from seald_testing.config import DaemonConfig  # noqa: E402
from seald_testing.daemon import SealDaemon  # noqa: E402
from seald_testing.webhook_receiver import WebhookReceiver  # noqa: E402

SECRET = b"bench-webhook-secret-0123456789"
PIN = "20261129"


def _receive(conn: Connection, fx_root: str, events: int) -> None:
    """The receiver in its own process (its HMAC checks do not share the deliverer's GIL)."""
    fx = load_fixtures(Path(fx_root))
    receiver = WebhookReceiver(SECRET, fx.server_cert, fx.server_key, client_ca=fx.tls_ca).start()
    conn.send(receiver.url)
    receiver.wait_for(2 * events, 600)  # the first baseline, then the outbox
    conn.send("outbox done")
    ids = receiver.wait_for(3 * events, 600)
    conn.send((len(set(ids)), len(receiver.rejected)))
    receiver.stop()


async def bare_posts(
    hook: WebhookConfig, events: int, concurrency: int, kinds: list[EventType], tag: str
) -> float:
    """The in-process baseline: the same signed POSTs, no outbox. Returns events/s."""
    now = datetime.now(UTC)
    bodies = [
        (f"{tag}-{i:06d}", Event(f"{tag}-{i:06d}", kinds[i % 4], now, "contract", f"b-{i // 4}", "pending"))
        for i in range(events)
    ]
    queue = iter(bodies)
    connector = aiohttp.TCPConnector(ssl=ssl_context(hook), limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            for event_id, event in queue:
                body = event.payload()
                headers = delivery_headers(hook.secret, int(time.time()), event_id, body)
                async with session.post(hook.url, data=body, headers=headers) as answer:
                    await answer.read()
                    assert answer.status == 204, answer.status

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return events / (time.perf_counter() - started)


def outbox_throughput(
    fx: SealFixtures, work: Path, events: int, concurrency: int
) -> tuple[float, float, float]:
    parent, child = multiprocessing.Pipe()
    process = multiprocessing.get_context("spawn").Process(
        target=_receive, args=(child, str(fx.root), events), daemon=True
    )
    process.start()
    if not parent.poll(120):
        raise RuntimeError("the receiver process did not start")
    url = parent.recv()
    admin = fx.principals["chen.jie"]
    hook = WebhookConfig("oa", url, SECRET, ca=fx.tls_ca, client_cert=admin.cert, client_key=admin.key)
    config = NotifyConfig(webhooks=(hook,), concurrency=concurrency)
    kinds = [EventType.APPROVAL_NEEDED, EventType.APPROVED, EventType.SEALED, EventType.EXPIRED]

    async def run() -> tuple[float, float, float]:
        # Before and after the outbox run (warm-up and load drift show as their spread).
        before = await bare_posts(hook, events, concurrency, kinds, "base1")
        store = Store(work / "outbox-state", Ledger("bench", lambda: datetime.now(UTC)))
        await store.open()
        store.notifier = OutboxNotifier(config, lambda before, after: [])
        now = datetime.now(UTC)

        def enqueue(tx: Transaction) -> None:
            for i in range(events):
                tx.emit(
                    Event(f"ev-{i:06d}", kinds[i % 4], now, "contract", f"req-{i // 4:06d}", "pending")
                )

        await store.write(enqueue)
        deliverer = Deliverer(store, config, lambda: datetime.now(UTC))
        started = time.perf_counter()
        deliverer.start()
        if not await asyncio.to_thread(parent.poll, 600):
            raise RuntimeError("the receiver did not get every event in 600 s")
        assert parent.recv() == "outbox done"
        elapsed = time.perf_counter() - started
        await deliverer.stop()
        await store.close()
        after = await bare_posts(hook, events, concurrency, kinds, "base2")
        unique, rejected = parent.recv()
        assert unique == 3 * events and rejected == 0, (unique, rejected)
        return events / elapsed, before, after

    try:
        return asyncio.run(run())
    finally:
        process.join(30)


def latency(fx: SealFixtures, work: Path, rounds: int, webhook_url: str, secret: Path) -> list[float]:
    def edit(config: DaemonConfig) -> None:
        if not webhook_url:
            return
        admin = fx.principals["chen.jie"]
        webhook = {
            "name": "oa",
            "url": webhook_url,
            "secret": str(secret),
            "ca": str(fx.tls_ca),
            "client_cert": str(admin.cert),
            "client_key": str(admin.key),
        }
        config.set("notify", webhook=[webhook])

    d = SealDaemon(fx, edit)
    d.start()
    samples = []
    try:
        with d.client("liu.yang") as custodian:
            # The first daemon changes the initial PIN (R07); the second finds it changed.
            with contextlib.suppress(Exception):
                custodian.change_pin("contract", fx.seals["contract"].user_pin, PIN)
            custodian.unlock("contract", PIN)
        for r in range(rounds):
            pdf = work / f"lat-{webhook_url != ''}-{r}.pdf"
            pdf.write_bytes(valid_pdf(1) + f"\n% {r}\n".encode())
            with d.client("zhang.wei") as requester:
                request = requester.submit(
                    [pdf], seal_id="contract", reason="bench", category="contract", placement=PLACEMENT
                )
            with d.client("li.na") as li:
                li.approve(request.request_id)
            with d.client("wang.fang") as wang, d.client("zhang.wei") as requester:
                approval = prepared_approval(wang, request.request_id, work)
                events = requester.watch(request_id=request.request_id)
                started = time.perf_counter()
                wang._requests.ApproveRequest(approval, timeout=30)
                wait_signed(events)
                samples.append(time.perf_counter() - started)
    finally:
        d.stop()
    return samples


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--outbox-only", action="store_true", help="skip the latency part")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-webhooks-") as tmp_name:
        tmp = Path(tmp_name)
        build_fixtures(tmp / "fx")
        fx = load_fixtures(tmp / "fx")
        os.environ["SOFTHSM2_CONF"] = str(fx.softhsm2_conf)
        print(f"load average: {os.getloadavg()}")
        rate, before, after = outbox_throughput(fx, tmp, args.events, args.concurrency)
        baseline = max(before, after)
        print(
            f"outbox throughput: {args.events} events to a loopback HTTPS receiver, "
            f"concurrency {args.concurrency}: {rate:.0f} events/s (target >= 500); "
            f"bare aiohttp POST loop to the same receiver: {before:.0f} before, {after:.0f} "
            f"after; outbox/baseline(best) = {rate / baseline:.2f}"
        )
        print(f"load average after: {os.getloadavg()}")
        if args.outbox_only:
            return 0
        secret = tmp / "webhook.secret"
        secret.write_bytes(SECRET)
        off = latency(fx, tmp, args.rounds, "", secret)
        receiver = WebhookReceiver(SECRET, fx.server_cert, fx.server_key, client_ca=fx.tls_ca).start()
        try:
            on = latency(fx, tmp, args.rounds, receiver.url, secret)
            time.sleep(1.0)
            delivered = len(receiver.unique_ids())
        finally:
            receiver.stop()
        m_off, m_on = statistics.median(off) * 1000, statistics.median(on) * 1000
        print(
            f"sealing latency (approval -> SIGNED, median of {args.rounds}): webhooks off "
            f"{m_off:.1f} ms, on {m_on:.1f} ms ({m_on - m_off:+.1f} ms); "
            f"{delivered} events delivered during the 'on' rounds"
        )
        print(f"  off samples ms: {[round(s * 1000, 1) for s in off]}")
        print(f"  on  samples ms: {[round(s * 1000, 1) for s in on]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
