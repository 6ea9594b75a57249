"""B-LT/B-LTA through the three-step pipeline (issues 6 and 8): prepare and finish in a
real spawned worker process, only the raw signature on this (the token's) thread, with a
live certomancer PKI (CA, TSA, OCSP, CRL) on loopback and the key on SoftHSM.

The output must mean what one-step ``seal_pdf`` (pyHanko's ``PdfSigner.sign_pdf``) produces
at the same level: the same revisions, the same DSS (certificates, OCSP responses, CRLs),
the same signature and document timestamps, verified offline by signing/verify.py, pdfsig
and qpdf (SEAL-RULES R14). Failures of the TSA or of the seal certificate's validation
keep failing closed with the same named errors, and leave no file behind (R15).
"""

from __future__ import annotations

import asyncio
import io
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pkcs11
import pytest
from asn1crypto import ocsp, x509
from fixture_layout import SealFixtures
from make_pdfs import valid_pdf
from pyhanko.pdf_utils.reader import PdfFileReader

from seald.service.seal_workers import SealWorkers
from seald.signing.errors import SigningError
from seald.signing.levels import LevelSettings, SignatureLevel
from seald.signing.pades import SealSpec, seal_pdf, token_signer
from seald.signing.pipeline import SealJob, discard, finish_seal, prepare_seal, publish, sign_prepared
from seald.signing.placement import PlacementSpec
from seald.signing.verify import verify_pdf
from seald_testing.images import contract_seal_png
from seald_testing.ltv_pki import LivePki

PLACEMENT = PlacementSpec(page=0, x_mm=150, y_mm=230, size_mm=40)
PNG = contract_seal_png()


@pytest.fixture(scope="module")
def workers() -> Iterator[SealWorkers]:
    pool = SealWorkers(1)
    yield pool
    pool.shutdown()


def _level(pki: LivePki, level: SignatureLevel, tsa_url: str = "") -> LevelSettings:
    return LevelSettings(
        level=level, tsa_url=tsa_url or pki.tsa_url, trust_roots_pem=(pki.root_pem,), timeout_s=3
    )


def _job(src: Path, out: Path, level: LevelSettings, cert_der: bytes) -> SealJob:
    return SealJob(
        input_path=src,
        output_path=out,
        signing_cert_der=cert_der,
        chain_der=(),
        seal_png=PNG,
        placement=PLACEMENT,
        reason="合同盖章",
        location="北京",
        field_name="Seal1",
        level=level,
    )


def _pipeline(workers: SealWorkers, signer: object, job: SealJob) -> None:
    """prepare (worker process) -> raw signature (here) -> finish (a FRESH worker process,
    as in the daemon where any worker may finish: nothing may rely on state left in the
    preparing process, e.g. asn1crypto classes already set up) -> publish."""
    finisher = SealWorkers(1)

    async def run() -> None:
        prepared = await workers.run(prepare_seal, job)
        try:
            # On a thread of its own, like the daemon's token thread (it runs its own loop).
            signature = await asyncio.to_thread(sign_prepared, signer, prepared)  # type: ignore[arg-type]
            await finisher.run(finish_seal, job, prepared, signature)
        except BaseException:
            discard(prepared)
            raise
        publish(prepared, job.output_path)

    try:
        asyncio.run(run())
    finally:
        finisher.shutdown()


def _dss_summary(path: Path) -> dict[str, object]:
    """What a DSS means, without the bytes that change per fetch (OCSP produced_at).

    CRLs are left out: pyHanko fetches one only when an OCSP answer was not good at
    the validation context's moment (1 s tolerance; a loaded machine can be slower
    than that between the context and the fetch), in one-step signing as in the
    pipeline, so whether one is embedded varies between runs of either.
    """
    reader = PdfFileReader(io.BytesIO(path.read_bytes()))
    dss = reader.root["/DSS"]
    certs = sorted(
        x509.Certificate.load(ref.get_object().data).subject.human_friendly for ref in dss["/Certs"]
    )
    ocsp_for = sorted(
        ocsp.OCSPResponse.load(ref.get_object().data).basic_ocsp_response["tbs_response_data"][
            "responses"
        ][0]["cert_id"]["serial_number"].native
        for ref in dss.get("/OCSPs", [])
    )
    return {
        "keys": sorted(str(k) for k in dss if k != "/CRLs"),
        "certs": certs,
        "ocsp_serials": ocsp_for,
        "vri": len(dss.get("/VRI", {})),
        "revisions": reader.xrefs.total_revisions,
        "signatures": [s.sig_object_type for s in reader.embedded_signatures],
    }


