"""sealctl without a server: argparse wiring, usage errors, config errors, output helpers.

Everything that talks to seald runs against the real daemon in
tests/integration/test_sealctl_real.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sealapi.v1 import requests_pb2
from sealclient import cli
from sealclient.cli import build_parser, download_targets, main, safe_file_name
from sealclient.errors import LocalInputError
from sealclient.output import display_width, table

# -- argparse wiring -------------------------------------------------------------

WIRING = [
    (
        [
            "submit",
            "a.pdf",
            "b.pdf",
            "--seal",
            "S",
            "--reason",
            "R",
            "--category",
            "C",
            "--page",
            "2",
            "--x-mm",
            "1.5",
            "--y-mm",
            "2",
            "--size-mm",
            "40",
            "--wait",
        ],
        cli.cmd_submit,
        {
            "files": [Path("a.pdf"), Path("b.pdf")],
            "seal": "S",
            "page": 2,
            "x_mm": 1.5,
            "y_mm": 2.0,
            "size_mm": 40.0,
            "wait": True,
        },
    ),
    (
        ["approve", "R-1", "--comment", "ok", "--sha256", "A" * 64],
        cli.cmd_approve,
        {"request_id": "R-1", "comment": "ok", "expected_sha256": ["a" * 64]},
    ),
    (["withdraw", "R-1"], cli.cmd_withdraw, {"request_id": "R-1"}),
    (["reject", "R-1", "--comment", "wrong party"], cli.cmd_reject, {"comment": "wrong party"}),
    (["cancel", "R-1"], cli.cmd_cancel, {"request_id": "R-1"}),
    (["status", "R-1"], cli.cmd_status, {"request_id": "R-1"}),
    (
        ["list", "--state", "pending", "--state", "SIGNED", "--seal", "S"],
        cli.cmd_list,
        {
            "states": [requests_pb2.REQUEST_STATE_PENDING, requests_pb2.REQUEST_STATE_SIGNED],
            "seal": "S",
        },
    ),
    (["watch"], cli.cmd_watch, {"request_id": ""}),
    (["watch", "R-1"], cli.cmd_watch, {"request_id": "R-1"}),
    (
        ["download", "R-1", "-o", "x.pdf", "--index", "1", "--original"],
        cli.cmd_download,
        {"output": Path("x.pdf"), "index": 1, "original": True},
    ),
    (["download", "R-1"], cli.cmd_download, {"output": None, "index": None, "original": False}),
    (["token", "status"], cli.cmd_token_status, {"seal_id": ""}),
    (["token", "status", "S"], cli.cmd_token_status, {"seal_id": "S"}),
    (["token", "watch"], cli.cmd_token_watch, {}),
    (
        ["token", "unlock", "S", "--pin-stdin"],
        cli.cmd_token_unlock,
        {"seal_id": "S", "pin_stdin": True},
    ),
    (["token", "lock", "S"], cli.cmd_token_lock, {"seal_id": "S"}),
    (["token", "change-pin", "S"], cli.cmd_token_change_pin, {"pin_stdin": False}),
    (["seals"], cli.cmd_seals, {}),
    (["verify", "x.pdf"], cli.cmd_verify, {"file": Path("x.pdf")}),
]


@pytest.mark.parametrize(("argv", "handler", "expected"), WIRING, ids=lambda v: str(v)[:30])
def test_command_is_wired_to_its_handler(
    argv: list[str], handler: object, expected: dict[str, object]
) -> None:
    args = build_parser().parse_args(["--json", *argv])
    assert args.handler is handler
    assert args.json is True
    for name, value in expected.items():
        assert getattr(args, name) == value


@pytest.mark.parametrize(
    "argv",
    [
        ["reject", "R-1"],  # comment required
        ["submit", "a.pdf", "--seal", "S", "--reason", "R"],  # category missing
        ["submit", "a.pdf", "--seal", "S", "--reason", "R", "--category", "C"],  # no position
        ["submit", "a.pdf", "--seal", "S", "--reason", "R", "--category", "C", "--x-mm", "1"],
        ["list", "--state", "bogus"],
        ["approve", "R-1", "--sha256", "nothex"],
        ["download", "R-1", "--index", "-1"],
        ["token"],
        [],
    ],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert "usage:" in capsys.readouterr().err


def test_r07_pin_is_never_accepted_in_argv(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["token", "unlock", "S", "--pin", "975310"]) == 2
    assert main(["token", "unlock", "S", "975310"]) == 2
    capsys.readouterr()


@pytest.mark.parametrize(
    "argv",
    [
        ["status", "R-1", "--json"],
        ["--json", "status", "R-1"],
        ["token", "unlock", "S", "--pin-stdin", "--json"],
        ["token", "--json", "status"],
        ["list", "--json", "--state", "pending"],
    ],
)
def test_json_is_accepted_before_or_after_the_command(argv: list[str]) -> None:
    assert build_parser().parse_args(argv).json is True


@pytest.mark.parametrize("argv", [["status", "R-1"], ["token", "status"], ["seals"]])
def test_without_json_anywhere_output_is_human(argv: list[str]) -> None:
    assert build_parser().parse_args(argv).json is False


def test_bad_config_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('server = "x:1"\nport = 1\n')
    assert main(["--config", str(cfg), "seals"]) == 2
    assert "unknown key 'port'" in capsys.readouterr().err


def test_help_documents_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "exit codes:" in out and "10  verification failed" in out


# -- pure helpers -------------------------------------------------------------------


def test_display_width_counts_cjk_double() -> None:
    assert display_width("合同ab") == 6
    assert table(["A", "B"], [["合同", "x"]]).splitlines()[1] == "合同  x"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("../../etc/passwd", "passwd"),
        ("..", "fallback.pdf"),
        (".bashrc", "fallback.pdf"),
        ("C:\\x\\合同.pdf", "合同.pdf"),
        ("", "fallback.pdf"),
        ("a.pdf", "a.pdf"),
    ],
)
def test_server_supplied_names_cannot_escape_the_output_directory(name: str, expected: str) -> None:
    assert safe_file_name(name, "fallback.pdf") == expected


def test_download_to_a_file_needs_exactly_one_document(tmp_path: Path) -> None:
    docs = [requests_pb2.DocumentInfo(index=i, name=f"d{i}.pdf") for i in range(2)]
    with pytest.raises(LocalInputError):
        download_targets(docs, tmp_path / "one.pdf", original=False)
    assert download_targets(docs[1:], tmp_path / "one.pdf", original=False) == [
        (1, tmp_path / "one.pdf")
    ]
    assert download_targets(docs, tmp_path, original=True) == [
        (0, tmp_path / "d0.pdf"),
        (1, tmp_path / "d1.pdf"),
    ]
