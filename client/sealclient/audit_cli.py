"""`sealctl audit ...`: verify the ledger, checkpoints, usage reports, backups (R10-R12).

``sealctl audit verify --offline DBFILE`` runs without a daemon: it checks a copied
state database with the same verifier the daemon uses, against the latest checkpoint
found in the file or given with --checkpoint, trusting --audit-cert if given.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from cryptography import x509

from sealclient.client import SealClient
from sealclient.exitcodes import ExitCode
from seald.domain.checkpoints import SignedCheckpoint
from seald.domain.errors import SealError


class _Output(Protocol):
    def emit(self, human: str, data: Any) -> None: ...


def utc_time(text: str) -> datetime:
    """ISO date or date-time; without a zone it is UTC (the ledger's zone)."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as ex:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a date or date-time; use e.g. 2026-11-01 or 2026-11-01T08:00:00+08:00"
        ) from ex
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def add_audit_parser(commands: Any) -> None:
    audit = commands.add_parser("audit", help="usage ledger: verify, checkpoint, report, backup")
    actions = audit.add_subparsers(dest="audit_command", required=True, metavar="ACTION")

    verify = actions.add_parser("verify", help="verify the hash chain against the latest checkpoint")
    verify.add_argument("--offline", type=Path, metavar="DBFILE", help="check a copied database file")
    verify.add_argument("--checkpoint", type=Path, metavar="FILE", help="a later exported checkpoint")
    verify.add_argument("--audit-cert", type=Path, metavar="PEM", help="the appliance's audit certificate")
    verify.add_argument(
        "--tsa-root",
        type=Path,
        action="append",
        default=[],
        metavar="PEM",
        help="offline: check the checkpoint's RFC 3161 timestamp against this TSA root (repeatable)",
    )
    verify.set_defaults(handler=cmd_audit_verify, offline_handler=cmd_audit_verify_offline)

    checkpoint = actions.add_parser("checkpoint", help="sign the current chain head now")
    checkpoint.set_defaults(handler=cmd_audit_checkpoint)

    report = actions.add_parser("report", help="usage summary (签盖记录汇总表) for a period")
    report.add_argument("--from", dest="from_time", type=utc_time, required=True, metavar="TIME")
    report.add_argument("--to", dest="to_time", type=utc_time, required=True, metavar="TIME")
    report.add_argument("--seal", default="", metavar="SEAL")
    report.add_argument("--format", choices=("csv", "pdf", "json"), default="json")
    report.add_argument("--output", "-o", type=Path, metavar="FILE", help="default: stdout")
    report.set_defaults(handler=cmd_audit_report)

    backup = actions.add_parser("backup", help="online backup on the seal host (admin)")
    backup.add_argument("destination", metavar="PATH", help="absolute path on the seal host")
    backup.set_defaults(handler=cmd_audit_backup)


def _verdict(ok: bool, checked: int, bad: int, problem: str, head: str) -> tuple[str, dict[str, Any]]:
    data = {
        "ok": ok,
        "records_checked": checked,
        "first_bad_sequence": bad,
        "problem": problem,
        "head_hash": head,
    }
    if ok:
        return f"audit chain OK: {checked} records, head {head}", data
    return f"audit chain BROKEN at record {bad}: {problem}", data


def cmd_audit_verify(args: argparse.Namespace, client: SealClient, out: _Output) -> int:
    result = client.verify_audit_chain()
    human, data = _verdict(
        result.ok, result.records_checked, result.first_bad_sequence, result.problem, result.head_hash
    )
    out.emit(human, data)
    return ExitCode.OK if result.ok else ExitCode.VERIFICATION_FAILED


