"""R06 collect-then-use, over a real seald (issue 14 item 14): a request expires at the
earlier of submission + approval_ttl_hours and its completing approval +
approval_use_hours; a withdrawal that breaks the quorum restores the first deadline.

The daemon's request clock is moved with SEALD_TEST_CLOCK_FILE (offsets from the moment
of the test's own submission, so it passes at any hour and date); the tokens stay locked,
so nothing is sealed and the requests can only wait or expire (expiry runs every 30 s).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fixture_layout import SealFixtures

from sealapi.v1 import requests_pb2
from seald_testing.custody import PLACEMENT, DaemonClock
from seald_testing.daemon import SealDaemon, make_pdf

TTL_H, USE_H = 72, 24
EXPIRED = requests_pb2.REQUEST_STATE_EXPIRED
APPROVED = requests_pb2.REQUEST_STATE_APPROVED
PENDING = requests_pb2.REQUEST_STATE_PENDING


@pytest.fixture
def timed(fresh_seal_fixtures: SealFixtures) -> Iterator[tuple[SealDaemon, DaemonClock]]:
    clock = DaemonClock(fresh_seal_fixtures)

    d = SealDaemon(
        fresh_seal_fixtures,
        lambda c: c.set("requests", approval_ttl_hours=TTL_H, approval_use_hours=USE_H),
        env=clock.env,
    )
    d.start()
    yield d, clock
    if d.proc is not None:
        d.stop()


def _at(ts: object) -> datetime:
    return ts.ToDatetime(tzinfo=UTC)  # type: ignore[attr-defined,no-any-return]


def _submit(d: SealDaemon, tmp_path: Path, name: str) -> requests_pb2.SealRequest:
    with d.client("zhang.wei") as z:
        return z.submit(
            [make_pdf(tmp_path / name)],
            seal_id="contract",
            reason="两个期限",
            category="contract",
            placement=PLACEMENT,
        )


@pytest.mark.clock  # issue 14: request times on the daemon clock, offsets from now
def test_r06_expiry_is_the_earlier_of_the_two_deadlines_and_withdrawal_restores_the_first(
    timed: tuple[SealDaemon, DaemonClock], tmp_path: Path
) -> None:
    d, clock = timed
    start = datetime.now(UTC)
    late = _submit(d, tmp_path, "late.pdf")  # quorum near the end of the first deadline
    early = _submit(d, tmp_path, "early.pdf")  # quorum early, then a withdrawal
    for r in (late, early):
        assert _at(r.expires_at) == _at(r.created_at) + timedelta(hours=TTL_H)
    li, wang = d.client("li.na"), d.client("wang.fang")
    try:
        # Early quorum: the second deadline (approval + 24 h) comes first.
        clock.set(start + timedelta(hours=1))
        li.approve(early.request_id)
        done = wang.approve(early.request_id)
        assert done.state == APPROVED
        last = max(_at(a.approved_at) for a in done.approvals)
        assert _at(done.expires_at) == last + timedelta(hours=USE_H)

        # A withdrawal breaks the quorum: collecting again, until the first deadline.
        clock.set(start + timedelta(hours=2))
        back = wang.withdraw(early.request_id)
        assert back.state == PENDING
        assert _at(back.expires_at) == _at(early.created_at) + timedelta(hours=TTL_H)

        # The quorum again: a new use window from the new completing approval.
        clock.set(start + timedelta(hours=3))
        # (with a comment: a statement signed in the same second as the withdrawn one would
        # be byte-identical to it, and a recorded statement never counts again)
        again = wang.approve(early.request_id, "再次同意")
        assert again.state == APPROVED
        last = max(_at(a.approved_at) for a in again.approvals)
        assert _at(again.expires_at) == last + timedelta(hours=USE_H)

        # Late quorum (60 h after submission): approval + 24 h would be 84 h; the first
        # deadline (72 h) stands.
        clock.set(start + timedelta(hours=60))
        li.approve(late.request_id)
        complete = wang.approve(late.request_id)
        assert complete.state == APPROVED
        assert _at(complete.expires_at) == _at(late.created_at) + timedelta(hours=TTL_H)
        # By now (60 h) the early request's use window (3 h + 24 h) is long over.
        d.wait_state(li, early.request_id, EXPIRED, timeout=60)
        assert li.get(late.request_id).state == APPROVED

        # Just past the first deadline the late request expires, approved or not.
        clock.set(_at(late.created_at) + timedelta(hours=TTL_H, minutes=1))
        expired = d.wait_state(li, late.request_id, EXPIRED, timeout=60)
        assert "expired" in expired.state_reason
    finally:
        li.close()
        wang.close()
