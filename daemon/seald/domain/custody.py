"""Custody rules (R07, R08, R09) as pure functions: hours, same-day return, handover, delegation.

No I/O and no clock of its own: every function gets ``now`` from the caller, so the
rules are tested with any instant (an injected clock in the service).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime, time, timedelta
from enum import Enum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from seald.domain.errors import (
    AlreadyDone,
    ConfigError,
    InvalidInput,
    PermissionDenied,
    PreconditionFailed,
)
from seald.domain.text_policy import MAX_LABEL, check_text

HOURS_PATTERN = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]|24):([0-5]\d)$")
REQUIRED_CUSTODY_APPROVALS = 2


# -- hours and same-day return (R08) ---------------------------------------------------------------
@dataclass(frozen=True)
class SealHours:
    """When a seal may be used, in its own time zone; the token must be out by end + grace."""

    start: time
    end: time
    zone: str
    return_grace: timedelta

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.zone)


ALWAYS = SealHours(time(0, 0), time(23, 59, 59, 999999), "UTC", timedelta(0))


def parse_hours(text: str, zone: str, return_grace_minutes: float) -> SealHours:
    """'08:30-18:00' in zone 'Asia/Shanghai' -> SealHours; ConfigError on anything else."""
    match = HOURS_PATTERN.match(text)
    if not match:
        raise ConfigError(f"hours = {text!r}: use HH:MM-HH:MM, e.g. '08:30-18:00'")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    start = time(h1, m1)
    end = time(23, 59, 59, 999999) if (h2, m2) == (24, 0) else time(h2 % 24, m2)
    if h2 == 24 and m2 != 0:
        raise ConfigError(f"hours = {text!r}: 24:MM is only valid as 24:00")
    if end <= start:
        raise ConfigError(f"hours = {text!r}: the end must be after the start on the same day (R08)")
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError) as ex:
        raise ConfigError(f"time_zone = {zone!r} is not a known IANA zone, e.g. 'Asia/Shanghai'") from ex
    if return_grace_minutes < 0:
        raise ConfigError("return_grace_minutes must be >= 0")
    return SealHours(start, end, zone, timedelta(minutes=return_grace_minutes))


def within_hours(hours: SealHours, now: datetime) -> bool:
    local = now.astimezone(hours.tz).timetz().replace(tzinfo=None)
    return hours.start <= local <= hours.end


def out_of_hours_reason(seal_id: str, hours: SealHours, now: datetime) -> str:
    if within_hours(hours, now):
        return ""
    return (
        f"seal {seal_id} may only be used {hours.start:%H:%M}-{hours.end:%H:%M} ({hours.zone}); "
        "the request waits until the seal's hours (R08)"
    )


def return_overdue(hours: SealHours, now: datetime) -> bool:
    """True once the token should be back in the safe: end of day + grace, until next start."""
    local = now.astimezone(hours.tz)
    day_end = datetime.combine(local.date(), hours.end, tzinfo=hours.tz)
    day_start = datetime.combine(local.date(), hours.start, tzinfo=hours.tz)
    return local >= day_end + hours.return_grace or local < day_start


def local_day(hours: SealHours, now: datetime) -> str:
    """The seal's business day an instant belongs to (alerts fire once per day)."""
    local = now.astimezone(hours.tz)
    if local.timetz().replace(tzinfo=None) < hours.start:
        return (local.date() - timedelta(days=1)).isoformat()
    return local.date().isoformat()


# -- idle auto-lock (R07) --------------------------------------------------------------------------
def idle_expired(last_use: datetime, now: datetime, idle_lock: timedelta | None) -> bool:
    return idle_lock is not None and now - last_use >= idle_lock


# -- custody handover and delegation (R09) ---------------------------------------------------------
class CustodyChangeKind(Enum):
    HANDOVER = "handover"
    DELEGATION = "delegation"


@dataclass(frozen=True)
class Custody:
    """Who holds a seal's token now: the custodian, and a delegate during a window."""

    seal_id: str
    custodian: str
    delegate: str = ""
    delegation_start: datetime | None = None
    delegation_end: datetime | None = None

    def delegation_active(self, now: datetime) -> bool:
        return bool(
            self.delegate
            and self.delegation_start is not None
            and self.delegation_end is not None
            and self.delegation_start <= now < self.delegation_end
        )

    def holders(self, now: datetime) -> frozenset[str]:
        """Who may act as custodian at ``now``; a delegation ends by itself at its end."""
        people = {self.custodian} if self.custodian else set()
        if self.delegation_active(now):
            people.add(self.delegate)
        return frozenset(people)


