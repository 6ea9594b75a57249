"""Long-term archives (issue 16 item 5; SEAL-RULES R14): when a B-LTA document is due
for a fresh archive timestamp.

A B-LTA document ends in a document timestamp whose TSA certificate (and that
certificate's chain) has an end date. Before that date someone must add a newer document
timestamp over the document plus fresh revocation data (pyHanko's archival timestamp
chain update); after it, the last timestamp can no longer be validated and the archive
can no longer be renewed by software. "Due" = the earliest end date of the newest
timestamp's signer and chain falls within ``renew_within_days`` of now.

Pure: the daemon reads the facts from the PDF (signing/archive.py) and asks here.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

# At least a day (a daily timer must see a document before its window closes); at most
# ten years (a larger window renews every document every day).
RENEW_WITHIN_DAYS_RANGE: Final = (1, 3650)


class ArchiveStatus(enum.Enum):
    """What a renewal run says about one sealed document (also the wire's status word)."""

    NOT_ARCHIVE = "not_archive"  # no document timestamp: not B-LTA, nothing to renew
    NOT_DUE = "not_due"
    DUE = "due"  # dry run: would be renewed
    RENEWED = "renewed"
    EXPIRED = "expired"  # too late: the last timestamp's certificate has ended
    FAILED = "failed"  # due, but the renewal or the file check failed (reason says why)


@dataclass(frozen=True)
class ArchiveFacts:
    """What the newest document timestamp of a sealed file says (None: it has none)."""

    timestamp_time: datetime | None
    # The earliest notAfter of the timestamp's signing certificate and its chain.
    expires_at: datetime | None
    tsa_subject: str = ""


@dataclass(frozen=True)
class RenewalDecision:
    status: ArchiveStatus
    reason: str  # a registered reason (domain/reasons.py)
    detail: str  # one line for people


def renewal_decision(facts: ArchiveFacts, now: datetime, renew_within_days: int) -> RenewalDecision:
    """Due or not, and why. ``now`` and ``facts`` times must be timezone-aware."""
    low, high = RENEW_WITHIN_DAYS_RANGE
    if not low <= renew_within_days <= high:
        raise ValueError(f"renew_within_days must be {low}..{high}, not {renew_within_days}")
    if facts.timestamp_time is None or facts.expires_at is None:
        return RenewalDecision(
            ArchiveStatus.NOT_ARCHIVE,
            "archive_no_document_timestamp",
            "no document timestamp (not a B-LTA document); nothing to renew",
        )
    expires = facts.expires_at.isoformat(timespec="seconds")
    if facts.expires_at <= now:
        return RenewalDecision(
            ArchiveStatus.EXPIRED,
            "archive_timestamp_expired",
            f"the last archive timestamp's certificate ended at {expires}; it can no longer be "
            "renewed by seald: re-seal the original or keep it with external evidence",
        )
    left = facts.expires_at - now
    if left <= timedelta(days=renew_within_days):
        return RenewalDecision(
            ArchiveStatus.DUE,
            "archive_renewal_due",
            f"the last archive timestamp's certificate ends at {expires}, within "
            f"{renew_within_days} days",
        )
    return RenewalDecision(
        ArchiveStatus.NOT_DUE,
        "archive_not_due",
        f"the last archive timestamp's certificate ends at {expires}, beyond {renew_within_days} days",
    )
