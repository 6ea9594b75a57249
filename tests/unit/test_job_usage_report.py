"""The usage summary (R11) of a sealing job (issue 16), on a ledger built in the test: a
job's document is one use of each of its seals, rows linked by the request id, and the
quota's busiest day counts the job for every seal. (The daemon's own report of a real
job: tests/integration/test_job_evidence.py.)"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from seald.audit.reports import build_report
from seald.domain.audit import AuditEvent, AuditRecord, chain_next
from seald.domain.quotas import Quotas

T0 = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)
PERIOD = (T0, T0 + timedelta(days=1))
SEALS = ("contract", "official", "legal_rep")


def _ledger() -> list[AuditRecord]:
    records: list[AuditRecord] = []

    def add(minutes: int, **fields: object) -> None:
        records.append(
            chain_next(
                records[-1] if records else None,
                AuditEvent(**fields),  # type: ignore[arg-type]
                T0 + timedelta(minutes=minutes),
                "seal-host-01",
            )
        )

    common = {"request_id": "job-1", "document_name": "合同.pdf", "document_sha256": "a" * 64}
    add(
        1,
        event="request.submitted",
        principal="zhang.wei",
        role="requester",
        seal_id="contract",
        outcome="pending",
        details={"category": "contract", "seals": ",".join(SEALS)},
        **common,
    )
    for minute, approver in ((2, "li.na"), (3, "wang.fang")):
        add(
            minute,
            event="request.approved",
            principal=approver,
            role="approver",
            seal_id="contract",
            request_id="job-1",
            outcome="pending",
        )
    for minute, seal in enumerate(SEALS, 4):
        add(
            minute,
            event="seal.job_signature",
            seal_id=seal,
            outcome="signing",
            details={"document_index": 0, "intermediate_sha256": f"{minute:064x}"},
            **common,
        )
    add(
        8,
        event="seal.signed",
        seal_id="contract",
        outcome="signed",
        details={"sealed_sha256": "b" * 64, "seals": ",".join(SEALS)},
        **common,
    )
    # A single-seal request beside it: one row, as always.
    single = {"request_id": "one-1", "document_name": "单.pdf", "document_sha256": "c" * 64}
    add(
        9,
        event="request.submitted",
        principal="zhang.wei",
        role="requester",
        seal_id="official",
        outcome="pending",
        details={"category": "contract"},
        **single,
    )
    add(
        10,
        event="seal.signed",
        seal_id="official",
        outcome="signed",
        details={"sealed_sha256": "d" * 64},
        **single,
    )
    return records


def test_r11_job_is_one_use_of_each_seal_rows_linked_by_request_id() -> None:
    report = build_report(_ledger(), *PERIOD)
    job_rows = [u for u in report.uses if u.request_id == "job-1"]
    assert [u.seal_id for u in job_rows] == list(SEALS)
    assert {(u.sequence, u.sealed_sha256, u.requester, u.approvers) for u in job_rows} == {
        (job_rows[0].sequence, "b" * 64, "zhang.wei", "li.na;wang.fang")
    }
    assert [u.seal_id for u in report.uses if u.request_id == "one-1"] == ["official"]
    applied = {s.seal_id: s.seals_applied for s in report.seals}
    assert applied == {"contract": 1, "official": 2, "legal_rep": 1}
    assert {s.seal_id: s.by_approver for s in report.seals}["legal_rep"] == {"li.na": 1, "wang.fang": 1}


def test_r11_job_seal_filter_keeps_that_seals_use() -> None:
    only_legal = build_report(_ledger(), *PERIOD, seal_id="legal_rep")
    assert [(u.request_id, u.seal_id) for u in only_legal.uses] == [("job-1", "legal_rep")]
    assert [s.seal_id for s in only_legal.seals] == ["legal_rep"]


def test_r11_job_counts_in_every_seals_quota_use() -> None:
    quota = (Quotas(uses_per_day=5), UTC)
    report = build_report(_ledger(), *PERIOD, quotas={s: quota for s in SEALS})
    busiest = {q.seal_id: q.busiest_day_uses for q in report.quotas}
    assert busiest == {"contract": 1, "official": 2, "legal_rep": 1}
