"""The usage ledger on a real SQLite file, and a tamper corpus against it (SEAL-RULES R10).

Each tamper test builds a ledger with Ledger.append, copies the database file, edits
the copy with plain sqlite3 (as someone with access to the file would, after dropping
the append-only triggers), and checks that offline verification names the record.
"""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from json.encoder import encode_basestring
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seald.domain.audit import (
    GENESIS_HASH,
    RECORD_COLUMNS,
    AuditEvent,
    ChainVerification,
    canonical_row_bytes,
    encode_row,
)
from seald.store import ledger as ledger_module
from seald.store.ledger import (
    SCHEMA,
    Ledger,
    LedgerConflictError,
    LedgerFileError,
    verify_ledger,
    verify_ledger_file,
)

HOST = "seal-host-01.example.cn"
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
RECORD_COUNT = 50
TEXT_COLUMNS = [c for c in RECORD_COLUMNS if c not in ("sequence", "details_json")]
EVENTS = (
    "request.submitted",
    "request.approved",
    "request.approved",
    "seal.sign_intent",
    "seal.signed",
)


class SteppingClock:
    """A deterministic clock: each reading is one second after the previous one."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


def sample_event(index: int) -> AuditEvent:
    request = f"req-{index // 5:04d}"
    return AuditEvent(
        event=EVENTS[index % 5],
        principal=f"user{index % 7}@example.cn",
        role="approver" if index % 5 in (1, 2) else "requester",
        seal_id="contract-seal" if index % 2 else "finance-seal",
        request_id=request,
        document_name=f"采购合同-{index // 5}.pdf",
        document_sha256=hashlib.sha256(request.encode()).hexdigest(),
        reason='采购合同签署 "Q1"\n第二行',
        outcome="ok" if index % 9 else "refused",
        details={"pages": index % 4 + 1, "batch": index % 3 == 0, "note": None},
    )


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    return conn


def build_ledger(path: Path, count: int = RECORD_COUNT) -> tuple[int, str]:
    """A ledger of ``count`` records; returns the head (as a checkpoint would keep it)."""
    conn = connect(path)
    Ledger.create_schema(conn)
    conn.commit()
    ledger = Ledger(HOST, SteppingClock())
    record = None
    for index in range(count):
        with conn:  # one transaction per record, as the daemon commits state + audit
            record = ledger.append(conn, sample_event(index))
    conn.close()
    assert record is not None
    return record.sequence, record.record_hash


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, tuple[int, str]]:
    path = tmp_path_factory.mktemp("ledger") / "state.sqlite3"
    head = build_ledger(path)
    return path, head


@pytest.fixture
def ledger_copy(pristine: tuple[Path, tuple[int, str]], tmp_path: Path) -> Path:
    """A copy of the pristine ledger file (a WAL database checkpointed on close)."""
    source, _ = pristine
    copy = tmp_path / "copy.sqlite3"
    shutil.copyfile(source, copy)
    return copy


@pytest.fixture
def head(pristine: tuple[Path, tuple[int, str]]) -> tuple[int, str]:
    return pristine[1]


@pytest.fixture(params=["sqlite-json", "python"])
def each_encoder(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a tamper test with the SQLite encoder (fast path) and the Python fallback."""
    monkeypatch.setattr(ledger_module, "_sql_encoder_agrees", request.param == "sqlite-json")
    return str(request.param)


def tamper(path: Path, *statements: tuple[str, tuple[object, ...]]) -> None:
    """Edit the file as an attacker would: drop the triggers, change rows, commit."""
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("DROP TRIGGER IF EXISTS audit_log_no_update")
        conn.execute("DROP TRIGGER IF EXISTS audit_log_no_delete")
        for sql, parameters in statements:
            conn.execute(sql, parameters)
    conn.close()


def rows(path: Path) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(f"SELECT {', '.join(RECORD_COLUMNS)} FROM audit_log ORDER BY sequence").fetchall()
    finally:
        conn.close()


