"""The pure archive renewal rule (issue 16 item 5) and its [archive] config, at fixed dates."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fixture_layout import SealFixtures

from seald.config import load_config
from seald.domain.archive import ArchiveFacts, ArchiveStatus, renewal_decision
from seald.domain.errors import ConfigError

NOW = datetime(2026, 12, 7, 3, 10, tzinfo=UTC)
STAMPED = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def facts(expires_in: timedelta | None) -> ArchiveFacts:
    if expires_in is None:
        return ArchiveFacts(None, None)
    return ArchiveFacts(STAMPED, NOW + expires_in, "CN=TSA")


@pytest.mark.parametrize(
    ("expires_in", "status", "reason"),
    [
        (None, ArchiveStatus.NOT_ARCHIVE, "archive_no_document_timestamp"),
        (timedelta(days=91), ArchiveStatus.NOT_DUE, "archive_not_due"),
        (timedelta(days=90, seconds=1), ArchiveStatus.NOT_DUE, "archive_not_due"),
        (timedelta(days=90), ArchiveStatus.DUE, "archive_renewal_due"),  # the window's edge is due
        (timedelta(days=1), ArchiveStatus.DUE, "archive_renewal_due"),
        (timedelta(seconds=1), ArchiveStatus.DUE, "archive_renewal_due"),
        (timedelta(0), ArchiveStatus.EXPIRED, "archive_timestamp_expired"),
        (timedelta(days=-3), ArchiveStatus.EXPIRED, "archive_timestamp_expired"),
    ],
)
def test_archive_renewal_due_within_the_window(
    expires_in: timedelta | None, status: ArchiveStatus, reason: str
) -> None:
    decision = renewal_decision(facts(expires_in), NOW, 90)
    assert (decision.status, decision.reason) == (status, reason)
    if expires_in is not None:
        assert (NOW + expires_in).isoformat(timespec="seconds") in decision.detail


def test_archive_window_is_checked() -> None:
    for bad in (0, -1, 3651):
        with pytest.raises(ValueError, match="renew_within_days"):
            renewal_decision(facts(timedelta(days=5)), NOW, bad)


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ("", 90),
        ("[archive]\nrenew_within_days = 30\n", 30),
        ("[archive]\nrenew_within_days = 0\n", r"'archive\.renew_within_days' = 0; use 1 to 3650 days"),
        ("[archive]\nrenew_within_days = 3651\n", r"'archive\.renew_within_days' = 3651"),
        ("[archive]\nrenew_within_day = 30\n", r"unknown key 'archive\.renew_within_day'"),
        ("[archive]\nrenew_within_days = \"soon\"\n", r"archive\.renew_within_days.*days, 1 \.\. 3650"),
    ],
)
def test_archive_config_rejects_bad_and_unknown_keys(
    seal_fixtures: SealFixtures, tmp_path: Path, section: str, expected: int | str
) -> None:
    path = tmp_path / "seald.toml"
    path.write_text(seal_fixtures.config.read_text(encoding="utf-8") + "\n" + section, encoding="utf-8")
    if isinstance(expected, int):
        assert load_config(path).archive.renew_within_days == expected
        return
    with pytest.raises(ConfigError) as bad:
        load_config(path)
    assert str(path) in str(bad.value)
    assert re.search(expected, str(bad.value)), str(bad.value)
