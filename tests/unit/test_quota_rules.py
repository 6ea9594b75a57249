"""Issue 17: use quotas per seal, as pure rules (seald.domain.quotas)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from seald.domain.quotas import QuotaExceeded, Quotas, Usage, check_submit, periods

SHANGHAI = ZoneInfo("Asia/Shanghai")


def test_quota_periods_are_local_calendar_day_and_month() -> None:
    # 2026-12-31 17:30 UTC is 2027-01-01 01:30 in Shanghai.
    p = periods(datetime(2026, 12, 31, 17, 30, tzinfo=UTC), SHANGHAI)
    assert p.day_start == datetime(2027, 1, 1, tzinfo=SHANGHAI)
    assert p.day_end == datetime(2027, 1, 2, tzinfo=SHANGHAI)
    assert p.month_start == datetime(2027, 1, 1, tzinfo=SHANGHAI)
    assert p.month_end == datetime(2027, 2, 1, tzinfo=SHANGHAI)
    dec = periods(datetime(2026, 12, 15, 3, 0, tzinfo=UTC), SHANGHAI)
    assert dec.month_end == datetime(2027, 1, 1, tzinfo=SHANGHAI)


def test_quota_day_end_across_a_dst_change() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    p = periods(datetime(2026, 3, 29, 0, 30, tzinfo=UTC), berlin)  # the day DST starts
    assert p.day_end - p.day_start == datetime(2026, 3, 30, tzinfo=berlin) - datetime(
        2026, 3, 29, tzinfo=berlin
    )
    assert (p.day_end.astimezone(UTC) - p.day_start.astimezone(UTC)).total_seconds() == 23 * 3600


def usage(today: int, month: int) -> Usage:
    return Usage(today, month, periods(datetime(2026, 11, 29, 9, 0, tzinfo=UTC), SHANGHAI))


def test_quota_nth_use_allowed_n_plus_first_refused_with_the_reset_time() -> None:
    q = Quotas(uses_per_day=3)
    check_submit("contract", q, usage(2, 2), 1)  # the 3rd use of the day
    with pytest.raises(QuotaExceeded) as refused:
        check_submit("contract", q, usage(3, 3), 1)
    assert refused.value.reason == "quota_uses_per_day"
    assert "uses_per_day" in refused.value.message
    assert "2026-11-30T00:00:00+08:00" in refused.value.message


def test_quota_per_month_and_documents_per_request() -> None:
    with pytest.raises(QuotaExceeded, match=r"resets at 2026-12-01T00:00:00\+08:00") as month:
        check_submit("contract", Quotas(uses_per_month=10), usage(0, 10), 1)
    assert month.value.reason == "quota_uses_per_month"
    with pytest.raises(QuotaExceeded, match="documents_per_request") as docs:
        check_submit("contract", Quotas(documents_per_request=5), usage(0, 0), 6)
    assert docs.value.reason == "quota_documents_per_request"
    check_submit("contract", Quotas(documents_per_request=5), usage(0, 0), 5)
    check_submit("contract", Quotas(), usage(10**6, 10**6), 10**4)  # no quota: no limit
