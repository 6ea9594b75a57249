"""Issue 20: the CMS encoded once per certificate is the CMS pyHanko builds per document.

``PreEncodedSigner`` (seald/signing/cms_cache.py) reuses pyHanko's own encoding of the
signed attributes and of the CMS container, filling in only the message digest and
the signature value. These tests hold it to that: the signed attributes byte for byte
against pyHanko's ``ExternalSigner`` for the same digest, and whole sealed documents
(real SoftHSM token, the pipeline's prepare / C_Sign / finish) whose CMS is byte for byte
the unoptimised pipeline's apart from the message digest, the signing time (none in a
PAdES CMS) and the signature value; each of them valid in pdfsig, in pyHanko's
validation (the daemon's own verify_pdf) and in qpdf.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pkcs11
import pytest
from asn1crypto import cms, pem, x509
from fixture_layout import SealFixtures
from make_pdfs import valid_pdf
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import signers
from pyhanko.sign.signers.pdf_cms import PdfCMSSignedAttributes
from pyhanko_certvalidator.registry import SimpleCertificateStore

from seald.signing.cms_cache import CmsTemplates, PreEncodedSigner
from seald.signing.pades import token_signer
from seald.signing.pipeline import SealJob, finish_seal, prepare_seal, publish, sign_prepared
from seald.signing.placement import PlacementSpec
from seald.signing.seal_image import SealImageSpec, render_seal_png
from seald.signing.verify import verify_pdf
from seald_testing.large_flow import pdfsig

PNG = render_seal_png(SealImageSpec("contract", "华夏示例科技有限公司", "合同专用章"), 40.0)


def _der(path: Path) -> bytes:
    data = path.read_bytes()
    if pem.detect(data):
        _, _, data = pem.unarmor(data)
    return data


@pytest.fixture
def session(seal_fixtures: SealFixtures) -> Iterator[pkcs11.Session]:
    seal = seal_fixtures.seals["contract"]
    token = pkcs11.lib(str(seal_fixtures.module)).get_token(token_label=seal.token_label)
    with token.open(user_pin=seal.user_pin) as s:
        yield s


def test_volume_signed_attributes_are_pyhankos_bytes(seal_fixtures: SealFixtures) -> None:
    cert = x509.Certificate.load(_der(seal_fixtures.seals["contract"].certificate))
    ca = x509.Certificate.load(_der(seal_fixtures.seal_ca))
    registry = SimpleCertificateStore.from_certs([ca])  # type: ignore[no-untyped-call]
    templates = CmsTemplates()
    loop = asyncio.new_event_loop()
    try:
        for i in range(3):
            digest = hashlib.sha256(f"document {i}".encode()).digest()
            settings = PdfCMSSignedAttributes()
            ours = PreEncodedSigner(
                signing_cert=cert, cert_registry=registry, signature_value=256, templates=templates
            )
            theirs = signers.ExternalSigner(signing_cert=cert, cert_registry=registry, signature_value=256)
            got = loop.run_until_complete(
                ours.signed_attrs(digest, "sha256", attr_settings=settings, use_pades=True)
            )
            want = loop.run_until_complete(
                theirs.signed_attrs(digest, "sha256", attr_settings=settings, use_pades=True)
            )
            assert got.dump() == want.dump()
            assert [a["type"].native for a in got] == [
                "content_type",
                "message_digest",
                "signing_certificate_v2",
            ]
    finally:
        loop.close()
    # Encoded once: one template served the three documents.
    assert len(templates.signed_attrs) == 1


def _normalised_cms(path: Path) -> tuple[bytes, bytes, bytes]:
    """The document's CMS DER with its message digest and signature value zeroed, and
    those two values."""
    reader = PdfFileReader(io.BytesIO(path.read_bytes()))
    (embedded,) = reader.embedded_signatures
    contents = embedded.sig_object["/Contents"]
    info = cms.ContentInfo.load(bytes(contents))
    der = info.dump()
    signer_info = info["content"]["signer_infos"][0]
    digest = next(
        a["values"][0].native for a in signer_info["signed_attrs"] if a["type"].native == "message_digest"
    )
    signature = signer_info["signature"].native
    assert "signing_time" not in {a["type"].native for a in signer_info["signed_attrs"]}  # PAdES: /M
    for value in (digest, signature):
        assert der.count(value) == 1
        der = der.replace(value, bytes(len(value)))
    return der, digest, signature


def _seal(
    session: pkcs11.Session, fx: SealFixtures, src: Path, out: Path, field: str, *, pre_encoded: bool
) -> None:
    seal = fx.seals["contract"]
    signer = token_signer(session, key_label=seal.key_label, cert_label=seal.key_label)
    job = SealJob(
        input_path=src,
        output_path=out,
        signing_cert_der=signer.signing_cert.dump(),  # type: ignore[union-attr]
        chain_der=(_der(fx.seal_ca),),
        seal_png=PNG,
        placement=PlacementSpec(page=0, x_mm=150, y_mm=240, size_mm=40),
        reason="批量开票",
        location="北京",
        field_name=field,
    )
    prepared = prepare_seal(job, pre_encoded=pre_encoded)
    signature = sign_prepared(signer, prepared)
    finish_seal(job, prepared, signature, pre_encoded=pre_encoded)
    publish(prepared, out)


def test_volume_optimised_cms_matches_unoptimised_byte_for_byte(
    seal_fixtures: SealFixtures, session: pkcs11.Session, tmp_path: Path
) -> None:
    root_pem = seal_fixtures.seal_ca.read_bytes()
    reference: bytes | None = None
    digests = set()
    # Three documents per side: the first fills the templates, the others use them.
    for i in range(3):
        src = tmp_path / f"invoice-{i}.pdf"
        src.write_bytes(valid_pdf(1) + f"\n% invoice {i}\n".encode())
        for pre_encoded in (False, True):
            out = tmp_path / f"invoice-{i}-{'pre' if pre_encoded else 'ref'}.sealed.pdf"
            _seal(session, seal_fixtures, src, out, "Seal1", pre_encoded=pre_encoded)
            der, digest, _ = _normalised_cms(out)
            reference = reference or der
            assert der == reference, f"{out.name}: CMS differs beyond digest and signature"
            digests.add(digest)

            checked = pdfsig(out)
            assert checked.valid and checked.total_document_signed, checked.text
            (check,) = verify_pdf(out, [root_pem])
            assert check.intact and check.valid and check.trusted, check.summary
            assert check.covers_whole_document
            qpdf = subprocess.run(["qpdf", "--check", str(out)], capture_output=True, check=False)
            assert qpdf.returncode == 0, qpdf.stdout
            assert out.read_bytes().startswith(src.read_bytes())
    # Each document's own digest went in (six signatures of six distinct updates).
    assert len(digests) == 6
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".part")]
