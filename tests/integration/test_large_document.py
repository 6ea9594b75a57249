"""A large PDF through a real seald in bounded memory, sealed correctly (issue 8).

Bounded size for CI: 64 MiB (bench/bench_large.py runs the 200 MiB case). The document
is uploaded in chunks, checked, approved, sealed and downloaded by a real seald over
mTLS; the seald process's peak RSS must grow by well under the document's size (the
file is never held in memory whole), and pdfsig must find the signature valid with a
/ByteRange from byte 0 to the end of the file (pyHanko issue #336: broken signatures
reported on large files).
"""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from fixture_layout import SealFixtures
from large_pdf import write_large_pdf
from make_pdfs import javascript_pdf

from sealclient.errors import SealClientError
from seald_testing.daemon import make_pdf, unlock_first_use
from seald_testing.large_flow import PLACEMENT, byte_range_covers_file, run_large_flow
from seald_testing.plugin import DaemonFactory

SIZE = 64 << 20


def test_large_document_is_sealed_validly_in_bounded_memory(
    daemon_factory: DaemonFactory, fresh_seal_fixtures: SealFixtures, tmp_path: Path
) -> None:
    source = tmp_path / "large.pdf"
    pages = write_large_pdf(source, SIZE)
    assert pages > 80
    d = daemon_factory()
    with d.client("liu.yang") as custodian:
        unlock_first_use(custodian, fresh_seal_fixtures, "contract")
    # Warm-up: lazily loaded code and first-use caches are not growth caused by size.
    run_large_flow(d, make_pdf(tmp_path / "small.pdf"), tmp_path / "small.sealed.pdf")
    figures = run_large_flow(d, source, tmp_path / "large.sealed.pdf")
    d.stop()

    assert figures.signed.valid, figures.signed.text
    assert figures.signed.total_document_signed, figures.signed.text
    assert byte_range_covers_file(figures.signed, figures.sealed_size), figures.signed.text
    # The original is an unchanged prefix of the sealed file (incremental update).
    with source.open("rb") as original, (tmp_path / "large.sealed.pdf").open("rb") as sealed:
        while block := original.read(1 << 20):
            assert sealed.read(len(block)) == block
    # Reading the whole file once would add >= 64 MiB; streaming stays far below.
    assert figures.growth_mib < SIZE / (1 << 20) / 2, f"peak RSS grew {figures.growth_mib:.1f} MiB"


def test_input_checked_in_a_worker_process_still_names_what_is_wrong(
    daemon_factory: DaemonFactory, tmp_path: Path
) -> None:
    """The input checks run in a seal worker process; their refusal crosses back intact."""
    scripted = tmp_path / "scripted.pdf"
    scripted.write_bytes(javascript_pdf())
    d = daemon_factory()
    with d.client("zhang.wei") as requester, pytest.raises(SealClientError) as refused:
        requester.submit(
            [scripted], seal_id="contract", reason="r", category="contract", placement=PLACEMENT
        )
    assert refused.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert refused.value.reason == "javascript"
    assert "scripted.pdf" in refused.value.message and "JavaScript" in refused.value.message
    with d.client("zhang.wei") as requester:
        assert requester.list() == []  # nothing half-stored
