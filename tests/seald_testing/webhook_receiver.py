"""A real HTTPS webhook receiver on loopback (issue 17 tests), on its own thread and loop.

It serves the test PKI's server certificate, optionally requires a client certificate
from the test TLS CA, verifies each delivery with the documented recipe
(sealclient.webhook_verify) and records what it accepted. ``fail_next`` makes it answer
503 to that many attempts (a receiver that is down); ``redirect_next`` answers 307 to
another place; ``delay`` makes it slow.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from sealclient.webhook_verify import WebhookRejected, verify_delivery


@dataclass
class Received:
    event_id: str
    event: dict[str, Any]
    headers: dict[str, str]
    body: bytes


@dataclass
class WebhookReceiver:
    secret: bytes
    cert: Path
    key: Path
    client_ca: Path | None = None
    fail_next: int = 0
    redirect_next: int = 0
    delay: float = 0.0
    accepted: list[Received] = field(default_factory=list)
    attempts: int = 0
    rejected: list[str] = field(default_factory=list)
    port: int = 0
    _seen: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}/seald/events"

    def unique_ids(self) -> list[str]:
        with self._lock:
            return [r.event_id for r in self.accepted]

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        with self._lock:
            self.attempts += 1
            if self.fail_next > 0:
                self.fail_next -= 1
                return web.Response(status=503, text="down")
            if self.redirect_next > 0:
                self.redirect_next -= 1
                raise web.HTTPTemporaryRedirect("https://elsewhere.invalid/steal")
        if self.delay:
            await asyncio.sleep(self.delay)
        try:
            event = verify_delivery(self.secret, dict(request.headers), body, now=time.time())
        except (WebhookRejected, json.JSONDecodeError) as ex:
            with self._lock:
                self.rejected.append(str(ex))
            return web.Response(status=401, text=str(ex))
        with self._lock:
            if event["event_id"] not in self._seen:  # the recipe: act once per event id
                self._seen.add(event["event_id"])
                self.accepted.append(Received(event["event_id"], event, dict(request.headers), body))
        return web.Response(status=204)

    def start(self) -> WebhookReceiver:
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()

        def serve() -> None:
            asyncio.set_event_loop(self._loop)
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(str(self.cert), str(self.key))
            if self.client_ca is not None:
                context.load_verify_locations(str(self.client_ca))
                context.verify_mode = ssl.CERT_REQUIRED
            app = web.Application()
            app.router.add_post("/seald/events", self._handle)
            self._runner = web.AppRunner(app, access_log=None)
            self._loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", self.port, ssl_context=context)
            self._loop.run_until_complete(site.start())
            server = site._server
            assert server is not None
            self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            ready.set()
            self._loop.run_forever()
            self._loop.run_until_complete(self._runner.cleanup())

        self._thread = threading.Thread(target=serve, name="webhook-receiver", daemon=True)
        self._thread.start()
        assert ready.wait(10), "receiver did not start"
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def wait_for(self, count: int, timeout: float = 60.0) -> list[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ids = self.unique_ids()
            if len(ids) >= count:
                return ids
            time.sleep(0.05)
        raise AssertionError(f"receiver got {len(self.unique_ids())} of {count} events in {timeout} s")
