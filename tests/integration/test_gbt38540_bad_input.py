"""Bad GB/T 38540 signatures in PDFs, refused by every verifier with the field named (issue 19).

Forged PDFs, each one defect (the rest correct and freshly signed, so only that defect can be
the cause): the seal expired or not yet valid at the signing time, a seal picture changed after
the maker signed it, a signer certificate not among the seal's holders, truncated ASN.1, and an
SES_Signature over the 4 MiB limit. Each is refused by the verifier VerifyDocument runs (and by
VerifyDocument itself on a real seald), by ``sealctl verify --offline`` and by the evidence
verifier's named layer checks. Building one is refused before the key signs (test_gbt38540.py).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from pathlib import Path

import pytest
from asn1crypto import core
from cryptography import x509
from make_pdfs import valid_pdf

from sealclient.cli import main
from sealclient.evidence import GBT38540_CHECKS, gbt38540_problems, load_trust
from seald.gm import certs, ses, sm2
from seald.signing import gbt38540_pdf
from seald.signing.verify import verify_pdf
from seald_testing.daemon import SealDaemon
from seald_testing.sm2_pki import MakerAndHolder, maker_and_holder

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
SPAN = dt.timedelta(days=3650)
PNG = b"\x89PNG\r\n\x1a\n" + b"\x07" * 256


# The in-process cases use a 64 KiB limit (patched): pyHanko reads a PDF hex string a byte
# at a time, ~10-40 s for the 8 MiB /Contents of a real 4 MiB SES_Signature on a loaded
# machine, so only the VerifyDocument test pays for the real limit once.
SMALL_LIMIT = 64 * 1024


@dataclass(frozen=True)
class Case:
    name: str
    reason: str  # what every verifier reports
    field: str  # the structure field the message names
    layers: frozenset[str]  # the evidence checks that fail


CASES = [
    Case(
        "expired",
        "gbt38540_seal_expired",
        "SES_Seal.eSealInfo.property.validEnd",
        frozenset({"gbt38540_seal_validity"}),
    ),
    Case(
        "not_yet_valid",
        "gbt38540_seal_not_yet_valid",
        "SES_Seal.eSealInfo.property.validStart",
        frozenset({"gbt38540_seal_validity"}),
    ),
    Case(
        "maker_signature",
        "gbt38540_seal_signature_invalid",
        "SES_Seal.signedValue",
        frozenset({"gbt38540_seal_maker"}),
    ),
    Case(
        "not_holder",
        "gbt38540_signer_not_holder",
        "SES_Seal.eSealInfo.property.certList",
        frozenset({"gbt38540_signer_holder"}),
    ),
    Case("truncated", "gbt38540_malformed", "SES_Signature does not decode", frozenset(GBT38540_CHECKS)),
    Case("oversized", "gbt38540_oversized", "SES_Signature:", frozenset(GBT38540_CHECKS)),
]


def _seal(pki: MakerAndHolder, start: dt.datetime, end: dt.datetime, picture: bytes = PNG) -> bytes:
    return ses.build_seal(
        ses.SealSpec(
            es_id="S-BAD",
            name="合同专用章",
            holder_certs=[pki.holder_cert],
            created=T0,
            valid_start=start,
            valid_end=end,
            picture=picture,
        ),
        maker_cert=pki.maker_cert,
        maker_sign=pki.maker.sign,
    )


def _seal_near(pki: MakerAndHolder, limit: int) -> bytes:
    """A seal just under ``limit`` bytes: its SES_Signature (seal + signer certificate +
    signature) is over it. Sized from a small seal's overhead, corrected once (DER lengths)."""
    overhead = len(_seal(pki, T0, T0 + SPAN, PNG)) - len(PNG)
    size = limit - overhead - 200
    big = _seal(pki, T0, T0 + SPAN, PNG[:8] + b"\x05" * (size - 8))
    size -= len(big) - (limit - 200)
    big = _seal(pki, T0, T0 + SPAN, PNG[:8] + b"\x05" * (size - 8))
    assert limit - 300 < len(big) <= limit
    return big


def _forge(
    seal: bytes, signer_cert: bytes, sign: certs.Signer, when: dt.datetime, *, layout_seal: bytes
) -> bytes:
    """A PDF whose SES_Signature over its real ByteRange hash is built by hand (none of
    build_signature's refusals), signed by ``sign``; laid out with a good ``layout_seal``."""
    prepared = gbt38540_pdf.prepare_gbt38540(
        valid_pdf(1), seal=layout_seal, signer_cert=signer_cert, time_info=T0 + dt.timedelta(days=1)
    )
    tbs = ses.TbsSign(
        {
            "version": ses.SES_VERSION,
            "eseal": ses.SESeal.load(seal),
            "time_info": core.GeneralizedTime(when),
            "data_hash": prepared.document_digest,
            "property_info": "PDF ByteRange",
        }
    )
    der = ses.SesSignature(
        {
            "to_sign": tbs,
            "cert": signer_cert,
            "signature_algorithm": sm2.SM2_WITH_SM3_OID,
            "signature": sign(tbs.dump()),
        }
    ).dump()
    return prepared.finish(bytes(der))


