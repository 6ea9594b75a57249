"""Timestamps from clients, checked: an out-of-range time is bad input, never a crash.

protobuf's ``Timestamp.ToDatetime`` raises ValueError/OverflowError for seconds outside
0001-01-01..9999-12-31 (found by the gRPC fuzzer of issue 8, which got INTERNAL).
"""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from seald.domain.errors import InvalidInput


def datetime_from_pb(ts: Timestamp, field: str) -> datetime:
    """``ts`` as an aware UTC datetime; InvalidInput if it is out of range."""
    try:
        return ts.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError) as ex:
        raise InvalidInput(
            f"{field} is not a valid time (seconds={ts.seconds}, nanos={ts.nanos}); give a time "
            "between 0001-01-01 and 9999-12-31 UTC",
            reason="bad_timestamp",
        ) from ex
