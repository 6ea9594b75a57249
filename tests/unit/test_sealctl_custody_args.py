"""`sealctl custody` without a server: wiring and the delegation times (R09).

The commands against the real seald are in tests/integration/test_sealctl_custody.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sealclient import custody_cli
from sealclient.cli import build_parser, main


@pytest.mark.parametrize(
    ("argv", "handler"),
    [
        (["custody", "show", "S"], custody_cli.cmd_custody_show),
        (["custody", "handover", "S", "--to", "sun.li"], custody_cli.cmd_custody_handover),
        (["custody", "approve", "C1"], custody_cli.cmd_custody_approve),
    ],
)
def test_custody_command_is_wired_and_takes_json_after_it(argv: list[str], handler: object) -> None:
    args = build_parser().parse_args([*argv, "--json"])
    assert args.handler is handler and args.json is True


def test_r09_delegation_keeps_the_instant_of_each_zone() -> None:
    args = build_parser().parse_args(
        ["custody", "delegate", "S", "--to", "sun.li", "--from", "2026-12-01T08:00:00+08:00",
         "--until", "2026-12-01T18:30:00Z", "--comment", "休假"]
    )  # fmt: skip
    assert args.handler is custody_cli.cmd_custody_delegate
    assert args.start == datetime(2026, 12, 1, 0, 0, tzinfo=UTC)
    assert args.start.utcoffset() == timedelta(hours=8)  # as typed; protobuf converts to UTC
    assert args.end == datetime(2026, 12, 1, 18, 30, tzinfo=UTC)
    assert (args.to_principal, args.comment) == ("sun.li", "休假")


@pytest.mark.parametrize(
    ("start", "problem"),
    [
        ("2026-12-01T08:00:00", "has no time zone"),
        ("2026-12-01", "has no time zone"),
        ("tomorrow", "is not an ISO 8601 date-time"),
        ("2026-13-01T08:00:00+08:00", "is not an ISO 8601 date-time"),
    ],
)
def test_r09_delegation_time_without_zone_or_unreadable_is_a_usage_error(
    start: str, problem: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["custody", "delegate", "S", "--to", "x", "--from", start, "--until", "2026-12-02T00:00:00Z"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--from" in err and problem in err and repr(start) in err


@pytest.mark.parametrize(
    "argv",
    [
        ["custody"],
        ["custody", "handover", "S"],  # --to missing
        ["custody", "delegate", "S", "--to", "x", "--from", "2026-12-01T08:00:00Z"],  # --until missing
    ],
)
def test_custody_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert "usage:" in capsys.readouterr().err
