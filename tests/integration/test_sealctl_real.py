"""`sealctl` as users and scripts run it: a real subprocess against the REAL seald.

Exit codes, the --json shape, the stderr format, and PINs (from stdin, or typed at
a real terminal with echo off) never shown. One daemon serves the module; its
`official` token was taken out before it started (a real absent token), the
`contract` token is present.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from sealapi.v1 import requests_pb2
from sealclient.output import display_width
from seald_testing.clients import (
    SEALCTL,
    approval_count,
    current_pin,
    rpc_lines,
    sealctl,
    tamper_stored_description,
    tamper_stored_original,
    unlock,
    unplug_token,
    wait_signed,
)
from seald_testing.daemon import SealDaemon, free_port, make_pdf
from seald_testing.plugin import DaemonFactory
from seald_testing.terminal import run_on_terminal

SIGNED = requests_pb2.REQUEST_STATE_SIGNED


@pytest.fixture(scope="module")
def daemon(module_daemon_factory: DaemonFactory) -> SealDaemon:
    fx = module_daemon_factory.fixtures()
    unplug_token(fx, "official")
    return module_daemon_factory(fixtures=fx)


def submit_json(daemon: SealDaemon, tmp_path: Path, *extra: str) -> dict[str, object]:
    pdf = make_pdf(tmp_path / "采购合同.pdf")
    done = sealctl(
        daemon,
        "zhang.wei",
        "--json",
        "submit",
        str(pdf),
        "--seal",
        "contract",
        "--reason",
        "签署采购合同",
        "--category",
        "contract",
        "--page",
        "1",
        "--x-mm",
        "150",
        "--y-mm",
        "230",
        *extra,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout)
    return result


def assert_error_line(stderr: str, reason: str) -> None:
    """The documented stderr shape: one line `sealctl: error: <message> (<reason>)`."""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("sealctl: error: ") and lines[0].endswith(f"({reason})"), stderr


def test_submit_json_is_one_object_with_proto_field_names(daemon: SealDaemon, tmp_path: Path) -> None:
    result = submit_json(daemon, tmp_path)
    assert result["seal_id"] == "contract"
    assert result["state"] == "REQUEST_STATE_PENDING"
    assert result["requester"] == "zhang.wei"
    assert isinstance(result["approval_digest"], str) and len(result["approval_digest"]) == 64
    documents = result["documents"]
    assert isinstance(documents, list) and documents[0]["name"] == "采购合同.pdf"
    placement = result["placement"]
    assert isinstance(placement, dict)
    assert (placement["page"], placement["x_mm"], placement["y_mm"]) == (1, 150.0, 230.0)


def test_json_is_accepted_after_the_subcommand_too(daemon: SealDaemon, tmp_path: Path) -> None:
    request_id = str(submit_json(daemon, tmp_path)["request_id"])
    before = sealctl(daemon, "zhang.wei", "--json", "status", request_id)
    after = sealctl(daemon, "zhang.wei", "status", request_id, "--json")
    assert before.returncode == after.returncode == 0, after.stderr
    assert json.loads(after.stdout)["request_id"] == request_id
    assert json.loads(after.stdout) == json.loads(before.stdout)
    nested = sealctl(daemon, "liu.yang", "token", "status", "contract", "--json")
    assert nested.returncode == 0, nested.stderr
    assert json.loads(nested.stdout)["tokens"][0]["seal_id"] == "contract"


def test_status_human_output_shows_chinese_text(daemon: SealDaemon, tmp_path: Path) -> None:
    request_id = str(submit_json(daemon, tmp_path)["request_id"])
    done = sealctl(daemon, "zhang.wei", "status", request_id)
    assert done.returncode == 0, done.stderr
    assert "签署采购合同" in done.stdout and "采购合同.pdf" in done.stdout
    assert "PENDING" in done.stdout
    assert "page 1 at x=150 mm, y=230 mm" in done.stdout
    with pytest.raises(json.JSONDecodeError):
        json.loads(done.stdout)


def test_list_json_wraps_requests(daemon: SealDaemon, tmp_path: Path) -> None:
    request_id = submit_json(daemon, tmp_path)["request_id"]
    done = sealctl(daemon, "zhang.wei", "--json", "list", "--state", "pending")
    assert done.returncode == 0, done.stderr
    listed = json.loads(done.stdout)
    assert request_id in [r["request_id"] for r in listed["requests"]]
    assert {r["state"] for r in listed["requests"]} == {"REQUEST_STATE_PENDING"}


def test_r05_r14_approve_twice_unlock_download_and_verify(daemon: SealDaemon, tmp_path: Path) -> None:
    request_id = str(submit_json(daemon, tmp_path)["request_id"])
    first = sealctl(daemon, "li.na", "approve", request_id, "--comment", "同意")
    assert first.returncode == 0, first.stderr
    assert "approved after local check" in first.stdout
    second = sealctl(daemon, "wang.fang", "--json", "approve", request_id)
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["state"] == "REQUEST_STATE_APPROVED"
    pin = current_pin(daemon, "contract")
    unlocked = sealctl(daemon, "liu.yang", "token", "unlock", "contract", "--pin-stdin", stdin=pin + "\n")
    assert unlocked.returncode == 0, unlocked.stderr
    wait_signed(daemon, request_id)
    out_dir = tmp_path / "sealed"
    out_dir.mkdir()
    got = sealctl(daemon, "zhang.wei", "--json", "download", request_id, "-o", str(out_dir))
    assert got.returncode == 0, got.stderr
    result = json.loads(got.stdout)
    sealed = out_dir / "采购合同.sealed.pdf"
    assert result["documents"][0]["path"] == str(sealed)
    assert sealed.exists()
    verified = sealctl(daemon, "zhao.min", "verify", str(sealed))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "all signatures valid" in verified.stdout and "NOT" not in verified.stdout


def test_r06_swapped_original_exits_10_and_approves_nothing(daemon: SealDaemon, tmp_path: Path) -> None:
    request_id = str(submit_json(daemon, tmp_path)["request_id"])
    tamper_stored_original(daemon, request_id)
    done = sealctl(daemon, "li.na", "approve", request_id)
    assert done.returncode == 10, done.stderr
    assert_error_line(done.stderr, "download_hash_mismatch")
    assert approval_count(daemon, request_id) == 0


def test_r06_changed_description_exits_10_and_approves_nothing(daemon: SealDaemon, tmp_path: Path) -> None:
    request_id = str(submit_json(daemon, tmp_path)["request_id"])
    tamper_stored_description(daemon, request_id, reason="另作他用")
    done = sealctl(daemon, "li.na", "approve", request_id)
    assert done.returncode == 10, done.stderr
    assert_error_line(done.stderr, "local_digest_mismatch")
    assert approval_count(daemon, request_id) == 0


def test_submit_wait_returns_when_sealed(daemon: SealDaemon, tmp_path: Path) -> None:
    assert SEALCTL is not None
    pdf = make_pdf(tmp_path / "wait.pdf")
    config = daemon.fixtures.principals["zhang.wei"].config
    waiting = subprocess.Popen(
        [SEALCTL, "--config", str(config), "--server", daemon.target, "--json", "submit",
         str(pdf), "--seal", "contract", "--reason", "等待", "--category", "contract",
         "--x-mm", "100", "--y-mm", "200", "--wait"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        request_id = ""
        with daemon.client("zhang.wei") as client:
            while not request_id and time.monotonic() < deadline:
                found = [r.request_id for r in client.list() if r.reason == "等待"]
                request_id = found[0] if found else ""
                time.sleep(0.05)
        assert request_id, "the submitted request never appeared"
        assert waiting.poll() is None  # still waiting: not sealed yet
        with daemon.client("li.na") as li, daemon.client("wang.fang") as wang:
            li.approve(request_id)
            wang.approve(request_id)
        unlock(daemon)
        out, err = waiting.communicate(timeout=60)
    finally:
        if waiting.poll() is None:
            waiting.kill()
            waiting.wait()
    assert waiting.returncode == 0, err
    final = json.loads(out)
    assert final["request_id"] == request_id
    assert final["state"] == "REQUEST_STATE_SIGNED"


@pytest.mark.parametrize(
    ("who", "argv", "code", "reason"),
    [
        ("zhang.wei", ["status", "R-9999"], 4, "request_not_found"),
        ("zhang.wei", ["cancel", "R-9999"], 4, "request_not_found"),
        ("liu.yang", ["token", "unlock", "official", "--pin-stdin"], 5, "token_absent"),
        ("zhang.wei", ["seals", "--server", "x"], 2, ""),
    ],
    ids=["status-unknown", "cancel-unknown", "unlock-absent-token", "usage"],
)
def test_daemon_errors_map_to_exit_codes_and_stderr_format(
    daemon: SealDaemon, who: str, argv: list[str], code: int, reason: str
) -> None:
    done = sealctl(daemon, who, *argv, stdin="11112222\n")
    assert done.returncode == code, done.stderr
    if reason:
        assert_error_line(done.stderr, reason)
    else:
        assert "usage:" in done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""


def test_r04_requester_approving_exits_3_and_pending_download_exits_5(
    daemon: SealDaemon, tmp_path: Path
) -> None:
    request_id = str(submit_json(daemon, tmp_path)["request_id"])
    denied = sealctl(daemon, "zhang.wei", "approve", request_id)
    assert denied.returncode == 3, denied.stderr
    assert denied.stderr.startswith("sealctl: error: ")
    early = sealctl(daemon, "zhang.wei", "download", request_id, "-o", str(tmp_path / "x.pdf"))
    assert early.returncode == 5, early.stderr
    assert_error_line(early.stderr, "not_signed")
    assert not (tmp_path / "x.pdf").exists()


def test_daemon_down_exits_8_and_names_target(daemon: SealDaemon) -> None:
    target = f"127.0.0.1:{free_port()}"
    done = sealctl(daemon, "zhang.wei", "--server", target, "seals")
    assert done.returncode == 8, done.stderr
    assert f"is seald running at {target}?" in done.stderr.lower()


def test_r07_unlock_reads_pin_from_stdin_and_never_prints_it(daemon: SealDaemon) -> None:
    wrong = "97531086"
    refused = sealctl(daemon, "liu.yang", "token", "unlock", "contract", "--pin-stdin", stdin=wrong + "\n")
    if refused.returncode == 0:  # already unlocked by an earlier test: lock, then retry
        assert sealctl(daemon, "liu.yang", "token", "lock", "contract").returncode == 0
        refused = sealctl(
            daemon, "liu.yang", "token", "unlock", "contract", "--pin-stdin", stdin=wrong + "\n"
        )
    assert refused.returncode == 3, refused.stderr
    assert_error_line(refused.stderr, "pin_incorrect")
    pin = current_pin(daemon, "contract")
    done = sealctl(
        daemon, "liu.yang", "--json", "token", "unlock", "contract", "--pin-stdin", stdin=pin + "\n"
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["unlocked"] is True
    for output in (refused.stdout + refused.stderr, done.stdout + done.stderr, daemon.log()):
        assert wrong not in output and pin not in output




def test_r07_unlock_prompts_on_the_terminal_without_echo(daemon: SealDaemon) -> None:
    pin = current_pin(daemon, "contract")
    assert sealctl(daemon, "liu.yang", "token", "lock", "contract").returncode == 0
    code, screen = run_on_terminal(daemon, "liu.yang", ["token", "unlock", "contract"], [pin])
    assert code == 0, screen
    assert "PIN for seal contract: " in screen
    assert pin not in screen  # typed, but echo was off
    assert "contract" in screen.split("PIN for seal contract: ", 1)[1]  # the status table


def test_r07_change_pin_confirmation_must_match_and_sends_nothing(daemon: SealDaemon) -> None:
    pin = current_pin(daemon, "contract")
    calls_before = len(rpc_lines(daemon, "ChangePin"))
    first, second = "13572468", "13572460"
    code, screen = run_on_terminal(
        daemon, "liu.yang", ["token", "change-pin", "contract"], [pin, first, second]
    )
    assert code == 6, screen
    assert "(pin_confirmation_mismatch)" in screen
    assert first not in screen and second not in screen
    assert len(rpc_lines(daemon, "ChangePin")) == calls_before  # nothing reached the daemon


def test_verify_exit_code_follows_validity(daemon: SealDaemon, tmp_path: Path) -> None:
    unsigned = make_pdf(tmp_path / "unsigned.pdf")
    done = sealctl(daemon, "zhao.min", "verify", str(unsigned))
    assert done.returncode == 10, done.stderr
    assert "no signatures found" in done.stdout


def test_seals_table_aligns_chinese_names(daemon: SealDaemon) -> None:
    done = sealctl(daemon, "zhang.wei", "seals")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split()[:4] == ["SEAL", "TYPE", "NAME", "STATUS"]
    contract = next(line for line in lines if line.startswith("contract"))
    assert "合同专用章" in contract
    status_word = contract.split()[3]
    status_col = [
        display_width(line[: line.index(word)])
        for line, word in ((lines[0], "STATUS"), (contract, status_word))
    ]
    assert status_col[0] == status_col[1]