def cmd_audit_verify_offline(args: argparse.Namespace, out: _Output) -> int:
    import sqlite3  # noqa: PLC0415 - only the offline mode touches a database file

    # Reading a copied state database is reading the daemon's store format: only this
    # offline mode imports the store's ledger reader (sealctl's other commands never do).
    from seald.store.checkpoints import verify_with_checkpoints  # noqa: PLC0415
    from seald.store.ledger import LedgerFileError  # noqa: PLC0415

    try:
        certificate = (
            x509.load_pem_x509_certificate(args.audit_cert.read_bytes()) if args.audit_cert else None
        )
        extra = SignedCheckpoint.from_json(args.checkpoint.read_text()) if args.checkpoint else None
        if not args.offline.is_file():
            raise LedgerFileError(f"{args.offline} does not exist; give the path of a copied state database")
        conn = sqlite3.connect(args.offline.resolve().as_uri() + "?mode=ro", uri=True)
        try:
            result, checkpoint = verify_with_checkpoints(conn, certificate, extra)
        finally:
            conn.close()
        stamp = _check_timestamp(checkpoint, tuple(args.tsa_root)) if result.ok and args.tsa_root else ""
        if stamp.startswith("!"):
            assert checkpoint is not None
            result = dataclasses.replace(
                result, ok=False, first_bad_sequence=checkpoint.sequence, problem=stamp[1:]
            )
    except (OSError, ValueError, sqlite3.Error, SealError) as ex:
        print(f"sealctl: error: cannot verify {args.offline}: {ex}", file=sys.stderr)
        return ExitCode.OTHER
    human, data = _verdict(
        result.ok, result.records_checked, result.first_bad_sequence or 0, result.problem, result.head_hash
    )
    data["checkpoint_sequence"] = checkpoint.sequence if checkpoint else None
    data["certificate_pinned"] = certificate is not None
    data["timestamp_time"] = stamp if result.ok else ""
    if checkpoint is None:
        human += " (no checkpoint: truncation of the tail cannot be detected)"
    elif certificate is None:
        human += " (checkpoint checked with the certificate stored in the file; pass --audit-cert)"
    out.emit(human, data)
    return ExitCode.OK if result.ok else ExitCode.VERIFICATION_FAILED


def _check_timestamp(checkpoint: SignedCheckpoint | None, roots: tuple[Path, ...]) -> str:
    """The TSA time of the checkpoint's valid token; '!problem' when it is missing or bad."""
    import asyncio  # noqa: PLC0415 - pyHanko's validation is async; offline mode only

    from seald.audit import timestamps as audit_timestamps  # noqa: PLC0415 - pulls in pyHanko: offline mode only

    if checkpoint is None or not checkpoint.timestamp_token:
        where = "no checkpoint" if checkpoint is None else f"the checkpoint at record {checkpoint.sequence}"
        return f"!--tsa-root given but {where} carries no RFC 3161 timestamp"
    problem = asyncio.run(audit_timestamps.timestamp_problem(checkpoint, audit_timestamps.load_roots(roots)))
    return f"!{problem}" if problem else audit_timestamps.timestamp_time(checkpoint)


def cmd_audit_checkpoint(args: argparse.Namespace, client: SealClient, out: _Output) -> int:
    checkpoint = client.create_checkpoint()
    out.emit(f"checkpoint at record {checkpoint.sequence}: head {checkpoint.head_hash}", checkpoint)
    return ExitCode.OK


def cmd_audit_report(args: argparse.Namespace, client: SealClient, out: _Output) -> int:
    data = client.usage_report(args.from_time, args.to_time, args.seal, args.format)
    if args.output is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    else:
        args.output.write_bytes(data)
        print(f"wrote {args.output} ({len(data)} bytes, {args.format})", file=sys.stderr)
    return ExitCode.OK


def cmd_audit_backup(args: argparse.Namespace, client: SealClient, out: _Output) -> int:
    result = client.create_backup(args.destination)
    lines = [f"backup {result.path}: sha256 {result.sha256}, head {result.head_sequence} {result.head_hash}"]
    if result.files_directory:
        lines.append(f"documents and audit certificate in {result.files_directory}")
    if result.sizes:
        # Issue 16: the size report per kind (database, originals, sealed, certs).
        lines.append("size report:")
        lines += [f"  {s.kind:<10} {s.files:>7} files {s.bytes:>15,} bytes" for s in result.sizes]
        lines.append(
            f"  {'total':<10} {sum(s.files for s in result.sizes):>7} files "
            f"{sum(s.bytes for s in result.sizes):>15,} bytes"
        )
    out.emit("\n".join(lines), result)
    return ExitCode.OK
