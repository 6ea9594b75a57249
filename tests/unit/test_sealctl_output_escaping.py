"""Issue 14 item 4: sealctl escapes whatever a server sends before it reaches a terminal
(`sealclient.output`). Pure: messages built here stand for a malicious server's."""

from __future__ import annotations

import io
import json

from sealapi.v1 import common_pb2, requests_pb2, seals_pb2, verify_pb2
from sealclient.cli import Output, error_line
from sealclient.custody_cli import change_text
from sealclient.errors import SealClientError
from sealclient.output import (
    escape_lines,
    escape_text,
    escaped,
    event_text,
    request_text,
    requests_table,
    seals_table,
    to_json,
    verify_text,
)
from sealclient.seal_cli import seal_text

EVIL = "a\x1b[2J\x9b31m\x7f\u202eexe.pdf\u2066x\u2069\u2028\r\nState      SIGNED\t"
RAW = ["\x1b", "\x9b", "\x7f", "\u202e", "\u2066", "\u2069", "\u2028", "\r", "\t"]


def assert_clean(text: str) -> None:
    for ch in RAW:
        assert ch not in text, f"raw {ch!r} in {text!r}"
    assert not any(line.startswith("State      SIGNED") for line in text.splitlines())


def evil_request() -> requests_pb2.SealRequest:
    return requests_pb2.SealRequest(
        request_id="r1",
        seal_id="contract",
        requester=EVIL,
        reason=EVIL,
        category=EVIL,
        state=requests_pb2.REQUEST_STATE_CANCELLED,
        state_reason=EVIL,
        placement=common_pb2.Placement(page=1, anchor_text=EVIL),
        documents=[requests_pb2.DocumentInfo(index=0, name=EVIL, sha256="ab" * 32)],
        approvals=[requests_pb2.Approval(approver=EVIL, comment=EVIL)],
    )


def test_escape_text_makes_every_control_visible() -> None:
    out = escape_text(EVIL)
    assert_clean(out)
    assert "\\x1b[2J\\x9b31m\\x7f\\u202eexe.pdf" in out and "\\x0d\\x0aState" in out
    assert escape_text("签署　采购合同 Müller") == "签署　采购合同 Müller"  # nothing else touched


def test_escaped_copies_every_string_field_at_any_depth() -> None:
    request = evil_request()
    copy = escaped(request)
    assert request.reason == EVIL  # the original is untouched
    assert copy.reason == copy.documents[0].name == copy.approvals[0].comment == escape_text(EVIL)
    assert copy.placement.anchor_text == escape_text(EVIL)


def test_every_human_formatter_escapes_server_text() -> None:
    request = evil_request()
    assert_clean(request_text(request))
    assert_clean(requests_table([request]))
    assert_clean(event_text(requests_pb2.RequestEvent(event=EVIL, request=request)))
    seal = seals_pb2.Seal(seal_id="s", display_name=EVIL, organisation=EVIL, status_reason=EVIL,
                          custodian=EVIL, categories=[EVIL])
    assert_clean(seals_table([seal]))
    assert_clean(seal_text(seal))
    assert_clean(change_text(seals_pb2.CustodyChange(change_id="c", to_principal=EVIL)))
    report = verify_pb2.VerifyReport(
        signatures=[verify_pb2.SignatureReport(field_name=EVIL, signer_subject=EVIL, summary=EVIL)]
    )
    assert_clean(verify_text(report))
    assert_clean(error_line(SealClientError(None, EVIL, EVIL)))  # type: ignore[arg-type]


def test_output_emit_is_the_net_under_every_formatter() -> None:
    stream = io.StringIO()
    Output(False, stream).emit("line one\nline \x1b[31mtwo\u202e", {})
    assert stream.getvalue() == "line one\nline \\x1b[31mtwo\\u202e\n"


def test_json_output_escapes_and_decodes_back() -> None:
    text = to_json(evil_request())
    assert_clean(text)
    assert json.loads(text)["state_reason"] == EVIL
    assert escape_lines("a\nb") == "a\nb"
