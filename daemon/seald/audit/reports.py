"""Usage summaries of the ledger (签盖记录汇总表, SEAL-RULES R11): JSON, CSV, PDF.

A report is a pure function of the ledger records up to its end time: no wall
clock, no randomness (the PDF's document id and font subset tag are derived from
the report content), so the same ledger gives the same bytes. The PDF is then
sealed with the audit key (seald.audit.operations) - that signature carries its own
signing time, so reproducibility is promised for the unsealed report bytes.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import hashlib
import io
import json
import random
import tempfile
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any, Final

from fontTools import subset  # type: ignore[import-untyped]
from fontTools.ttLib import TTFont  # type: ignore[import-untyped]
from pyhanko.pdf_utils import generic as _generic
from pyhanko.pdf_utils.font.api import FontEngineFactory
from pyhanko.pdf_utils.font.opentype import GlyphAccumulatorFactory
from pyhanko.pdf_utils.text import TextBox as _TextBox
from pyhanko.pdf_utils.text import TextBoxStyle
from pyhanko.pdf_utils.writer import PageObject as _PageObject
from pyhanko.pdf_utils.writer import PdfFileWriter

from seald.domain.audit import AuditRecord, format_time
from seald.domain.errors import InvalidInput
from seald.domain.quotas import Quotas
from seald.signing.seal_image import find_cjk_font

# pyHanko is untyped: its objects are Any here.
generic: Any = _generic
TextBox: Any = _TextBox
PageObject: Any = _PageObject

SIGNED_EVENT: Final = "seal.signed"
REFUSAL_EVENTS: Final = frozenset({"auth.refused", "access.denied", "seal.sign_refused"})
FORMATS: Final = ("json", "csv", "pdf")
CSV_COLUMNS: Final = (
    "time",
    "seal_id",
    "request_id",
    "requester",
    "approvers",
    "category",
    "reason",
    "document_name",
    "document_sha256",
    "sealed_sha256",
    "outcome",
    "sequence",
)


@dataclass(frozen=True)
class UseRow:
    time: str
    seal_id: str
    request_id: str
    requester: str
    approvers: str
    category: str
    reason: str
    document_name: str
    document_sha256: str
    sealed_sha256: str
    outcome: str
    sequence: int


@dataclass
class SealSummary:
    seal_id: str
    seals_applied: int = 0
    by_requester: dict[str, int] = field(default_factory=dict)
    by_approver: dict[str, int] = field(default_factory=dict)
    by_category: dict[str, int] = field(default_factory=dict)
    refusals: int = 0


@dataclass
class QuotaUse:
    """Issue 17: a seal's use quotas (0 = none) and the busiest local day and month of the
    period (uses = requests submitted that did not end without a seal)."""

    seal_id: str
    uses_per_day: int
    uses_per_month: int
    documents_per_request: int
    busiest_day: str = ""
    busiest_day_uses: int = 0
    busiest_month: str = ""
    busiest_month_uses: int = 0


@dataclass(frozen=True)
class UsageReport:
    title: str
    from_time: str
    to_time: str
    seal_filter: str
    ledger_head_sequence: int
    ledger_head_hash: str
    seals: list[SealSummary]
    uses: list[UseRow]
    refusals_total: int
    quotas: list[QuotaUse] = field(default_factory=list)  # only seals with a quota


# Events after which a request gives its use back (issue 17 quotas).
_NOT_A_USE_EVENTS = frozenset(
    {"request.rejected", "request.cancelled", "request.expired", "seal.sign_failed"}
)


def build_report(
    records: Iterable[AuditRecord],
    from_time: datetime,
    to_time: datetime,
    seal_id: str = "",
    quotas: Mapping[str, tuple[Quotas, tzinfo]] | None = None,
) -> UsageReport:
    """``records``: every record before ``to_time`` in sequence order (context is needed).

    ``quotas``: seal -> (its quotas, its time zone), to show them with the busiest local
    day and month of the period (issue 17)."""
    if to_time <= from_time:
        raise InvalidInput(
            "the report period is empty: --to must be after --from", reason="report_period_empty"
        )
    start, end = format_time(from_time), format_time(to_time)
    submitted: dict[str, tuple[str, str]] = {}
    approvers: dict[str, list[str]] = defaultdict(list)
    uses: list[UseRow] = []
    counters: dict[str, dict[str, Counter[str]]] = defaultdict(lambda: defaultdict(Counter))
    applied: Counter[str] = Counter()
    refusals: Counter[str] = Counter()
    head_sequence, head_hash = 0, ""
    use_times: dict[str, tuple[tuple[str, ...], str]] = {}  # request -> (seals, submit time) in the period
    for record in records:
        if record.time >= end:
            break
        head_sequence, head_hash = record.sequence, record.record_hash
        if record.event == "request.submitted" and record.request_id not in submitted:
            category = record.details.get("category")
            submitted[record.request_id] = (record.principal, str(category or ""))
            used = _seals_named(record)
            if record.time >= start and (not seal_id or seal_id in used):
                use_times[record.request_id] = (used, record.time)
        elif record.event in _NOT_A_USE_EVENTS:
            use_times.pop(record.request_id, None)
        elif record.event == "request.approved":
            approvers[record.request_id].append(record.principal)
        elif record.event == "request.approval_withdrawn":
            with contextlib.suppress(ValueError):
                approvers[record.request_id].remove(record.principal)
        if record.time < start:
            continue
        if record.event in REFUSAL_EVENTS and (not seal_id or record.seal_id == seal_id):
            refusals[record.seal_id] += 1
        if record.event != SIGNED_EVENT:
            continue
        requester, category = submitted.get(record.request_id, ("", ""))
        names = sorted(set(approvers[record.request_id]))
        for row in _use_rows(record, seal_id, requester, names, category):
            uses.append(row)
            applied[row.seal_id] += 1
            per_seal = counters[row.seal_id]
            per_seal["requester"][requester] += 1
            per_seal["category"][category] += 1
            for name in names:
                per_seal["approver"][name] += 1
    seals = []
    for sid in sorted(set(applied) | set(refusals)):
        per_seal = counters[sid]
        seals.append(
            SealSummary(
                seal_id=sid,
                seals_applied=applied[sid],
                by_requester=dict(sorted(per_seal["requester"].items())),
                by_approver=dict(sorted(per_seal["approver"].items())),
                by_category=dict(sorted(per_seal["category"].items())),
                refusals=refusals[sid],
            )
        )
    quota_uses = [
        _quota_use(sid, quota, [t for s, t in use_times.values() if sid in s])
        for sid, quota in sorted((quotas or {}).items())
        if quota[0].any and (not seal_id or sid == seal_id)
    ]
    return UsageReport(
        title="签盖记录汇总表",
        from_time=start,
        to_time=end,
        seal_filter=seal_id,
        ledger_head_sequence=head_sequence,
        ledger_head_hash=head_hash,
        seals=seals,
        uses=uses,
        refusals_total=sum(refusals.values()),
        quotas=quota_uses,
    )


def _use_rows(
    record: AuditRecord, seal_filter: str, requester: str, approvers: list[str], category: str
) -> list[UseRow]:
    """The uses one seal.signed record stands for: a sealing job's document (issue 16)
    names every seal that signed it, in signing order (``seals``), and is one use of each
    (one row per seal, linked by the request id); any other record is its one seal's use."""
    return [
        UseRow(
            time=record.time,
            seal_id=used,
            request_id=record.request_id,
            requester=requester,
            approvers=";".join(approvers),
            category=category,
            reason=record.reason,
            document_name=record.document_name,
            document_sha256=record.document_sha256,
            sealed_sha256=str(record.details.get("sealed_sha256") or ""),
            outcome=record.outcome,
            sequence=record.sequence,
        )
        for used in _seals_named(record)
        if not seal_filter or used == seal_filter
    ]