def rechained(records: list[tuple[object, ...]]) -> Iterator[tuple[object, ...]]:
    """Recompute every previous_hash and record_hash, as a forger who knows the format."""
    previous = GENESIS_HASH
    for row in records:
        fields = list(row)
        fields[13] = previous
        fields[14] = hashlib.sha256(canonical_row_bytes(fields)).hexdigest()
        previous = str(fields[14])
        yield tuple(fields)


def replace_all_rows(path: Path, new_rows: list[tuple[object, ...]]) -> None:
    placeholders = ", ".join("?" * len(RECORD_COLUMNS))
    insert = f"INSERT INTO audit_log ({', '.join(RECORD_COLUMNS)}) VALUES ({placeholders})"
    tamper(path, ("DELETE FROM audit_log", ()), *((insert, row) for row in new_rows))


# --- the untampered ledger ---------------------------------------------------------------


def test_r10_untampered_ledger_verifies_offline_and_online(ledger_copy: Path, head: tuple[int, str]) -> None:
    result = verify_ledger_file(ledger_copy, expected_head=head)
    assert result.ok, result.problem
    assert (result.records_checked, result.head_sequence, result.head_hash) == (
        RECORD_COUNT,
        head[0],
        head[1],
    )
    conn = sqlite3.connect(ledger_copy)
    assert verify_ledger(conn, expected_head=head).ok
    conn.close()


def test_r10_records_hold_time_host_person_seal_document_reason_outcome(
    ledger_copy: Path,
) -> None:
    conn = sqlite3.connect(ledger_copy)
    records = list(Ledger(HOST, SteppingClock()).records(conn))
    conn.close()
    assert [r.sequence for r in records] == list(range(1, RECORD_COUNT + 1))
    first = records[0]
    assert first.audit_event == sample_event(0)
    assert first.time == "2026-03-02T09:00:01.000000Z"
    assert first.host == HOST
    assert first.previous_hash == GENESIS_HASH
    assert records[7].details == {"pages": 4, "batch": False, "note": None}


def test_r10_offline_verification_does_not_modify_the_copy(ledger_copy: Path) -> None:
    before = hashlib.sha256(ledger_copy.read_bytes()).hexdigest()
    assert verify_ledger_file(ledger_copy).ok
    assert hashlib.sha256(ledger_copy.read_bytes()).hexdigest() == before


def test_r10_schema_columns_match_the_verifier_row_order(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "s.sqlite3")
    conn.execute(SCHEMA)
    columns = tuple(row[1] for row in conn.execute("PRAGMA table_info(audit_log)"))
    conn.close()
    assert columns == RECORD_COLUMNS


# --- the tamper corpus -------------------------------------------------------------------


@pytest.mark.usefixtures("each_encoder")
@pytest.mark.parametrize("column", TEXT_COLUMNS)
def test_r10_modified_column_is_detected_and_named(ledger_copy: Path, column: str) -> None:
    tamper(ledger_copy, (f"UPDATE audit_log SET {column} = {column} || 'x' WHERE sequence = 23", ()))
    result = verify_ledger_file(ledger_copy)
    assert not result.ok
    assert result.first_bad_sequence == 23, result.problem
    assert "record 23" in result.problem
    assert (result.records_checked, result.head_sequence) == (22, 22)


@pytest.mark.usefixtures("each_encoder")
@pytest.mark.parametrize(
    "new_details",
    [
        '{"batch":true,"note":null,"pages":4}',  # a value changed
        '{"note":null,"pages":3,"batch":true}',  # same meaning, different text: still edited
        '{"batch":true,"note":null,"pages":3,"x":1}',  # a key added
        "{}",  # emptied
    ],
)
def test_r10_modified_details_json_is_detected(ledger_copy: Path, new_details: str) -> None:
    assert rows(ledger_copy)[6][12] == '{"batch":true,"note":null,"pages":3}'
    tamper(ledger_copy, ("UPDATE audit_log SET details_json = ? WHERE sequence = 7", (new_details,)))
    result = verify_ledger_file(ledger_copy)
    assert (result.ok, result.first_bad_sequence) == (False, 7)


