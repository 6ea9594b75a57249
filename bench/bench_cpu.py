"""CPU per one-page document, in one process, four ways side by side (issue 20).

    .venv/bin/python bench/bench_cpu.py [--docs 300]

Same SoftHSM token, same PDFs, same seal image, one after another in this process,
CPU from getrusage (user + system; wall time on a shared machine says little):

1. pyHanko's documented loop (bench/documented_loop.py, the fixed outside baseline);
2. our one-step ``seal_pdf`` loop (PKCS11Signer inside pyHanko's PdfSigner);
3. the pipeline's prepare / C_Sign / finish with pyHanko's plain ExternalSigner
   (``pre_encoded=False``: the daemon's CMS work before issue 20);
4. the same with ``PreEncodedSigner`` (the daemon now: certificates, signed attributes
   and CMS container encoded once per certificate).

The daemon runs 3/4 split over its worker processes, plus its own per-document work
(gRPC, ledger records, scheduling): bench_seal.py measures that part.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pkcs11

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "bench"), str(ROOT / "softhsm-fixtures"), str(ROOT / "tests" / "assets")]

from build_fixtures import build_fixtures  # noqa: E402
from documented_loop import documented_pyhanko_loop  # noqa: E402
from fixture_layout import load_fixtures  # noqa: E402
from make_pdfs import valid_pdf  # noqa: E402

from seald.signing.pades import SealSpec, seal_pdf, token_signer  # noqa: E402
from seald.signing.pipeline import SealJob, finish_seal, prepare_seal, publish, sign_prepared  # noqa: E402
from seald.signing.placement import PlacementSpec  # noqa: E402
from seald.signing.seal_image import SealImageSpec, render_seal_png  # noqa: E402

PLACEMENT = PlacementSpec(page=0, x_mm=150, y_mm=240, size_mm=40)


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed(sources: list[Path], seal_one: Callable[[int, Path], None]) -> tuple[float, float]:
    """(CPU ms per document, documents per second of wall time)."""
    seal_one(0, sources[0])  # warm: imports, first template, image conversion
    started, cpu_started = time.perf_counter(), cpu_s()
    for i, src in enumerate(sources[1:], start=1):
        seal_one(i, src)
    n = len(sources) - 1
    return (cpu_s() - cpu_started) / n * 1000, n / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--docs", type=int, default=300)
    args = parser.parse_args()
    load_at_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-cpu-") as tmp_name:
        tmp = Path(tmp_name)
        build_fixtures(tmp / "fx")
        fx = load_fixtures(tmp / "fx")
        os.environ["SOFTHSM2_CONF"] = str(fx.softhsm2_conf)
        seal = fx.seals["contract"]
        png = render_seal_png(SealImageSpec("contract", "华夏示例科技有限公司", "合同专用章"), 40.0)
        sources = []
        one_page = valid_pdf(1)
        for i in range(args.docs + 1):
            path = tmp / f"doc-{i:05d}.pdf"
            path.write_bytes(one_page + f"\n% {i}\n".encode())
            sources.append(path)
        out = tmp / "out"
        out.mkdir()

        documented = documented_pyhanko_loop(
            fx.module, seal.token_label, seal.user_pin, seal.key_label, png, sources[1:], out
        )
        rows = [("documented pyHanko loop", documented.cpu_ms_per_doc, documented.docs_per_s)]
        token = pkcs11.lib(str(fx.module)).get_token(token_label=seal.token_label)
        with token.open(user_pin=seal.user_pin) as session:
            signer = token_signer(session, key_label=seal.key_label, cert_label=seal.key_label)
            cert_der: bytes = signer.signing_cert.dump()  # type: ignore[union-attr]

            def one_step(i: int, src: Path) -> None:
                seal_pdf(
                    src,
                    out / f"one-step-{i}.pdf",
                    signer=signer,
                    spec=SealSpec(
                        seal_png=png,
                        placement=PLACEMENT,
                        reason="bench",
                        location="bench",
                        field_name=f"Seal-{i}",
                    ),
                )

            def pipeline(pre_encoded: bool) -> Callable[[int, Path], None]:
                def run(i: int, src: Path) -> None:
                    job = SealJob(
                        input_path=src,
                        output_path=out / f"pipeline-{pre_encoded}-{i}.pdf",
                        signing_cert_der=cert_der,
                        chain_der=(),
                        seal_png=png,
                        placement=PLACEMENT,
                        reason="bench",
                        location="bench",
                        field_name=f"Seal-{i}",
                    )
                    prepared = prepare_seal(job, pre_encoded=pre_encoded)
                    signature = sign_prepared(signer, prepared)
                    finish_seal(job, prepared, signature, pre_encoded=pre_encoded)
                    publish(prepared, job.output_path)

                return run

            rows.append(("seal_pdf loop (one step)", *timed(sources, one_step)))
            rows.append(("pipeline, pyHanko ExternalSigner", *timed(sources, pipeline(False))))
            rows.append(("pipeline, PreEncodedSigner", *timed(sources, pipeline(True))))

    print(f"load average (2 cores): {load_at_start:.1f} at the start, {os.getloadavg()[0]:.1f} at the end")
    print(f"CPU per one-page document, {args.docs} documents each, one process, same token")
    base = rows[0][1]
    for label, cpu_ms, rate in rows:
        ratio = base / cpu_ms
        print(f"  {label:34s} {cpu_ms:6.2f} ms  ({ratio:5.2f}x less CPU than documented; {rate:6.1f} docs/s)")
    before, after = rows[2][1], rows[3][1]
    print(f"pipeline CPU per document: {before:.2f} -> {after:.2f} ms ({after / before:.0%})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