def _seals_named(record: AuditRecord) -> tuple[str, ...]:
    """A job's records name its seals in signing order (``seals``); others their one seal."""
    return tuple(s for s in str(record.details.get("seals") or "").split(",") if s) or (record.seal_id,)


def _quota_use(seal_id: str, quota: tuple[Quotas, tzinfo], times: list[str]) -> QuotaUse:
    limits, zone = quota
    summary = QuotaUse(
        seal_id, limits.uses_per_day, limits.uses_per_month, limits.documents_per_request
    )
    local = [datetime.fromisoformat(t.replace("Z", "+00:00")).astimezone(zone) for t in times]
    days = Counter(t.strftime("%Y-%m-%d") for t in local)
    months = Counter(t.strftime("%Y-%m") for t in local)
    if days:  # ties: the earliest, so the same ledger gives the same report
        summary.busiest_day, summary.busiest_day_uses = min(days.items(), key=lambda kv: (-kv[1], kv[0]))
        summary.busiest_month, summary.busiest_month_uses = min(
            months.items(), key=lambda kv: (-kv[1], kv[0])
        )
    return summary


def render_json(report: UsageReport) -> bytes:
    data = asdict(report)
    if not data["quotas"]:  # reports of seals without quotas keep their exact bytes
        del data["quotas"]
    return (json.dumps(data, ensure_ascii=False, sort_keys=True, indent=1) + "\n").encode()


