"""`sealctl delegation ...` and `sealctl notify ...` (issue 17).

    sealctl delegation propose --to DELEGATE --from TIME --until TIME [--seal SEAL]
                               [--category C ...] [--delegator NAME] [--comment TEXT]
    sealctl delegation approve DELEGATION_ID        (a second admin)
    sealctl delegation end DELEGATION_ID [--comment TEXT]
    sealctl delegation list [--live]
    sealctl notify list [--state pending|delivered|dead]   (admin)
    sealctl notify replay [EVENT_ID ...] [--webhook NAME]  (admin; dead letters)
"""

from __future__ import annotations

import argparse
from typing import Any, Protocol

from sealapi.v1 import seals_pb2
from sealclient.client import SealClient
from sealclient.custody_cli import _window_text, zoned_time
from sealclient.exitcodes import ExitCode


class _Output(Protocol):
    as_json: bool

    def emit(self, human: str, data: Any) -> None: ...


def add_workflow_parsers(commands: Any) -> None:
    delegation = commands.add_parser(
        "delegation", help="approver delegation (R05 'or delegate'; a second admin approves)"
    )
    actions = delegation.add_subparsers(dest="delegation_command", required=True, metavar="ACTION")
    propose = actions.add_parser("propose", help="delegate your approvals (or, as admin, someone's)")
    propose.add_argument("--to", required=True, dest="delegate", metavar="PRINCIPAL")
    propose.add_argument("--from", required=True, dest="start", type=zoned_time, metavar="TIME")
    propose.add_argument("--until", required=True, dest="end", type=zoned_time, metavar="TIME")
    propose.add_argument("--seal", default="", dest="seal_id", help="one seal (default: all yours)")
    propose.add_argument(
        "--category", action="append", default=[], dest="categories", help="only these categories"
    )
    propose.add_argument("--delegator", default="", help="admin only: whose approvals")
    propose.add_argument("--comment", default="")
    propose.set_defaults(handler=cmd_delegation_propose)
    approve = actions.add_parser("approve", help="approve a proposed delegation (a second admin)")
    approve.add_argument("delegation_id", metavar="DELEGATION_ID")
    approve.set_defaults(handler=cmd_delegation_approve)
    end = actions.add_parser("end", help="end a delegation now (voids its approvals not yet used)")
    end.add_argument("delegation_id", metavar="DELEGATION_ID")
    end.add_argument("--comment", default="")
    end.set_defaults(handler=cmd_delegation_end)
    list_ = actions.add_parser("list", help="list delegations")
    list_.add_argument("--live", action="store_true", help="only proposed and active ones")
    list_.set_defaults(handler=cmd_delegation_list)

    notify = commands.add_parser("notify", help="the webhook outbox: queue and dead letters (admin)")
    n_actions = notify.add_subparsers(dest="notify_command", required=True, metavar="ACTION")
    n_list = n_actions.add_parser("list", help="queue depth and deliveries")
    n_list.add_argument("--state", default="", choices=["", "pending", "delivered", "dead"])
    n_list.set_defaults(handler=cmd_notify_list)
    replay = n_actions.add_parser("replay", help="queue dead letters again (all, or the ids given)")
    replay.add_argument("event_ids", nargs="*", metavar="EVENT_ID")
    replay.add_argument("--webhook", default="")
    replay.set_defaults(handler=cmd_notify_replay)


def delegation_text(d: seals_pb2.Delegation) -> str:
    scope = d.seal_id or "all seals"
    cats = ", ".join(d.categories) or "all categories"
    lines = [
        f"delegation: {d.delegation_id} ({d.state})",
        f"            {d.delegate} approves for {d.delegator}: {scope}, {cats}",
        f"window:     {_window_text(d.window)}",
        f"proposed:   by {d.proposed_by}" + (f"; approved by {d.approved_by}" if d.approved_by else ""),
    ]
    if d.state == "proposed":
        lines.append(f"next:       a second admin runs `sealctl delegation approve {d.delegation_id}`")
    if d.ended_by:
        lines.append(f"ended by:   {d.ended_by}")
    return "\n".join(lines)


def cmd_delegation_propose(args: argparse.Namespace, client: SealClient, out: _Output) -> int:
    d = client.propose_delegation(
        args.delegate,
        start=args.start,
        end=args.end,
        seal_id=args.seal_id,
        categories=args.categories,
        delegator=args.delegator,
        comment=args.comment,
    )
    out.emit(delegation_text(d), d)
    return ExitCode.OK


def cmd_delegation_approve(args: argparse.Namespace, client: SealClient, out: _Output) -> int:
    d = client.approve_delegation(args.delegation_id)
    out.emit(delegation_text(d), d)
    return ExitCode.OK


def cmd_delegation_end(args: argparse.Namespace, client: SealClient, out: _Output) -> int:
    d = client.end_delegation(args.delegation_id, args.comment)
    out.emit(delegation_text(d), d)
    return ExitCode.OK


def cmd_delegation_list(args: argparse.Namespace, client: SealClient, out: _Output) -> int:
    found = client.delegations(live_only=args.live)
    out.emit("\n\n".join(delegation_text(d) for d in found.delegations) or "no delegations", found)
    return ExitCode.OK


def cmd_notify_list(args: argparse.Namespace, client: SealClient, out: _Output) -> int:
    q = client.notification_queue(args.state)
    lines = [
        f"pending {q.pending}, delivered {q.delivered}, dead {q.dead}; oldest undelivered "
        f"{q.oldest_pending_age_seconds:.0f} s"
    ]
    lines += [
        f"{d.event_id}  {d.webhook}  {d.state}  attempts {d.attempts}  {d.last_error}"
        for d in q.deliveries
    ]
    out.emit("\n".join(lines), q)
    return ExitCode.OK


def cmd_notify_replay(args: argparse.Namespace, client: SealClient, out: _Output) -> int:
    answer = client.replay_notifications(args.event_ids, args.webhook)
    out.emit(f"{answer.replayed} dead letter(s) queued again", answer)
    return ExitCode.OK
