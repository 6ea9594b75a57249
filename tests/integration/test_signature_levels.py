"""PAdES levels B-T / B-LT / B-LTA on a real SoftHSM key with a live certomancer PKI
(CA, TSA, OCSP, CRL on loopback): SEAL-RULES R14. B-LT/B-LTA documents are validated
OFFLINE (no fetching, revocation hard-fail) from what they embed; pdfsig and qpdf
check every output; multiple seals and DocMDP certification (R13 multiple seals)."""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
from pathlib import Path

import make_pdfs
import pkcs11
import pytest
from asn1crypto import pem, x509
from cryptography import x509 as cx509
from fixture_layout import SealFixtures
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import (
    DocumentSecurityStore,
    validate_pdf_signature,
    validate_pdf_timestamp,
)
from pyhanko.sign.validation.status import SignatureCoverageLevel
from pyhanko_certvalidator import ValidationContext

from sealclient.evidence import pdf_problems
from seald.signing.errors import SigningError
from seald.signing.levels import Certification, LevelSettings, SignatureLevel
from seald.signing.pades import SealSpec, seal_pdf, token_signer
from seald.signing.placement import PlacementSpec
from seald.signing.verify import verify_pdf
from seald_testing.ltv_pki import LivePki

PLACEMENT = PlacementSpec(page=0, x_mm=150, y_mm=230, size_mm=40)


def _settings(pki: LivePki, level: SignatureLevel) -> LevelSettings:
    return LevelSettings(level=level, tsa_url=pki.tsa_url, trust_roots_pem=(pki.root_pem,))


def _seal(
    session: pkcs11.Session,
    seal_fixtures: SealFixtures,
    pki: LivePki,
    src: Path,
    dst: Path,
    png: bytes,
    *,
    level: SignatureLevel,
    field: str = "Seal1",
    cert_der: bytes | None = None,
    certification: Certification = Certification.NONE,
    placement: PlacementSpec = PLACEMENT,
) -> None:
    label = seal_fixtures.seals["contract"].key_label
    seal_pdf(
        src,
        dst,
        signer=token_signer(session, label, label, signing_cert_der=cert_der or pki.seal_cert_der),
        spec=SealSpec(
            seal_png=png,
            placement=placement,
            reason="合同盖章",
            location="北京",
            field_name=field,
            level=_settings(pki, level),
            certification=certification,
        ),
    )


def _pdfsig(path: Path) -> str:
    tool = shutil.which("pdfsig")
    if tool is None:
        pytest.fail("pdfsig (poppler-utils) is required")
    return subprocess.run([tool, "-nocert", str(path)], capture_output=True, text=True, check=False).stdout


