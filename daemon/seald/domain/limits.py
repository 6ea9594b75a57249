"""Per-client limits (issue 8): a token bucket per principal, the open-request cap and
the cap on open server streams.

Pure: the caller passes the clock (monotonic seconds) and the counts; nothing here
reads time, the store or the network. The buckets are keyed by principal name, and
principals come from the configured allow-list, so the table stays bounded.
"""

from __future__ import annotations

from dataclasses import dataclass

from seald.domain.errors import LimitExceeded, RateLimited, TooManyStreams


@dataclass
class TokenBucket:
    """Classic token bucket: ``burst`` tokens at most, refilled at ``rate`` per second."""

    rate: float
    burst: int
    tokens: float
    updated: float

    def take(self, now: float) -> float:
        """Take one token; 0.0 if admitted, else the seconds until one is available."""
        elapsed = max(0.0, now - self.updated)
        self.tokens = min(float(self.burst), self.tokens + elapsed * self.rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


class PrincipalRateLimits:
    """One bucket per principal; the rate and burst are read per call (SIGHUP may change them)."""

    def __init__(self) -> None:
        self._buckets: dict[str, TokenBucket] = {}

    def admit(self, principal: str, *, rate: float, burst: int, now: float) -> None:
        bucket = self._buckets.get(principal)
        if bucket is None:
            bucket = self._buckets[principal] = TokenBucket(rate, burst, float(burst), now)
        elif (bucket.rate, bucket.burst) != (rate, burst):
            bucket.rate, bucket.burst = rate, burst
            bucket.tokens = min(bucket.tokens, float(burst))
        wait = bucket.take(now)
        if wait > 0.0:
            raise RateLimited(
                f"{principal} is over the per-client rate limit of {rate:g} calls per second "
                f"with bursts of {burst} (requests.rate_limit_per_second, "
                f"requests.rate_limit_burst); retry in {max(wait, 0.001):.3f} s",
            )


def check_open_requests(principal: str, open_requests: int, limit: int) -> None:
    """Refuse a new request while ``principal`` already has ``limit`` unfinished ones."""
    if open_requests >= limit:
        raise LimitExceeded(
            f"{principal} already has {open_requests} unfinished requests (pending, approved "
            f"or signing); the limit is {limit} (requests.max_pending_per_principal). Wait for "
            "them to be sealed, or cancel some, then submit again",
            reason="too_many_pending",
        )


class StreamSlot:
    """One open server stream; ``release`` frees it once, however often it is called."""

    def __init__(self, streams: OpenStreams, principal: str) -> None:
        self._streams = streams
        self.principal = principal
        self.released = False

    def release(self) -> None:
        if not self.released:
            self.released = True
            self._streams._close(self.principal)


class OpenStreams:
    """Server-streaming calls open now, per principal and in total.

    A watch holds its slot for as long as it is open, so these are counts of what is open,
    not a rate. The caps are passed per call (SIGHUP may change them); lowering one ends no
    stream already open, it only refuses new ones until enough have closed. Principals
    come from the allow-list, so the table stays bounded; a principal at 0 is dropped.
    """

    def __init__(self) -> None:
        self._by_principal: dict[str, int] = {}
        self.total = 0

    def open_for(self, principal: str) -> int:
        return self._by_principal.get(principal, 0)

    def open(self, principal: str, *, per_principal: int, total: int) -> StreamSlot:
        """Take a slot for one more stream of ``principal``, or raise TooManyStreams."""
        held = self.open_for(principal)
        if held >= per_principal:
            raise TooManyStreams(
                f"{principal} already has {held} streams open (watches, downloads, previews, "
                f"audit queries or reports); the limit is {per_principal} "
                "(requests.max_streams_per_principal). Close other watches or wait for "
                "downloads to finish, then try again",
            )
        if self.total >= total:
            raise TooManyStreams(
                f"the server already has {self.total} streams open for all clients; the limit "
                f"is {total} (requests.max_open_streams). Try again when other watches have "
                "closed; the operator can raise requests.max_open_streams",
                reason="server_streams_full",
            )
        self._by_principal[principal] = held + 1
        self.total += 1
        return StreamSlot(self, principal)

    def _close(self, principal: str) -> None:
        held = self._by_principal.get(principal, 0)
        if held <= 1:
            self._by_principal.pop(principal, None)
        else:
            self._by_principal[principal] = held - 1
        self.total = max(0, self.total - 1)
