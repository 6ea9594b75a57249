"""Benchmark: a sealing job (issue 16) against three one-mark requests, at the signing layer.

A 20-page contract with three seals: the contract seal at the anchor "（盖章）" on the
signature page, a 骑缝章 over all 20 pages, the legal representative's seal beside the
anchor. Same tokens (SoftHSM), same PDF, same images, in this one process; what is timed
is the machine's work from "approved" to the sealed PDF on disk:

- three requests, as today: three ``seal_pdf`` calls in sequence, each reading the
  previous output and writing (fsync, rename) its own, each finding its own anchor;
- the job: ``check_job_marks`` is submit-time work and not timed; the layout is made
  once on the original (``layout_document``: one page-tree walk, one text extraction),
  then one ``seal_job_signature`` per seal in signing order, each reading the previous
  output and writing its own (the job keeps every intermediate file, so a crash resumes).

Both are measured twice: in one step (``seal_pdf`` / ``seal_job_signature``) and through
the daemon's pipeline (``prepare_seal`` / ``sign_prepared`` / ``finish_seal`` / ``publish``
with PreEncodedSigner; ``SealJob(placement=...)`` vs ``SealJob(marks=..., layout=...)``),
which is what seald runs. Rounds alternate which side goes first; medians of wall time
and of CPU (this process plus its children: pdftotext is a subprocess). Target: job
<= 0.6x the three requests.

    .venv/bin/python bench/bench_job.py [--rounds 7] [--pages 20]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pkcs11

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "softhsm-fixtures"), str(ROOT / "tests" / "assets")]

from build_fixtures import build_fixtures  # noqa: E402
from contract_pdf import ANCHOR, contract_pdf  # noqa: E402
from fixture_layout import load_fixtures  # noqa: E402

from seald.domain.marks import CrossPage, Mark, PageSet, marks_of_seal, signing_order  # noqa: E402
from seald.signing.job import check_job_marks, layout_document, seal_job_signature  # noqa: E402
from seald.signing.pades import SealSpec, seal_pdf, token_signer  # noqa: E402
from seald.signing.pipeline import SealJob, finish_seal, prepare_seal, publish, sign_prepared  # noqa: E402
from seald.signing.placement import PlacementSpec  # noqa: E402
from seald.signing.seal_image import SealImageSpec, render_seal_png  # noqa: E402

SIZES = {"contract": 40.0, "official": 42.0, "legal_rep": 20.0}
MARKS = [
    Mark("contract", PageSet.parse("last"), anchor_text=ANCHOR),
    Mark("official", PageSet.parse("all"), y_mm=120, cross_page=CrossPage(PageSet.parse("all"))),
    Mark("legal_rep", PageSet.parse("last"), anchor_text=ANCHOR, x_mm=35),
]
# The same three marks as today's one-mark requests (page 0 = the last page).
REQUESTS = [
    ("contract", PlacementSpec(page=0, x_mm=0, y_mm=0, size_mm=40, anchor_text=ANCHOR)),
    ("official", PlacementSpec(page=0, x_mm=0, y_mm=120, size_mm=42, cross_page=True)),
    ("legal_rep", PlacementSpec(page=0, x_mm=35, y_mm=0, size_mm=20, anchor_text=ANCHOR)),
]
# Two tokens in the fixtures: the legal representative's mark uses the contract key.
KEYS = {"contract": "contract", "official": "official", "legal_rep": "contract"}


def cpu_s() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def measure(run: Callable[[int], None], round_no: int) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), cpu_s()
    run(round_no)
    return time.perf_counter() - wall, cpu_s() - cpu


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--pages", type=int, default=20)
    args = parser.parse_args()
    load_at_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-job-") as tmp_name:
        tmp = Path(tmp_name)
        build_fixtures(tmp / "fx")
        fx = load_fixtures(tmp / "fx")
        os.environ["SOFTHSM2_CONF"] = str(fx.softhsm2_conf)
        contract_png = render_seal_png(SealImageSpec("contract", "华夏示例科技有限公司", "合同专用章"), 40.0)
        images = {
            "contract": contract_png,
            "official": contract_png,
            "legal_rep": render_seal_png(SealImageSpec("legal_representative", "", "", "王建国"), 20.0),
        }
        src = tmp / "contract.pdf"
        src.write_bytes(contract_pdf(args.pages, anchors={args.pages: [(200.0, 200.0)]}))
        check_job_marks(src, MARKS, seal_sizes_mm=SIZES)  # submit time: not timed
        lib = pkcs11.lib(str(fx.module))
        sessions = {
            seal_id: lib.get_token(token_label=fx.seals[seal_id].token_label).open(
                user_pin=fx.seals[seal_id].user_pin
            )
            for seal_id in ("contract", "official")
        }
        try:
            signers = {
                seal_id: token_signer(sessions[key], fx.seals[key].key_label, fx.seals[key].key_label)
                for seal_id, key in KEYS.items()
            }

            def spec(seal_id: str, placement: PlacementSpec) -> SealSpec:
                return SealSpec(
                    seal_png=images[seal_id],
                    placement=placement,
                    reason="bench",
                    location="bench",
                    field_name=f"Seal-{seal_id}",
                )

            def three_requests(round_no: int) -> None:
                current = src
                for step, (seal_id, placement) in enumerate(REQUESTS, start=1):
                    out = tmp / f"requests-{round_no}-{step}.pdf"
                    seal_pdf(current, out, signer=signers[seal_id], spec=spec(seal_id, placement))
                    current = out

            def job(round_no: int) -> None:
                layout = layout_document(src, MARKS, seal_sizes_mm=SIZES)
                current = src
                for step, seal_id in enumerate(signing_order(MARKS), start=1):
                    out = tmp / f"job-{round_no}-{step}.pdf"
                    seal_job_signature(
                        current,
                        out,
                        signer=signers[seal_id],
                        spec=spec(seal_id, PlacementSpec(0, 0, 0, SIZES[seal_id])),
                        marks=marks_of_seal(MARKS, seal_id),
                        layout=layout,
                    )
                    current = out

            def pipeline_job(seal_id: str, src_: Path, out: Path, **kw: Any) -> SealJob:
                return SealJob(
                    input_path=src_,
                    output_path=out,
                    signing_cert_der=signers[seal_id].signing_cert.dump(),  # type: ignore[union-attr]
                    chain_der=(),
                    seal_png=images[seal_id],
                    reason="bench",
                    location="bench",
                    field_name=f"Seal-{seal_id}",
                    **kw,
                )

            def run_pipeline(seal_id: str, job_: SealJob) -> None:
                prepared = prepare_seal(job_)
                finish_seal(job_, prepared, sign_prepared(signers[seal_id], prepared))
                publish(prepared, job_.output_path)

            def three_requests_pipeline(round_no: int) -> None:
                current = src
                for step, (seal_id, placement) in enumerate(REQUESTS, start=1):
                    out = tmp / f"p-requests-{round_no}-{step}.pdf"
                    run_pipeline(seal_id, pipeline_job(seal_id, current, out, placement=placement))
                    current = out

            def job_pipeline(round_no: int) -> None:
                layout = layout_document(src, MARKS, seal_sizes_mm=SIZES)
                current = src
                for step, seal_id in enumerate(signing_order(MARKS), start=1):
                    out = tmp / f"p-job-{round_no}-{step}.pdf"
                    placement = PlacementSpec(0, 0, 0, SIZES[seal_id])
                    marks = marks_of_seal(MARKS, seal_id)
                    run_pipeline(
                        seal_id,
                        pipeline_job(seal_id, current, out, placement=placement, marks=marks, layout=layout),
                    )
                    current = out

            sides = {
                "one step": (three_requests, job),
                "daemon pipeline": (three_requests_pipeline, job_pipeline),
            }
            results = {path: timed(args.rounds, *runs) for path, runs in sides.items()}
        finally:
            for session in sessions.values():
                session.close()

    print(f"{args.pages}-page contract, three seals (anchor, 骑缝章 over all pages, anchor + offset)")
    print(f"rounds {args.rounds}, load average at start {load_at_start:.2f}, end {os.getloadavg()[0]:.2f}")
    for path, times in results.items():
        print(f"\n{path}: {PATHS[path]}")
        print(f"{'':<28}{'wall ms':>10}{'CPU ms':>10}")
        for name, label in (("requests", "three one-mark requests"), ("job", "one job (three signatures)")):
            print(f"{label:<28}{median(times, name, 0):>10.1f}{median(times, name, 1):>10.1f}")
        print(
            f"job / requests: wall {median(times, 'job', 0) / median(times, 'requests', 0):.2f}x, "
            f"CPU {median(times, 'job', 1) / median(times, 'requests', 1):.2f}x (target <= 0.60x)"
        )
    return 0


PATHS = {
    "one step": "seal_pdf vs seal_job_signature (pyHanko's PKCS11Signer, CMS built per signature)",
    "daemon pipeline": "prepare_seal / sign_prepared / finish_seal / publish with PreEncodedSigner, "
    "SealJob(placement) vs SealJob(marks, layout): what seald runs",
}


def timed(
    rounds: int, requests: Callable[[int], None], job: Callable[[int], None]
) -> dict[str, list[tuple[float, float]]]:
    requests(-1)  # warm both: imports, image conversions, CMS templates
    job(-1)
    times: dict[str, list[tuple[float, float]]] = {"requests": [], "job": []}
    for round_no in range(rounds):
        order = [("requests", requests), ("job", job)]
        for name, run in order if round_no % 2 == 0 else order[::-1]:
            times[name].append(measure(run, round_no))
    return times


def median(times: dict[str, list[tuple[float, float]]], name: str, ix: int) -> float:
    return statistics.median(t[ix] for t in times[name]) * 1000


if __name__ == "__main__":
    raise SystemExit(main())
