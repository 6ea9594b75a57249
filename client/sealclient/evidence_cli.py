"""`sealctl evidence REQ --out FILE` and `sealctl evidence verify PACKAGE PDF... --ca PEM`.

The first asks seald for the evidence package of a sealed request; the second needs
no daemon, no database and no network (sealclient.evidence).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Protocol

from sealclient.client import SealClient
from sealclient.evidence import verify_package
from sealclient.exitcodes import ExitCode
from sealclient.output import escape_text


class _Output(Protocol):
    as_json: bool

    def emit(self, human: str, data: Any) -> None: ...


def add_evidence_parser(commands: Any) -> None:
    evidence = commands.add_parser(
        "evidence",
        help="evidence package of a sealed request; 'evidence verify' checks one offline",
        description=(
            "sealctl evidence REQ --out FILE.json        fetch the package (requester, auditor, admin)\n"
            "sealctl evidence verify PACKAGE PDF... --ca PEM [--ca PEM]   check offline"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    evidence.add_argument("targets", nargs="+", metavar="REQ | verify PACKAGE PDF")
    evidence.add_argument("--out", "-o", type=Path, metavar="FILE", help="where to write the package")
    evidence.add_argument(
        "--ca",
        dest="trust",
        type=Path,
        action="append",
        default=[],
        metavar="PEM",
        help="trusted certificates for verify: client CA, seal CA, the appliance's audit-cert.pem",
    )
    evidence.set_defaults(handler=cmd_evidence_fetch, offline_handler=cmd_evidence_verify)


def finish_evidence_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """`evidence verify ...` runs offline; `evidence REQ` needs --out and the daemon."""
    if args.targets[0] == "verify":
        if len(args.targets) < 3:
            parser.error("evidence verify needs PACKAGE and at least one sealed PDF")
        if not args.trust:
            parser.error(
                "evidence verify needs --ca PEM (the CA certificates and audit certificate to trust)"
            )
        args.offline = True
        return
    if len(args.targets) != 1 or args.out is None:
        parser.error("usage: sealctl evidence REQ --out FILE.json")
    if args.trust:  # a global --ca (the daemon's CA) goes before the command
        parser.error(
            "--ca after 'evidence' is for 'evidence verify'; put the daemon's --ca before the command"
        )


def cmd_evidence_fetch(args: argparse.Namespace, client: SealClient, out: _Output) -> int:
    data = client.evidence(args.targets[0])
    tmp = args.out.with_name(args.out.name + ".part")
    tmp.write_bytes(data)
    tmp.replace(args.out)
    package = json.loads(data)
    out.emit(
        f"wrote {args.out}: evidence of request {args.targets[0]} "
        f"({len(package['approvals'])} signed approvals, {len(package['ledger']['records'])} ledger "
        f"records up to the checkpoint at record {package['ledger']['checkpoint']['sequence']})",
        {"path": str(args.out), "bytes": len(data), "format": package["format"]},
    )
    return ExitCode.OK


def cmd_evidence_verify(args: argparse.Namespace, out: _Output) -> int:
    from sealclient.evidence import load_trust  # noqa: PLC0415

    package_path, pdfs = Path(args.targets[1]), [Path(p) for p in args.targets[2:]]
    try:
        anchors = load_trust(args.trust)
        data = package_path.read_bytes()
        verdict = verify_package(data, pdfs, anchors)
    except OSError as ex:
        print(f"sealctl: error: cannot read {ex.filename}: {ex.strerror} (unreadable_input)", file=sys.stderr)
        return ExitCode.INVALID_ARGUMENT
    except ValueError as ex:
        print(
            f"sealctl: error: a --ca file holds no readable PEM certificate: {ex} (bad_trust)",
            file=sys.stderr,
        )
        return ExitCode.INVALID_ARGUMENT
    # A package is outside data: its texts are escaped like a server's (issue 14).
    lines = [f"{'PASS' if c.ok else 'FAIL'}  {c.name}: {escape_text(c.detail)}" for c in verdict.checks]
    lines.append(
        "evidence VERIFIED" if verdict.ok else f"evidence NOT verified: {', '.join(verdict.failed())} failed"
    )
    out.emit("\n".join(lines), verdict.as_dict())
    return ExitCode.OK if verdict.ok else ExitCode.VERIFICATION_FAILED
