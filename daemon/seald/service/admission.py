"""Per-client limits (issue 8): calls per second, open streams, open requests."""

from __future__ import annotations

import time

from seald.domain.limits import OpenStreams, PrincipalRateLimits, StreamSlot, check_open_requests
from seald.domain.model import Principal
from seald.service.settings import LiveConfig
from seald.store.database import Store


class Admission:
    """Admits a call, a stream or an upload for a principal, or refuses it early."""

    def __init__(self, live: LiveConfig, store: Store) -> None:
        self._live = live
        self._store = store
        # A token bucket per principal over every RPC (api/call.py admits calls).
        self.rate_limits = PrincipalRateLimits()
        # Server streams open now, per principal and in total (api/call.py takes a slot).
        self.open_streams = OpenStreams()

    def admit_call(self, principal: Principal) -> None:
        """The per-principal rate limit; raises RateLimited (RESOURCE_EXHAUSTED) when over it."""
        limits = self._live.current.requests
        self.rate_limits.admit(
            principal.name,
            rate=limits.rate_limit_per_second,
            burst=limits.rate_limit_burst,
            now=time.monotonic(),
        )

    def open_stream(self, principal: Principal) -> StreamSlot:
        """A slot for one more server stream; raises TooManyStreams (RESOURCE_EXHAUSTED)."""
        limits = self._live.current.requests
        return self.open_streams.open(
            principal.name,
            per_principal=limits.max_streams_per_principal,
            total=limits.max_open_streams,
        )

    async def check_open_requests(self, principal: Principal, client_request_key: str = "") -> None:
        """Early refusal before an upload; submit() checks again inside its transaction."""
        if client_request_key and await self._store.find_by_client_key(
            principal.name, client_request_key
        ):
            return  # a retry of a request already made: submit() answers with it
        count = await self._store.count_open_requests(principal.name)
        check_open_requests(
            principal.name, count, self._live.current.requests.max_pending_per_principal
        )