@pytest.mark.usefixtures("each_encoder")
@pytest.mark.parametrize("value", [5, b"blob", 2.5, None])
def test_r10_column_with_a_non_text_value_is_detected(ledger_copy: Path, value: object) -> None:
    # Recreate the table without type affinity so the value is stored as it is.
    tamper(
        ledger_copy,
        ("CREATE TABLE loose AS SELECT * FROM audit_log", ()),
        ("DROP TABLE audit_log", ()),
        ("ALTER TABLE loose RENAME TO audit_log", ()),
        ("UPDATE audit_log SET reason = ? WHERE sequence = 30", (value,)),
    )
    result = verify_ledger_file(ledger_copy)
    assert (result.ok, result.first_bad_sequence) == (False, 30), result.problem


@pytest.mark.usefixtures("each_encoder")
@pytest.mark.parametrize(("column", "sequence"), [("previous_hash", 1), ("record_hash", 30), ("time", 30)])
def test_r10_null_in_a_column_is_detected_and_named(ledger_copy: Path, column: str, sequence: int) -> None:
    tamper(
        ledger_copy,
        ("CREATE TABLE loose AS SELECT * FROM audit_log", ()),
        ("DROP TABLE audit_log", ()),
        ("ALTER TABLE loose RENAME TO audit_log", ()),
        (f"UPDATE audit_log SET {column} = NULL WHERE sequence = ?", (sequence,)),
    )
    result = verify_ledger_file(ledger_copy)
    assert (result.ok, result.first_bad_sequence) == (False, sequence), result.problem


@pytest.mark.usefixtures("each_encoder")
def test_r10_deleted_middle_record_is_detected_and_named(ledger_copy: Path) -> None:
    tamper(ledger_copy, ("DELETE FROM audit_log WHERE sequence = 17", ()))
    result = verify_ledger_file(ledger_copy)
    assert (result.ok, result.first_bad_sequence) == (False, 17)
    assert "record 17 missing" in result.problem


@pytest.mark.usefixtures("each_encoder")
def test_r10_deleted_first_record_is_detected(ledger_copy: Path) -> None:
    tamper(ledger_copy, ("DELETE FROM audit_log WHERE sequence = 1", ()))
    result = verify_ledger_file(ledger_copy)
    assert (result.ok, result.first_bad_sequence, result.records_checked) == (False, 1, 0)


@pytest.mark.usefixtures("each_encoder")
def test_r10_deleted_last_record_is_detected_against_the_expected_head(
    ledger_copy: Path, head: tuple[int, str]
) -> None:
    tamper(ledger_copy, ("DELETE FROM audit_log WHERE sequence = ?", (RECORD_COUNT,)))
    # Without a checkpoint a shorter chain is still a valid chain: truncation needs the head.
    assert verify_ledger_file(ledger_copy).ok
    result = verify_ledger_file(ledger_copy, expected_head=head)
    assert (result.ok, result.first_bad_sequence) == (False, RECORD_COUNT)
    assert "truncated" in result.problem
    assert result.head_sequence == RECORD_COUNT - 1


@pytest.mark.usefixtures("each_encoder")
def test_r10_inserted_forged_record_with_made_up_hashes_is_detected(ledger_copy: Path) -> None:
    original = rows(ledger_copy)
    shifted = [(int(str(row[0])) + (1 if int(str(row[0])) >= 20 else 0), *row[1:]) for row in original]
    forged = list(original[19])
    forged[0] = 20
    forged[4] = "mallory@example.cn"
    forged[14] = "f" * 64
    replace_all_rows(ledger_copy, [*shifted[:19], tuple(forged), *shifted[19:]])
    result = verify_ledger_file(ledger_copy)
    assert (result.ok, result.first_bad_sequence) == (False, 20)


