"""Canonical encoding and hash chain of the usage ledger (SEAL-RULES R10), pure domain."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seald.domain.audit import (
    FORMAT_VERSION,
    GENESIS_HASH,
    AuditEvent,
    AuditRecord,
    InvalidAuditEvent,
    canonical_record_bytes,
    canonical_row_bytes,
    chain_next,
    format_time,
    record_hash,
    verify_records,
)

TEXT_FIELDS = (
    "event",
    "principal",
    "role",
    "seal_id",
    "request_id",
    "document_name",
    "reason",
    "outcome",
)
T0 = datetime(2026, 3, 2, 9, 15, 0, 123456, tzinfo=UTC)
HOST = "seal-host-01"
DOC_HASH = hashlib.sha256(b"contract").hexdigest()

# Text that tries to break out of a JSON string or a line-based format.
INJECTIONS = (
    '","principal":"mallory',
    'x"}\n{"event":"seal.signed',
    "a\\",
    '\\"',
    "line1\nline2\r\n",
    "\x00\x01\x1f\x7f",
    "tab\tand\bbackspace\f",
    "印章\u2028\u2029",
    "😀 emoji",
    ",:{}[]",
)

texts = st.text(max_size=20)  # Hypothesis text: every code point except lone surrogates
detail_values = st.one_of(st.none(), st.booleans(), st.integers(), texts)
events = st.builds(
    AuditEvent,
    event=st.text(min_size=1, max_size=20),
    principal=texts,
    role=texts,
    seal_id=texts,
    request_id=texts,
    document_name=texts,
    document_sha256=st.one_of(
        st.just(""), st.binary().map(lambda b: hashlib.sha256(b).hexdigest())
    ),
    reason=texts,
    outcome=texts,
    details=st.dictionaries(texts, detail_values, max_size=4),
)


def event_fields(event: AuditEvent) -> dict[str, object]:
    fields = dataclasses.asdict(event)
    fields["details"] = dict(event.details)
    return fields


def decoded(
    sequence: int, time: str, host: str, event: AuditEvent, previous: str
) -> dict[str, object]:
    document = json.loads(canonical_record_bytes(sequence, time, host, event, previous))
    assert isinstance(document, dict)
    document["details"] = json.loads(document["details"])
    return document


def expected_document(
    sequence: int, time: str, host: str, event: AuditEvent, previous: str
) -> dict[str, object]:
    return {
        "version": FORMAT_VERSION,
        "sequence": sequence,
        "time": time,
        "host": host,
        "previous_hash": previous,
        **event_fields(event),
    }


@pytest.mark.parametrize("field", TEXT_FIELDS)
@pytest.mark.parametrize("payload", INJECTIONS)
def test_r10_injected_text_decodes_to_exactly_the_fields_given(field: str, payload: str) -> None:
    # Decoding the canonical bytes gives back exactly the fields: the encoding is
    # injective, so no value can forge or shift another field.
    fields: dict[str, object] = {"event": "seal.signed", field: payload}
    event = AuditEvent(**fields)  # type: ignore[arg-type]
    time = format_time(T0)
    assert decoded(7, time, HOST, event, GENESIS_HASH) == expected_document(
        7, time, HOST, event, GENESIS_HASH
    )


@pytest.mark.parametrize("payload", INJECTIONS)
def test_r10_injected_text_in_details_and_host_decodes_exactly(payload: str) -> None:
    event = AuditEvent(event="seal.signed", details={payload: payload, "n": 3})
    time = format_time(T0)
    assert decoded(1, time, payload, event, GENESIS_HASH) == expected_document(
        1, time, payload, event, GENESIS_HASH
    )


def test_r10_moving_text_between_adjacent_fields_changes_the_bytes() -> None:
    # The classic forgery against naive concatenation: "ab"+"c" vs "a"+"bc".
    first = AuditEvent(event="seal.signed", principal="alice", role="|approver")
    second = AuditEvent(event="seal.signed", principal="alice|", role="approver")
    third = AuditEvent(event="seal.signed", principal='alice","role":"approver', role="")
    time = format_time(T0)
    encodings = {
        canonical_record_bytes(1, time, HOST, e, GENESIS_HASH) for e in (first, second, third)
    }
    assert len(encodings) == 3


def test_r10_canonical_bytes_are_compact_sorted_utf8_json() -> None:
    event = AuditEvent(event="seal.signed", principal="张三", details={"b": 1, "a": True})
    data = canonical_record_bytes(3, format_time(T0), HOST, event, GENESIS_HASH)
    text = data.decode("utf-8")
    assert "张三" in text  # not \\u escaped
    assert " " not in text and "\n" not in text
    assert text.startswith('{"details":"{\\"a\\":true,\\"b\\":1}","document_name":""')
    assert text.endswith(f'"version":"{FORMAT_VERSION}"}}')


@settings(max_examples=300, deadline=None)
@given(first=events, second=events, sequence=st.integers(min_value=1, max_value=2**40))
def test_r10_distinct_events_have_distinct_canonical_bytes(
    first: AuditEvent, second: AuditEvent, sequence: int
) -> None:
    time = format_time(T0)
    same_bytes = canonical_record_bytes(
        sequence, time, HOST, first, GENESIS_HASH
    ) == canonical_record_bytes(sequence, time, HOST, second, GENESIS_HASH)
    assert same_bytes == (event_fields(first) == event_fields(second))


@settings(max_examples=300, deadline=None)
@given(
    event=events,
    host=st.text(min_size=1, max_size=20),
    sequence=st.integers(min_value=1, max_value=2**40),
)
def test_r10_fast_row_encoder_matches_reference_encoder(
    event: AuditEvent, host: str, sequence: int
) -> None:
    # The verifier's hot loop encodes stored rows itself; it must agree byte for byte.
    record = chain_next(None, event, T0, host)
    record = dataclasses.replace(record, sequence=sequence)
    reference = canonical_record_bytes(sequence, record.time, host, event, GENESIS_HASH)
    assert canonical_row_bytes(record.as_row()) == reference


def test_r10_details_are_copied_so_later_mutation_changes_nothing() -> None:
    details: dict[str, str | int | bool | None] = {"pages": 3}
    event = AuditEvent(event="seal.signed", details=details)
    before = record_hash(1, format_time(T0), HOST, event, GENESIS_HASH)
    details["pages"] = 4
    assert event.details == {"pages": 3}
    assert record_hash(1, format_time(T0), HOST, event, GENESIS_HASH) == before


@pytest.mark.parametrize(
    ("kwargs", "complaint"),
    [
        ({"event": ""}, "event name is empty"),
        ({"event": "x", "details": {"ratio": 0.5}}, "float"),
        ({"event": "x", "details": {1: "a"}}, "keys must be text"),
        ({"event": "x", "principal": 5}, "must be text"),
        ({"event": "x", "reason": "bad\ud800"}, "lone surrogate"),
        ({"event": "x", "document_sha256": "ABC"}, "64 lowercase hex"),
        ({"event": "x", "document_sha256": DOC_HASH.upper()}, "64 lowercase hex"),
    ],
)
def test_r10_events_that_cannot_be_recorded_faithfully_are_refused(
    kwargs: dict[str, object], complaint: str
) -> None:
    with pytest.raises(InvalidAuditEvent, match=complaint) as caught:
        AuditEvent(**kwargs)  # type: ignore[arg-type]
    assert caught.value.reason == "invalid_audit_event"


def test_r10_time_is_rfc3339_utc_with_microseconds() -> None:
    beijing = timezone(timedelta(hours=8))
    assert format_time(datetime(2026, 3, 2, 17, 0, 0, 5, tzinfo=beijing)) == (
        "2026-03-02T09:00:00.000005Z"
    )
    with pytest.raises(InvalidAuditEvent, match="no time zone"):
        format_time(datetime(2026, 3, 2, 17, 0))


def test_r10_empty_host_is_refused() -> None:
    with pytest.raises(InvalidAuditEvent, match="host is empty"):
        chain_next(None, AuditEvent(event="x"), T0, "")


def build_chain(count: int) -> list[AuditRecord]:
    chain: list[AuditRecord] = []
    previous: AuditRecord | None = None
    for index in range(count):
        event = AuditEvent(
            event="seal.signed",
            principal=f"user{index}",
            seal_id="contract",
            document_name=f"合同{index}.pdf",
            document_sha256=DOC_HASH,
            reason="采购",
            outcome="ok",
            details={"index": index},
        )
        previous = chain_next(previous, event, T0 + timedelta(seconds=index), HOST)
        chain.append(previous)
    return chain


def test_r10_chain_links_each_record_to_the_previous_one() -> None:
    chain = build_chain(5)
    assert [r.sequence for r in chain] == [1, 2, 3, 4, 5]
    assert chain[0].previous_hash == GENESIS_HASH
    assert all(b.previous_hash == a.record_hash for a, b in itertools.pairwise(chain))
    result = verify_records(chain, expected_head=(5, chain[-1].record_hash))
    assert result.ok, result.problem
    assert (result.records_checked, result.head_sequence, result.head_hash) == (
        5,
        5,
        chain[-1].record_hash,
    )
    assert result.first_bad_sequence is None


def test_r10_empty_chain_verifies_with_genesis_head() -> None:
    result = verify_records([])
    assert result.ok
    assert (result.head_sequence, result.head_hash) == (0, GENESIS_HASH)


def test_r10_modified_record_is_named() -> None:
    chain = build_chain(6)
    chain[3] = dataclasses.replace(chain[3], reason="a different reason")
    result = verify_records(chain)
    assert not result.ok
    assert result.first_bad_sequence == 4
    assert "record 4 was modified" in result.problem
    assert (result.records_checked, result.head_sequence) == (3, 3)


def test_r10_deleted_record_is_named() -> None:
    chain = build_chain(6)
    del chain[2]
    result = verify_records(chain)
    assert (result.ok, result.first_bad_sequence) == (False, 3)
    assert "record 3 missing" in result.problem


def test_r10_reordered_records_are_detected() -> None:
    chain = build_chain(6)
    chain[1], chain[4] = chain[4], chain[1]
    result = verify_records(chain)
    assert (result.ok, result.first_bad_sequence) == (False, 2)


def test_r10_truncation_is_detected_only_against_the_expected_head() -> None:
    chain = build_chain(6)
    head = (6, chain[-1].record_hash)
    assert verify_records(chain[:4]).ok  # a chain alone cannot know its end
    result = verify_records(chain[:4], expected_head=head)
    assert (result.ok, result.first_bad_sequence) == (False, 5)
    assert "truncated" in result.problem


def test_r10_checkpoint_with_a_different_hash_is_reported() -> None:
    chain = build_chain(6)
    result = verify_records(chain, expected_head=(4, "f" * 64))
    assert (result.ok, result.first_bad_sequence) == (False, 4)
    assert "checkpoint" in result.problem


def test_r10_growth_after_the_checkpoint_is_fine() -> None:
    chain = build_chain(6)
    assert verify_records(chain, expected_head=(3, chain[2].record_hash)).ok
