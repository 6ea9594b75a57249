"""sealctl: argparse wiring, exit codes, JSON shape, PIN handling (against the fake seald)."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from sealapi.v1 import requests_pb2
from sealclient import cli
from sealclient.cli import build_parser, download_targets, main, safe_file_name
from sealclient.errors import LocalInputError
from sealclient.output import display_width, table
from sealclient.testing import FAKE_PIN, FakePki, FakeSeald, FakeState, make_test_pki


@pytest.fixture(scope="module")
def pki() -> FakePki:
    return make_test_pki()


@pytest.fixture
def fake(pki: FakePki) -> Iterator[FakeSeald]:
    with FakeSeald(pki) as server:
        yield server


@pytest.fixture
def config(fake: FakeSeald, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A config file with relative PEM paths; no other config can leak in."""
    monkeypatch.delenv("SEALCTL_CONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    folder = tmp_path / "client"
    folder.mkdir()
    (folder / "ca.pem").write_bytes(fake.pki.ca_pem)
    (folder / "me.pem").write_bytes(fake.pki.client_cert_pem)
    (folder / "me.key").write_bytes(fake.pki.client_key_pem)
    path = folder / "config.toml"
    path.write_text(f'server = "{fake.target}"\nca = "ca.pem"\ncert = "me.pem"\nkey = "me.key"\n')
    return path


def run(config: Path, *argv: str) -> int:
    return main(["--config", str(config), *argv])


def a_pdf(tmp_path: Path, name: str = "采购合同.pdf") -> Path:
    path = tmp_path / name
    path.write_bytes(b"%PDF-1.7\n" + b"body " * 1000)
    return path


def submit_json(config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                *extra: str) -> dict[str, object]:
    code = run(config, "--json", "submit", str(a_pdf(tmp_path)), "--seal", "contract-01",
               "--reason", "签署采购合同", "--category", "contract", "--page", "1",
               "--x-mm", "150", "--y-mm", "230", *extra)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    result: dict[str, object] = json.loads(captured.out)
    return result


# -- argparse wiring -------------------------------------------------------------

WIRING = [
    (["submit", "a.pdf", "b.pdf", "--seal", "S", "--reason", "R", "--category", "C",
      "--page", "2", "--x-mm", "1.5", "--y-mm", "2", "--size-mm", "40", "--wait"],
     cli.cmd_submit, {"files": [Path("a.pdf"), Path("b.pdf")], "seal": "S", "page": 2,
                      "x_mm": 1.5, "y_mm": 2.0, "size_mm": 40.0, "wait": True}),
    (["approve", "R-1", "--comment", "ok", "--sha256", "A" * 64], cli.cmd_approve,
     {"request_id": "R-1", "comment": "ok", "expected_sha256": ["a" * 64]}),
    (["withdraw", "R-1"], cli.cmd_withdraw, {"request_id": "R-1"}),
    (["reject", "R-1", "--comment", "wrong party"], cli.cmd_reject, {"comment": "wrong party"}),
    (["cancel", "R-1"], cli.cmd_cancel, {"request_id": "R-1"}),
    (["status", "R-1"], cli.cmd_status, {"request_id": "R-1"}),
    (["list", "--state", "pending", "--state", "SIGNED", "--seal", "S"], cli.cmd_list,
     {"states": [requests_pb2.REQUEST_STATE_PENDING, requests_pb2.REQUEST_STATE_SIGNED],
      "seal": "S"}),
    (["watch"], cli.cmd_watch, {"request_id": ""}),
    (["watch", "R-1"], cli.cmd_watch, {"request_id": "R-1"}),
    (["download", "R-1", "-o", "x.pdf", "--index", "1", "--original"], cli.cmd_download,
     {"output": Path("x.pdf"), "index": 1, "original": True}),
    (["download", "R-1"], cli.cmd_download, {"output": None, "index": None, "original": False}),
    (["token", "status"], cli.cmd_token_status, {"seal_id": ""}),
    (["token", "status", "S"], cli.cmd_token_status, {"seal_id": "S"}),
    (["token", "watch"], cli.cmd_token_watch, {}),
    (["token", "unlock", "S", "--pin-stdin"], cli.cmd_token_unlock,
     {"seal_id": "S", "pin_stdin": True}),
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


def test_help_documents_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "exit codes:" in out and "10  verification failed" in out


# -- behaviour against the fake daemon ---------------------------------------------


def test_submit_json_is_one_object_with_proto_field_names(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = submit_json(config, tmp_path, capsys)
    assert result["seal_id"] == "contract-01"
    assert result["state"] == "REQUEST_STATE_PENDING"
    assert isinstance(result["approval_digest"], str) and len(result["approval_digest"]) == 64
    documents = result["documents"]
    assert isinstance(documents, list) and documents[0]["name"] == "采购合同.pdf"
    assert result["placement"] == {"page": 1, "x_mm": 150.0, "y_mm": 230.0}


def test_status_human_output_shows_chinese_text(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    request_id = str(submit_json(config, tmp_path, capsys)["request_id"])
    assert run(config, "status", request_id) == 0
    out = capsys.readouterr().out
    assert "签署采购合同" in out and "采购合同.pdf" in out and "PENDING" in out
    assert "page 1 at x=150 mm, y=230 mm" in out


def test_list_json_wraps_requests(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    request_id = submit_json(config, tmp_path, capsys)["request_id"]
    assert run(config, "--json", "list", "--state", "pending") == 0
    listed = json.loads(capsys.readouterr().out)
    assert [r["request_id"] for r in listed["requests"]] == [request_id]


def test_r05_approve_twice_then_download_all(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    request_id = str(submit_json(config, tmp_path, capsys)["request_id"])
    assert run(config, "approve", request_id, "--comment", "同意") == 0
    assert run(config, "--json", "approve", request_id) == 0
    out = capsys.readouterr().out.strip().splitlines()[-1]
    assert json.loads(out)["state"] == "REQUEST_STATE_SIGNED"
    out_dir = tmp_path / "sealed"
    out_dir.mkdir()
    assert run(config, "--json", "download", request_id, "-o", str(out_dir)) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["documents"][0]["path"] == str(out_dir / "采购合同.sealed.pdf")
    assert (out_dir / "采购合同.sealed.pdf").exists()


def test_r06_tampered_request_exits_10_and_approves_nothing(
    config: Path, fake: FakeSeald, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    request_id = str(submit_json(config, tmp_path, capsys)["request_id"])
    fake.state.requests[request_id].reason = "另作他用"  # digest not recomputed
    assert run(config, "approve", request_id) == 10
    err = capsys.readouterr().err
    assert err.startswith("sealctl: error: ") and err.rstrip().endswith("(local_digest_mismatch)")
    assert fake.state.approvals_received == []


def test_submit_wait_returns_when_sealed(
    config: Path, fake: FakeSeald, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def seal_everything(state: FakeState) -> None:
        for request in state.requests.values():
            state.sign(request)

    fake.state.after_watch_snapshot = seal_everything
    result = submit_json(config, tmp_path, capsys, "--wait")
    assert result["state"] == "REQUEST_STATE_SIGNED"


@pytest.mark.parametrize(
    ("argv", "code", "reason"),
    [
        (["status", "R-9999"], 4, "request_not_found"),
        (["token", "lock", "finance-01"], 5, "token_absent"),
        (["cancel", "R-9999"], 4, "request_not_found"),
    ],
)
def test_daemon_errors_map_to_exit_codes_and_stderr_format(
    config: Path, argv: list[str], code: int, reason: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(config, *argv) == code
    err = capsys.readouterr().err
    assert err.startswith("sealctl: error: ") and err.rstrip().endswith(f"({reason})")


def test_daemon_down_exits_8_and_names_target(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(config, "--server", "localhost:1", "seals") == 8
    assert "is seald running at localhost:1?" in capsys.readouterr().err.lower()


def test_bad_config_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('server = "x:1"\nport = 1\n')
    assert main(["--config", str(cfg), "seals"]) == 2
    assert "unknown key 'port'" in capsys.readouterr().err


def test_r07_unlock_reads_pin_from_stdin_and_never_prints_it(
    config: Path, fake: FakeSeald, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake.state.echo_pin_in_errors = True
    monkeypatch.setattr("sys.stdin", io.StringIO("975310\n"))
    assert run(config, "token", "unlock", "contract-01", "--pin-stdin") == 3
    captured = capsys.readouterr()
    assert "975310" not in captured.out + captured.err
    assert "(pin_incorrect)" in captured.err
    monkeypatch.setattr("sys.stdin", io.StringIO(FAKE_PIN + "\n"))
    assert run(config, "--json", "token", "unlock", "contract-01", "--pin-stdin") == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["unlocked"] is True
    assert FAKE_PIN not in captured.out + captured.err
    assert fake.state.pins_received == ["975310", FAKE_PIN]


def test_r07_unlock_prompts_without_echo(
    config: Path, fake: FakeSeald, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    prompts: list[str] = []

    def fake_getpass(prompt: str = "") -> str:
        prompts.append(prompt)
        return FAKE_PIN

    monkeypatch.setattr("getpass.getpass", fake_getpass)
    assert run(config, "token", "unlock", "contract-01") == 0
    assert prompts == ["PIN for seal contract-01: "]
    assert FAKE_PIN not in capsys.readouterr().out


def test_r07_change_pin_confirmation_must_match(
    config: Path, fake: FakeSeald, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    answers = iter([FAKE_PIN, "13572468", "13572460"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    assert run(config, "token", "change-pin", "contract-01") == 6
    err = capsys.readouterr().err
    assert "(pin_confirmation_mismatch)" in err and "1357246" not in err
    assert fake.state.pins_received == []  # nothing was sent


def test_verify_exit_code_follows_validity(
    config: Path, fake: FakeSeald, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(config, "verify", str(a_pdf(tmp_path))) == 10
    assert "NOT all signatures valid" in capsys.readouterr().out


def test_seals_table_aligns_chinese_names(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(config, "seals") == 0
    lines = capsys.readouterr().out.splitlines()
    assert "示例科技有限公司合同专用章" in lines[1]
    status_col = [display_width(line[: line.index(word)])
                  for line, word in ((lines[0], "STATUS"), (lines[1], "ACTIVE"))]
    assert status_col[0] == status_col[1]


# -- pure helpers -------------------------------------------------------------------


def test_display_width_counts_cjk_double() -> None:
    assert display_width("合同ab") == 6
    assert table(["A", "B"], [["合同", "x"]]).splitlines()[1] == "合同  x"


@pytest.mark.parametrize(
    ("name", "expected"),
    [("../../etc/passwd", "passwd"), ("..", "fallback.pdf"), (".bashrc", "fallback.pdf"),
     ("C:\\x\\合同.pdf", "合同.pdf"), ("", "fallback.pdf"), ("a.pdf", "a.pdf")],
)
def test_server_supplied_names_cannot_escape_the_output_directory(
    name: str, expected: str
) -> None:
    assert safe_file_name(name, "fallback.pdf") == expected


def test_download_to_a_file_needs_exactly_one_document(tmp_path: Path) -> None:
    docs = [requests_pb2.DocumentInfo(index=i, name=f"d{i}.pdf") for i in range(2)]
    with pytest.raises(LocalInputError):
        download_targets(docs, tmp_path / "one.pdf", original=False)
    assert download_targets(docs[1:], tmp_path / "one.pdf", original=False) == [
        (1, tmp_path / "one.pdf")]
    assert download_targets(docs, tmp_path, original=True) == [
        (0, tmp_path / "d0.pdf"), (1, tmp_path / "d1.pdf")]
