"""Deliver outbox events to the configured webhooks (issue 17).

One task per webhook takes the due events (the head of each request's queue, so each
request's events arrive in order), POSTs them concurrently with aiohttp, and records
the outcome in one transaction per batch: delivered (2xx), retry later with
exponential backoff, or dead after ``notify.dead_letter_hours``. Redirects are not
followed (a redirect elsewhere is a failed attempt, logged and retried). Nothing here
is on the signing path: a slow or absent receiver only grows the queue.

At least once: an event whose 2xx answer was lost (crash between the answer and the
commit) is sent again with the same event id; receivers dedupe on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import aiohttp

from seald.config import NotifyConfig, WebhookConfig
from seald.domain.model import SealRequest
from seald.domain.outbox import Event, EventType, backoff, delivery_headers, is_dead
from seald.runtime.logs import get_logger
from seald.store import outbox
from seald.store.database import Store, Transaction

log = get_logger("seald.notify")

# Events of one request posted in one round (in order, on one connection): a round then
# carries many events per request instead of only each request's head.
PER_KEY = 16


def ssl_context(hook: WebhookConfig) -> ssl.SSLContext:
    """Verify the receiver (its CA, else the system's); present a client certificate where
    configured."""
    context = ssl.create_default_context(cafile=str(hook.ca) if hook.ca else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if hook.client_cert is not None and hook.client_key is not None:
        context.load_cert_chain(str(hook.client_cert), str(hook.client_key))
    return context


@dataclass
class Outcome:
    item: outbox.Due
    error: str = ""  # empty = delivered


class Deliverer:
    def __init__(
        self, store: Store, config: NotifyConfig, clock: Callable[[], datetime]
    ) -> None:
        self.store = store
        self.config = config
        self.clock = clock
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.delivered = 0
        self.failed_attempts = 0
        self.dead = 0

    def wake(self) -> None:
        """A transaction committed new events: look at once instead of at the next poll."""
        self._wake.set()

    def start(self) -> None:
        for hook in self.config.webhooks:
            self._tasks.append(asyncio.create_task(self._run(hook), name=f"webhook-{hook.name}"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    async def _run(self, hook: WebhookConfig) -> None:
        timeout = aiohttp.ClientTimeout(total=self.config.timeout_seconds)
        connector = aiohttp.TCPConnector(ssl=ssl_context(hook), limit=self.config.concurrency)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
            while True:
                try:
                    sent = await self._round(session, hook)
                except asyncio.CancelledError:
                    raise
                except Exception as ex:  # never let one bad round end delivery
                    log.error("notify.round_failed", webhook=hook.name, problem=type(ex).__name__)
                    sent = 0
                if sent:
                    continue
                await self._sleep(hook)

    async def _sleep(self, hook: WebhookConfig) -> None:
        upcoming = await self.store.read(lambda db: outbox.next_attempt(db.conn, hook.name))
        wait = 1.0
        if upcoming is not None:
            wait = min(wait, max(0.0, (upcoming - self.clock()).total_seconds()))
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=max(wait, 0.01))

    async def _round(self, session: aiohttp.ClientSession, hook: WebhookConfig) -> int:
        now = self.clock()
        chains = await self.store.read(
            lambda db: outbox.due_chains(db.conn, hook.name, now, self.config.concurrency * 4, PER_KEY)
        )
        if not chains:
            return 0
        limit = asyncio.Semaphore(self.config.concurrency)

        async def chain(items: list[outbox.Due]) -> list[Outcome]:
            # One key's events one after another; the first failure ends the chain so a
            # later event never overtakes it (it stays pending, not attempted).
            done: list[Outcome] = []
            async with limit:
                for item in items:
                    done.append(await self._post(session, hook, item))
                    if done[-1].error:
                        break
            return done

        results = await asyncio.gather(*(chain(c) for c in chains))
        outcomes = [o for r in results for o in r]
        await self._record(hook, outcomes)
        return len(outcomes)

    async def _post(
        self, session: aiohttp.ClientSession, hook: WebhookConfig, item: outbox.Due
    ) -> Outcome:
        headers = delivery_headers(hook.secret, int(time.time()), item.event_id, item.body)
        try:
            async with session.post(
                hook.url, data=item.body, headers=headers, allow_redirects=False
            ) as answer:
                await answer.read()
                if 200 <= answer.status < 300:
                    return Outcome(item)
                if 300 <= answer.status < 400:
                    where = answer.headers.get("Location", "")
                    return Outcome(item, f"HTTP {answer.status} redirect to {where[:200]!r} (not followed)")
                return Outcome(item, f"HTTP {answer.status}")
        except (aiohttp.ClientError, TimeoutError, OSError, ssl.SSLError) as ex:
            return Outcome(item, f"{type(ex).__name__}: {str(ex)[:200]}")

    async def _record(self, hook: WebhookConfig, outcomes: list[Outcome]) -> None:
        now = self.clock()
        dead_after = timedelta(hours=self.config.dead_letter_hours)
        initial = timedelta(seconds=self.config.initial_backoff_seconds)
        maximum = timedelta(seconds=self.config.max_backoff_seconds)
        delivered = [(o.item.seq, hook.name) for o in outcomes if not o.error]
        failed = [o for o in outcomes if o.error]

        def write(tx: Transaction) -> None:
            conn = tx.conn
            outbox.mark_delivered(conn, delivered, now)
            for o in failed:
                if is_dead(o.item.queued_at, now, dead_after):
                    outbox.mark_dead(conn, o.item.seq, hook.name, o.error)
                else:
                    delay = backoff(
                        o.item.attempts + 1, initial=initial, maximum=maximum, event_id=o.item.event_id
                    )
                    outbox.mark_retry(conn, o.item.seq, hook.name, now + delay, o.error)

        # Not fsynced (durable=False): losing these marks in a power cut only means the
        # events are posted again with the same ids, which receivers dedupe (at least once).
        # The events themselves were committed durably with their state change.
        await self.store.write(write, durable=False)
        self.delivered += len(delivered)
        for o in failed:
            self.failed_attempts += 1
            dead = is_dead(o.item.queued_at, now, dead_after)
            self.dead += int(dead)
            log.warning(
                "notify.dead_letter" if dead else "notify.retry",
                webhook=hook.name,
                event_id=o.item.event_id,
                attempt=o.item.attempts + 1,
                problem=o.error,
            )


class OutboxNotifier:
    """What the store asks in each transaction: which webhooks get an event, and which
    events a request change causes (with who must approve next, from the policy)."""

    def __init__(
        self,
        config: NotifyConfig,
        events_for: Callable[[SealRequest | None, SealRequest], list[Event]],
    ) -> None:
        self.webhooks = tuple(h.name for h in config.webhooks)
        self._filters = {h.name: h.events for h in config.webhooks}
        self._events_for = events_for

    def webhooks_for(self, event: Event) -> tuple[str, ...]:
        return tuple(
            name
            for name in self.webhooks
            if not self._filters[name] or event.type.value in self._filters[name]
        )

    def events_for(self, before: SealRequest | None, after: SealRequest) -> list[Event]:
        return self._events_for(before, after)


__all__ = ["Deliverer", "EventType", "OutboxNotifier", "ssl_context"]