def render_csv(report: UsageReport) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for use in report.uses:
        row = asdict(use)
        # A leading =,+,-,@ would be a formula in a spreadsheet: quote it away.
        writer.writerow(
            [
                f"'{v}" if isinstance(v, str) and v[:1] in ("=", "+", "-", "@") else v
                for v in (row[c] for c in CSV_COLUMNS)
            ]
        )
    return out.getvalue().encode("utf-8-sig")


# -- PDF -------------------------------------------------------------------------------------
_PAGE_W, _PAGE_H = 595.28, 841.89  # A4 in points
_MARGIN = 42.0
_ROWS_PER_PAGE = 32
_USE_COLUMNS: Final = (
    ("时间", 92),
    ("印章", 52),
    ("申请人", 58),
    ("审批人", 88),
    ("类别", 50),
    ("事由", 90),
    ("文件", 80),
)


def _font_text(report_text: str) -> str:
    digits = "0123456789"
    return "".join(sorted(set(report_text + digits + "第页共/：:-–.() ·")))


@functools.lru_cache(maxsize=8)
def _subset_font(text: str) -> str:
    """A TrueType subset holding just the glyphs used (pyHanko cannot open a .ttc face)."""

    cjk = find_cjk_font()
    # recalcTimestamp=False: the subset's bytes depend on the text only.
    font = TTFont(str(cjk.path), fontNumber=cjk.index, recalcTimestamp=False, lazy=None)
    options = subset.Options()
    options.name_IDs = ["*"]
    subsetter = subset.Subsetter(options)
    subsetter.populate(text=text)
    subsetter.subset(font)
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    out = Path(tempfile.gettempdir()) / f"seald-report-font-{digest}.ttf"
    font.save(str(out))
    return str(out)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _report_lines(report: UsageReport) -> tuple[list[str], list[list[str]]]:
    header = [
        f"期间：{report.from_time} – {report.to_time}",
        f"印章：{report.seal_filter or '全部'}    账本记录：{report.ledger_head_sequence}",
        f"账本哈希：{report.ledger_head_hash[:32]}",
        "",
    ]
    for s in report.seals:
        header.append(f"印章 {s.seal_id}：盖章 {s.seals_applied} 次，拒绝 {s.refusals} 次")
        header.append("  申请人：" + "，".join(f"{k} {v}" for k, v in s.by_requester.items()))
        header.append("  审批人：" + "，".join(f"{k} {v}" for k, v in s.by_approver.items()))
        header.append("  类别：" + "，".join(f"{k or '-'} {v}" for k, v in s.by_category.items()))
    rows = [
        [
            u.time[:19].replace("T", " "),
            u.seal_id,
            u.requester,
            u.approvers.replace(";", ","),
            u.category,
            _clip(u.reason, 12),
            _clip(u.document_name, 12),
        ]
        for u in report.uses
    ]
    return header, rows


def render_pdf(report: UsageReport) -> bytes:
    """An A4 PDF: title, summary per seal, the list of uses as a table, page numbers."""
    header, rows = _report_lines(report)
    all_text = report.title + "".join(header) + "".join("".join(r) for r in rows)
    all_text += "".join(name for name, _ in _USE_COLUMNS) + "签盖记录汇总表全部"
    font_text = _font_text(all_text)
    seed = hashlib.sha256(render_json(report)).digest()
    # pyHanko draws the font subset tag from the global `random`; seed it from the
    # content for reproducible bytes, and put the caller's state back.
    state = random.getstate()
    random.seed(seed)
    try:
        return _render_pdf(report, header, rows, font_text, seed)
    finally:
        random.setstate(state)


