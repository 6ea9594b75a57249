"""Issue 17: webhook outbox throughput, and sealing latency with webhooks on vs off.

    .venv/bin/python bench/bench_webhooks.py [--events 2000] [--concurrency 16] [--rounds 10]

- **outbox throughput**: ``--events`` events (4 per request, so per-request ordering is in
  play) are committed to the real store (SQLite on disk, one transaction) and delivered by
  the daemon's Deliverer to a real HTTPS receiver on loopback that checks every HMAC
  signature with the documented recipe. Measured: first delivery attempt to the last
  event accepted. Target: >= 500 events/s.
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
from seald.domain.outbox import Event, EventType  # noqa: E402
from seald.notify.deliverer import Deliverer, OutboxNotifier  # noqa: E402
from seald.store.ledger import Ledger  # noqa: E402
from seald.store.requests import Store, Transaction  # noqa: E402
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
    ids = receiver.wait_for(events, 600)
    conn.send((len(set(ids)), len(receiver.rejected)))
    receiver.stop()


def outbox_throughput(fx: SealFixtures, work: Path, events: int, concurrency: int) -> float:
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

    async def run() -> float:
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
        unique, rejected = parent.recv()
        elapsed = time.perf_counter() - started
        assert unique == events and rejected == 0, (unique, rejected)
        await deliverer.stop()
        await store.close()
        return elapsed

    try:
        elapsed = asyncio.run(run())
    finally:
        process.join(30)
    return events / elapsed


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
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-webhooks-") as tmp_name:
        tmp = Path(tmp_name)
        build_fixtures(tmp / "fx")
        fx = load_fixtures(tmp / "fx")
        os.environ["SOFTHSM2_CONF"] = str(fx.softhsm2_conf)
        print(f"load average: {os.getloadavg()}")
        rate = outbox_throughput(fx, tmp, args.events, args.concurrency)
        print(
            f"outbox throughput: {args.events} events to a loopback HTTPS receiver, "
            f"concurrency {args.concurrency}: {rate:.0f} events/s (target >= 500)"
        )
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
