"""The tamper-evident usage ledger: records, canonical encoding, hash chain (SEAL-RULES R10).

Every record is hashed over a canonical encoding of ALL its fields plus the hash of
the record before it, so editing, deleting, inserting or reordering a record breaks
the chain at that point. Truncation of the tail, and a rewrite that recomputes every
hash after an edit, can only be detected against a head (sequence, hash) kept
elsewhere: that is what checkpoints are for (``expected_head``).

Canonical encoding (version ``seald.audit/1``): a JSON object, keys sorted, no
insignificant white space, ``ensure_ascii=False``, UTF-8. Every text value is a
JSON string, so a newline, quote or delimiter inside a value is escaped and can
never forge another field. ``details`` is embedded as a JSON *string* holding the
canonical JSON text of the details map, exactly the text the store keeps in
``details_json``; the verifier therefore hashes the stored text as it is and
never has to trust or re-parse it.

Pure: no I/O, no sqlite3/grpc imports. The store streams rows (tuples in
``RECORD_COLUMNS`` order) into ``verify_rows``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from json.encoder import encode_basestring
from typing import Final, cast

from seald.domain.errors import InvalidInput

FORMAT_VERSION: Final = "seald.audit/1"
GENESIS_HASH: Final = "0" * 64

DetailValue = str | int | bool | None

# Column order of a stored record; verify_rows() takes rows in exactly this order.
RECORD_COLUMNS: Final = (
    "sequence",
    "time",
    "host",
    "event",
    "principal",
    "role",
    "seal_id",
    "request_id",
    "document_name",
    "document_sha256",
    "reason",
    "outcome",
    "details_json",
    "previous_hash",
    "record_hash",
)

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_TEXT_FIELDS: Final = (
    "event",
    "principal",
    "role",
    "seal_id",
    "request_id",
    "document_name",
    "document_sha256",
    "reason",
    "outcome",
)


class InvalidAuditEvent(InvalidInput):
    """An audit event that cannot be recorded as given (a bug in the caller)."""

    default_reason = "invalid_audit_event"


def _check_encodable(name: str, value: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as ex:
        raise InvalidAuditEvent(
            f"audit field {name!r} is not valid Unicode text (lone surrogate at "
            f"position {ex.start}); pass decoded text"
        ) from ex


def _frozen_details(details: Mapping[str, DetailValue]) -> Mapping[str, DetailValue]:
    checked: dict[str, DetailValue] = {}
    for key, value in details.items():
        if not isinstance(key, str):
            raise InvalidAuditEvent(f"audit details key {key!r} is a {type(key).__name__}; keys must be text")
        _check_encodable(f"details key {key!r}", key)
        # float is refused: its text form is not the same in every language.
        if value is not None and not isinstance(value, str | int | bool):
            raise InvalidAuditEvent(
                f"audit details value for {key!r} is a {type(value).__name__}; "
                "use text, an integer, a boolean or None"
            )
        if isinstance(value, str):
            _check_encodable(f"details[{key!r}]", value)
        checked[key] = value
    return checked


@dataclass(frozen=True)
class AuditEvent:
    """What happened, as told by the caller; the ledger adds sequence, time, host and hashes."""

    event: str
    principal: str = ""
    role: str = ""
    seal_id: str = ""
    request_id: str = ""
    document_name: str = ""
    document_sha256: str = ""
    reason: str = ""
    outcome: str = ""
    details: Mapping[str, DetailValue] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in _TEXT_FIELDS:
            value = getattr(self, name)
            if not isinstance(value, str):
                raise InvalidAuditEvent(f"audit field {name!r} is a {type(value).__name__}; it must be text")
            _check_encodable(name, value)
        if not self.event:
            raise InvalidAuditEvent("audit event name is empty; name what happened, e.g. 'seal.signed'")
        if self.document_sha256 and not _SHA256_HEX.fullmatch(self.document_sha256):
            raise InvalidAuditEvent(
                "audit document_sha256 must be 64 lowercase hex digits (or empty when "
                "no document is involved)"
            )
        # A private copy: a caller mutating its dict later cannot change what is hashed.
        # (A plain dict, not a MappingProxyType, so dataclasses.asdict() keeps working.)
        object.__setattr__(self, "details", _frozen_details(self.details))


@dataclass(frozen=True)
class AuditRecord:
    """One stored, chained record."""

    sequence: int
    time: str
    host: str
    event: str
    principal: str
    role: str
    seal_id: str
    request_id: str
    document_name: str
    document_sha256: str
    reason: str
    outcome: str
    details: Mapping[str, DetailValue]
    previous_hash: str
    record_hash: str

    @property
    def audit_event(self) -> AuditEvent:
        return AuditEvent(
            event=self.event,
            principal=self.principal,
            role=self.role,
            seal_id=self.seal_id,
            request_id=self.request_id,
            document_name=self.document_name,
            document_sha256=self.document_sha256,
            reason=self.reason,
            outcome=self.outcome,
            details=self.details,
        )

    def as_row(
        self,
    ) -> tuple[int, str, str, str, str, str, str, str, str, str, str, str, str, str, str]:
        """The record as a row in RECORD_COLUMNS order (what the store writes)."""
        return (
            self.sequence,
            self.time,
            self.host,
            self.event,
            self.principal,
            self.role,
            self.seal_id,
            self.request_id,
            self.document_name,
            self.document_sha256,
            self.reason,
            self.outcome,
            canonical_details_json(self.details),
            self.previous_hash,
            self.record_hash,
        )


@dataclass(frozen=True)
class ChainVerification:
    """Outcome of a chain check. head_* is the last record that verified."""

    ok: bool
    records_checked: int
    first_bad_sequence: int | None
    problem: str
    head_hash: str
    head_sequence: int


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with microseconds, fixed width, so text order is time order."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidAuditEvent(
            "audit time has no time zone; pass an aware datetime (e.g. datetime.now(UTC))"
        )
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> datetime:
    """The aware datetime a stored record time names (inverse of format_time, exact to the
    microsecond, so format_time(parse_time(t)) == t and a reader can recompute the hash)."""
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def canonical_details_json(details: Mapping[str, DetailValue]) -> str:
    """Canonical JSON text of a details map; stored verbatim as details_json."""
    return json.dumps(dict(details), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical_record_bytes(
    sequence: int, time: str, host: str, event: AuditEvent, previous_hash: str
) -> bytes:
    """The exact bytes a record's hash is computed over (reference encoder)."""
    document = {
        "version": FORMAT_VERSION,
        "sequence": sequence,
        "time": time,
        "host": host,
        "event": event.event,
        "principal": event.principal,
        "role": event.role,
        "seal_id": event.seal_id,
        "request_id": event.request_id,
        "document_name": event.document_name,
        "document_sha256": event.document_sha256,
        "reason": event.reason,
        "outcome": event.outcome,
        "details": canonical_details_json(event.details),
        "previous_hash": previous_hash,
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def record_hash(sequence: int, time: str, host: str, event: AuditEvent, previous_hash: str) -> str:
    """Hex SHA-256 of the canonical bytes."""
    return hashlib.sha256(canonical_record_bytes(sequence, time, host, event, previous_hash)).hexdigest()


def chain_next(previous: AuditRecord | None, event: AuditEvent, time: datetime, host: str) -> AuditRecord:
    """The record that follows ``previous`` (None: the first record of the ledger)."""
    if previous is None:
        return chain_after(0, GENESIS_HASH, event, time, host)
    return chain_after(previous.sequence, previous.record_hash, event, time, host)


def chain_after(
    head_sequence: int, head_hash: str, event: AuditEvent, time: datetime, host: str
) -> AuditRecord:
    """The record that follows the head (sequence, hash); (0, GENESIS_HASH) when empty."""
    if not host:
        raise InvalidAuditEvent("audit host is empty; configure the seal host's name")
    _check_encodable("host", host)
    sequence = head_sequence + 1
    stamp = format_time(time)
    return AuditRecord(
        sequence=sequence,
        time=stamp,
        host=host,
        event=event.event,
        principal=event.principal,
        role=event.role,
        seal_id=event.seal_id,
        request_id=event.request_id,
        document_name=event.document_name,
        document_sha256=event.document_sha256,
        reason=event.reason,
        outcome=event.outcome,
        details=event.details,
        previous_hash=head_hash,
        record_hash=record_hash(sequence, stamp, host, event, head_hash),
    )


# --- fast verification over stored rows -------------------------------------------------
#
# The hot loop builds the same bytes as canonical_record_bytes() straight from a row,
# with the C string encoder json itself uses, instead of building a dict per record.
# A unit test asserts both encoders agree byte for byte.

# The C encoder json.dumps(ensure_ascii=False) uses; it raises TypeError on a non-str,
# which is how an edited column holding a number or blob is caught.
_encode_string = cast(Callable[[object], str], encode_basestring)
_ROW_TEMPLATE: Final = (
    '{"details":%s,"document_name":%s,"document_sha256":%s,"event":%s,"host":%s,'
    '"outcome":%s,"previous_hash":%s,"principal":%s,"reason":%s,"request_id":%s,'
    '"role":%s,"seal_id":%s,"sequence":%d,"time":%s,"version":' + _encode_string(FORMAT_VERSION) + "}"
)


def canonical_row_bytes(row: Sequence[object]) -> bytes:
    """Canonical bytes of a stored row (RECORD_COLUMNS order). TypeError on a non-text value."""
    (
        sequence,
        time,
        host,
        event,
        principal,
        role,
        seal_id,
        request_id,
        document_name,
        document_sha256,
        reason,
        outcome,
        details_json,
        previous_hash,
        _,
    ) = row
    if type(sequence) is not int:
        raise TypeError("sequence is not an integer")
    enc = _encode_string
    return (
        _ROW_TEMPLATE
        % (
            enc(details_json),
            enc(document_name),
            enc(document_sha256),
            enc(event),
            enc(host),
            enc(outcome),
            enc(previous_hash),
            enc(principal),
            enc(reason),
            enc(request_id),
            enc(role),
            enc(seal_id),
            sequence,
            enc(time),
        )
    ).encode("utf-8")


def _missing_records_problem(expected: int, found: int) -> str:
    if found > expected:
        missing = f"record {expected}" if found == expected + 1 else (f"records {expected} to {found - 1}")
        return (
            f"{missing} missing: record {found} follows record {expected - 1} "
            "(deleted, or sequence numbers edited)"
        )
    return (
        f"record {found} appears where record {expected} should be: the ledger's "
        "records were reordered or sequence numbers edited"
    )


@dataclass(frozen=True)
class SegmentVerification:
    """A contiguous run of records checked on its own (for parallel verification).

    ``linked_from`` is the previous_hash of the segment's first record, accepted
    provisionally; whoever joins the segments checks it against the segment before.
    """

    first_sequence: int
    result: ChainVerification
    linked_from: str | None


def _link_problem(sequence: int) -> str:
    return (
        f"record {sequence} does not link to record {sequence - 1}: its previous_hash "
        f"is not record {sequence - 1}'s hash (a record was inserted, deleted or "
        "reordered before it, or its previous_hash was edited)"
    )


# An encoded row, what the hot loop consumes: (sequence, canonical bytes, previous_hash,
# record_hash), the two hashes as ASCII bytes. The canonical bytes are None when a stored
# field is not text (edited outside the appliance). The store may build these bytes in
# SQL (see CANONICAL_FIELDS) or with encode_row(); the loop does not care which.
EncodedRow = tuple[object, bytes | None, bytes, bytes]

# Canonical key -> stored column, in canonical (sorted) key order; "version" comes last
# and is the constant FORMAT_VERSION. An encoder outside this module (SQLite's
# json_object in the store) builds the same object from this table.
CANONICAL_FIELDS: Final = (
    ("details", "details_json"),
    ("document_name", "document_name"),
    ("document_sha256", "document_sha256"),
    ("event", "event"),
    ("host", "host"),
    ("outcome", "outcome"),
    ("previous_hash", "previous_hash"),
    ("principal", "principal"),
    ("reason", "reason"),
    ("request_id", "request_id"),
    ("role", "role"),
    ("seal_id", "seal_id"),
    ("sequence", "sequence"),
    ("time", "time"),
)


def _ascii(value: object) -> bytes:
    if isinstance(value, bytes):
        return value
    return str(value).encode("utf-8", "backslashreplace")


def encode_row(row: Sequence[object]) -> EncodedRow:
    """A stored row (RECORD_COLUMNS order) as the hot loop consumes it."""
    try:
        canonical: bytes | None = canonical_row_bytes(row)
    except (TypeError, ValueError):
        canonical = None
    return (row[0], canonical, _ascii(row[13]), _ascii(row[14]))


def _verify_run(
    rows: Iterable[EncodedRow],
    first_sequence: int,
    start_hash: str | None,
    expected_head: tuple[int, str] | None,
) -> SegmentVerification:
    """The hot loop. start_hash None: accept the first record's previous_hash as given.

    Kept tight on purpose (it runs a million times per verification): no per-record
    objects, hashes compared as bytes, the record count derived from sequences.
    """
    expected_sequence = first_sequence
    head_sequence = first_sequence - 1
    head_hash = b"" if start_hash is None else start_hash.encode("ascii")
    linked_from: str | None = None
    checkpoint_sequence, checkpoint_hash = (
        (expected_head[0], expected_head[1].encode("ascii", "replace")) if expected_head else (-1, b"")
    )
    sha256 = hashlib.sha256

    def failed(bad: int, problem: str) -> SegmentVerification:
        checked = head_sequence - first_sequence + 1
        head = head_hash.decode("ascii", "replace")
        result = ChainVerification(False, checked, bad, problem, head, head_sequence)
        return SegmentVerification(first_sequence, result, linked_from)

    iterator = iter(rows)
    first = next(iterator, None)
    if first is not None:
        linked_from = _ascii(first[2]).decode("ascii", "replace")  # NULL put in by hand: "None"
        if start_hash is None:
            head_hash = first[2]
        iterator = itertools.chain((first,), iterator)
    sequence: object = first_sequence
    try:
        for sequence, canonical, previous, recorded in iterator:
            if sequence != expected_sequence:
                if type(sequence) is not int:
                    return failed(
                        expected_sequence, f"record after {head_sequence} has a non-integer sequence"
                    )
                return failed(
                    min(sequence, expected_sequence), _missing_records_problem(expected_sequence, sequence)
                )
            if previous != head_hash:
                return failed(expected_sequence, _link_problem(expected_sequence))
            # sha256(None) raises TypeError: a field that is not text (handled below).
            computed = sha256(canonical).hexdigest().encode()  # type: ignore[arg-type]
            if computed != recorded:
                return failed(
                    expected_sequence,
                    f"record {expected_sequence} was modified: its content does not match its record_hash",
                )
            if expected_sequence == checkpoint_sequence and computed != checkpoint_hash:
                return failed(
                    expected_sequence,
                    f"record {expected_sequence} differs from the checkpoint: the ledger was rewritten "
                    f"at or before record {expected_sequence} and its hashes recomputed",
                )
            head_sequence = expected_sequence
            head_hash = computed
            expected_sequence += 1
    except TypeError:
        return failed(
            expected_sequence,
            f"record {expected_sequence} has a field that is not text (it was edited outside the appliance)",
        )
    checked = head_sequence - first_sequence + 1
    result = ChainVerification(True, checked, None, "", head_hash.decode("ascii"), head_sequence)
    return SegmentVerification(first_sequence, result, linked_from)


def _truncation_check(result: ChainVerification, expected_head: tuple[int, str] | None) -> ChainVerification:
    if result.ok and expected_head is not None and expected_head[0] > result.head_sequence:
        return dataclasses.replace(
            result,
            ok=False,
            first_bad_sequence=result.head_sequence + 1,
            problem=(
                f"ledger ends at record {result.head_sequence} but the checkpoint names record "
                f"{expected_head[0]}: records after {result.head_sequence} were removed (truncated)"
            ),
        )
    return result


def verify_rows(
    rows: Iterable[Sequence[object]], expected_head: tuple[int, str] | None = None
) -> ChainVerification:
    """Verify stored rows (RECORD_COLUMNS order) in ascending sequence; stop at the first problem.

    ``expected_head`` (sequence, record_hash), e.g. from a checkpoint: the record with
    that sequence must exist and carry that hash. Records after it are fine (the ledger
    grew since); fewer records means truncation; a different hash means rewriting.
    """
    return verify_encoded_rows(map(encode_row, rows), expected_head)


def verify_encoded_rows(
    rows: Iterable[EncodedRow], expected_head: tuple[int, str] | None = None
) -> ChainVerification:
    """verify_rows() over rows already encoded (EncodedRow): the fast path of the store."""
    run = _verify_run(rows, 1, GENESIS_HASH, expected_head)
    return _truncation_check(run.result, expected_head)


def verify_segment(
    rows: Iterable[Sequence[object]], first_sequence: int, expected_head: tuple[int, str] | None = None
) -> SegmentVerification:
    """Verify the run of records starting at ``first_sequence``; join with join_segments()."""
    return verify_encoded_segment(map(encode_row, rows), first_sequence, expected_head)


def verify_encoded_segment(
    rows: Iterable[EncodedRow], first_sequence: int, expected_head: tuple[int, str] | None = None
) -> SegmentVerification:
    """verify_segment() over rows already encoded (EncodedRow)."""
    start_hash = GENESIS_HASH if first_sequence == 1 else None
    return _verify_run(rows, first_sequence, start_hash, expected_head)


def join_segments(
    segments: Sequence[SegmentVerification], expected_head: tuple[int, str] | None = None
) -> ChainVerification:
    """Combine consecutive segments (first one starting at 1) into one chain verdict."""
    checked = 0
    head_sequence, head_hash = 0, GENESIS_HASH
    for segment in segments:
        result = segment.result
        starts_cleanly = result.records_checked > 0 or result.ok
        if starts_cleanly and segment.linked_from is not None and segment.first_sequence != head_sequence + 1:
            # The segment before ended early: the records in between are gone.
            bad = head_sequence + 1
            problem = _missing_records_problem(bad, segment.first_sequence)
            return ChainVerification(False, checked, bad, problem, head_hash, head_sequence)
        if starts_cleanly and segment.linked_from is not None and segment.linked_from != head_hash:
            bad = segment.first_sequence
            return ChainVerification(False, checked, bad, _link_problem(bad), head_hash, head_sequence)
        if not result.ok:
            if result.records_checked:
                head_sequence, head_hash = result.head_sequence, result.head_hash
            return dataclasses.replace(
                result,
                records_checked=checked + result.records_checked,
                head_sequence=head_sequence,
                head_hash=head_hash,
            )
        checked += result.records_checked
        if result.records_checked:
            head_sequence, head_hash = result.head_sequence, result.head_hash
        # An empty segment followed by a non-empty one fails the next link check.
    joined = ChainVerification(True, checked, None, "", head_hash, head_sequence)
    return _truncation_check(joined, expected_head)


def verify_records(
    records: Iterable[AuditRecord], expected_head: tuple[int, str] | None = None
) -> ChainVerification:
    """verify_rows() over records (records must come in ascending sequence order)."""
    return verify_rows((record.as_row() for record in records), expected_head)
