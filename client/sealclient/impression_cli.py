"""`sealctl seal impression ...`: the seal's registered impression (印模, issue 16; admins).

    sealctl seal impression import SEAL FILE --code CODE [--comment TEXT]
    sealctl seal impression approve SEAL PROPOSAL --sha256 HEX [--comment TEXT]
    sealctl seal impression show SEAL [--out FILE] [--proposed PROPOSAL]

One admin imports (seald checks the image at once and refuses it naming what is wrong);
a second admin looks at it (``show --proposed ID --out FILE``) and approves the SHA-256
they checked. From then on it is the seal's face, and every open approval of the seal
is void (the approval digest covers the impression, R02).
"""

from __future__ import annotations

import argparse
import hashlib
from datetime import UTC
from pathlib import Path
from typing import Any, Protocol

from google.protobuf.json_format import MessageToDict

from sealapi.v1 import seals_pb2
from sealclient.client import SealClient
from sealclient.errors import LocalInputError
from sealclient.exitcodes import ExitCode
from sealclient.image_cli import write_atomically
from sealclient.output import escape_lines, escaped

# seald's own limit is [impression] max_bytes (at most 3 MiB); a bigger file is refused
# here before it is sent.
MAX_IMPRESSION_FILE = 3 * 1024 * 1024


class _Output(Protocol):
    as_json: bool

    def emit(self, human: str, data: Any) -> None: ...


def add_impression_parser(seal_commands: Any) -> None:
    """`impression` under `sealctl seal`."""
    group = seal_commands.add_parser(
        "impression", help="the seal's registered impression (印模): import, approve, show"
    )
    actions = group.add_subparsers(dest="impression_command", required=True, metavar="ACTION")

    imp = actions.add_parser("import", help="propose an impression (PNG/SVG, transparent background)")
    imp.add_argument("seal_id", metavar="SEAL")
    imp.add_argument("file", type=Path, metavar="FILE", help="PNG with its resolution, or SVG sized in mm")
    imp.add_argument("--code", required=True, help="the seal code (印章编码) it was registered with")
    imp.add_argument("--comment", default="", help="why (recorded)")
    imp.set_defaults(handler=cmd_impression_import)

    approve = actions.add_parser("approve", help="approve a proposed impression (a second admin)")
    approve.add_argument("seal_id", metavar="SEAL")
    approve.add_argument("proposal_id", metavar="PROPOSAL")
    approve.add_argument("--sha256", required=True, help="the SHA-256 of the impression you checked")
    approve.add_argument("--comment", default="", help="why (recorded)")
    approve.set_defaults(handler=cmd_impression_approve)

    show = actions.add_parser("show", help="the registered impression, open proposals, history")
    show.add_argument("seal_id", metavar="SEAL")
    show.add_argument("--out", "-o", type=Path, metavar="FILE", help="write the impression's file here")
    show.add_argument(
        "--proposed", default="", metavar="PROPOSAL", help="with --out: write this proposal's file instead"
    )
    show.set_defaults(handler=cmd_impression_show)


def read_impression(path: Path) -> bytes:
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_IMPRESSION_FILE + 1)
    except OSError as ex:
        raise LocalInputError("unreadable_file", f"cannot read {path}: {ex.strerror}") from ex
    if len(data) > MAX_IMPRESSION_FILE:
        raise LocalInputError(
            "impression_too_large",
            f"{path} is over {MAX_IMPRESSION_FILE} bytes; export the impression smaller (600 dpi is plenty)",
        )
    return data


def impression_line(i: seals_pb2.SealImpression) -> str:
    i = escaped(i)
    size = f"{i.width_mm:.1f} x {i.height_mm:.1f} mm" + (f" at {i.dpi:.0f} dpi" if i.dpi else " (vector)")
    who = f"proposed by {i.proposed_by} {i.proposed_at.ToDatetime(tzinfo=UTC):%Y-%m-%d %H:%M}Z"
    if i.approved_by:
        who += f", approved by {i.approved_by} {i.approved_at.ToDatetime(tzinfo=UTC):%Y-%m-%d %H:%M}Z"
    return f"{i.impression_id}  sha256 {i.sha256}  code {i.seal_code}  {i.media_type}, {size}; {who}"


def cmd_impression_import(args: argparse.Namespace, client: SealClient, out: _Output) -> int:
    data = read_impression(args.file)
    proposal = client.import_seal_impression(args.seal_id, data, seal_code=args.code, comment=args.comment)
    human = "\n".join(
        [
            f"proposed: {impression_line(proposal)}",
            "a second administrator checks it (sealctl seal impression show "
            f"{args.seal_id} --proposed {proposal.impression_id} --out FILE) and approves it:",
            f"  sealctl seal impression approve {args.seal_id} {proposal.impression_id} "
            f"--sha256 {proposal.sha256}",
        ]
    )
    out.emit(escape_lines(human), proposal)
    return ExitCode.OK


def cmd_impression_approve(args: argparse.Namespace, client: SealClient, out: _Output) -> int:
    response = client.approve_seal_impression(
        args.seal_id, args.proposal_id, args.sha256.strip().lower(), comment=args.comment
    )
    human = (
        f"registered: {impression_line(response.impression)}\n"
        f"open requests re-bound (approvals void, approve again): {response.voided_requests}"
    )
    out.emit(escape_lines(human), response)
    return ExitCode.OK


def cmd_impression_show(args: argparse.Namespace, client: SealClient, out: _Output) -> int:
    view = client.seal_impression(args.seal_id, args.proposed)
    lines = []
    if view.HasField("current"):
        lines.append(f"registered: {impression_line(view.current)}")
    else:
        lines.append("registered: none (the seal uses its generated image)")
    lines += [f"proposed:   {impression_line(p)}" for p in view.proposals]
    lines += [f"history:    {impression_line(h)}" for h in view.history]
    data: dict[str, Any] = MessageToDict(view, preserving_proto_field_name=True)
    data.pop("image", None)
    data.pop("proposal_image", None)
    if args.out is not None:
        image = view.proposal_image if args.proposed else view.image
        if not image:
            raise LocalInputError(
                "nothing_to_write",
                f"seal {args.seal_id} has no "
                + (f"open proposal {args.proposed}" if args.proposed else "registered impression"),
            )
        write_atomically(args.out, image)
        digest = hashlib.sha256(image).hexdigest()
        lines.append(f"wrote {args.out} (sha256 {digest})")
        data["written"] = {"path": str(args.out), "sha256": digest, "bytes": len(image)}
    out.emit(escape_lines("\n".join(lines)), data)
    return ExitCode.OK
