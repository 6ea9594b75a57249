"""Rendering of sealapi messages for humans (tables) and for scripts (JSON).

Whatever the server sent, nothing printed here reaches a terminal raw (issue 14): every
string a message carries is escaped with `escape_text` before it is formatted
(`escaped`), and every human-readable output passes `escape_lines` once more on its way
out (`Output.emit`, error lines). JSON output writes those characters as \\uXXXX.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Sequence
from typing import Any, TypeVar

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

from sealapi.v1 import common_pb2, requests_pb2, seals_pb2, tokens_pb2, verify_pb2
from seald.domain.text_policy import is_refused

M = TypeVar("M", bound=Message)


def _escape_char(ch: str) -> str:
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def escape_text(text: str) -> str:
    """The one escaping function: every control, format (bidi), separator, unassigned or
    private-use character becomes a visible \\x.., \\u.... or \\U........ sequence.
    Newlines and tabs too: a field is one line; CJK and ordinary spaces stay as they are."""
    if not any(is_refused(ch) for ch in text):
        return text
    return "".join(_escape_char(ch) if is_refused(ch) else ch for ch in text)


def escape_lines(text: str) -> str:
    """`escape_text` on each line of a text we formatted ourselves (our newlines stay)."""
    return "\n".join(escape_text(line) for line in text.split("\n"))


def escaped(message: M) -> M:
    """A copy of `message` with every string field, at any depth, passed through
    `escape_text`: formatters work on this, so a newline a server put into a field
    cannot fake a line of output."""
    copy = type(message)()
    copy.CopyFrom(message)
    _escape_in_place(copy)
    return copy


def _escape_in_place(message: Message) -> None:
    for field, value in message.ListFields():
        if field.type == FieldDescriptor.TYPE_STRING:
            if field.is_repeated:
                escaped_values = [escape_text(v) for v in value]
                del value[:]
                value.extend(escaped_values)
            else:
                setattr(message, field.name, escape_text(value))
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            if field.message_type is not None and field.message_type.GetOptions().map_entry:
                continue  # no map fields in sealapi; never printed raw either way
            if field.is_repeated:
                for item in value:
                    _escape_in_place(item)
            else:
                _escape_in_place(value)


def message_dict(message: Message) -> dict[str, Any]:
    return MessageToDict(message, preserving_proto_field_name=True)


def _json_escape(ch: str) -> str:
    code = ord(ch)
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000  # JSON escapes a non-BMP character as a surrogate pair
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def to_json(value: Message | dict[str, Any]) -> str:
    """One JSON object; characters a terminal would act on are written as \\uXXXX
    (json.dumps already escapes C0; this adds DEL, C1, bidi and other format characters,
    which can only occur inside JSON strings, so the result is the same JSON value)."""
    data = message_dict(value) if isinstance(value, Message) else value
    text = json.dumps(data, ensure_ascii=False, sort_keys=True)
    return "".join(_json_escape(ch) if is_refused(ch) else ch for ch in text)


def display_width(text: str) -> int:
    """Terminal columns: CJK characters (全角) take two."""
    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in text)


def pad(text: str, width: int) -> str:
    return text + " " * max(0, width - display_width(text))


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    rows = [[escape_text(cell) for cell in row] for row in rows]
    widths = [display_width(h) for h in headers]
    for row in rows:
        widths = [max(w, display_width(cell)) for w, cell in zip(widths, row, strict=True)]
    lines = [headers, *rows]
    return "\n".join(
        "  ".join(pad(cell, w) for cell, w in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def enum_label(full_name: str, prefix: str) -> str:
    """REQUEST_STATE_PENDING -> PENDING."""
    return full_name.removeprefix(prefix)


def state_label(state: int) -> str:
    return enum_label(requests_pb2.RequestState.Name(state), "REQUEST_STATE_")


def placement_text(p: common_pb2.Placement) -> str:
    p = escaped(p)
    page = "last page" if p.page == 0 else f"page {p.page}"
    if p.cross_page:
        where = "cross-page seal on every page"
    elif p.anchor_text:
        where = f"{page}, on the text {p.anchor_text!r}"
    else:
        where = f"{page} at x={p.x_mm:g} mm, y={p.y_mm:g} mm from top-left"
    size = f", size {p.size_mm:g} mm" if p.size_mm else ""
    return where + size


def mark_text(m: common_pb2.Mark) -> str:
    """One mark of a sealing job (issue 16) in words: seal, pages, where, size."""
    m = escaped(m)
    if m.HasField("cross_page"):
        group = f", one per {m.cross_page.group_size} pages" if m.cross_page.group_size else ""
        where = f"cross-page seal (骑缝章) over pages {m.cross_page.pages}{group}, {m.y_mm:g} mm from the top"
    elif m.anchor_text:
        times = f" (up to {m.anchor_max_matches}x per page)" if m.anchor_max_matches > 1 else ""
        offset = f" offset x={m.x_mm:g} y={m.y_mm:g} mm" if m.x_mm or m.y_mm else ""
        where = f"pages {m.pages}, on the text {m.anchor_text!r}{times}{offset}"
    else:
        where = f"pages {m.pages} at x={m.x_mm:g} mm, y={m.y_mm:g} mm from top-left"
    size = f"size {m.size_mm:g} mm" if m.size_mm else "the seal's size"
    return f"seal {m.seal_id}: {where}, {size}"


def marks_lines(r: requests_pb2.SealRequest) -> list[str]:
    """Every mark of a sealing job and its seals in signing order ([] for one placement)."""
    if not r.job_seals:
        return []
    r = escaped(r)
    lines = ["Seals      " + " → ".join(s.seal_id for s in r.job_seals) + "  (signing order)"]
    lines += [f"Mark {i + 1:<5} {mark_text(m)}" for i, m in enumerate(r.marks)]
    for d in r.documents:
        lines += [f"Doc {d.index} mark {i + 1}: {mark_text(m)}" for i, m in enumerate(d.marks)]
        if d.signed_seals:
            lines.append(f"Doc {d.index} signed by {', '.join(d.signed_seals)}")
    return lines


def request_text(r: requests_pb2.SealRequest) -> str:
    r = escaped(r)
    state = state_label(r.state) + (f" — {r.state_reason}" if r.state_reason else "")
    approvers = ", ".join(approval_label(a) for a in r.approvals) or "none yet"
    lines = [
        f"Request    {r.request_id}",
        f"Seal       {r.seal_id}",
        f"State      {state}",
        f"Requester  {r.requester}",
        f"Reason     {r.reason}",
        f"Category   {r.category}",
        *(marks_lines(r) or [f"Placement  {placement_text(r.placement)}"]),
        f"Approvals  {len(r.approvals)}/{r.required_approvals}: {approvers}",
        *([f"Amount     {r.amount} {r.amount_currency}"] if r.amount else []),
        *chain_lines(r),
        f"Sealed     {sum(1 for d in r.documents if d.sealed_sha256)}/{len(r.documents)} documents",
        f"Digest     {r.approval_digest}",
        "",
        table(
            ["#", "DOCUMENT", "BYTES", "SHA-256"],
            [[str(d.index), d.name, str(d.size), d.sha256] for d in r.documents],
        ),
    ]
    return "\n".join(lines)


def approval_label(a: requests_pb2.Approval) -> str:
    """'li.na', or 'deputy for li.na under delegation D-…' (issue 17)."""
    if a.acting_for:
        return f"{a.approver} for {a.acting_for} under delegation {a.delegation_id}"
    return a.approver


def chain_lines(r: requests_pb2.SealRequest) -> list[str]:
    """Issue 17: the approval chain and where the request stands in it."""
    if not r.HasField("chain"):
        return []
    marks = {"done": "✓", "current": "→", "waiting": "·", "skipped": "–"}
    lines = ["Chain      " + ("complete" if r.chain.complete else f"at step '{r.chain.current}'")]
    for step in r.chain.steps:
        detail = step.requirement
        if step.condition != "always":
            detail += f" when {step.condition}"
        if step.counted:
            detail += f"; by {', '.join(step.counted)}"
        if step.state == "current" and step.needed_from:
            detail += f"; waiting for one of: {', '.join(step.needed_from)}"
        lines.append(f"  {marks.get(step.state, '?')} {step.name:<12} {step.state:<8} {detail}")
    return lines


def requests_table(requests: Sequence[requests_pb2.SealRequest]) -> str:
    if not requests:
        return "no requests"
    return table(
        ["REQUEST", "STATE", "SEAL", "REQUESTER", "DOCS", "APPROVALS", "REASON"],
        [
            [
                r.request_id,
                state_label(r.state),
                r.seal_id,
                r.requester,
                str(len(r.documents)),
                f"{len(r.approvals)}/{r.required_approvals}",
                r.reason,
            ]
            for r in requests
        ],
    )


def event_text(e: requests_pb2.RequestEvent) -> str:
    e = escaped(e)
    r = e.request
    reason = f" — {r.state_reason}" if r.state_reason else ""
    return f"{e.event:<10} {r.request_id}  {state_label(r.state)}{reason}"


def token_row(t: tokens_pb2.TokenStatus) -> list[str]:
    t = escaped(t)
    presence = enum_label(tokens_pb2.TokenPresence.Name(t.presence), "TOKEN_PRESENCE_")
    return [
        t.seal_id,
        presence,
        "yes" if t.unlocked else "no",
        "yes" if t.ready else "no",
        t.not_ready_reason,
    ]


TOKEN_HEADERS = ["SEAL", "TOKEN", "UNLOCKED", "READY", "WHY NOT READY"]


def tokens_table(tokens: Sequence[tokens_pb2.TokenStatus]) -> str:
    if not tokens:
        return "no tokens"
    return table(TOKEN_HEADERS, [token_row(t) for t in tokens])


def seals_table(seals: Sequence[seals_pb2.Seal]) -> str:
    if not seals:
        return "no seals"
    return table(
        ["SEAL", "TYPE", "NAME", "STATUS", "CUSTODIAN", "CATEGORIES", "LEVEL", "CERTIFIES"],
        [
            [
                s.seal_id,
                enum_label(common_pb2.SealType.Name(s.type), "SEAL_TYPE_"),
                s.display_name,
                enum_label(common_pb2.SealStatus.Name(s.status), "SEAL_STATUS_"),
                s.custodian,
                ",".join(s.categories),
                s.signature_level,
                f"P={s.certification_level} {s.certify}" if s.certification_level else "no",
            ]
            for s in seals
        ],
    )


def verify_text(report: verify_pb2.VerifyReport) -> str:
    report = escaped(report)
    if not report.signatures:
        return f"no signatures found (document sha256 {report.document_sha256})"
    blocks = []
    for n, s in enumerate(report.signatures, start=1):
        kind = "document timestamp" if s.field_name.endswith("-DocTS") else "signature"
        blocks.append(
            "\n".join(
                [
                    f"#{n} {s.field_name} ({kind})",
                    f"  signer:      {s.signer_subject}",
                    f"  seal:        {s.seal_id or '(not a registered seal)'}",
                    f"  signed at:   {_when(s, 'signing_time')}",
                    f"  timestamp:   {_when(s, 'timestamp_time')}",
                    f"  integrity:   {'intact' if s.intact else 'BROKEN: signed bytes changed'}",
                    f"  signature:   {'valid' if s.valid else 'INVALID'}",
                    f"  chain:       {'trusted' if s.trusted else 'NOT trusted'}",
                    f"  revocation:  {s.revocation or 'not checked'}",
                    f"  certified:   {_certified(s)}",
                    f"  whole doc:   {'yes' if s.covers_whole_document else 'no'}",
                    f"  after it:    {_changed_after(s)}",
                ]
            )
        )
    verdict = "all signatures valid" if report.all_valid else "NOT all signatures valid"
    return "\n\n".join([*blocks, f"{verdict} (document sha256 {report.document_sha256})"])


_CHANGES_AFTER = {
    "NONE": "nothing that changes the content",
    "LTA_UPDATES": "validation data and timestamps only",
    "FORM_FILLING": "further signatures or form fields",
    "ANNOTATIONS": "annotations (comments, markup)",
    "OTHER": "CONTENT CHANGES not allowed after signing",
}


_CERTIFICATION_WORDS = {
    1: "no changes allowed",
    2: "form filling and further signatures allowed",
    3: "form filling, signatures and annotations allowed",
}


def _certified(s: verify_pb2.SignatureReport) -> str:
    """DocMDP of a certification signature (P=1/2/3), or that it is an approval one."""
    if not s.certification_level:
        return "no (approval signature)"
    words = _CERTIFICATION_WORDS.get(s.certification_level, s.certification)
    return f"yes, DocMDP P={s.certification_level}: {words}"


def _changed_after(s: verify_pb2.SignatureReport) -> str:
    if s.covers_whole_document:
        return "nothing"
    return _CHANGES_AFTER.get(s.modification_level, f"unknown ({s.modification_level})")


def _when(s: verify_pb2.SignatureReport, field: str) -> str:
    if not s.HasField(field):
        return "none"
    return str(getattr(s, field).ToDatetime().isoformat(timespec="seconds")) + "Z"
