"""`sealctl custody ...`: who holds a seal's token, handover and delegation (R09).

    sealctl custody show SEAL
    sealctl custody handover SEAL --to PRINCIPAL [--comment TEXT]          (admin proposes)
    sealctl custody delegate SEAL --to PRINCIPAL --from TIME --until TIME [--comment TEXT]
    sealctl custody approve CHANGE_ID                                       (two approvals)

A change takes effect with two approvals from people other than the proposer and the
person receiving custody. Delegation times must carry a zone (``+08:00`` or ``Z``): a
delegation that starts an hour off because of a guessed zone is not a small mistake.
"""

from __future__ import annotations

import argparse
from datetime import datetime
from typing import Any, Protocol

from google.protobuf.timestamp_pb2 import Timestamp

from sealapi.v1 import common_pb2, seals_pb2
from sealclient.client import SealClient
from sealclient.exitcodes import ExitCode
from sealclient.output import enum_label, escaped

# R09; the daemon enforces it, the text only tells the user what to expect.
REQUIRED_APPROVALS = 2


class _Output(Protocol):
    as_json: bool

    def emit(self, human: str, data: Any) -> None: ...


def zoned_time(text: str) -> datetime:
    """An ISO 8601 date-time WITH a zone; anything else is a usage error (exit 2)."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as ex:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO 8601 date-time; use e.g. 2026-12-01T08:00:00+08:00"
        ) from ex
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no time zone; add one, e.g. {text}+08:00 or {text}Z")
    return moment


def add_custody_parser(commands: Any) -> None:
    custody = commands.add_parser("custody", help="who holds a seal; handover and delegation (R09)")
    actions = custody.add_subparsers(dest="custody_command", required=True, metavar="ACTION")

    show = actions.add_parser("show", help="the custodian, and a delegate if one is active now")
    show.add_argument("seal_id", metavar="SEAL")
    show.set_defaults(handler=cmd_custody_show)

    handover = actions.add_parser("handover", help="propose a new custodian (admin; two approvals)")
    handover.add_argument("seal_id", metavar="SEAL")
    handover.add_argument("--to", required=True, dest="to_principal", metavar="PRINCIPAL")
    handover.add_argument("--comment", default="", help="why (recorded)")
    handover.set_defaults(handler=cmd_custody_handover)

    delegate = actions.add_parser(
        "delegate", help="propose a time-limited delegate (admin; two approvals; ends by itself)"
    )
    delegate.add_argument("seal_id", metavar="SEAL")
    delegate.add_argument("--to", required=True, dest="to_principal", metavar="PRINCIPAL")
    delegate.add_argument(
        "--from",
        required=True,
        dest="start",
        type=zoned_time,
        metavar="TIME",
        help="start, ISO 8601 with zone, e.g. 2026-12-01T08:00:00+08:00",
    )
    delegate.add_argument(
        "--until",
        required=True,
        dest="end",
        type=zoned_time,
        metavar="TIME",
        help="end, ISO 8601 with zone; the delegate's unlock ends then",
    )
    delegate.add_argument("--comment", default="", help="why (recorded)")
    delegate.set_defaults(handler=cmd_custody_delegate)

    approve = actions.add_parser("approve", help="approve a proposed custody change (approver or admin)")
    approve.add_argument("change_id", metavar="CHANGE_ID")
    approve.set_defaults(handler=cmd_custody_approve)


# -- rendering -----------------------------------------------------------------------------------


def _utc(ts: Timestamp) -> str:
    return ts.ToDatetime().isoformat(timespec="seconds") + "Z"


def _window_text(window: common_pb2.TimeWindow) -> str:
    if not (window.HasField("not_before") and window.HasField("not_after")):
        return ""
    return f"from {_utc(window.not_before)} until {_utc(window.not_after)}"


def custody_text(custody: seals_pb2.Custody) -> str:
    custody = escaped(custody)  # whatever the server sent (issue 14)
    lines = [
        f"seal:       {custody.seal_id}",
        f"custodian:  {custody.custodian or '(none)'}",
    ]
    if custody.delegate:
        lines.append(f"delegate:   {custody.delegate} {_window_text(custody.delegation)}")
    else:
        lines.append("delegate:   none active")
    return "\n".join(lines)


def change_text(change: seals_pb2.CustodyChange) -> str:
    change = escaped(change)  # whatever the server sent (issue 14)
    kind = enum_label(seals_pb2.CustodyChangeKind.Name(change.kind), "CUSTODY_CHANGE_KIND_").lower()
    lines = [
        f"change:     {change.change_id}",
        f"seal:       {change.seal_id}",
        f"kind:       {kind} to {change.to_principal}",
    ]
    if window := _window_text(change.window):
        lines.append(f"window:     {window}")
    lines.append(
        f"approvals:  {len(change.approvals)}/{REQUIRED_APPROVALS}: "
        f"{', '.join(change.approvals) or 'none yet'}"
    )
    if change.in_effect:
        lines.append("in effect:  yes")
    else:
        lines.append(
            "in effect:  not yet; two people other than the proposer and the receiver run "
            f"`sealctl custody approve {change.change_id}`"
        )
    return "\n".join(lines)


# -- commands ------------------------------------------------------------------------------------


def cmd_custody_show(args: argparse.Namespace, client: SealClient, out: _Output) -> int:
    custody = client.custody(args.seal_id)
    out.emit(custody_text(custody), custody)
    return ExitCode.OK


def cmd_custody_handover(args: argparse.Namespace, client: SealClient, out: _Output) -> int:
    change = client.propose_custody_change(args.seal_id, args.to_principal, comment=args.comment)
    out.emit(change_text(change), change)
    return ExitCode.OK


def cmd_custody_delegate(args: argparse.Namespace, client: SealClient, out: _Output) -> int:
    change = client.propose_custody_change(
        args.seal_id, args.to_principal, delegation=(args.start, args.end), comment=args.comment
    )
    out.emit(change_text(change), change)
    return ExitCode.OK


def cmd_custody_approve(args: argparse.Namespace, client: SealClient, out: _Output) -> int:
    change = client.approve_custody_change(args.change_id)
    out.emit(change_text(change), change)
    return ExitCode.OK
