"""Input checks on PDFs before sealing: every bad input raises InputDocumentError
(with a reason code and a message saying what to do), and nothing else."""

from __future__ import annotations

from pathlib import Path

import make_pdfs
import pytest

from seald.signing.errors import InputDocumentError
from seald.signing.input_checks import check_input_bytes, check_input_pdf

MAX = 5_000_000
CORPUS = make_pdfs.malformed_corpus()
MUTATIONS = make_pdfs.mutated_pdfs(make_pdfs.valid_pdf(chinese=False), count=60)


def _write(tmp_path: Path, data: bytes, name: str = "in.pdf") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_valid_pdf_passes_with_facts(tmp_path: Path) -> None:
    data = make_pdfs.valid_pdf(pages=3)
    facts = check_input_pdf(_write(tmp_path, data), MAX)
    assert facts.page_count == 3
    assert facts.size == len(data)
    assert not facts.has_javascript
    assert facts.existing_signatures == 0
    assert facts.pdf_version == "1.7"
    assert len(facts.sha256) == 64


def test_rotated_and_offset_pages_pass(tmp_path: Path) -> None:
    data = make_pdfs.valid_pdf(rotate=90, media_box=(100, 50, 695, 892))
    assert check_input_pdf(_write(tmp_path, data), MAX).page_count == 1


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_malformed_pdf_is_refused_with_its_reason(tmp_path: Path, name: str) -> None:
    with pytest.raises(InputDocumentError) as err:
        check_input_pdf(_write(tmp_path, CORPUS[name]), MAX)
    assert err.value.reason == make_pdfs.expected_reason(name)
    # The message tells the user what to do, and never quotes document content.
    message = str(err.value)
    assert message and ";" in message
    assert "app.alert" not in message


@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_random_mutation_raises_only_input_document_error(name: str) -> None:
    try:
        check_input_bytes(MUTATIONS[name])
    except InputDocumentError as err:
        assert err.reason
    # Passing is allowed: some mutations (inside a string) still give a valid PDF.


def test_mutation_corpus_really_breaks_documents() -> None:
    refused = 0
    for data in MUTATIONS.values():
        try:
            check_input_bytes(data)
        except InputDocumentError:
            refused += 1
    assert refused >= len(MUTATIONS) // 2


def test_too_large_is_refused_before_parsing(tmp_path: Path) -> None:
    data = make_pdfs.valid_pdf()
    with pytest.raises(InputDocumentError) as err:
        check_input_pdf(_write(tmp_path, data), max_bytes=len(data) - 1)
    assert err.value.reason == "too_large"
    assert check_input_pdf(_write(tmp_path, data), max_bytes=len(data)).size == len(data)


def test_missing_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputDocumentError) as err:
        check_input_pdf(tmp_path / "nope.pdf", MAX)
    assert err.value.reason == "unreadable"


def test_javascript_can_be_reported_instead_of_refused(tmp_path: Path) -> None:
    facts = check_input_pdf(
        _write(tmp_path, make_pdfs.javascript_pdf()), MAX, allow_javascript=True
    )
    assert facts.has_javascript