class _ReproducibleWriter(PdfFileWriter):
    """pyHanko stamps /ModDate with the wall clock at write time; we write the period end."""

    fixed_info: Any = None

    def _update_meta(self) -> None:
        self._info = self.add_object(self.fixed_info)


def _render_pdf(
    report: UsageReport, header: list[str], rows: list[list[str]], font_text: str, seed: bytes
) -> bytes:

    writer: Any = _ReproducibleWriter(stream_xrefs=False)  # type: ignore[no-untyped-call]
    writer.fixed_info = generic.DictionaryObject(
        {
            generic.pdf_name("/Title"): generic.pdf_string(
                f"{report.title} {report.from_time} – {report.to_time}"
            ),
            generic.pdf_name("/Producer"): generic.pdf_string("seald usage report"),
            generic.pdf_name("/ModDate"): generic.pdf_date(datetime.fromisoformat(report.to_time)),
        }
    )
    writer._document_id = generic.ArrayObject(  # content-derived, not os.urandom
        [generic.ByteStringObject(seed[:16]), generic.ByteStringObject(seed[16:])]
    )
    # One font engine for every text box: one embedded subset for the whole report.
    engine = GlyphAccumulatorFactory(_subset_font(font_text)).create_font_engine(writer)

    class _SharedEngine(FontEngineFactory):
        def create_font_engine(self, writer: Any, obj_stream: Any = None) -> Any:
            return engine

    font_factory = _SharedEngine()
    fonts: Any = generic.DictionaryObject()

    def text(ops: list[bytes], content: str, x: float, y: float, size: float) -> None:
        if not content:
            return
        style = TextBoxStyle(font=font_factory, font_size=size, border_width=0)  # type: ignore[arg-type]
        box = TextBox(style, writer=writer)
        box.content = content
        ops.append(b"q 1 0 0 1 %.2f %.2f cm %s Q\n" % (x, y, box.render()))
        fonts.update(box.resources.font)

    first_rows = max(0, _ROWS_PER_PAGE - len(header) - 4)
    chunks = [rows[:first_rows]]
    rest = rows[first_rows:]
    while rest:
        chunks.append(rest[:_ROWS_PER_PAGE])
        rest = rest[_ROWS_PER_PAGE:]
    pages = len(chunks)
    for number, chunk in enumerate(chunks, start=1):
        ops: list[bytes] = []
        y = _PAGE_H - _MARGIN - 20
        if number == 1:
            text(ops, report.title, _PAGE_W / 2 - 70, y, 20)
            y -= 30
            for line in header:
                text(ops, line, _MARGIN, y, 10)
                y -= 15
            y -= 5
        x = _MARGIN
        for name, width in _USE_COLUMNS:
            text(ops, name, x + 2, y, 9)
            x += width
        ops.append(b"0.5 w %.2f %.2f m %.2f %.2f l S\n" % (_MARGIN, y - 4, _PAGE_W - _MARGIN, y - 4))
        y -= 17
        for row in chunk:
            x = _MARGIN
            for cell, (_, width) in zip(row, _USE_COLUMNS, strict=True):
                text(ops, cell, x + 2, y, 8)
                x += width
            ops.append(b"0.2 w %.2f %.2f m %.2f %.2f l S\n" % (_MARGIN, y - 4, _PAGE_W - _MARGIN, y - 4))
            y -= 17
        text(ops, f"第 {number} 页 / 共 {pages} 页", _PAGE_W / 2 - 30, _MARGIN - 10, 9)
        resources = generic.DictionaryObject({generic.pdf_name("/Font"): fonts})
        page = PageObject(
            contents=writer.add_object(generic.StreamObject(stream_data=b"".join(ops))),
            media_box=generic.ArrayObject(map(generic.FloatObject, (0, 0, _PAGE_W, _PAGE_H))),
            resources=resources,
        )
        writer.insert_page(page)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def render(report: UsageReport, fmt: str) -> bytes:
    if fmt == "json":
        return render_json(report)
    if fmt == "csv":
        return render_csv(report)
    if fmt == "pdf":
        return render_pdf(report)
    raise InvalidInput(
        f"unknown report format {fmt!r}; use one of {', '.join(FORMATS)}", reason="report_format_unknown"
    )