@pytest.mark.usefixtures("each_encoder")
def test_r10_inserted_well_formed_forged_record_breaks_the_next_link(ledger_copy: Path) -> None:
    # A forger who knows the format hashes the forged record correctly and links it to
    # record 19, but cannot make the following (renumbered) record link to it.
    original = rows(ledger_copy)
    forged = list(original[19])
    forged[0] = 20
    forged[4] = "mallory@example.cn"
    forged[13] = original[18][14]
    forged[14] = hashlib.sha256(canonical_row_bytes(forged)).hexdigest()
    renumbered = [(int(str(row[0])) + 1, *row[1:]) for row in original[19:]]
    replace_all_rows(ledger_copy, [*original[:19], tuple(forged), *renumbered])
    result = verify_ledger_file(ledger_copy)
    assert (result.ok, result.first_bad_sequence) == (False, 21)
    assert "does not link to record 20" in result.problem


@pytest.mark.usefixtures("each_encoder")
def test_r10_swapped_records_are_detected(ledger_copy: Path) -> None:
    original = rows(ledger_copy)
    swapped = list(original)
    swapped[9] = (10, *original[29][1:])
    swapped[29] = (30, *original[9][1:])
    replace_all_rows(ledger_copy, swapped)
    result = verify_ledger_file(ledger_copy)
    assert (result.ok, result.first_bad_sequence) == (False, 10)


@pytest.mark.usefixtures("each_encoder")
def test_r10_rechained_ledger_is_detected_only_with_the_expected_head(
    ledger_copy: Path, head: tuple[int, str]
) -> None:
    original = rows(ledger_copy)
    edited = list(original)
    edited[34] = (*original[34][:10], "a reason nobody gave", *original[34][11:])
    replace_all_rows(ledger_copy, list(rechained(edited)))
    # Every hash was recomputed: the chain alone is consistent. This is why the head
    # must be kept elsewhere (checkpoints).
    assert verify_ledger_file(ledger_copy).ok
    result = verify_ledger_file(ledger_copy, expected_head=head)
    assert (result.ok, result.first_bad_sequence) == (False, RECORD_COUNT)
    assert "checkpoint" in result.problem
    # An earlier checkpoint, before the edit, still matches: the rewrite began later.
    early = (30, str(original[29][14]))
    assert verify_ledger_file(ledger_copy, expected_head=early).ok


# --- appending ---------------------------------------------------------------------------


