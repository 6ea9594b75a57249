"""PDF mutation fuzzer over the input checks (issue 8): clean refusal or acceptance only.

Hypothesis mutates valid PDFs (tests/assets/pdf_mutations.py) and feeds them to
``check_input_pdf`` in process: the answer is facts about an acceptable PDF or an
InputDocumentError with a reason and a message — never another exception, never a hang
(each example has a deadline, the test a timeout). The same mutations go through
SubmitRequest against the real daemon in tests/integration/test_fuzz_grpc.py.

SEAL_FUZZ_SCALE=<n> (default 1) multiplies the number of examples for longer runs.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from pdf_mutations import mutated_pdf

from seald.signing.errors import InputDocumentError
from seald.signing.input_checks import check_input_pdf

SCALE = int(os.environ.get("SEAL_FUZZ_SCALE", "1"))


@pytest.mark.timeout(600 * SCALE)
def test_mutated_pdfs_are_refused_cleanly_or_accepted(tmp_path: Path) -> None:
    seen: dict[str, int] = {}

    @settings(
        max_examples=200 * SCALE,
        deadline=timedelta(seconds=10),
        derandomize=SCALE == 1,  # CI: the same documents each run; longer runs explore
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(data=mutated_pdf())
    def fuzz(data: bytes) -> None:
        path = tmp_path / "mutated.pdf"
        path.write_bytes(data)
        try:
            facts = check_input_pdf(path, max_bytes=16 * 1024 * 1024)
        except InputDocumentError as refused:
            assert refused.reason and str(refused), "a refusal must say why"
            seen[refused.reason] = seen.get(refused.reason, 0) + 1
            return
        assert facts.page_count >= 1 and facts.size == len(data)
        seen["accepted"] = seen.get("accepted", 0) + 1

    fuzz()
    # The mutations both broke documents (in several ways) and left some acceptable.
    assert seen.get("accepted", 0) > 0, seen
    assert len([r for r in seen if r != "accepted"]) >= 3, seen
