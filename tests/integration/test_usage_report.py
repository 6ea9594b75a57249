"""Usage summaries (签盖记录汇总表, R11): golden bytes for a known ledger; PDF is a real
document (CJK font embedded, page numbers) and the daemon seals it with the audit key.

Regenerate the golden files after an intended format change:
    .venv/bin/python tests/integration/test_usage_report.py
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from seald.audit.operations import seal_report_pdf
from seald.audit.reports import build_report, render
from seald.domain.audit import AuditEvent, AuditRecord, chain_next
from seald.signing.verify import verify_pdf
from seald.store.checkpoints import CERT_FILE, AuditKey

GOLDEN = Path(__file__).resolve().parent.parent / "assets" / "golden"
# A TEST-ONLY audit key (committed on purpose) so the sealed report has golden bytes too.
GOLDEN_AUDIT_DIR = GOLDEN / "audit-key"
T0 = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)
PERIOD = (T0, T0 + timedelta(days=1))


def known_ledger() -> list[AuditRecord]:
    records: list[AuditRecord] = []

    def add(minutes: int, **fields: object) -> None:
        records.append(
            chain_next(
                records[-1] if records else None,
                AuditEvent(**fields),
                T0 + timedelta(minutes=minutes),
                "seal-host-01",
            )
        )  # type: ignore[arg-type]

    add(
        -60,
        event="request.submitted",
        principal="zhang.wei",
        role="requester",
        seal_id="contract",
        request_id="r-old",
        document_name="旧合同.pdf",
        document_sha256="1" * 64,
        reason="上月合同",
        outcome="pending",
        details={"category": "contract"},
    )
    for i in range(45):  # enough uses for a second page
        rid = f"r{i:03d}"
        seal = "finance" if i % 5 == 0 else "contract"
        category = "tax" if seal == "finance" else "contract"
        doc = f"采购合同-{i:03d}.pdf"
        add(
            i * 10,
            event="request.submitted",
            principal="zhang.wei" if i % 3 else "chen.jie",
            role="requester",
            seal_id=seal,
            request_id=rid,
            document_name=doc,
            document_sha256=f"{i:064x}",
            reason="=采购合同 华东区",
            outcome="pending",
            details={"category": category},
        )
        add(
            i * 10 + 1,
            event="request.approved",
            principal="li.na",
            role="approver",
            seal_id=seal,
            request_id=rid,
            outcome="pending",
        )
        add(
            i * 10 + 2,
            event="request.approved",
            principal="wang.fang" if i % 2 else "zhao.min",
            role="approver",
            seal_id=seal,
            request_id=rid,
            outcome="approved",
        )
        add(
            i * 10 + 3,
            event="seal.signed",
            seal_id=seal,
            request_id=rid,
            document_name=doc,
            document_sha256=f"{i:064x}",
            reason="=采购合同 华东区",
            outcome="signed",
            details={"sealed_sha256": f"{i + 1000:064x}"},
        )
    add(
        500,
        event="access.denied",
        principal="sun.li",
        role="approver",
        seal_id="contract",
        outcome="refused",
        reason="not_an_approver",
    )
    add(501, event="auth.refused", outcome="refused", reason="certificate_not_listed")
    add(
        60 * 25,
        event="seal.signed",
        seal_id="contract",
        request_id="r-next",
        document_name="次日.pdf",
        document_sha256="2" * 64,
        reason="次日",
        outcome="signed",
    )
    return records


def test_r11_report_for_a_known_ledger_matches_golden_files_byte_for_byte() -> None:
    report = build_report(known_ledger(), *PERIOD)
    for fmt in ("json", "csv", "pdf"):
        golden = (GOLDEN / f"usage-report.{fmt}").read_bytes()
        assert render(report, fmt) == golden, f"{fmt} report differs from {GOLDEN}/usage-report.{fmt}"


def test_r11_report_counts_per_seal_requesters_approvers_categories_refusals() -> None:
    report = build_report(known_ledger(), *PERIOD)
    data = json.loads(render(report, "json"))
    seals = {s["seal_id"]: s for s in data["seals"]}
    assert seals["contract"]["seals_applied"] == 36 and seals["finance"]["seals_applied"] == 9
    assert seals["contract"]["refusals"] == 1 and data["refusals_total"] == 2
    assert seals["finance"]["by_category"] == {"tax": 9}
    assert seals["contract"]["by_approver"]["li.na"] == 36
    assert sum(seals["contract"]["by_requester"].values()) == 36
    assert all(u["time"] < "2026-11-03" for u in data["uses"])  # r-next is outside the period
    only_finance = build_report(known_ledger(), *PERIOD, seal_id="finance")
    assert {u.seal_id for u in only_finance.uses} == {"finance"}
    csv_text = render(report, "csv").decode("utf-8-sig")
    assert "'=采购合同" in csv_text  # a formula-looking reason is defused for spreadsheets


def test_r11_pdf_report_has_cjk_text_embedded_font_and_page_numbers(tmp_path: Path) -> None:
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(render(build_report(known_ledger(), *PERIOD), "pdf"))
    assert subprocess.run(["qpdf", "--check", str(pdf)], capture_output=True, check=False).returncode == 0
    text = subprocess.run(
        ["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout
    assert "签盖记录汇总表" in text and "审批人" in text
    assert "第 1 页 / 共 3 页" in text and "第 3 页 / 共 3 页" in text
    fonts = subprocess.run(["pdffonts", str(pdf)], capture_output=True, text=True, check=True).stdout
    assert "CJK" in fonts or "Zen" in fonts
    assert " yes yes " in fonts  # embedded, subset


def sealed_known_report() -> bytes:
    """The known report sealed like GetUsageReport does: time from the last record in it."""
    records = known_ledger()
    report = build_report(records, *PERIOD)
    last = next(r for r in records if r.sequence == report.ledger_head_sequence)
    return seal_report_pdf(render(report, "pdf"), GOLDEN_AUDIT_DIR, last.time, PERIOD[0])


def test_r11_sealed_pdf_report_is_reproducible_and_matches_the_golden_file(tmp_path: Path) -> None:
    first, second = sealed_known_report(), sealed_known_report()
    assert first == second, "two seals of the same report differ"
    assert first == (GOLDEN / "usage-report.sealed.pdf").read_bytes()
    # The seal is an incremental update: the unsealed report's bytes stay a prefix.
    assert first.startswith((GOLDEN / "usage-report.pdf").read_bytes())
    pdf = tmp_path / "sealed.pdf"
    pdf.write_bytes(first)
    pdfsig = subprocess.run(
        ["pdfsig", str(pdf)], capture_output=True, text=True, check=False, env={"TZ": "UTC"}
    ).stdout
    assert "Signature Field Name: AuditSeal" in pdfsig
    assert "Signature is Valid." in pdfsig and "Total document signed" in pdfsig
    # The time of the last record in the report (09:21 on the report day), not the wall clock.
    assert "Signing Time: Nov 02 2026 09:21:00" in pdfsig
    checks = verify_pdf(pdf, [(GOLDEN_AUDIT_DIR / CERT_FILE).read_bytes()])
    assert [(c.field_name, c.intact, c.valid, c.trusted) for c in checks] == [("AuditSeal", True, True, True)]


def test_r11_sealed_report_changes_when_the_ledger_changes() -> None:
    records = known_ledger()[:-5]
    report = build_report(records, *PERIOD)
    sealed = seal_report_pdf(render(report, "pdf"), GOLDEN_AUDIT_DIR, records[-1].time, PERIOD[0])
    assert sealed != sealed_known_report()


def _write_golden() -> None:
    GOLDEN.mkdir(parents=True, exist_ok=True)
    report = build_report(known_ledger(), *PERIOD)
    for fmt in ("json", "csv", "pdf"):
        (GOLDEN / f"usage-report.{fmt}").write_bytes(render(report, fmt))
    AuditKey.load_or_create(GOLDEN_AUDIT_DIR, "seal-host-01", T0 - timedelta(days=30))
    (GOLDEN / "usage-report.sealed.pdf").write_bytes(sealed_known_report())
    print(f"wrote golden reports to {GOLDEN}")


if __name__ == "__main__":
    sys.exit(_write_golden())
