"""Issue 20: how seal_documents cuts a request into units of work (pure; no workers).

A request of one document, and a document prepared early, keep the one-document path
(latency, issue 8); a volume chunk goes to the workers and the token in groups of up to
MAX_GROUP, in job order, with every worker still getting at least two groups.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from seald.service.seal_workers import MAX_GROUP, _units
from seald.signing.pipeline import SealJob
from seald.signing.placement import PlacementSpec


def _jobs(n: int) -> list[SealJob]:
    return [
        SealJob(
            input_path=Path(f"{i}.pdf"),
            output_path=Path(f"{i}.sealed.pdf"),
            signing_cert_der=b"",
            chain_der=(),
            seal_png=b"png",
            placement=PlacementSpec(page=1, x_mm=10, y_mm=10, size_mm=40),
            reason="r",
            location="l",
            field_name=f"Seal-{i}",
        )
        for i in range(n)
    ]


def _shape(n: int, workers: int, early: frozenset[int] = frozenset()) -> list[tuple[str, list[int]]]:
    jobs = _jobs(n)
    loop = asyncio.new_event_loop()
    try:
        futures: list[Any] = [loop.create_future() if i in early else None for i in range(n)]

        def one(job: SealJob, fut: Any) -> tuple[str, list[int]]:
            return ("one", [jobs.index(job)])

        def group(batch: list[SealJob]) -> tuple[str, list[int]]:
            return ("group", [jobs.index(j) for j in batch])

        return _units(jobs, futures, workers, one, group)  # type: ignore[arg-type,return-value]
    finally:
        loop.close()


def test_volume_a_chunk_goes_in_groups_of_max_group_in_order() -> None:
    units = _shape(256, 2)
    assert {kind for kind, _ in units} == {"group"}
    assert [len(ix) for _, ix in units] == [MAX_GROUP] * (256 // MAX_GROUP)
    assert [i for _, ix in units for i in ix] == list(range(256))


def test_volume_small_requests_and_early_preparations_stay_one_document() -> None:
    assert _shape(1, 2) == [("one", [0])]
    assert _shape(3, 2) == [("one", [0]), ("one", [1]), ("one", [2])]
    # 12 documents, 2 workers: groups of 3, so each worker gets two.
    assert [len(ix) for _, ix in _shape(12, 2)] == [3, 3, 3, 3]
    units = _shape(40, 2, early=frozenset({0, 1}))
    assert units[:2] == [("one", [0]), ("one", [1])]
    assert [i for _, ix in units for i in ix] == list(range(40))
    assert max(len(ix) for _, ix in units) == MAX_GROUP
