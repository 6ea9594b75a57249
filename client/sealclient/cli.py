"""`sealctl`: the command-line client of seald.

Global options come before the command: `sealctl --json status R-1`; `--json` is
also accepted after it (`sealctl status R-1 --json`), as users type it.
Errors go to stderr as "sealctl: error: <message> (<reason>)"; exit codes are in
sealclient.exitcodes and docs/sealctl.md. PINs are read without echo (or one
line per PIN from stdin with --pin-stdin); they are never accepted in argv.
"""

from __future__ import annotations

import argparse
import getpass
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TextIO, cast

import grpc

from sealapi.v1 import common_pb2, requests_pb2
from sealclient.archive_cli import add_archive_parser
from sealclient.audit_cli import add_audit_parser
from sealclient.client import ClientIdentity, SealClient
from sealclient.config import ConfigOverrides, resolve_config
from sealclient.custody_cli import add_custody_parser
from sealclient.errors import LocalInputError, SealClientError
from sealclient.evidence_cli import add_evidence_parser, finish_evidence_args
from sealclient.exitcodes import EPILOG, ExitCode, exit_code_for
from sealclient.gbt38540_cli import cmd_verify_offline
from sealclient.image_cli import add_preview_parser, add_seal_image_parser
from sealclient.impression_cli import add_impression_parser
from sealclient.job_file import load_job, manifest_marks, parse_mark_option
from sealclient.output import (
    escape_lines,
    escape_text,
    event_text,
    marks_lines,
    message_dict,
    request_text,
    requests_table,
    seals_table,
    to_json,
    tokens_table,
    verify_text,
)
from sealclient.principal_cli import add_principal_parser
from sealclient.progress import Progress
from sealclient.seal_cli import add_seal_parser
from sealclient.workflow_cli import add_workflow_parsers

TERMINAL_STATES = frozenset(
    {
        requests_pb2.REQUEST_STATE_SIGNED,
        requests_pb2.REQUEST_STATE_REJECTED,
        requests_pb2.REQUEST_STATE_CANCELLED,
        requests_pb2.REQUEST_STATE_EXPIRED,
        requests_pb2.REQUEST_STATE_FAILED,
    }
)
SHA256_HEX = re.compile(r"^[0-9a-fA-F]{64}$")

Handler = Callable[[argparse.Namespace, SealClient, "Output"], int]


class Output:
    """Where results go: human text or one JSON object per result."""

    def __init__(self, as_json: bool, stream: TextIO) -> None:
        self.as_json = as_json
        self.stream = stream

    def emit(self, human: str, data: Any) -> None:
        # Formatters escape each server string; escape_lines is the net under them all.
        print(to_json(data) if self.as_json else escape_lines(human), file=self.stream, flush=True)

    def say(self, human: str) -> None:
        """A human-only line (progress), escaped like every other."""
        print(escape_lines(human), file=self.stream, flush=True)


# -- argument types ----------------------------------------------------------


def request_state(text: str) -> requests_pb2.RequestState:
    name = text.strip().upper().removeprefix("REQUEST_STATE_")
    try:
        value = requests_pb2.RequestState.Value("REQUEST_STATE_" + name)
    except ValueError as ex:
        choices = ", ".join(
            n.removeprefix("REQUEST_STATE_").lower()
            for n, _number in requests_pb2.RequestState.items()
            if not n.endswith("UNSPECIFIED")
        )
        raise argparse.ArgumentTypeError(f"unknown state {text!r}; one of: {choices}") from ex
    return cast(requests_pb2.RequestState, value)


