"""pb <-> domain for custody (R09); kept apart from convert.py, which several issues edit."""

from __future__ import annotations

from datetime import datetime

from sealapi.v1 import common_pb2, seals_pb2
from seald.api.convert import timestamp
from seald.api.times import datetime_from_pb
from seald.domain.custody import Custody, CustodyChange, CustodyChangeKind
from seald.domain.errors import InvalidInput

KIND_FROM_PB = {
    seals_pb2.CUSTODY_CHANGE_KIND_HANDOVER: CustodyChangeKind.HANDOVER,
    seals_pb2.CUSTODY_CHANGE_KIND_DELEGATION: CustodyChangeKind.DELEGATION,
}
KIND_TO_PB = {v: k for k, v in KIND_FROM_PB.items()}


def kind_from_pb(value: int) -> CustodyChangeKind:
    for pb_kind, kind in KIND_FROM_PB.items():
        if pb_kind == value:
            return kind
    raise InvalidInput("kind must be HANDOVER or DELEGATION", reason="bad_custody_kind")


def window_from_pb(window: common_pb2.TimeWindow) -> tuple[datetime | None, datetime | None]:
    start = datetime_from_pb(window.not_before, "not_before") if window.HasField("not_before") else None
    end = datetime_from_pb(window.not_after, "not_after") if window.HasField("not_after") else None
    return start, end


def _window(start: datetime | None, end: datetime | None) -> common_pb2.TimeWindow:
    return common_pb2.TimeWindow(not_before=timestamp(start), not_after=timestamp(end))


def custody_to_pb(custody: Custody, now: datetime) -> seals_pb2.Custody:
    active = custody.delegation_active(now)
    return seals_pb2.Custody(
        seal_id=custody.seal_id,
        custodian=custody.custodian,
        delegate=custody.delegate if active else "",
        delegation=_window(custody.delegation_start, custody.delegation_end) if active else None,
    )


def change_to_pb(change: CustodyChange) -> seals_pb2.CustodyChange:
    return seals_pb2.CustodyChange(
        change_id=change.change_id,
        seal_id=change.seal_id,
        kind=KIND_TO_PB[change.kind],
        to_principal=change.to_principal,
        window=_window(change.window_start, change.window_end),
        approvals=list(change.approvals),
        in_effect=change.in_effect,
    )
