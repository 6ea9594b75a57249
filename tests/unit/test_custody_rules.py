"""Issue 3: pure custody rules (R08 hours and same-day return, R09 handover/delegation)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from seald.domain import custody as rules
from seald.domain.custody import Custody, CustodyChangeKind
from seald.domain.errors import AlreadyDone, ConfigError, InvalidInput, PermissionDenied

HOURS = rules.parse_hours("08:30-18:00", "Asia/Shanghai", 60)


def shanghai(hour: int, minute: int = 0, day: int = 2) -> datetime:
    # Asia/Shanghai is UTC+8 all year.
    return datetime(2026, 12, day, hour, minute, tzinfo=UTC) - timedelta(hours=8)


def test_r08_out_of_hours_is_refused_with_the_window_named() -> None:
    assert rules.within_hours(HOURS, shanghai(9))
    assert not rules.within_hours(HOURS, shanghai(8, 29))
    assert not rules.within_hours(HOURS, shanghai(18, 1))
    reason = rules.out_of_hours_reason("contract", HOURS, shanghai(22))
    assert "08:30-18:00" in reason and "Asia/Shanghai" in reason
    assert rules.out_of_hours_reason("contract", HOURS, shanghai(12)) == ""


def test_r08_left_in_overnight_is_overdue_after_end_plus_grace() -> None:
    assert not rules.return_overdue(HOURS, shanghai(18, 59))
    assert rules.return_overdue(HOURS, shanghai(19, 0))
    assert rules.return_overdue(HOURS, shanghai(3, 0, day=3))
    assert not rules.return_overdue(HOURS, shanghai(9, 0, day=3))
    # One alert per business day: 23:00 and 03:00 next morning are the same night.
    assert rules.local_day(HOURS, shanghai(23)) == rules.local_day(HOURS, shanghai(3, day=3))


@pytest.mark.parametrize("bad", ["8:30-18:00", "18:00-08:00", "08:30-18:61", "always"])
def test_r08_bad_hours_are_config_errors(bad: str) -> None:
    with pytest.raises(ConfigError):
        rules.parse_hours(bad, "Asia/Shanghai", 60)
    with pytest.raises(ConfigError):
        rules.parse_hours("08:00-18:00", "Mars/Olympus", 60)


def test_r09_delegation_needs_two_approvals_and_ends_by_itself() -> None:
    now = shanghai(9)
    custody = Custody("contract", "liu.yang")
    change = rules.propose_change(
        change_id="c1",
        custody=custody,
        kind=CustodyChangeKind.DELEGATION,
        to_principal="zhou.li",
        proposed_by="chen.jie",
        eligible_holders=frozenset({"liu.yang", "zhou.li"}),
        now=now,
        window_start=now,
        window_end=now + timedelta(days=2),
    )
    with pytest.raises(PermissionDenied):
        rules.approve_change(change, "chen.jie")  # the proposer does not count
    with pytest.raises(PermissionDenied):
        rules.approve_change(change, "zhou.li")  # nor the person receiving custody
    once = rules.approve_change(change, "li.na")
    assert not once.in_effect
    with pytest.raises(AlreadyDone):
        rules.approve_change(once, "li.na")
    twice = rules.approve_change(once, "wang.fang")
    assert twice.in_effect
    delegated = rules.apply_change(custody, twice)
    assert delegated.holders(now + timedelta(hours=1)) == {"liu.yang", "zhou.li"}
    assert delegated.holders(now + timedelta(days=2)) == {"liu.yang"}  # ended by itself


def test_r09_handover_replaces_the_custodian_and_bad_windows_are_refused() -> None:
    now = shanghai(9)
    custody = Custody("contract", "liu.yang")
    handover = rules.propose_change(
        change_id="c2",
        custody=custody,
        kind=CustodyChangeKind.HANDOVER,
        to_principal="zhou.li",
        proposed_by="chen.jie",
        eligible_holders=frozenset({"liu.yang", "zhou.li"}),
        now=now,
    )
    done = rules.apply_change(custody, rules.approve_change(rules.approve_change(handover, "a"), "b"))
    assert done.holders(now) == {"zhou.li"}
    with pytest.raises(InvalidInput):
        rules.propose_change(
            change_id="c3",
            custody=custody,
            kind=CustodyChangeKind.DELEGATION,
            to_principal="zhou.li",
            proposed_by="chen.jie",
            eligible_holders=frozenset({"zhou.li"}),
            now=now,
            window_start=now,
            window_end=now - timedelta(hours=1),
        )
    with pytest.raises(InvalidInput):
        rules.propose_change(
            change_id="c4",
            custody=custody,
            kind=CustodyChangeKind.HANDOVER,
            to_principal="stranger",
            proposed_by="chen.jie",
            eligible_holders=frozenset({"zhou.li"}),
            now=now,
        )


# -- issue 14: R07's first-use rule for every holder (pin_holder_problem) ----------------------
@pytest.mark.parametrize(
    ("set_by", "unlocked_since", "holders", "unlocked_by", "problem"),
    [
        ("liu.yang", set(), {"liu.yang"}, "liu.yang", ""),
        ("liu.yang", {"liu.yang"}, {"liu.yang"}, "", ""),  # locked, her own PIN
        ("liu.yang", set(), {"sun.li"}, "sun.li", "who does not hold the seal now"),  # handover
        ("liu.yang", set(), {"sun.li"}, "", "set by liu.yang, who does not hold the seal now"),
        ("liu.yang", set(), {"liu.yang", "sun.li"}, "sun.li", "sun.li must change it"),  # delegate
        ("sun.li", {"sun.li"}, {"liu.yang", "sun.li"}, "sun.li", ""),  # the delegate's own PIN
        ("sun.li", {"sun.li"}, {"liu.yang"}, "liu.yang", "set by sun.li, who does not hold"),
        ("liu.yang", {"liu.yang", "sun.li"}, {"liu.yang"}, "liu.yang", "was also used by sun.li"),
    ],
)
def test_r07_r09_pin_must_be_set_by_the_holder_who_unlocked(
    set_by: str, unlocked_since: set[str], holders: set[str], unlocked_by: str, problem: str
) -> None:
    found = rules.pin_holder_problem(
        "contract",
        set_by=set_by,
        unlocked_since=frozenset(unlocked_since),
        holders=frozenset(holders),
        unlocked_by=unlocked_by,
    )
    if problem:
        assert problem in found and "sealctl token change-pin" in found
    else:
        assert found == ""
