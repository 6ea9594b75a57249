"""Issue 14 items 4 and 5: the one text policy (`seald.domain.text_policy`), pure."""

from __future__ import annotations

import pytest

from seald.domain.errors import InvalidInput
from seald.domain.text_policy import MAX_TEXT, check_document_name, check_text

REFUSED = [
    *(chr(c) for c in range(0x00, 0x20)),  # C0, tab and newline included
    "\x7f",  # DEL
    *(chr(c) for c in range(0x80, 0xA0)),  # C1 (U+009B is CSI)
    *(chr(c) for c in range(0x202A, 0x202F)),  # bidi embeddings and overrides
    *(chr(c) for c in range(0x2066, 0x206A)),  # bidi isolates
    "\u200e", "\u200f", "\u061c",  # directional marks
    "\u200b", "\ufeff", "\u00ad",  # zero-width space, BOM, soft hyphen
    "\u2028", "\u2029",  # line and paragraph separators
    "\ue000",  # private use
    "\U000e0001",  # language tag
    "\u0378",  # unassigned
]


@pytest.mark.parametrize("ch", REFUSED, ids=lambda ch: f"U+{ord(ch):04X}")
def test_refused_characters_name_the_field_and_the_character(ch: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        check_text("comment", f"ok {ch} ok")
    assert caught.value.reason == "bad_comment"
    assert f"U+{ord(ch):04X}" in str(caught.value) and "character 4" in str(caught.value)


@pytest.mark.parametrize(
    "text",
    ["签署采购合同", "全角　空格", "Müller & Søn, s.r.o.", "مرحبا", "می\u200cخواهم", "👩\u200d💻", ""],
)
def test_visible_text_in_any_script_passes(text: str) -> None:
    assert check_text("reason", text) == text


def test_limits_and_required() -> None:
    with pytest.raises(InvalidInput) as caught:
        check_text("reason", "x" * (MAX_TEXT + 1))
    assert caught.value.reason == "reason_too_long"
    with pytest.raises(InvalidInput) as caught:
        check_text("reason", "   ", required=True)
    assert caught.value.reason == "missing_reason"
    check_text("comment", "", required=False)


@pytest.mark.parametrize(
    "name",
    ["../../../tmp/x.pdf", "/tmp/x.pdf", "a/b.pdf", "a\\b.pdf", "..", ".", " .. ", "..x.pdf", "x\x00.pdf",
     "x\u202efdp.exe"],
)
def test_document_names_are_base_names(name: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        check_document_name(name)
    assert caught.value.reason == "bad_document_name"
    assert "document_name" in str(caught.value)


@pytest.mark.parametrize("name", ["采购合同.pdf", "a.b.pdf", ".hidden.pdf", "x..pdf", "v1.0 final.pdf"])
def test_ordinary_names_pass(name: str) -> None:
    assert check_document_name(name) == name
