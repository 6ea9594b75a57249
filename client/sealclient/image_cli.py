"""`sealctl preview REQ` and `sealctl seal image SEAL`: pictures for review (issue 6).

`preview` writes one PNG per page where the seal will go: the ORIGINAL page with the
seal drawn at the request's placement, so an approver approves a picture of the
result. `seal image` writes the seal's own image (transparent PNG) for review.
Files appear complete or not at all (written to a temporary name, then renamed).
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from typing import Any, Protocol, TextIO

import grpc

from sealclient.client import SealClient
from sealclient.errors import LocalInputError, SealClientError
from sealclient.exitcodes import ExitCode
from sealclient.output import escape_lines

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class _Output(Protocol):
    as_json: bool
    stream: TextIO

    def emit(self, human: str, data: Any) -> None: ...


def _dpi(text: str) -> int:
    try:
        value = int(text)
    except ValueError as ex:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of dpi") from ex
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be 0 (the default) or more")
    return value


def add_preview_parser(commands: Any) -> None:
    preview = commands.add_parser(
        "preview", help="PNG of the page(s) where the seal will go, seal drawn in (approvers)"
    )
    preview.add_argument("request_id", metavar="REQ")
    preview.add_argument(
        "--out", "-o", type=Path, default=Path(), metavar="DIR", help="directory (default: .)"
    )
    preview.add_argument("--index", type=int, default=0, help="document (0-based; default 0)")
    preview.add_argument("--dpi", type=_dpi, default=0, help="30..300; default 100")
    preview.add_argument(
        "--first-page",
        type=int,
        default=0,
        metavar="N",
        help="render pages N.. of the document (seal drawn where it touches them); "
        "default: the pages the seal goes on",
    )
    preview.add_argument(
        "--page-count", type=int, default=0, metavar="K", help="with --first-page: K pages (max 10)"
    )
    preview.set_defaults(handler=cmd_preview)


def add_seal_image_parser(seal_commands: Any) -> None:
    """`image` under `sealctl seal` (the group may hold other seal commands)."""
    image = seal_commands.add_parser("image", help="write the seal's image (PNG) for review")
    image.add_argument("seal_id", metavar="SEAL")
    image.add_argument("--out", "-o", type=Path, required=True, metavar="FILE.png")
    image.add_argument("--dpi", type=_dpi, default=0, help="72..1200; default 300")
    image.set_defaults(handler=cmd_seal_image)


def cmd_preview(args: argparse.Namespace, client: SealClient, out: _Output) -> int:
    if args.index < 0:
        raise LocalInputError("bad_document_index", "--index must be 0 or more")
    if args.first_page < 0 or args.page_count < 0:
        raise LocalInputError("bad_preview_page", "--first-page and --page-count must be 0 or more")
    if not args.out.is_dir():
        raise LocalInputError(
            "output_not_a_directory", f"{args.out} is not a directory; create it or choose another"
        )
    pages = client.preview(args.request_id, args.index, args.dpi, args.first_page, args.page_count)
    written = []
    for page in pages:
        _check_png(page.png, f"page {page.page}")
        path = args.out / f"{args.request_id}-{args.index}-page{page.page}.png"
        write_atomically(path, page.png)
        written.append({"page": page.page, "path": str(path), "bytes": len(page.png)})
        if not out.as_json:
            print(escape_lines(f"wrote {path} (page {page.page})"), file=out.stream, flush=True)
    if out.as_json:
        out.emit("", {"request_id": args.request_id, "document": args.index, "pages": written})
    return ExitCode.OK


def cmd_seal_image(args: argparse.Namespace, client: SealClient, out: _Output) -> int:
    png = client.seal_image(args.seal_id, args.dpi)
    _check_png(png, f"seal {args.seal_id}")
    write_atomically(args.out, png)
    out.emit(f"wrote {args.out}", {"seal_id": args.seal_id, "path": str(args.out), "bytes": len(png)})
    return ExitCode.OK


def _check_png(data: bytes, what: str) -> None:
    if not data.startswith(PNG_SIGNATURE):
        raise SealClientError(
            grpc.StatusCode.DATA_LOSS,
            "not_a_png",
            f"seald sent something that is not a PNG for {what}; retry, and report it if it persists",
        )


def write_atomically(path: Path, data: bytes) -> None:
    directory = path.parent if str(path.parent) else Path()
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".part")
    except OSError as ex:
        raise LocalInputError(
            "local_file_unwritable",
            f"cannot write into {directory}: {ex.strerror}; choose another output path",
        ) from ex
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
