"""Per-client limits (issue 8): a token bucket per principal and the open-request cap.

Pure: the caller passes the clock (monotonic seconds) and the counts; nothing here
reads time, the store or the network. The buckets are keyed by principal name, and
principals come from the configured allow-list, so the table stays bounded.
"""

from __future__ import annotations

from dataclasses import dataclass

from seald.domain.errors import LimitExceeded, RateLimited


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
