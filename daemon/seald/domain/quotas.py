"""Use quotas per seal (issue 17): uses per day and per month, documents per request.

A *use* is one seal request that was submitted in the period and did not end without a
seal (rejected, cancelled, expired and failed requests give their use back). Counting
from the stored requests, not from a counter in memory, means a restart never resets
a quota. Periods are calendar days and months in the seal's quota time zone (the
company's, e.g. Asia/Shanghai), so "per day" resets at local midnight.

Pure: the caller passes the counts and the clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo

from seald.domain.errors import LimitExceeded


class QuotaExceeded(LimitExceeded):
    """A seal's use quota is spent until the period resets (RESOURCE_EXHAUSTED)."""

    default_reason = "quota_exceeded"


@dataclass(frozen=True)
class Quotas:
    """0 = no quota of that kind."""

    uses_per_day: int = 0
    uses_per_month: int = 0
    documents_per_request: int = 0

    @property
    def any(self) -> bool:
        return bool(self.uses_per_day or self.uses_per_month or self.documents_per_request)


@dataclass(frozen=True)
class Periods:
    """The current day and month in the quota time zone, as UTC-aware instants."""

    day_start: datetime
    day_end: datetime
    month_start: datetime
    month_end: datetime


def periods(now: datetime, zone: tzinfo) -> Periods:
    local = now.astimezone(zone)
    day_start = local.replace(hour=0, minute=0, second=0, microsecond=0)
    # Add a day by the calendar (wall clock, then localise: right across a DST change).
    next_day = day_start.replace(tzinfo=None) + timedelta(days=1)
    month_start = day_start.replace(day=1)
    year, month = (local.year + 1, 1) if local.month == 12 else (local.year, local.month + 1)
    return Periods(
        day_start=day_start,
        day_end=next_day.replace(tzinfo=zone),
        month_start=month_start,
        month_end=datetime(year, month, 1, tzinfo=zone),
    )


@dataclass(frozen=True)
class Usage:
    """What a seal has used in the current periods (for the usage report)."""

    uses_today: int
    uses_this_month: int
    periods: Periods


def check_submit(seal_id: str, quotas: Quotas, usage: Usage, documents: int) -> None:
    """Refuse a request that would exceed a quota, naming it and when it resets."""
    if quotas.documents_per_request and documents > quotas.documents_per_request:
        raise QuotaExceeded(
            f"seal {seal_id} allows at most {quotas.documents_per_request} document(s) per "
            f"request (quota documents_per_request); this request has {documents}: split it",
            reason="quota_documents_per_request",
        )
    if quotas.uses_per_day and usage.uses_today + 1 > quotas.uses_per_day:
        raise QuotaExceeded(
            f"seal {seal_id} has used its quota of {quotas.uses_per_day} use(s) per day "
            f"(quota uses_per_day); it resets at {usage.periods.day_end.isoformat()}",
            reason="quota_uses_per_day",
        )
    if quotas.uses_per_month and usage.uses_this_month + 1 > quotas.uses_per_month:
        raise QuotaExceeded(
            f"seal {seal_id} has used its quota of {quotas.uses_per_month} use(s) per month "
            f"(quota uses_per_month); it resets at {usage.periods.month_end.isoformat()}",
            reason="quota_uses_per_month",
        )
