"""Issue 16 (measure): a job's layout is made when an approval of it arrives, so the
completing approval's first signature does not wait for the anchor search and page walk
(bench/bench_job_daemon.py). The layout made ahead is used only for the very marks and
seal sizes the signature signs with, and one that failed is made again when signing.

The real ``layout_document`` on a real 20-page contract (pdftotext included); the
daemon's config and store are reduced to the two things JobSealing's layout reads."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from contract_pdf import ANCHOR, contract_pdf

from seald.domain import lifecycle
from seald.domain.marks import CrossPage, Mark, PageSet
from seald.domain.model import Document, Principal, Role, Seal, SealRequest, SealType
from seald.service import job_signer
from seald.service.job_signer import JobSealing
from seald.signing.job import layout_document

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
SIZES = {"contract": 40.0, "official": 42.0}
MARKS = (
    Mark("contract", PageSet.parse("last"), anchor_text=ANCHOR),
    Mark("official", PageSet.parse("all"), y_mm=120, cross_page=CrossPage(PageSet.parse("all"))),
)


def _request() -> SealRequest:
    seals = {
        s: Seal(
            s, SealType.CONTRACT, "华夏", s, frozenset({"contract"}), 2, size, certificate_sha256="c1" * 32
        )
        for s, size in SIZES.items()
    }
    return lifecycle.submit_job(
        request_id="r1",
        requester=Principal("zhang", "张", frozenset({Role.REQUESTER}), frozenset(SIZES)),
        seals=seals,
        reason="采购合同",
        category="contract",
        marks=MARKS,
        documents=(Document(0, "合同.pdf", 100, "ab" * 32),),
        now=NOW,
        ttl=timedelta(hours=72),
        host="seal-host",
        max_marks=16,
    )


def _jobs(original: Path, sizes: dict[str, float]) -> JobSealing:
    config = SimpleNamespace(seals={s: SimpleNamespace(size_mm=v) for s, v in sizes.items()})
    store = SimpleNamespace(original_path=lambda request_id, index: original)
    unused: Any = None  # not reached by the layout
    return JobSealing(
        config=lambda: config,  # type: ignore[arg-type,return-value]
        store=store,  # type: ignore[arg-type]
        tokens=unused,
        catalog=unused,
        recorder=unused,
        signers=unused,
        workers=unused,
        seal_image=unused,
        level=unused,
        clock=unused,
        hooks=unused,
    )


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    made: list[Path] = []

    def counted(path: Path, *args: Any, **kwargs: Any) -> Any:
        made.append(path)
        return layout_document(path, *args, **kwargs)

    monkeypatch.setattr(job_signer, "layout_document", counted)
    return made


def test_job_layout_made_ahead_is_the_signatures_layout(tmp_path: Path, calls: list[Path]) -> None:
    original = tmp_path / "contract.pdf"
    original.write_bytes(contract_pdf(20, anchors={20: [(200.0, 200.0)]}))
    request = _request()
    jobs = _jobs(original, SIZES)

    async def run() -> Any:
        jobs.lay_out_ahead(request)  # the first approval
        assert len(calls) == 1
        ahead = await jobs._layout(request, request.documents[0])  # the first signature
        again = await jobs._layout(request, request.documents[0])  # the next seals
        return ahead, again

    ahead, again = asyncio.run(run())
    assert len(calls) == 1  # laid out once, ahead
    assert ahead is again
    assert ahead == layout_document(original, MARKS, seal_sizes_mm=SIZES)
    assert {d.page_ix for d in ahead.drawings} == set(range(20))


def test_job_layout_ahead_is_not_used_for_other_marks_or_sizes(tmp_path: Path, calls: list[Path]) -> None:
    original = tmp_path / "contract.pdf"
    original.write_bytes(contract_pdf(4, anchors={4: [(200.0, 200.0)]}))
    request = _request()
    moved = replace(request, marks=(replace(MARKS[0], x_mm=30), MARKS[1]))
    jobs = _jobs(original, SIZES)

    async def run() -> tuple[Any, Any]:
        jobs.lay_out_ahead(request)
        signed = await jobs._layout(moved, moved.documents[0])
        return signed, await jobs._layout(request, request.documents[0])

    signed, first = asyncio.run(run())
    assert len(calls) == 2  # the moved marks were laid out again, not taken from ahead
    assert signed == layout_document(original, moved.marks, seal_sizes_mm=SIZES)
    assert signed != first

    async def ahead_then_resize() -> Any:
        jobs.lay_out_ahead(request)
        jobs._config = lambda: SimpleNamespace(  # type: ignore[assignment,return-value]
            seals={s: SimpleNamespace(size_mm=30.0 if s == "contract" else v) for s, v in SIZES.items()}
        )
        return await jobs._layout(request, request.documents[0])

    calls.clear()
    after = asyncio.run(ahead_then_resize())
    assert len(calls) == 1  # the earlier layouts were of other sizes
    assert after == layout_document(original, MARKS, seal_sizes_mm={**SIZES, "contract": 30.0})


def test_job_layout_ahead_that_failed_is_made_again_when_signing(tmp_path: Path, calls: list[Path]) -> None:
    original = tmp_path / "contract.pdf"  # not there yet: the layout ahead fails
    request = _request()
    jobs = _jobs(original, SIZES)

    async def run() -> Any:
        jobs.lay_out_ahead(request)
        await asyncio.sleep(0.5)  # it fails in the executor, nobody awaiting it
        original.write_bytes(contract_pdf(3, anchors={3: [(200.0, 200.0)]}))
        return await jobs._layout(request, request.documents[0])

    laid_out = asyncio.run(run())
    assert len(calls) == 2
    assert laid_out == layout_document(original, MARKS, seal_sizes_mm=SIZES)
