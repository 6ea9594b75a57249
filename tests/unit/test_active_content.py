"""Issue 14 item 2: active content and unsigned incremental updates are refused at submit
(`seald.signing.input_checks`), each refusal naming the object. The documents are the
attack-named corpus of tests/assets/make_pdfs.py."""

from __future__ import annotations

import zlib

import make_pdfs
import pytest

from seald.signing.errors import InputDocumentError
from seald.signing.input_checks import check_input_bytes

ACTIVE = make_pdfs.active_content_corpus()
SHADOW = make_pdfs.shadow_corpus()


@pytest.mark.parametrize("name", sorted(ACTIVE))
def test_active_content_is_refused_naming_the_object(name: str) -> None:
    blob, named = ACTIVE[name]
    with pytest.raises(InputDocumentError) as refused:
        check_input_bytes(blob)
    assert refused.value.reason == "active_content"
    message = str(refused.value)
    assert "(object " in message and named in message, message


def test_an_action_in_a_compressed_object_stream_is_found_by_the_walk() -> None:
    """The byte scan cannot see inside a Flate object stream; the structural walk does."""
    blob, _ = ACTIVE["launch-in-object-stream"]
    assert b"/Launch" not in blob and b"/ObjStm" in blob
    start = blob.index(b"stream", blob.index(b"/ObjStm")) + len(b"stream\n")
    assert b"/Launch" in zlib.decompressobj().decompress(blob[start:])  # it is really there


def test_an_object_no_path_leads_to_is_found_by_the_byte_scan() -> None:
    blob, _ = ACTIVE["launch-unreachable-object"]
    with pytest.raises(InputDocumentError) as refused:
        check_input_bytes(blob)
    assert "(object 6 0: /Launch)" in str(refused.value)


def test_an_ordinary_link_is_not_active_content() -> None:
    assert check_input_bytes(make_pdfs.uri_link_pdf()).page_count == 1


def test_javascript_keeps_its_reason_and_names_the_object() -> None:
    with pytest.raises(InputDocumentError) as refused:
        check_input_bytes(make_pdfs.javascript_pdf())
    assert refused.value.reason == "javascript"
    assert "object 6 0: /OpenAction /JavaScript" in str(refused.value)


@pytest.mark.parametrize("name", sorted(SHADOW))
def test_unsigned_incremental_updates_are_refused_naming_what_they_change(name: str) -> None:
    with pytest.raises(InputDocumentError) as refused:
        check_input_bytes(SHADOW[name])
    assert refused.value.reason == "incremental_update"
    assert "revision 1 changes object " in str(refused.value)
    assert "shadow attack" in str(refused.value)


def test_the_same_documents_saved_as_one_revision_are_accepted() -> None:
    """What the refusal tells the user to do works: one revision, no active content."""
    assert check_input_bytes(make_pdfs.valid_pdf(chinese=False)).page_count == 1