@pytest.fixture(scope="module")
def forged(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Path], MakerAndHolder, bytes]:
    work = tmp_path_factory.mktemp("gbt38540-bad")
    pki = maker_and_holder(T0, T0 + SPAN)
    other = sm2.Sm2PrivateKey.generate()
    other_cert = bytes(
        certs.build_certificate(
            subject=certs.name("另一个章"),
            issuer=certs.name("maker"),
            public_key=other.public_key,
            sign=pki.maker.sign,
            not_before=T0,
            not_after=T0 + SPAN,
        ).dump()
    )
    good = _seal(pki, T0, T0 + SPAN)
    day = dt.timedelta(days=1)
    short = _seal(pki, T0 + 10 * day, T0 + 20 * day)
    tampered = bytearray(good)
    at = tampered.find(PNG)
    tampered[at + 100] ^= 0x01  # after the maker signed it
    big = _seal_near(pki, ses.MAX_SES_BYTES)
    small_big = _seal_near(pki, SMALL_LIMIT)
    ok_pdf = _forge(good, pki.holder_cert, pki.holder.sign, T0 + day, layout_seal=good)
    pdfs = {
        "expired": _forge(short, pki.holder_cert, pki.holder.sign, T0 + 30 * day, layout_seal=good),
        "not_yet_valid": _forge(short, pki.holder_cert, pki.holder.sign, T0 + 5 * day, layout_seal=good),
        "maker_signature": _forge(
            bytes(tampered), pki.holder_cert, pki.holder.sign, T0 + day, layout_seal=good
        ),
        "not_holder": _forge(good, other_cert, other.sign, T0 + day, layout_seal=good),
        "oversized": _forge(big, pki.holder_cert, pki.holder.sign, T0 + day, layout_seal=big),
        "oversized_small": _forge(
            small_big, pki.holder_cert, pki.holder.sign, T0 + day, layout_seal=small_big
        ),
    }
    big_der, _hash = gbt38540_pdf.signature_and_hash(pdfs["oversized"], "Seal1")
    assert len(big_der) > ses.MAX_SES_BYTES  # its use is not
    small_der, _hash = gbt38540_pdf.signature_and_hash(pdfs["oversized_small"], "Seal1")
    assert len(small_der) > SMALL_LIMIT
    der, _hash = gbt38540_pdf.signature_and_hash(ok_pdf, "Seal1")
    start = ok_pdf.index(b"/Contents <") + len(b"/Contents <")
    end = ok_pdf.index(b">", start)
    half = der[: len(der) // 2].hex().encode()
    pdfs["truncated"] = ok_pdf[:start] + half + b"0" * (end - start - len(half)) + ok_pdf[end:]
    paths = {}
    for name, data in {**pdfs, "ok": ok_pdf}.items():
        paths[name] = work / f"{name}.pdf"
        paths[name].write_bytes(data)
    (work / "maker.der").write_bytes(pki.maker_cert)
    return paths, pki, other_cert


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_gbt38540_bad_input_refused_by_seald_verifier_and_sealctl_verify_offline(
    forged: tuple[dict[str, Path], MakerAndHolder, bytes],
    case: Case,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    paths, _pki, _other = forged
    monkeypatch.setattr(ses, "MAX_SES_BYTES", SMALL_LIMIT)
    paths = {**paths, "oversized": paths["oversized_small"]}
    (check,) = verify_pdf(paths[case.name], [])
    assert not check.valid and not check.intact and case.reason in check.summary, check.summary
    assert case.field in check.summary, check.summary
    assert main(["verify", "--offline", str(paths[case.name])]) == 10
    out = capsys.readouterr().out
    assert "NOT VALID" in out and case.reason in out and case.field in out, out


def test_gbt38540_good_forgery_control_verifies(
    forged: tuple[dict[str, Path], MakerAndHolder, bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    """The hand-built signature path itself makes a valid seal: each case fails for its defect."""
    paths, _pki, _other = forged
    (check,) = verify_pdf(paths["ok"], [])
    assert check.valid, check.summary
    maker = paths["ok"].parent / "maker.der"
    assert main(["verify", "--offline", str(paths["ok"]), "--seal-maker", str(maker)]) == 0
    capsys.readouterr()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_gbt38540_bad_input_named_by_evidence_layer_checks(
    forged: tuple[dict[str, Path], MakerAndHolder, bytes],
    case: Case,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    paths, pki, other_cert = forged
    monkeypatch.setattr(ses, "MAX_SES_BYTES", SMALL_LIMIT)
    paths = {**paths, "oversized": paths["oversized_small"]}
    signer = other_cert if case.name == "not_holder" else pki.holder_cert
    (tmp_path / "maker.pem").write_text(_pem(pki.maker_cert))
    anchors = load_trust([tmp_path / "maker.pem"])
    original = valid_pdf(1)
    document = {"name": "doc.pdf", "size": len(original), "sha256": hashlib.sha256(original).hexdigest()}
    seal_cert = x509.load_der_x509_certificate(signer)
    problems = gbt38540_problems(paths[case.name], document, seal_cert, anchors)
    assert problems is not None
    failing = {name for name, p in problems.items() if p}
    assert failing == case.layers, problems
    assert all(case.reason in "; ".join(problems[name]) for name in case.layers), problems
    ok = gbt38540_problems(paths["ok"], document, x509.load_der_x509_certificate(pki.holder_cert), anchors)
    assert ok is not None and not any(ok.values()), ok


def test_gbt38540_bad_input_reported_by_verify_document(
    forged: tuple[dict[str, Path], MakerAndHolder, bytes], daemon: SealDaemon
) -> None:
    """Through a real seald: each forged PDF reported not valid with its reason; seald lives on."""
    paths, _pki, _other = forged
    with daemon.client("zhang.wei") as z:
        for case in CASES:
            report = z.verify(paths[case.name])
            assert not report.all_valid, case.name
            (sig,) = report.signatures
            assert not sig.valid and case.reason in sig.summary and case.field in sig.summary, sig.summary
        assert z.verify(paths["ok"]).signatures[0].valid  # still answering, and right
    assert "Traceback" not in daemon.log()


def _pem(der: bytes) -> str:
    import base64  # noqa: PLC0415

    return "-----BEGIN CERTIFICATE-----\n" + base64.encodebytes(der).decode() + "-----END CERTIFICATE-----\n"