@pytest.mark.parametrize("level", [SignatureLevel.B_LT, SignatureLevel.B_LTA], ids=["B-LT", "B-LTA"])
def test_r14_pipeline_ltv_means_what_one_step_signing_means(
    level: SignatureLevel,
    token_session: pkcs11.Session,
    seal_fixtures: SealFixtures,
    pki: LivePki,
    workers: SealWorkers,
    tmp_path: Path,
) -> None:
    src = tmp_path / "in.pdf"
    src.write_bytes(valid_pdf(2, chinese=False))
    label = seal_fixtures.seals["contract"].key_label
    signer = token_signer(token_session, label, label, signing_cert_der=pki.seal_cert_der)
    settings = _level(pki, level)

    piped = tmp_path / "pipeline.pdf"
    _pipeline(workers, signer, _job(src, piped, settings, pki.seal_cert_der))
    one_step = tmp_path / "one-step.pdf"
    seal_pdf(
        src,
        one_step,
        signer=signer,
        spec=SealSpec(
            seal_png=PNG,
            placement=PLACEMENT,
            reason="合同盖章",
            location="北京",
            field_name="Seal1",
            level=settings,
        ),
    )

    assert piped.read_bytes().startswith(src.read_bytes())  # an incremental update
    summary = _dss_summary(piped)
    assert summary == _dss_summary(one_step)
    # The DSS proves the seal certificate and the TSA's with OCSP (good answers make the
    # CRLs unnecessary: certomancer's certificates name both, pyHanko asks OCSP first).
    seal_serial = x509.Certificate.load(pki.seal_cert_der).serial_number
    assert seal_serial in summary["ocsp_serials"] and len(summary["ocsp_serials"]) == 2, summary  # type: ignore[operator, arg-type]
    expected = ["/Sig", "/DocTimeStamp"] if level is SignatureLevel.B_LTA else ["/Sig"]
    assert summary["signatures"] == expected

    checks = verify_pdf(piped, [pki.root_pem])
    assert [c.kind for c in checks] == [
        "signature",
        *(["document_timestamp"] if level is SignatureLevel.B_LTA else []),
    ]
    sig = checks[0]
    assert sig.intact and sig.valid and sig.trusted
    assert sig.timestamp_time is not None and sig.timestamp_valid
    assert sig.revocation == "good"  # from the DSS alone: offline, hard-fail
    assert sig.changed_after == "validation data and timestamps only (long-term validation)"
    if level is SignatureLevel.B_LTA:
        assert checks[1].valid and checks[1].trusted and checks[1].timestamp_time is not None

    report = subprocess.run(["pdfsig", "-nocert", str(piped)], capture_output=True, text=True, check=False)
    # pdfsig checks the seal; it lists a document timestamp (ETSI.RFC3161) without checking it.
    assert report.stdout.count("Signature is Valid") == 1, report.stdout
    assert ("Seal1-DocTS" in report.stdout) is (level is SignatureLevel.B_LTA), report.stdout
    qpdf = subprocess.run(["qpdf", "--check", str(piped)], capture_output=True, text=True, check=False)
    assert qpdf.returncode == 0, qpdf.stdout + qpdf.stderr
    assert not list(tmp_path.glob("*.part"))


def test_r14_pipeline_ltv_refuses_a_revoked_seal_certificate_before_signing(
    token_session: pkcs11.Session,
    seal_fixtures: SealFixtures,
    pki: LivePki,
    workers: SealWorkers,
    tmp_path: Path,
) -> None:
    src = tmp_path / "in.pdf"
    src.write_bytes(valid_pdf(1, chinese=False))
    out = tmp_path / "out.pdf"
    job = _job(src, out, _level(pki, SignatureLevel.B_LT), pki.revoked_seal_cert_der)
    # The prepare step alone refuses: the token is never asked to sign.
    with pytest.raises(SigningError) as refused:
        asyncio.run(workers.run(prepare_seal, job))
    assert refused.value.reason == "seal_certificate_revoked", refused.value
    assert not out.exists() and not list(tmp_path.glob("*.part"))


def test_r15_pipeline_ltv_fails_closed_when_the_tsa_is_down(
    token_session: pkcs11.Session,
    seal_fixtures: SealFixtures,
    pki: LivePki,
    workers: SealWorkers,
    tmp_path: Path,
) -> None:
    src = tmp_path / "in.pdf"
    src.write_bytes(valid_pdf(1, chinese=False))
    out = tmp_path / "out.pdf"
    label = seal_fixtures.seals["contract"].key_label
    signer = token_signer(token_session, label, label, signing_cert_der=pki.seal_cert_der)
    down = _level(pki, SignatureLevel.B_LTA, tsa_url="http://127.0.0.1:9/tsa")
    with pytest.raises(SigningError) as refused:
        _pipeline(workers, signer, _job(src, out, down, pki.seal_cert_der))
    assert refused.value.reason == "tsa_unavailable", refused.value
    assert not out.exists() and not list(tmp_path.glob("*.part"))