def sha256_hex(text: str) -> str:
    if not SHA256_HEX.match(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a 64-character hex SHA-256")
    return text.lower()


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError as ex:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from ex
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be 0 or more")
    return value


def positive_mm(text: str) -> float:
    try:
        value = float(text)
    except ValueError as ex:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of millimetres") from ex
    if not value >= 0:  # also rejects NaN
        raise argparse.ArgumentTypeError(f"{text!r} must be 0 or more millimetres")
    return value


# -- parser --------------------------------------------------------------------

# `--json` after the command. SUPPRESS: when absent there, the global value stands.
JSON_AFTER_COMMAND = argparse.ArgumentParser(add_help=False)
JSON_AFTER_COMMAND.add_argument(
    "--json", action="store_true", default=argparse.SUPPRESS, help="print JSON instead of text"
)


class CommandParser(argparse.ArgumentParser):
    """Parser of every (sub)command: inherits `--json`, and so do its own subcommands."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("parents", [JSON_AFTER_COMMAND])
        super().__init__(**kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sealctl",
        description="Client of seald, the electronic-seal signing appliance.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--config",
        type=Path,
        help="client config TOML (default: $SEALCTL_CONFIG, then ~/.config/sealctl/config.toml)",
    )
    parser.add_argument("--server", help="seald address host:port (overrides config)")
    parser.add_argument("--ca", type=Path, help="CA certificate of seald (PEM)")
    parser.add_argument("--cert", type=Path, help="this client's certificate (PEM)")
    parser.add_argument("--key", type=Path, help="this client's private key (PEM)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=CommandParser
    )

    submit = commands.add_parser("submit", help="submit PDFs for sealing")
    submit.add_argument("files", nargs="*", type=Path, metavar="FILE")
    submit.add_argument(
        "--seal", default="", help="seal id (one placement; a sealing job names seals in its marks)"
    )
    submit.add_argument(
        "--mark",
        action="append",
        default=[],
        dest="marks",
        metavar="SPEC",
        help="a sealing job's mark, repeatable, in order: 'seal=ID pages=last anchor=TEXT' or "
        "'seal=ID pages=1 x=150 y=230 size=40' or 'seal=ID cross=all [group=N]' (docs/sealctl.md)",
    )
    submit.add_argument(
        "--job",
        type=Path,
        help="a job file (.toml or .json) with the marks, and optionally a manifest of "
        "documents each with its own marks (docs/sealctl.md)",
    )
    submit.add_argument("--reason", required=True, help="事由: why the seal is needed")
    submit.add_argument("--category", required=True, help="document category (seal scope)")
    submit.add_argument(
        "--page", type=non_negative_int, default=0, help="1-based page; 0 = last page (default)"
    )
    submit.add_argument("--x-mm", type=positive_mm, help="seal centre, mm from the left edge")
    submit.add_argument("--y-mm", type=positive_mm, help="seal centre, mm from the top edge")
    submit.add_argument(
        "--size-mm",
        type=positive_mm,
        default=0.0,
        help="seal diameter/side in mm; 0 = the seal's default",
    )
    submit.add_argument("--anchor", default="", help="centre the seal on this text instead")
    submit.add_argument("--cross-page", action="store_true", help="cross-page seal (骑缝章)")
    submit.add_argument(
        "--key-id",
        default="",
        dest="client_request_key",
        help="idempotency key: resubmitting with it returns the same request",
    )
    submit.add_argument(
        "--wait", action="store_true", help="wait until the request is sealed or ends otherwise"
    )
    submit.add_argument(
        "--amount", default="", help="declared amount, e.g. 250000.00 (chains may route on it)"
    )
    submit.add_argument("--currency", default="", help="ISO 4217 code of --amount, e.g. CNY")
    submit.set_defaults(handler=cmd_submit)

    approve = commands.add_parser("approve", help="approve a request after checking it locally")
    approve.add_argument("request_id", metavar="REQ")
    approve.add_argument("--comment", default="")
    approve.add_argument(
        "--sha256",
        action="append",
        type=sha256_hex,
        dest="expected_sha256",
        metavar="HASH",
        help="hash of the document you reviewed, once per "
        "document in order; approval is refused if it differs",
    )
    approve.add_argument(
        "--for",
        default="",
        dest="on_behalf_of",
        metavar="NAME",
        help="approve as the delegate of NAME (a delegation in force, issue 17)",
    )
    approve.set_defaults(handler=cmd_approve)

    withdraw = commands.add_parser("withdraw", help="withdraw your approval")
    withdraw.add_argument("request_id", metavar="REQ")
    withdraw.add_argument("--comment", default="")
    withdraw.set_defaults(handler=cmd_withdraw)

    reject = commands.add_parser("reject", help="reject a request")
    reject.add_argument("request_id", metavar="REQ")
    reject.add_argument("--comment", required=True, help="why it is rejected")
    reject.set_defaults(handler=cmd_reject)

    cancel = commands.add_parser("cancel", help="cancel your own request")
    cancel.add_argument("request_id", metavar="REQ")
    cancel.add_argument("--comment", default="")
    cancel.set_defaults(handler=cmd_cancel)

    status = commands.add_parser("status", help="show one request")
    status.add_argument("request_id", metavar="REQ")
    status.set_defaults(handler=cmd_status)

    list_ = commands.add_parser("list", help="list requests")
    list_.add_argument(
        "--state",
        type=request_state,
        action="append",
        dest="states",
        metavar="S",
        help="only this state (repeatable), e.g. pending",
    )
    list_.add_argument("--seal", default="", help="only this seal")
    list_.set_defaults(handler=cmd_list)

    watch = commands.add_parser("watch", help="follow requests as they change")
    watch.add_argument("request_id", nargs="?", default="", metavar="REQ")
    watch.set_defaults(handler=cmd_watch)

    download = commands.add_parser("download", help="download sealed (or original) documents")
    download.add_argument("request_id", metavar="REQ")
    download.add_argument(
        "-o",
        "--output",
        "--out",
        type=Path,
        default=None,
        metavar="OUT",
        help="output file, or directory for several (default: .)",
    )
    download.add_argument(
        "--index",
        type=non_negative_int,
        default=None,
        help="only this document (0-based); default: all",
    )
    download.add_argument(
        "--all",
        action="store_true",
        help="every document of the request (the default without --index), each checked "
        "against its recorded SHA-256; --out names the directory",
    )
    download.add_argument(
        "--original", action="store_true", help="the original as submitted, not the sealed one"
    )
    download.set_defaults(handler=cmd_download)

    token = commands.add_parser("token", help="token presence, unlock, lock, PIN")
    token_commands = token.add_subparsers(dest="token_command", required=True, metavar="ACTION")
    t_status = token_commands.add_parser("status", help="token status of seals")
    t_status.add_argument("seal_id", nargs="?", default="", metavar="SEAL")
    t_status.set_defaults(handler=cmd_token_status)
    t_watch = token_commands.add_parser("watch", help="follow token insertion/unlock")
    t_watch.add_argument("seal_id", nargs="?", default="", metavar="SEAL")
    t_watch.set_defaults(handler=cmd_token_watch)
    t_unlock = token_commands.add_parser("unlock", help="unlock a seal's token (custodian)")
    t_unlock.add_argument("seal_id", metavar="SEAL")
    t_unlock.add_argument(
        "--pin-stdin", action="store_true", help="read the PIN as one line from stdin (for scripts)"
    )
    t_unlock.set_defaults(handler=cmd_token_unlock)
    t_lock = token_commands.add_parser("lock", help="lock a seal's token")
    t_lock.add_argument("seal_id", metavar="SEAL")
    t_lock.set_defaults(handler=cmd_token_lock)
    t_pin = token_commands.add_parser("change-pin", help="change the token PIN (custodian)")
    t_pin.add_argument("seal_id", metavar="SEAL")
    t_pin.add_argument(
        "--pin-stdin",
        action="store_true",
        help="read the old PIN, then the new PIN, one line each from stdin",
    )
    t_pin.set_defaults(handler=cmd_token_change_pin)

    seals = commands.add_parser("seals", help="list seals")
    seals.set_defaults(handler=cmd_seals)

    verify = commands.add_parser("verify", help="verify the signatures of a PDF")
    verify.add_argument("file", type=Path, metavar="FILE")
    verify.add_argument(
        "--offline",
        action="store_const",
        const=True,
        default=None,
        help="no daemon: verify the PDF's GB/T 38540 (SM2) seal signatures on this machine",
    )
    verify.add_argument(
        "--seal-maker",
        type=Path,
        action="append",
        default=[],
        metavar="CERT",
        help="offline: accept only seals made by this seal maker certificate (PEM/DER, repeatable)",
    )
    verify.add_argument(
        "--tsa-root",
        type=Path,
        action="append",
        default=[],
        metavar="CERT",
        help="offline: check GB/T 38540 timestamps against this TSA root (PEM/DER, repeatable)",
    )
    verify.set_defaults(handler=cmd_verify, offline_handler=cmd_verify_offline)

    add_audit_parser(commands)
    add_archive_parser(commands)
    add_preview_parser(commands)
    seal_commands = add_seal_parser(commands)
    add_seal_image_parser(seal_commands)
    add_impression_parser(seal_commands)

    add_evidence_parser(commands)
    add_custody_parser(commands)
    add_principal_parser(commands)
    add_workflow_parsers(commands)
    return parser


# -- commands ----------------------------------------------------------------


def placement_from_args(args: argparse.Namespace) -> common_pb2.Placement:
    return common_pb2.Placement(
        page=args.page,
        x_mm=args.x_mm or 0.0,
        y_mm=args.y_mm or 0.0,
        size_mm=args.size_mm,
        anchor_text=args.anchor,
        cross_page=args.cross_page,
    )


def placement_problem(args: argparse.Namespace) -> str | None:
    """Why the placement flags are incomplete, or None."""
    if args.marks or args.job:  # a sealing job: the marks say where (issue 16)
        if args.seal or args.x_mm is not None or args.anchor or args.cross_page:
            return (
                "a sealing job (--mark/--job) names its seals and places in its marks; "
                "drop --seal and the placement flags"
            )
        if args.marks and args.job:
            return "give the marks either as --mark options or in the --job file, not both"
        return None
    if not args.files:
        return "name at least one PDF to seal"
    if not args.seal:
        return "name the seal (--seal ID), or give a sealing job's marks (--mark, --job)"
    has_xy = args.x_mm is not None and args.y_mm is not None
    if (args.x_mm is None) != (args.y_mm is None):
        return "give both --x-mm and --y-mm"
    if not (has_xy or args.anchor or args.cross_page):
        return "say where the seal goes: --x-mm and --y-mm, or --anchor TEXT, or --cross-page"
    return None


def cmd_submit(args: argparse.Namespace, client: SealClient, out: Output) -> int:
    if args.marks or args.job:
        request = submit_job(args, client)
    else:
        request = client.submit(
            args.files,
            seal_id=args.seal,
            reason=args.reason,
            category=args.category,
            placement=placement_from_args(args),
            client_request_key=args.client_request_key,
            amount=args.amount,
            amount_currency=args.currency,
        )
    if not args.wait:
        out.emit(request_text(request), request)
        return ExitCode.OK
    if not out.as_json:
        out.say(f"submitted {request.request_id}; waiting for approvals and sealing…")
    final = wait_for_end(client, request, out)
    out.emit(request_text(final), final)
    return ExitCode.OK if final.state == requests_pb2.REQUEST_STATE_SIGNED else ExitCode.OTHER


def submit_job(args: argparse.Namespace, client: SealClient) -> requests_pb2.SealRequest:
    """Issue 16: a sealing job from --mark options or a --job file (checked before upload)."""
    if args.job:
        files, marks, per_document = manifest_marks(load_job(args.job), args.files)
    else:
        files = list(args.files)
        marks = [parse_mark_option(text, position=i + 1) for i, text in enumerate(args.marks)]
        per_document = []
    if not files:
        raise LocalInputError("no_documents", "name at least one PDF to seal (or documents in the job file)")
    return client.submit(
        files,
        seal_id="",
        reason=args.reason,
        category=args.category,
        placement=common_pb2.Placement(),
        client_request_key=args.client_request_key,
        amount=args.amount,
        amount_currency=args.currency,
        marks=marks,
        document_marks=per_document,
    )


def wait_for_end(
    client: SealClient, request: requests_pb2.SealRequest, out: Output
) -> requests_pb2.SealRequest:
    if request.state in TERMINAL_STATES:
        return request
    show = RequestProgress(out, json_events=False)  # --json: only the final request
    try:
        for event in client.watch(request_id=request.request_id):
            show.event(event)
            if event.request.state in TERMINAL_STATES:
                return event.request
    finally:
        show.end()
    return client.get(request.request_id)


class RequestProgress:
    """What `watch REQ` and `submit --wait` print: a line per state change, and while a
    request of several documents is sealed, its progress (done/total, rate, ETA) as a bar
    on a terminal or as plain lines otherwise (issue 20)."""

    def __init__(self, out: Output, *, json_events: bool = True) -> None:
        self.out = out
        self.json_events = json_events
        self.progress = Progress(out.stream)
        self.state: int | None = None

    def event(self, event: requests_pb2.RequestEvent) -> None:
        if self.out.as_json:
            if self.json_events:
                self.out.emit(event_text(event), event)
            return
        request = event.request
        if request.state != self.state:
            self.state = request.state
            self.progress.line(escape_lines(event_text(event)))
        if request.state == requests_pb2.REQUEST_STATE_SIGNING and len(request.documents) > 1:
            self.progress.request(request)

    def end(self) -> None:
        self.progress.end()


def cmd_approve(args: argparse.Namespace, client: SealClient, out: Output) -> int:
    def review(shown: requests_pb2.SealRequest) -> None:
        # Issue 16: every mark of a job is shown before the statement is signed.
        if shown.job_seals and not out.as_json:
            out.say("approving every mark below (the digest binds them):\n" + "\n".join(marks_lines(shown)))

    request = client.approve(
        args.request_id,
        args.comment,
        expected_sha256=args.expected_sha256,
        on_behalf_of=args.on_behalf_of,
        review=review,
    )
    out.emit(
        "approved after local check of every document hash and the approval digest\n"
        + request_text(request),
        request,
    )
    return ExitCode.OK


def cmd_withdraw(args: argparse.Namespace, client: SealClient, out: Output) -> int:
    request = client.withdraw(args.request_id, args.comment)
    out.emit(request_text(request), request)
    return ExitCode.OK


def cmd_reject(args: argparse.Namespace, client: SealClient, out: Output) -> int:
    request = client.reject(args.request_id, args.comment)
    out.emit(request_text(request), request)
    return ExitCode.OK


def cmd_cancel(args: argparse.Namespace, client: SealClient, out: Output) -> int:
    request = client.cancel(args.request_id, args.comment)
    out.emit(request_text(request), request)
    return ExitCode.OK


def cmd_status(args: argparse.Namespace, client: SealClient, out: Output) -> int:
    request = client.get(args.request_id)
    out.emit(request_text(request), request)
    return ExitCode.OK


def cmd_list(args: argparse.Namespace, client: SealClient, out: Output) -> int:
    found = client.list(states=args.states or (), seal_id=args.seal)
    out.emit(requests_table(found), requests_pb2.ListRequestsResponse(requests=found))
    return ExitCode.OK


def cmd_watch(args: argparse.Namespace, client: SealClient, out: Output) -> int:
    if not args.request_id:
        for event in client.watch():
            out.emit(event_text(event), event)
        return ExitCode.OK
    show = RequestProgress(out)
    try:
        for event in client.watch(request_id=args.request_id):
            show.event(event)
            if event.request.state in TERMINAL_STATES:
                break
    finally:
        show.end()
    return ExitCode.OK


def safe_file_name(name: str, fallback: str) -> str:
    """A server-supplied document name reduced to a plain file name (no path tricks)."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1].strip()
    return fallback if base in ("", ".", "..") or base.startswith(".") else base


def download_targets(
    documents: Sequence[requests_pb2.DocumentInfo],
    output: Path | None,
    original: bool,
) -> list[tuple[int, Path]]:
    """(index, path) to write for each chosen document."""
    if output is not None and not output.is_dir():
        if len(documents) != 1:
            raise LocalInputError(
                "output_not_directory",
                f"{len(documents)} documents to download but {output} is not a directory; "
                "pass --index N or -o an existing directory",
            )
        return [(documents[0].index, output)]
    directory = output or Path()
    suffix = "" if original else ".sealed"
    targets = []
    for info in documents:
        name = safe_file_name(info.name, f"document-{info.index}.pdf")
        stem, dot, ext = name.rpartition(".")
        file_name = f"{stem}{suffix}.{ext}" if dot and stem else f"{name}{suffix}"
        targets.append((info.index, directory / file_name))
    return targets


def cmd_download(args: argparse.Namespace, client: SealClient, out: Output) -> int:
    request = client.get(args.request_id)
    documents = list(request.documents)
    if args.all and args.index is not None:
        raise LocalInputError(
            "conflicting_arguments", "--all and --index exclude each other; pass one of them"
        )
    if args.index is not None:
        documents = [d for d in documents if d.index == args.index]
        if not documents:
            raise LocalInputError(
                "document_index_out_of_range",
                f"request {args.request_id} has no document {args.index}; it has "
                f"{len(request.documents)} (indexes from 0); see `sealctl status`",
            )
    variant = (
        requests_pb2.DOCUMENT_VARIANT_ORIGINAL
        if args.original
        else requests_pb2.DOCUMENT_VARIANT_SEALED
    )
    written: list[dict[str, Any]] = []
    targets = download_targets(documents, args.output, args.original)
    # Many files on a terminal: one bar instead of thousands of lines (issue 20).
    bar = Progress(out.stream, what="downloaded") if len(targets) > 1 and not out.as_json else None
    use_bar = bar is not None and bar.tty

    def wrote(info: requests_pb2.DocumentInfo, path: Path | None) -> None:
        written.append({"path": str(path), "document": message_dict(info)})
        if use_bar and bar is not None:
            bar.show(len(written), len(targets), label=args.request_id)
        elif not out.as_json:
            out.say(f"wrote {path} (sha256 verified)")

    if args.index is None:
        # Every document in one DownloadAllDocuments stream (issue 20).
        client.download_all(args.request_id, dict(targets), variant, len(request.documents), wrote)
    else:
        for index, path in targets:
            wrote(client.download(args.request_id, index, path, variant), path)
    if use_bar and bar is not None:
        summary = f"wrote {len(targets)} files to {args.output or Path()} (each sha256 verified)"
        bar.line(escape_lines(summary))
    if out.as_json:
        out.emit("", {"request_id": args.request_id, "documents": written})
    return ExitCode.OK


def cmd_token_status(args: argparse.Namespace, client: SealClient, out: Output) -> int:
    response = client.token_status(args.seal_id)
    out.emit(tokens_table(response.tokens), response)
    return ExitCode.OK


def cmd_token_watch(args: argparse.Namespace, client: SealClient, out: Output) -> int:
    for status in client.watch_tokens(args.seal_id):
        out.emit(tokens_table([status]).splitlines()[-1], status)
    return ExitCode.OK


def read_secret(prompt: str, from_stdin: bool, stdin: TextIO) -> str:
    """A PIN, never echoed and never from argv."""
    if from_stdin:
        line = stdin.readline()
        value = line.rstrip("\r\n")
    else:
        value = getpass.getpass(prompt)
    if not value:
        raise LocalInputError(
            "pin_empty",
            "no PIN was given; type it at the prompt, or pipe one line to --pin-stdin",
        )
    return value


def cmd_token_unlock(args: argparse.Namespace, client: SealClient, out: Output) -> int:
    pin = read_secret(f"PIN for seal {args.seal_id}: ", args.pin_stdin, sys.stdin)
    status = client.unlock(args.seal_id, pin)
    out.emit(tokens_table([status]), status)
    return ExitCode.OK


def cmd_token_change_pin(args: argparse.Namespace, client: SealClient, out: Output) -> int:
    old_pin = read_secret(f"current PIN for seal {args.seal_id}: ", args.pin_stdin, sys.stdin)
    new_pin = read_secret("new PIN: ", args.pin_stdin, sys.stdin)
    if not args.pin_stdin and read_secret("new PIN again: ", False, sys.stdin) != new_pin:
        raise LocalInputError(
            "pin_confirmation_mismatch", "the two new PINs differ; nothing was changed, try again"
        )
    status = client.change_pin(args.seal_id, old_pin, new_pin)
    out.emit(tokens_table([status]), status)
    return ExitCode.OK


def cmd_token_lock(args: argparse.Namespace, client: SealClient, out: Output) -> int:
    status = client.lock(args.seal_id)
    out.emit(tokens_table([status]), status)
    return ExitCode.OK


def cmd_seals(args: argparse.Namespace, client: SealClient, out: Output) -> int:
    response = client.seals()
    out.emit(seals_table(response.seals), response)
    return ExitCode.OK


def cmd_verify(args: argparse.Namespace, client: SealClient, out: Output) -> int:
    report = client.verify(args.file)
    out.emit(verify_text(report), report)
    if report.all_valid and report.signatures:
        return ExitCode.OK
    return ExitCode.VERIFICATION_FAILED


# -- entry point ---------------------------------------------------------------


def overrides_from_args(args: argparse.Namespace) -> ConfigOverrides:
    return ConfigOverrides(
        config=args.config, server=args.server, ca=args.ca, cert=args.cert, key=args.key
    )


def error_line(error: SealClientError) -> str:
    return f"sealctl: error: {escape_text(error.message)} ({escape_text(error.reason)})"


def parse_args(parser: argparse.ArgumentParser, argv: Iterable[str] | None) -> argparse.Namespace:
    args = parser.parse_args(None if argv is None else list(argv))
    if args.command == "submit" and (problem := placement_problem(args)):
        parser.error(problem)
    if args.command == "evidence":
        finish_evidence_args(parser, args)
    return args


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parse_args(parser, argv)
    except SystemExit as ex:  # argparse: --help (0) or a usage error (2)
        return ex.code if isinstance(ex.code, int) else ExitCode.USAGE
    out = Output(args.json, sys.stdout)
    handler: Handler = args.handler
    if getattr(args, "offline", None) is not None:  # sealctl audit verify --offline: no daemon
        return int(args.offline_handler(args, out))
    try:
        identity = ClientIdentity.from_config(resolve_config(overrides_from_args(args)))
        with SealClient(identity) as client:
            return int(handler(args, client, out))
    except SealClientError as error:
        print(error_line(error), file=sys.stderr, flush=True)
        return int(exit_code_for(error))
    except KeyboardInterrupt:
        return 130
    except grpc.RpcError as error:  # a stream we did not wrap; never a traceback
        print(f"sealctl: error: {escape_text(str(error))} (rpc_error)", file=sys.stderr)
        return int(ExitCode.OTHER)


if __name__ == "__main__":
    sys.exit(main())
