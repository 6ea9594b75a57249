"""R07/R15: a PIN is never stored, logged or shown — proved with canary PINs.

A whole custodian day through the installed `sealctl` against the real seald:
a wrong PIN, change-pin from the initial PIN to a canary, unlock (piped and typed at a
terminal), sealing, lock, a wrong current PIN at change-pin, the token status. Then
every byte the system produced is searched for the canaries: the daemon's log
(stdout and stderr), every sealctl stdout/stderr and terminal transcript, a dump of
the audit database, and every file in the state directory (SQLite file and WAL,
documents, audit key directory).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from seald_testing.clients import sealctl, wait_signed
from seald_testing.daemon import SealDaemon, make_pdf
from seald_testing.terminal import run_on_terminal

CANARY_PIN = "Cnry-7319-qzx"  # the PIN the custodian chooses
CANARY_WRONG = "Wrng-5521-jkv"  # a mistyped PIN


def forms(secret: str) -> list[bytes]:
    """The secret as text, and in the encodings a careless logger would use."""
    raw = secret.encode()
    return [raw, raw.hex().encode(), secret.encode("utf-16-le")]


def test_r07_canary_pins_appear_in_no_output_log_record_or_file(
    daemon: SealDaemon, tmp_path: Path
) -> None:
    initial = daemon.fixtures.seals["contract"].user_pin
    outputs: list[str] = []

    def run(who: str, *argv: str, stdin: str | None = None, code: int = 0) -> None:
        done = sealctl(daemon, who, *argv, stdin=stdin)
        outputs.extend((done.stdout, done.stderr))
        assert done.returncode == code, done.stderr

    run("liu.yang", "token", "unlock", "contract", "--pin-stdin", stdin=CANARY_WRONG + "\n", code=3)
    run(
        "liu.yang", "token", "change-pin", "contract", "--pin-stdin",
        stdin=f"{CANARY_WRONG}\n{CANARY_PIN}\n", code=3,
    )  # fmt: skip
    run("liu.yang", "token", "change-pin", "contract", "--pin-stdin", stdin=f"{initial}\n{CANARY_PIN}\n")
    run("liu.yang", "--json", "token", "unlock", "contract", "--pin-stdin", stdin=CANARY_PIN + "\n")
    pdf = make_pdf(tmp_path / "canary.pdf")
    submitted = sealctl(
        daemon, "zhang.wei", "--json", "submit", str(pdf), "--seal", "contract", "--reason",
        "金丝雀", "--category", "contract", "--x-mm", "100", "--y-mm", "200",
    )  # fmt: skip
    outputs.extend((submitted.stdout, submitted.stderr))
    assert submitted.returncode == 0, submitted.stderr
    request_id = json.loads(submitted.stdout)["request_id"]
    run("li.na", "approve", request_id)
    run("wang.fang", "approve", request_id)
    wait_signed(daemon, request_id)
    run("zhang.wei", "download", request_id, "-o", str(tmp_path / "out.pdf"))
    run("liu.yang", "token", "lock", "contract")
    code, screen = run_on_terminal(daemon, "liu.yang", ["token", "unlock", "contract"], [CANARY_PIN])
    outputs.append(screen)
    assert code == 0, screen
    run("liu.yang", "token", "lock", "contract")
    code, screen = run_on_terminal(daemon, "liu.yang", ["token", "unlock", "contract"], [CANARY_WRONG])
    outputs.append(screen)
    assert code == 3, screen
    run("liu.yang", "--json", "token", "status", "contract")
    daemon.stop()  # flushes the log and checkpoints the WAL into the database file

    state = daemon.fixtures.state_dir
    conn = sqlite3.connect(f"file:{state / 'seald.sqlite3'}?mode=ro", uri=True)
    try:
        dump = "\n".join(conn.iterdump())
        audit_events = {row[0] for row in conn.execute("SELECT event FROM audit_log")}
    finally:
        conn.close()
    # The flow really happened: refusals, the change, unlocks, a signature are all recorded.
    assert {"token.unlock_refused", "token.pin_changed", "token.unlocked", "seal.signed"} <= audit_events
    assert "pin_incorrect" in dump

    haystacks: dict[str, bytes] = {
        "sealctl output": "\n".join(outputs).encode(),
        "daemon log": daemon.log_path.read_bytes(),
        "audit dump": dump.encode(),
    }
    files = [p for p in state.rglob("*") if p.is_file()]
    assert any(p.name.endswith(".sealed.pdf") for p in files) and any(p.suffix == ".sqlite3" for p in files)
    haystacks.update({str(p): p.read_bytes() for p in files})
    for secret in (CANARY_PIN, CANARY_WRONG):
        for form in forms(secret):
            leaked = [name for name, data in haystacks.items() if form in data]
            assert leaked == [], f"{secret} ({form!r}) found in {leaked}"