@dataclass(frozen=True)
class CustodyChange:
    change_id: str
    seal_id: str
    kind: CustodyChangeKind
    to_principal: str
    proposed_by: str
    proposed_at: datetime
    comment: str = ""
    window_start: datetime | None = None
    window_end: datetime | None = None
    approvals: tuple[str, ...] = ()
    in_effect: bool = False


def propose_change(
    *,
    change_id: str,
    custody: Custody,
    kind: CustodyChangeKind,
    to_principal: str,
    proposed_by: str,
    eligible_holders: frozenset[str],
    now: datetime,
    comment: str = "",
    window_start: datetime | None = None,
    window_end: datetime | None = None,
) -> CustodyChange:
    if not to_principal:
        raise InvalidInput("name the principal who takes custody (to_principal)", reason="no_principal")
    check_text("to_principal", to_principal, limit=MAX_LABEL)
    check_text("comment", comment)
    if to_principal not in eligible_holders:
        raise InvalidInput(
            f"{to_principal} is not a custodian-role principal of seal {custody.seal_id}; "
            "give them the custodian role for this seal in seald.toml first",
            reason="not_eligible_custodian",
        )
    if kind is CustodyChangeKind.HANDOVER:
        if to_principal == custody.custodian:
            raise AlreadyDone(f"{to_principal} already holds seal {custody.seal_id}", reason="no_change")
        window_start = window_end = None
    else:
        if to_principal == custody.custodian:
            raise InvalidInput("the custodian cannot be their own delegate", reason="self_delegation")
        if window_start is None or window_end is None or window_end <= window_start:
            raise InvalidInput("a delegation needs a window with start before end (R09)", reason="bad_window")
        if window_end <= now:
            raise InvalidInput("the delegation window has already ended", reason="bad_window")
    return CustodyChange(
        change_id=change_id,
        seal_id=custody.seal_id,
        kind=kind,
        to_principal=to_principal,
        proposed_by=proposed_by,
        proposed_at=now,
        comment=comment,
        window_start=window_start,
        window_end=window_end,
    )


def approve_change(change: CustodyChange, approver: str) -> CustodyChange:
    """Two distinct approvals; neither the proposer nor the receiving person counts."""
    if change.in_effect:
        raise AlreadyDone(f"custody change {change.change_id} is already in effect", reason="in_effect")
    if approver in (change.proposed_by, change.to_principal):
        raise PermissionDenied(
            "the proposer and the person receiving custody cannot approve the change (R09)",
            reason="self_approval",
        )
    if approver in change.approvals:
        raise AlreadyDone(f"{approver} already approved change {change.change_id}", reason="duplicate")
    approvals = (*change.approvals, approver)
    return replace(change, approvals=approvals, in_effect=len(approvals) >= REQUIRED_CUSTODY_APPROVALS)


def apply_change(custody: Custody, change: CustodyChange) -> Custody:
    if not change.in_effect:
        raise PreconditionFailed(
            f"custody change {change.change_id} has {len(change.approvals)} of "
            f"{REQUIRED_CUSTODY_APPROVALS} approvals",
            reason="not_approved",
        )
    if change.kind is CustodyChangeKind.HANDOVER:
        return Custody(seal_id=custody.seal_id, custodian=change.to_principal)
    return replace(
        custody,
        delegate=change.to_principal,
        delegation_start=change.window_start,
        delegation_end=change.window_end,
    )


def pin_holder_problem(
    seal_id: str,
    *,
    set_by: str,
    unlocked_since: frozenset[str],
    holders: frozenset[str],
    unlocked_by: str,
) -> str:
    """R07's first-use rule applied to every holder (issue 14): the token signs only with a
    PIN that the principal who unlocked it set, who holds the seal now, and that nobody
    else has used since. So after a handover the new custodian changes the PIN before the
    seal signs, a delegate changes it to sign during a delegation, and after a delegation
    in which the delegate unlocked, the custodian changes it again. "" when it may sign.

    ``set_by``: who set the current PIN; ``unlocked_since``: who unlocked the token since;
    ``holders``: who holds the seal now; ``unlocked_by``: who unlocked the current session."""
    change = "must change it first (sealctl token change-pin) (R07, R09)"
    if set_by not in holders:
        return (
            f"the PIN of seal {seal_id}'s token was set by {set_by}, who does not hold the seal "
            f"now; the holder {change}"
        )
    if unlocked_by and unlocked_by != set_by:
        return (
            f"seal {seal_id}'s token was unlocked by {unlocked_by} with a PIN set by {set_by}; "
            f"{unlocked_by} {change}"
        )
    others = sorted(unlocked_since - {set_by})
    if others:
        return (
            f"the PIN of seal {seal_id}'s token, set by {set_by}, was also used by "
            f"{', '.join(others)}; the holder {change}"
        )
    return ""
