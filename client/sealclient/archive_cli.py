"""`sealctl archive renew [--dry-run]` (issue 16 item 5): fresh archive timestamps for
B-LTA documents whose last archive timestamp's certificate ends within [archive]
renew_within_days. Prints one line per sealed document: status, request, document,
reason and detail. Exits 5 (FAILED_PRECONDITION) when a due document could not be
renewed or its file does not match the ledger, so a timer unit shows the failure.
"""

from __future__ import annotations

import argparse
from typing import Any, Protocol

from sealapi.v1 import audit_pb2
from sealclient.client import SealClient
from sealclient.exitcodes import ExitCode
from sealclient.output import escape_text as escape
from sealclient.output import message_dict


class _Output(Protocol):
    def emit(self, human: str, data: Any) -> None: ...


# What must bring a person in: the archive is losing (or has lost) its evidence.
_ALARMING = frozenset({"failed", "expired"})


def add_archive_parser(commands: Any) -> None:
    archive = commands.add_parser("archive", help="long-term archives: renew archive timestamps")
    actions = archive.add_subparsers(dest="archive_command", required=True, metavar="ACTION")
    renew = actions.add_parser(
        "renew", help="add a fresh archive timestamp to due B-LTA documents (auditor or admin)"
    )
    renew.add_argument("--dry-run", action="store_true", help="list what is due, change nothing")
    renew.add_argument(
        "--all", dest="show_all", action="store_true", help="also list documents that are not archives"
    )
    renew.set_defaults(handler=cmd_archive_renew)


def _line(doc: audit_pb2.ArchiveRenewal) -> str:
    expires = "-"
    if doc.HasField("certificate_expires"):
        expires = doc.certificate_expires.ToDatetime().date().isoformat()
    sha = doc.new_sha256 or doc.sha256
    return (
        f"{doc.status:<12} {escape(doc.request_id)} #{doc.document_index} {escape(doc.document_name)}  "
        f"expires {expires}  sha256 {sha[:16]}  {doc.reason}: {escape(doc.detail)}"
    )


def cmd_archive_renew(args: argparse.Namespace, client: SealClient, out: _Output) -> int:
    documents = list(client.renew_archives(dry_run=args.dry_run))
    shown = [d for d in documents if args.show_all or d.status != "not_archive"]
    counts: dict[str, int] = {}
    for d in documents:
        counts[d.status] = counts.get(d.status, 0) + 1
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "no sealed documents"
    head = "dry run: " if args.dry_run else ""
    human = "\n".join([*(_line(d) for d in shown), f"{head}{summary}"])
    out.emit(human, {"dry_run": args.dry_run, "documents": [message_dict(d) for d in documents]})
    if any(d.status in _ALARMING for d in documents):
        return ExitCode.FAILED_PRECONDITION
    return ExitCode.OK