def _qpdf_check(path: Path) -> None:
    tool = shutil.which("qpdf")
    if tool is None:
        pytest.fail("qpdf is required")
    done = subprocess.run([tool, "--check", str(path)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def _offline_context(reader: PdfFileReader, pki: LivePki) -> ValidationContext:
    root = x509.Certificate.load(pem.unarmor(pki.root_pem)[2])
    context: ValidationContext = DocumentSecurityStore.read_dss(reader).as_validation_context(
        {"trust_roots": [root], "allow_fetching": False, "revocation_mode": "hard-fail"}
    )
    return context


def _offline_ltv(path: Path, pki: LivePki) -> None:
    """Validation with fetching OFF and revocation hard-fail: only what the file's DSS
    embeds (certificates, OCSP responses, CRLs) can make the signature trusted."""
    reader = PdfFileReader(io.BytesIO(path.read_bytes()))
    root = x509.Certificate.load(pem.unarmor(pki.root_pem)[2])
    offline = _offline_context(reader, pki)
    for sig in reader.embedded_regular_signatures:
        status = validate_pdf_signature(sig, offline, ts_validation_context=offline)
        assert status.bottom_line, status.summary()
        assert status.trusted and status.intact and status.valid
    # Without the DSS the same hard-fail validation cannot establish revocation status.
    bare = ValidationContext(
        trust_roots=[root],
        allow_fetching=False,
        revocation_mode="hard-fail",
        crls=[],
        ocsps=[],
    )
    status = validate_pdf_signature(reader.embedded_regular_signatures[0], bare)
    assert not status.trusted


@pytest.mark.parametrize("level", [SignatureLevel.B_T, SignatureLevel.B_LT, SignatureLevel.B_LTA])
def test_r14_levels_validate_in_pyhanko_pdfsig_and_qpdf(
    level: SignatureLevel,
    token_session: pkcs11.Session,
    seal_fixtures: SealFixtures,
    pki: LivePki,
    seal_png: bytes,
    tmp_path: Path,
) -> None:
    src = tmp_path / "in.pdf"
    src.write_bytes(make_pdfs.valid_pdf(2))
    out = tmp_path / "out.pdf"
    _seal(token_session, seal_fixtures, pki, src, out, seal_png, level=level)

    report = _pdfsig(out)
    assert "Signature is Valid" in report, report
    # B-LT/B-LTA append the DSS (and a document timestamp) after the signature, so
    # pdfsig rightly says the signature alone does not cover the last revision;
    # pyHanko's diff analysis below proves those additions are LTV updates only.
    assert ("Total document signed" in report) is (not level.embeds_validation_info), report
    _qpdf_check(out)

    reader = PdfFileReader(io.BytesIO(out.read_bytes()))
    sig = reader.embedded_regular_signatures[0]
    assert sig.sig_object["/SubFilter"] == "/ETSI.CAdES.detached"
    # B-T: the signature timestamp token is inside the CMS (unsigned attribute).
    unsigned = sig.signer_info["unsigned_attrs"]
    assert any(a["type"].native == "signature_time_stamp_token" for a in unsigned)
    has_dss = "/DSS" in reader.root
    assert has_dss is level.embeds_validation_info
    doc_timestamps = [s for s in reader.embedded_signatures if s.sig_object_type == "/DocTimeStamp"]
    assert len(doc_timestamps) == (1 if level is SignatureLevel.B_LTA else 0)
    if level.embeds_validation_info:
        dss = reader.root["/DSS"]
        assert len(dss["/OCSPs"]) + len(dss.get("/CRLs", [])) >= 1
        _offline_ltv(out, pki)
        if doc_timestamps:
            ts_status = validate_pdf_timestamp(
                doc_timestamps[0], validation_context=_offline_context(reader, pki)
            )
            assert ts_status.valid and ts_status.intact and ts_status.trusted
            # pyHanko adds the TSA's own revocation info after the document timestamp
            assert ts_status.coverage in (
                SignatureCoverageLevel.ENTIRE_FILE,
                SignatureCoverageLevel.ENTIRE_REVISION,
            )
            assert ts_status.modification_level is not None
            assert ts_status.modification_level.name in ("NONE", "LTA_UPDATES")
        status = validate_pdf_signature(reader.embedded_regular_signatures[0], _offline_context(reader, pki))
        assert status.modification_level is not None
        assert status.modification_level.name == "LTA_UPDATES"
    # Issue 9: the evidence verifier's PDF checks accept every level: the seal's revision sits
    # right on the approved bytes, and what follows it is validation data only.
    seal_cert = cx509.load_der_x509_certificate(pki.seal_cert_der)
    root = cx509.load_pem_x509_certificate(pki.root_pem)
    original = src.read_bytes()
    document = {"name": "in.pdf", "size": len(original), "sha256": hashlib.sha256(original).hexdigest()}
    assert pdf_problems(out, document, seal_cert, [seal_cert], [root]) == ([], [])
    # Without the TSA's root among the trusted certificates: a named problem, not a crash.
    untrusted_tsa, _ = pdf_problems(out, document, seal_cert, [seal_cert], [seal_cert])
    assert untrusted_tsa and "TSA's root certificate" in untrusted_tsa[0], untrusted_tsa


def test_r14_b_lt_refuses_a_revoked_seal_certificate(
    token_session: pkcs11.Session,
    seal_fixtures: SealFixtures,
    pki: LivePki,
    seal_png: bytes,
    tmp_path: Path,
) -> None:
    src = tmp_path / "in.pdf"
    src.write_bytes(make_pdfs.valid_pdf(1))
    out = tmp_path / "out.pdf"
    with pytest.raises(SigningError) as refused:
        _seal(
            token_session,
            seal_fixtures,
            pki,
            src,
            out,
            seal_png,
            level=SignatureLevel.B_LT,
            cert_der=pki.revoked_seal_cert_der,
        )
    assert refused.value.reason == "seal_certificate_revoked", refused.value
    assert not out.exists()
    assert not list(tmp_path.glob(".out.pdf.*"))


def test_r14_level_needs_a_tsa_and_roots() -> None:
    with pytest.raises(SigningError) as no_tsa:
        LevelSettings(level=SignatureLevel.B_T)
    assert no_tsa.value.reason == "tsa_missing"
    with pytest.raises(SigningError) as no_roots:
        LevelSettings(level=SignatureLevel.B_LT, tsa_url="http://127.0.0.1:1/tsa")
    assert no_roots.value.reason == "trust_roots_missing"
    assert SignatureLevel.parse("b-lta") is SignatureLevel.B_LTA
    with pytest.raises(SigningError):
        SignatureLevel.parse("B-X")


def test_r14_unreachable_tsa_fails_closed(
    token_session: pkcs11.Session,
    seal_fixtures: SealFixtures,
    seal_png: bytes,
    tmp_path: Path,
) -> None:
    src = tmp_path / "in.pdf"
    src.write_bytes(make_pdfs.valid_pdf(1))
    out = tmp_path / "out.pdf"
    label = seal_fixtures.seals["contract"].key_label
    with pytest.raises(SigningError) as refused:
        seal_pdf(
            src,
            out,
            signer=token_signer(token_session, label, label),
            spec=SealSpec(
                seal_png=seal_png,
                placement=PLACEMENT,
                reason="r",
                location="l",
                field_name="Seal1",
                level=LevelSettings(level=SignatureLevel.B_T, tsa_url="http://127.0.0.1:9/tsa", timeout_s=2),
            ),
        )
    assert refused.value.reason == "tsa_unavailable", refused.value
    assert not out.exists()


def test_r14_verify_reports_timestamp_revocation_and_changes_after(
    token_session: pkcs11.Session,
    seal_fixtures: SealFixtures,
    pki: LivePki,
    seal_png: bytes,
    tmp_path: Path,
) -> None:
    src = tmp_path / "in.pdf"
    src.write_bytes(make_pdfs.valid_pdf(1))
    lta = tmp_path / "lta.pdf"
    _seal(token_session, seal_fixtures, pki, src, lta, seal_png, level=SignatureLevel.B_LTA)
    checks = verify_pdf(lta, [pki.root_pem])
    assert [c.kind for c in checks] == ["signature", "document_timestamp"]
    sig, doc_ts = checks
    assert sig.intact and sig.valid and sig.trusted
    assert sig.timestamp_time is not None and sig.timestamp_valid
    assert sig.revocation == "good"  # from the DSS alone, no fetching
    assert sig.changed_after == "validation data and timestamps only (long-term validation)"
    assert doc_ts.valid and doc_ts.trusted and doc_ts.timestamp_time is not None

    # The same signature certificate revoked: B-T (no DSS) cannot say; verify says so.
    bt = tmp_path / "bt.pdf"
    _seal(token_session, seal_fixtures, pki, src, bt, seal_png, level=SignatureLevel.B_T)
    (bt_check,) = verify_pdf(bt, [pki.root_pem])
    assert bt_check.revocation == "not checked" and bt_check.timestamp_valid

    # An appended content change after sealing is reported (R14).
    writer = IncrementalPdfFileWriter(io.BytesIO(bt.read_bytes()))
    page_ref, _ = writer.find_page_for_modification(0)
    page = page_ref.get_object()
    page[generic.pdf_name("/Rotate")] = generic.NumberObject(90)
    writer.update_container(page)
    changed = tmp_path / "changed.pdf"
    with changed.open("wb") as out:
        writer.write(out)
    (after,) = verify_pdf(changed, [pki.root_pem])
    assert after.intact and not after.covers_whole_document
    assert after.changed_after.startswith("CONTENT CHANGES"), after.modification_level
    report = _pdfsig(changed)
    assert "Not total document signed" in report, report