def test_r10_append_in_a_rolled_back_transaction_leaves_no_record(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    build_ledger(path, count=3)
    conn = connect(path)
    ledger = Ledger(HOST, SteppingClock())
    with pytest.raises(RuntimeError), conn:
        written = ledger.append(conn, sample_event(3))
        assert written.sequence == 4
        raise RuntimeError("the state change failed")
    assert conn.execute("SELECT count(*) FROM audit_log").fetchone() == (3,)
    # The next append links to the real head, not to the rolled-back record.
    with conn:
        record = ledger.append(conn, sample_event(4))
    assert record.sequence == 4
    assert record.previous_hash == rows(path)[2][14]
    assert verify_ledger(conn).ok
    conn.close()


def test_r10_append_and_state_change_commit_together(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    conn = connect(path)
    Ledger.create_schema(conn)
    conn.execute("CREATE TABLE request (id TEXT PRIMARY KEY, state TEXT NOT NULL)")
    conn.commit()
    ledger = Ledger(HOST, SteppingClock())
    with conn:
        conn.execute("INSERT INTO request VALUES ('req-1', 'PENDING')")
        ledger.append(conn, AuditEvent(event="request.submitted", request_id="req-1"))
    other = sqlite3.connect(path)
    assert other.execute("SELECT count(*) FROM audit_log").fetchone() == (1,)
    assert other.execute("SELECT state FROM request").fetchone() == ("PENDING",)
    other.close()
    conn.close()


def test_r10_sequence_key_refuses_a_second_record_at_one_sequence(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    build_ledger(path, count=2)
    first, second = connect(path), connect(path)
    ledger = Ledger(HOST, SteppingClock())
    ledger.append(first, sample_event(2))
    first.commit()
    # `second` read no head yet; force it to act on a stale head by writing directly.
    stale = rows(path)[1]
    second.execute("BEGIN")
    with pytest.raises(sqlite3.IntegrityError):
        second.execute(
            f"INSERT INTO audit_log ({', '.join(RECORD_COLUMNS)}) VALUES "
            f"({', '.join('?' * len(RECORD_COLUMNS))})",
            (3, *stale[1:]),
        )
    second.rollback()
    first.close()
    second.close()
    assert verify_ledger_file(path).ok


def test_r10_append_only_triggers_refuse_casual_edits(ledger_copy: Path) -> None:
    conn = sqlite3.connect(ledger_copy)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("UPDATE audit_log SET outcome = 'ok' WHERE sequence = 9")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("DELETE FROM audit_log WHERE sequence = 50")
    conn.close()


def test_r10_records_filters(ledger_copy: Path) -> None:
    conn = sqlite3.connect(ledger_copy)
    ledger = Ledger(HOST, SteppingClock())
    by_request = list(ledger.records(conn, request_id="req-0003"))
    assert [r.sequence for r in by_request] == [16, 17, 18, 19, 20]
    signed = list(ledger.records(conn, event="seal.signed", seal_id="contract-seal"))
    assert signed and all(r.event == "seal.signed" and r.seal_id == "contract-seal" for r in signed)
    window = list(
        ledger.records(conn, from_time=START + timedelta(seconds=10), to_time=START + timedelta(seconds=13))
    )
    assert [r.sequence for r in window] == [10, 11, 12]
    page = list(ledger.records(conn, after_sequence=45, limit=3))
    assert [r.sequence for r in page] == [46, 47, 48]
    conn.close()


def test_r10_concurrent_append_conflict_is_translated(tmp_path: Path) -> None:
    # Two connections both read head 2 inside their own deferred transactions; the
    # second writer's insert collides and must surface as LedgerConflictError.
    path = tmp_path / "state.sqlite3"
    build_ledger(path, count=2)
    first = connect(path)
    second = sqlite3.connect(path, timeout=0.1, isolation_level=None)
    ledger = Ledger(HOST, SteppingClock())
    second.execute("BEGIN")
    second.execute("SELECT 1 FROM audit_log").fetchall()  # second's snapshot: head is 2
    with first:
        ledger.append(first, sample_event(2))
    with pytest.raises(LedgerConflictError, match="retry") as caught:
        ledger.append(second, sample_event(3))
    assert caught.value.reason == "audit_conflict"
    second.execute("ROLLBACK")
    first.close()
    second.close()


# --- offline mode errors -----------------------------------------------------------------


def test_r10_offline_missing_file_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(LedgerFileError, match="does not exist"):
        verify_ledger_file(tmp_path / "nope.sqlite3")


def test_r10_offline_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    junk = tmp_path / "junk.sqlite3"
    junk.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(LedgerFileError, match="not a readable seal ledger"):
        verify_ledger_file(junk)


def test_r10_offline_database_without_a_ledger_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "other.sqlite3"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    with pytest.raises(LedgerFileError, match="no such table"):
        verify_ledger_file(other)


# --- parallel verification (large ledgers), forced on a small one -------------------------


def verify_parallel(path: Path, expected_head: tuple[int, str] | None = None) -> ChainVerification:
    conn = sqlite3.connect(path)
    try:
        return verify_ledger(conn, expected_head, workers=3, parallel_from_records=0)
    finally:
        conn.close()


def test_r10_parallel_verification_agrees_on_an_intact_ledger(
    ledger_copy: Path, head: tuple[int, str]
) -> None:
    result = verify_parallel(ledger_copy, head)
    assert result == verify_ledger_file(ledger_copy, head)
    assert result.ok and result.records_checked == RECORD_COUNT


@pytest.mark.parametrize("sequence", [1, 17, 18, 35, 50])
def test_r10_parallel_verification_names_deleted_record_at_segment_edges(
    ledger_copy: Path, head: tuple[int, str], sequence: int
) -> None:
    # 50 records in 3 workers: segments 1-17, 18-34, 35-50 (49 records after deleting 50).
    tamper(ledger_copy, ("DELETE FROM audit_log WHERE sequence = ?", (sequence,)))
    result = verify_parallel(ledger_copy, head)
    assert (result.ok, result.first_bad_sequence) == (False, sequence), result.problem


@pytest.mark.parametrize("sequence", [17, 40])
def test_r10_parallel_verification_names_modified_record(ledger_copy: Path, sequence: int) -> None:
    tamper(ledger_copy, ("UPDATE audit_log SET principal = 'mallory' WHERE sequence = ?", (sequence,)))
    result = verify_parallel(ledger_copy)
    assert (result.ok, result.first_bad_sequence) == (False, sequence), result.problem
    assert result.records_checked == sequence - 1


def test_r10_parallel_verification_detects_a_deleted_whole_segment(ledger_copy: Path) -> None:
    # Ranges follow the remaining head (50): 1-17, 18-34 (now empty), 35-50.
    tamper(ledger_copy, ("DELETE FROM audit_log WHERE sequence BETWEEN 18 AND 34", ()))
    result = verify_parallel(ledger_copy)
    assert not result.ok
    assert result.first_bad_sequence == 18, result.problem
    assert "records 18 to 34 missing" in result.problem
    assert result.head_sequence == 17


def test_r10_parallel_verification_detects_rechaining_against_the_head(
    ledger_copy: Path, head: tuple[int, str]
) -> None:
    original = rows(ledger_copy)
    edited = list(original)
    edited[20] = (*original[20][:4], "mallory", *original[20][5:])
    replace_all_rows(ledger_copy, list(rechained(edited)))
    assert verify_parallel(ledger_copy).ok
    result = verify_parallel(ledger_copy, head)
    assert (result.ok, result.first_bad_sequence) == (False, RECORD_COUNT)


# --- the fast path: canonical bytes built by SQLite's json_object -------------------------


def test_r10_sqlite_json_encoder_is_used_here_and_agrees_row_for_row(ledger_copy: Path) -> None:
    conn = sqlite3.connect(ledger_copy)
    try:
        # On this SQLite the fast path must be the one taken (the benchmark measures it).
        assert ledger_module.sql_encoder_agrees(conn)
        fast = list(ledger_module._stream_encoded(conn, use_sql=True))
        reference = [encode_row(row) for row in rows(ledger_copy)]
    finally:
        conn.close()
    assert len(fast) == RECORD_COUNT
    assert fast == reference


def test_r10_sqlite_json_quotes_every_code_point_like_the_canonical_encoder() -> None:
    # Every code point except lone surrogates, in chunks: escaping is per character.
    conn = sqlite3.connect(":memory:")
    points = [c for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    for start in range(0, len(points), 8192):
        text = "".join(map(chr, points[start : start + 8192]))
        (quoted,) = conn.execute("SELECT json_quote(?)", (text,)).fetchone()
        assert quoted == encode_basestring(text), f"first differing chunk starts at {points[start]:#x}"
    conn.close()


@settings(max_examples=150, deadline=None)
@given(
    event=st.builds(
        AuditEvent,
        event=st.text(min_size=1, max_size=12),
        principal=st.text(max_size=12),
        reason=st.text(max_size=30),
        document_name=st.text(max_size=20),
        details=st.dictionaries(
            st.text(max_size=8), st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=8))
        ),
    ),
    host=st.text(min_size=1, max_size=12),
)
def test_r10_sqlite_json_encoder_matches_python_on_arbitrary_records(event: AuditEvent, host: str) -> None:
    conn = sqlite3.connect(":memory:")
    Ledger.create_schema(conn)
    with conn:
        Ledger(host, SteppingClock()).append(conn, event)
        Ledger(host, SteppingClock()).append(conn, event)
    stored = conn.execute(f"SELECT {', '.join(RECORD_COLUMNS)} FROM audit_log ORDER BY sequence").fetchall()
    assert list(ledger_module._stream_encoded(conn, use_sql=True)) == [encode_row(r) for r in stored]
    conn.close()


def test_r10_text_that_is_not_utf8_is_detected_and_named(ledger_copy: Path) -> None:
    tamper(ledger_copy, ("UPDATE audit_log SET reason = CAST(X'ff41' AS TEXT) WHERE sequence = 12", ()))
    result = verify_ledger_file(ledger_copy)
    assert (result.ok, result.first_bad_sequence) == (False, 12), result.problem
