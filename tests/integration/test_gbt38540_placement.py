"""GB/T 38540 seals placed like PAdES ones (R13) and timestamped by a real TSA (issue 19).

In process, software SM2 keys (the SKF token path is tests/integration/test_gbt38540_daemon.py):
anchor text and cross-page (骑缝章) placement through the PAdES path's placement code, checked
on pages rendered by pdftoppm; an RFC 3161 timeStamp from certomancer's TSA over the signature
value, checked by seald (imprint, TSA signature and chain) and by ``openssl ts -verify``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import subprocess
from pathlib import Path

import pytest
from make_pdfs import valid_pdf
from PIL import Image, ImageChops
from pyhanko.sign.timestamps import HTTPTimeStamper

from seald.gm import ses, sm2
from seald.signing import gbt38540_pdf
from seald.signing.errors import PlacementError
from seald.signing.placement import PlacementSpec
from seald.signing.seal_image import SealImageSpec, render_seal_png
from seald.signing.verify import verify_pdf
from seald_testing.ltv_pki import LivePki
from seald_testing.sm2_pki import MakerAndHolder, maker_and_holder

# Certificates are issued from the wall clock: run again under faketime (issue 14).
pytestmark = pytest.mark.clock

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
SPAN = dt.timedelta(days=3650)
DPI = 72
PX_MM = 25.4 / DPI


@pytest.fixture(scope="module")
def sm2_seal() -> tuple[MakerAndHolder, bytes]:
    pki = maker_and_holder(T0, T0 + SPAN)
    png = render_seal_png(SealImageSpec("contract", "华夏示例科技有限公司", "合同专用章"), 40)
    seal = ses.build_seal(
        ses.SealSpec(
            es_id="S-PLACE",
            name="合同专用章",
            holder_certs=[pki.holder_cert],
            created=T0,
            valid_start=T0,
            valid_end=T0 + SPAN,
            picture=png,
        ),
        maker_cert=pki.maker_cert,
        maker_sign=pki.maker.sign,
    )
    return pki, seal


def _seal(
    sm2_seal: tuple[MakerAndHolder, bytes],
    pdf: bytes,
    placement: PlacementSpec | None,
    timestamper: HTTPTimeStamper | None = None,
) -> bytes:
    pki, seal = sm2_seal

    def stamp(imprint: bytes) -> bytes:
        assert timestamper is not None
        return bytes(asyncio.run(timestamper.async_timestamp(imprint, sm2.SM3_OID)).dump())

    return gbt38540_pdf.seal_pdf_gbt38540(
        pdf,
        seal=seal,
        signer_cert=pki.holder_cert,
        sign=pki.holder.sign,
        time_info=T0 + dt.timedelta(days=1),
        placement=placement,
        timestamper=stamp if timestamper is not None else None,
    )


def _red_box_mm(pdf: Path, page: int, tmp_path: Path) -> tuple[float, float, float, float] | None:
    prefix = tmp_path / f"{pdf.stem}-p{page}"
    subprocess.run(
        [
            "pdftoppm",
            "-r",
            str(DPI),
            "-f",
            str(page),
            "-l",
            str(page),
            "-png",
            "-singlefile",
            str(pdf),
            str(prefix),
        ],
        check=True,
        timeout=60,
    )
    r, g, b = Image.open(f"{prefix}.png").convert("RGB").split()
    mask = ImageChops.multiply(
        ImageChops.multiply(
            r.point(lambda v: 255 if v > 180 else 0), g.point(lambda v: 255 if v < 90 else 0)
        ),
        b.point(lambda v: 255 if v < 90 else 0),
    )
    box = mask.getbbox()
    return None if box is None else tuple(v * PX_MM for v in box)  # type: ignore[return-value]


def test_gbt38540_anchor_text_places_the_seal_on_the_anchor(
    sm2_seal: tuple[MakerAndHolder, bytes], tmp_path: Path
) -> None:
    """R13: centred on "（盖章）" (pdftotext: 82..138 x 118..136 pt from the top-left on the
    fixtures' page), like test_r13_daemon_seals_b_t_certified_at_the_anchor for PAdES."""
    out = _seal(
        sm2_seal, valid_pdf(1), PlacementSpec(page=0, x_mm=0, y_mm=0, size_mm=30, anchor_text="（盖章）")
    )
    path = tmp_path / "anchored.pdf"
    path.write_bytes(out)
    (check,) = gbt38540_pdf.verify_gbt38540_pdf(out)
    assert check.covers_whole_document
    box = _red_box_mm(path, 1, tmp_path)
    assert box is not None, "no seal drawn"
    left, top, right, bottom = box
    mm = 25.4 / 72
    assert (left + right) / 2 == pytest.approx(110.0 * mm, abs=1.5)
    assert (top + bottom) / 2 == pytest.approx(127.1 * mm, abs=1.5)
    assert right - left == pytest.approx(30, abs=2.0)


def test_gbt38540_anchor_text_missing_is_refused_and_nothing_signed(
    sm2_seal: tuple[MakerAndHolder, bytes],
) -> None:
    pki, seal = sm2_seal
    calls: list[bytes] = []

    def sign(message: bytes) -> bytes:
        calls.append(message)
        return pki.holder.sign(message)

    with pytest.raises(PlacementError) as refused:
        gbt38540_pdf.seal_pdf_gbt38540(
            valid_pdf(1),
            seal=seal,
            signer_cert=pki.holder_cert,
            sign=sign,
            time_info=T0 + dt.timedelta(days=1),
            placement=PlacementSpec(page=0, x_mm=0, y_mm=0, size_mm=30, anchor_text="（签字）"),
        )
    assert refused.value.reason == "anchor_not_found" and "（签字）" in str(refused.value)
    assert calls == []


def test_gbt38540_cross_page_slices_on_every_page(
    sm2_seal: tuple[MakerAndHolder, bytes], tmp_path: Path
) -> None:
    """骑缝章: one slice of the SES_Seal picture on each page's right edge, covered by the signature."""
    pages, size_mm, y_mm = 3, 40.0, 120.0
    out = _seal(
        sm2_seal, valid_pdf(pages), PlacementSpec(page=0, x_mm=0, y_mm=y_mm, size_mm=size_mm, cross_page=True)
    )
    path = tmp_path / "cross.pdf"
    path.write_bytes(out)
    (check,) = gbt38540_pdf.verify_gbt38540_pdf(out)
    assert check.covers_whole_document
    widths = []
    for page in range(1, pages + 1):
        box = _red_box_mm(path, page, tmp_path)
        assert box is not None, f"no slice on page {page}"
        left, top, right, bottom = box
        assert right == pytest.approx(210.0, abs=1.0)  # at the right edge of an A4 page
        assert (top + bottom) / 2 == pytest.approx(y_mm, abs=1.0)
        assert right - left <= size_mm / pages + 1.0
        widths.append(right - left)
    assert sum(widths) >= size_mm - pages * 1.0
    # a slice swapped in place (same length) breaks the GB/T 38540 signature
    data = bytearray(out)
    at = data.find(b"/SealSlice1 Do")
    data[at : at + 14] = b"/SealSlice2 Do"
    with pytest.raises(ses.GbtError) as exc:
        gbt38540_pdf.verify_gbt38540_pdf(bytes(data))
    assert exc.value.reason == "gbt38540_data_hash_mismatch"


def test_gbt38540_cross_page_on_one_page_is_refused(sm2_seal: tuple[MakerAndHolder, bytes]) -> None:
    with pytest.raises(PlacementError) as refused:
        _seal(sm2_seal, valid_pdf(1), PlacementSpec(page=0, x_mm=0, y_mm=120, size_mm=40, cross_page=True))
    assert refused.value.reason == "cross_page_needs_pages"


def test_gbt38540_timestamp_from_the_tsa_verified_by_seald_and_openssl(
    sm2_seal: tuple[MakerAndHolder, bytes], pki: LivePki, tmp_path: Path
) -> None:
    """GB/T 38540 timeStamp: an RFC 3161 token from certomancer's TSA over SM3(signature)."""
    out = _seal(sm2_seal, valid_pdf(1), None, HTTPTimeStamper(pki.tsa_url))
    path = tmp_path / "stamped.pdf"
    path.write_bytes(out)
    (check,) = gbt38540_pdf.verify_gbt38540_pdf(out)
    assert "timestamp_imprint" in check.report.checks and check.report.timestamp_time is not None
    der, _hash = gbt38540_pdf.signature_and_hash(out, "Seal1")
    assert gbt38540_pdf.timestamp_problem_blocking(der, [_der(pki.root_pem)]) == ""
    # the verifier VerifyDocument runs: timestamp trusted with the TSA root, not without it
    (with_root,) = verify_pdf(path, [pki.root_pem])
    assert with_root.valid and with_root.timestamp_valid and with_root.timestamp_time is not None
    assert "timestamp" in with_root.summary and "trusted" in with_root.summary
    (without,) = verify_pdf(path, [])
    assert without.valid and not without.timestamp_valid and "NOT trusted" in without.summary
    # OpenSSL: the token verifies against the TSA root for SM3 of the signature value
    parsed = ses.parse_signature(der)
    (tmp_path / "token.der").write_bytes(bytes(parsed["time_stamp"].native))
    (tmp_path / "tsa-root.pem").write_bytes(pki.root_pem)
    digest = sm2.sm3(bytes(parsed["signature"].native)).hex()
    res = subprocess.run(
        [
            "openssl",
            "ts",
            "-verify",
            "-digest",
            digest,
            "-in",
            "token.der",
            "-token_in",
            "-CAfile",
            "tsa-root.pem",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert res.returncode == 0 and "Verification: OK" in res.stdout, res.stdout + res.stderr
    other = sm2.sm3(b"another signature").hex()
    res = subprocess.run(
        [
            "openssl",
            "ts",
            "-verify",
            "-digest",
            other,
            "-in",
            "token.der",
            "-token_in",
            "-CAfile",
            "tsa-root.pem",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert res.returncode != 0  # the token is bound to this signature value


def test_gbt38540_sealctl_verify_offline_checks_the_tsa_with_tsa_root(
    sm2_seal: tuple[MakerAndHolder, bytes], pki: LivePki, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from sealclient.cli import main  # noqa: PLC0415

    path = tmp_path / "stamped.pdf"
    path.write_bytes(_seal(sm2_seal, valid_pdf(1), None, HTTPTimeStamper(pki.tsa_url)))
    (tmp_path / "tsa-root.pem").write_bytes(pki.root_pem)
    (tmp_path / "other-root.der").write_bytes(sm2_seal[0].maker_cert)  # a root, not the TSA's
    assert main(["verify", "--offline", str(path), "--tsa-root", str(tmp_path / "tsa-root.pem")]) == 0
    assert "(TSA trusted)" in capsys.readouterr().out
    assert main(["verify", "--offline", str(path)]) == 0
    assert "pass --tsa-root to check its TSA" in capsys.readouterr().out
    assert main(["verify", "--offline", str(path), "--tsa-root", str(tmp_path / "other-root.der")]) == 10
    assert "not signed by a TSA chaining to the configured TSA roots" in capsys.readouterr().out


def _der(pem_bytes: bytes) -> bytes:
    from asn1crypto import pem  # noqa: PLC0415

    return bytes(pem.unarmor(pem_bytes)[2])


def test_gbt38540_signature_larger_than_the_reservation_is_refused(
    sm2_seal: tuple[MakerAndHolder, bytes],
) -> None:
    """A SES_Signature that does not fit /Contents: a clear signing error, no PDF returned."""
    from seald.signing.errors import SigningError  # noqa: PLC0415

    pki, seal = sm2_seal
    prepared = gbt38540_pdf.prepare_gbt38540(
        valid_pdf(1), seal=seal, signer_cert=pki.holder_cert, time_info=T0 + dt.timedelta(days=1)
    )
    der = gbt38540_pdf.sign_prepared(prepared, seal=seal, signer_cert=pki.holder_cert, sign=pki.holder.sign)
    too_big = der + b"\x00" * (2 * len(seal) + 4096)
    with pytest.raises(SigningError) as exc:
        prepared.finish(too_big)
    assert exc.value.reason == "gbt38540_embed_failed"
