"""The three-step sealing pipeline (issue 8): prepare and finish in worker processes,
only the raw signature on the token's thread; all documents of a request or none.

Real SoftHSM token through the daemon's TokenManager, real spawned worker processes,
pdfsig and qpdf as independent verifiers.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from fixture_layout import SealFixtures
from make_pdfs import valid_pdf

from seald.domain.errors import PreconditionFailed
from seald.service.seal_workers import SealWorkers, SignerCache, seal_documents, start_prepare
from seald.signing.errors import PlacementError
from seald.signing.pipeline import SealJob
from seald.signing.placement import PlacementSpec
from seald_testing.images import contract_seal_png
from seald_testing.large_flow import byte_range_covers_file, pdfsig
from seald_testing.tokens import unlocked_tokens


@pytest.fixture(scope="module")
def workers() -> Iterator[SealWorkers]:
    """One pool for the module: spawning workers (imports) is the slow part."""
    pool = SealWorkers(2)
    yield pool
    pool.shutdown()


PNG = contract_seal_png()


def _jobs(tmp: Path, pages: list[int], placement: PlacementSpec) -> list[SealJob]:
    jobs = []
    for i, count in enumerate(pages):
        source = tmp / f"{i:04d}.pdf"
        source.write_bytes(valid_pdf(count, chinese=False))
        jobs.append(
            SealJob(
                input_path=source,
                output_path=tmp / f"{i:04d}.sealed.pdf",
                signing_cert_der=b"",
                chain_der=(),
                seal_png=PNG,
                placement=placement,
                reason="pipeline test",
                location="test",
                field_name=f"Seal-{i}",
            )
        )
    return jobs




def _leftovers(tmp: Path) -> list[str]:
    return sorted(p.name for p in tmp.iterdir() if p.name.endswith(".part") or ".sealed." in p.name)


@pytest.mark.parametrize("cross_page", [False, True], ids=["box", "cross-page"])
def test_r13_pipeline_seals_every_document_validly(
    fresh_seal_fixtures: SealFixtures, tmp_path: Path, workers: SealWorkers, cross_page: bool
) -> None:
    jobs = _jobs(
        tmp_path,
        [2, 3, 2, 4, 2],
        PlacementSpec(page=0, x_mm=150, y_mm=240, size_mm=40, cross_page=cross_page),
    )

    async def run() -> list[tuple[str, int]]:
        tokens = await unlocked_tokens(fresh_seal_fixtures)
        try:
            results = await seal_documents(
                workers, tokens, "contract", jobs, key_label=fresh_seal_fixtures.seals["contract"].key_label
            )
        finally:
            await tokens.close()
        return [(r.sha256, r.size) for r in results]

    results = asyncio.run(run())
    assert len(results) == len(jobs)
    for job, (_, size) in zip(jobs, results, strict=True):
        signed = pdfsig(job.output_path)
        assert signed.valid and signed.total_document_signed, signed.text
        assert byte_range_covers_file(signed, size)
        assert job.output_path.stat().st_size == size
        # The original is an unchanged prefix (incremental update), and qpdf agrees.
        assert job.output_path.read_bytes().startswith(job.input_path.read_bytes())
        check = subprocess.run(["qpdf", "--check", str(job.output_path)], capture_output=True, check=False)
        assert check.returncode == 0, check.stdout
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]


def test_r15_one_bad_document_releases_none(
    fresh_seal_fixtures: SealFixtures, tmp_path: Path, workers: SealWorkers
) -> None:
    # Page 3 exists in every document but the third: that one cannot be sealed.
    jobs = _jobs(tmp_path, [3, 3, 1, 3, 3, 3], PlacementSpec(page=3, x_mm=150, y_mm=240, size_mm=40))

    async def run() -> None:
        tokens = await unlocked_tokens(fresh_seal_fixtures)
        try:
            with pytest.raises(PlacementError):
                await seal_documents(
                    workers,
                    tokens,
                    "contract",
                    jobs,
                    key_label=fresh_seal_fixtures.seals["contract"].key_label,
                )
        finally:
            await tokens.close()

    asyncio.run(run())
    assert _leftovers(tmp_path) == []


def test_r15_token_locked_mid_batch_fails_closed(
    fresh_seal_fixtures: SealFixtures, tmp_path: Path, workers: SealWorkers
) -> None:
    jobs = _jobs(tmp_path, [5] * 8, PlacementSpec(page=0, x_mm=150, y_mm=240, size_mm=40))

    async def run() -> None:
        tokens = await unlocked_tokens(fresh_seal_fixtures)
        try:
            sealing = asyncio.create_task(
                seal_documents(
                    workers,
                    tokens,
                    "contract",
                    jobs,
                    key_label=fresh_seal_fixtures.seals["contract"].key_label,
                )
            )
            # Lock once the first document is being prepared: the batch is in flight.
            while not any(p.name.endswith(".part") for p in tmp_path.iterdir()):
                assert not sealing.done(), "the batch finished before it could be interrupted"
                await asyncio.sleep(0.002)
            await tokens.lock("contract")
            with pytest.raises(PreconditionFailed):
                await sealing
        finally:
            await tokens.close()

    asyncio.run(run())
    assert _leftovers(tmp_path) == []


def test_r15_token_locked_before_an_early_preparation_is_used_leaves_no_temp_file(
    fresh_seal_fixtures: SealFixtures, tmp_path: Path, workers: SealWorkers
) -> None:
    """A document prepared before its intent record (issue 8) whose token is locked before
    the signer reads its certificate: its temp file goes (the soak found one left)."""
    (tmp_path / "first").mkdir()
    (tmp_path / "later").mkdir()
    placement = PlacementSpec(page=0, x_mm=150, y_mm=240, size_mm=40)
    first, later = _jobs(tmp_path / "first", [1], placement), _jobs(tmp_path / "later", [1], placement)
    key_label = fresh_seal_fixtures.seals["contract"].key_label

    async def run() -> None:
        tokens = await unlocked_tokens(fresh_seal_fixtures)
        cache = SignerCache()
        try:
            await seal_documents(workers, tokens, "contract", first, key_label=key_label, signers=cache)
            early = start_prepare(workers, tokens, cache, "contract", later)
            assert early, "no early preparation started: the cache should know this session"
            await tokens.lock("contract")
            with pytest.raises(PreconditionFailed):
                await seal_documents(
                    workers, tokens, "contract", later, key_label=key_label, signers=cache, early=early
                )
            await asyncio.wait([e.prepared for e in early])
            await asyncio.sleep(0.05)  # the done callbacks that delete
        finally:
            await tokens.close()

    asyncio.run(run())
    assert _leftovers(tmp_path / "later") == []
