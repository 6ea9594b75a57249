"""Sealing on a real SoftHSM token, checked by independent tools (pdfsig, qpdf,
pdftoppm) and pyHanko's validator: SEAL-RULES R13 (placement) and R14 (tamper
evidence). A missing tool fails the test; nothing is mocked."""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import make_pdfs
import pkcs11
import pytest
from fixture_layout import SealFixtures
from PIL import Image
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

from seald.signing.errors import InputDocumentError, PlacementError, TokenSigningError
from seald.signing.pades import SealResult, SealSpec, seal_pdf, token_signer
from seald.signing.placement import PlacementSpec, placement_box
from seald.signing.verify import verify_pdf

MM = 72 / 25.4


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is required (Debian: poppler-utils / qpdf) and is not installed")
    return path


def _seal(
    session: pkcs11.Session,
    seal_fixtures: SealFixtures,
    src: Path,
    dst: Path,
    png: bytes,
    placement: PlacementSpec,
    field: str = "Seal1",
) -> SealResult:
    key_label = seal_fixtures.seals["contract"].key_label
    return seal_pdf(
        src,
        dst,
        signer=token_signer(session, key_label, key_label),
        spec=SealSpec(
            seal_png=png,
            placement=placement,
            reason="合同盖章",
            location="北京",
            field_name=field,
            signer_name="华夏示例科技有限公司",
        ),
    )


def _pdf(tmp_path: Path, data: bytes, name: str = "in.pdf") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _pdfsig(path: Path) -> str:
    done = subprocess.run(
        [_tool("pdfsig"), str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    return done.stdout + done.stderr


def _qpdf_check(path: Path) -> int:
    return subprocess.run(
        [_tool("qpdf"), "--check", str(path)], capture_output=True, timeout=60, check=False
    ).returncode


def _roots(seal_fixtures: SealFixtures) -> list[bytes]:
    return [seal_fixtures.seal_ca.read_bytes()]


def test_r14_sealed_pdf_validates_in_pyhanko_and_pdfsig(
    tmp_path: Path, token_session: pkcs11.Session, seal_fixtures: SealFixtures, seal_png: bytes
) -> None:
    src = _pdf(tmp_path, make_pdfs.valid_pdf(pages=2))
    out = tmp_path / "sealed.pdf"
    result = _seal(token_session, seal_fixtures, src, out, seal_png, PlacementSpec(0, 150, 200, 40))
    assert out.stat().st_size == result.size and result.page == 2
    # Incremental update: the original bytes are a prefix of the sealed document.
    assert out.read_bytes().startswith(src.read_bytes())

    report = _pdfsig(out)
    assert "Signature is Valid" in report, report
    assert "Total document signed" in report, report
    assert "ETSI.CAdES.detached" in report and "SHA-256" in report, report
    assert _qpdf_check(out) == 0

    (check,) = verify_pdf(out, _roots(seal_fixtures))
    assert check.field_name == "Seal1"
    assert check.intact and check.valid and check.trusted and check.covers_whole_document
    assert "合同专用章" in check.signer_subject
    cert_der = seal_fixtures.seals["contract"].certificate.read_bytes()
    assert len(check.signer_certificate_sha256) == 64 and cert_der


def test_r14_untrusted_root_is_reported_not_trusted(
    tmp_path: Path, token_session: pkcs11.Session, seal_fixtures: SealFixtures, seal_png: bytes
) -> None:
    out = tmp_path / "sealed.pdf"
    _seal(
        token_session,
        seal_fixtures,
        _pdf(tmp_path, make_pdfs.valid_pdf()),
        out,
        seal_png,
        PlacementSpec(1, 100, 100, 40),
    )
    (check,) = verify_pdf(out, [seal_fixtures.foreign_ca.read_bytes()])
    assert check.intact and check.valid and not check.trusted


def test_r14_appended_change_is_detected(
    tmp_path: Path, token_session: pkcs11.Session, seal_fixtures: SealFixtures, seal_png: bytes
) -> None:
    out = tmp_path / "sealed.pdf"
    _seal(
        token_session,
        seal_fixtures,
        _pdf(tmp_path, make_pdfs.valid_pdf()),
        out,
        seal_png,
        PlacementSpec(1, 100, 100, 40),
    )
    # Someone appends an incremental update that changes the page content.
    writer = IncrementalPdfFileWriter(io.BytesIO(out.read_bytes()))
    page_ref, _ = writer.find_page_for_modification(0)
    stream = generic.StreamObject(stream_data=b"BT /Helv 30 Tf 72 400 Td (PAID 1000000) Tj ET")
    page = page_ref.get_object()
    page[generic.pdf_name("/Contents")] = generic.ArrayObject(
        [page.raw_get("/Contents"), writer.add_object(stream)]
    )
    writer.update_container(page)
    tampered = tmp_path / "tampered.pdf"
    with tampered.open("wb") as fh:
        writer.write(fh)

    report = _pdfsig(tampered)
    assert "Total document signed" not in report, report
    (check,) = verify_pdf(tampered, _roots(seal_fixtures))
    assert check.intact and check.valid  # the signed revision itself is untouched...
    assert not check.covers_whole_document  # ...but the document goes beyond it
    assert check.modification_level != "NONE"


def _red_bbox_mm(pdf: Path, tmp_path: Path, dpi: int) -> tuple[float, float, float, float]:
    prefix = tmp_path / f"render{dpi}"
    subprocess.run(
        [_tool("pdftoppm"), "-r", str(dpi), "-png", "-singlefile", str(pdf), str(prefix)],
        check=True,
        timeout=60,
    )
    image = Image.open(f"{prefix}.png").convert("RGB")
    raw = image.tobytes()
    xs: list[int] = []
    ys: list[int] = []
    for i in range(0, len(raw), 3):
        r, g, b = raw[i], raw[i + 1], raw[i + 2]
        if r > 180 and g < 90 and b < 90:
            pixel = i // 3
            xs.append(pixel % image.width)
            ys.append(pixel // image.width)
    assert xs, "no red seal pixels on the rendered page"
    px_mm = 25.4 / dpi
    return (min(xs) * px_mm, min(ys) * px_mm, (max(xs) + 1) * px_mm, (max(ys) + 1) * px_mm)


@pytest.mark.parametrize(
    "pdf_kwargs,placement,dpi",
    [
        ({}, PlacementSpec(1, 150, 200, 40), 72),
        ({}, PlacementSpec(1, 30, 260, 36), 150),
        ({"media_box": (100, 50, 695.28, 891.89)}, PlacementSpec(1, 60, 40, 30), 150),
        ({"rotate": 90}, PlacementSpec(1, 200, 60, 40), 150),
        ({"rotate": 270}, PlacementSpec(1, 60, 150, 40), 72),
    ],
)
def test_r13_seal_is_drawn_at_requested_position(
    tmp_path: Path,
    token_session: pkcs11.Session,
    seal_fixtures: SealFixtures,
    seal_png: bytes,
    pdf_kwargs: dict[str, object],
    placement: PlacementSpec,
    dpi: int,
) -> None:
    src = _pdf(tmp_path, make_pdfs.valid_pdf(chinese=False, **pdf_kwargs))  # type: ignore[arg-type]
    out = tmp_path / "sealed.pdf"
    _seal(token_session, seal_fixtures, src, out, seal_png, placement)
    x1, y1, x2, y2 = _red_bbox_mm(out, tmp_path, dpi)
    assert (x1 + x2) / 2 == pytest.approx(placement.x_mm, abs=1.0)
    assert (y1 + y2) / 2 == pytest.approx(placement.y_mm, abs=1.0)
    # Upright and at the requested size (the round seal fills its box).
    assert x2 - x1 == pytest.approx(placement.size_mm, abs=1.5)
    assert y2 - y1 == pytest.approx(placement.size_mm, abs=1.5)


def test_r13_placement_box_accounts_for_origin_and_rotation() -> None:
    spec = PlacementSpec(1, 50, 30, 20)
    assert placement_box(595, 842, spec) == pytest.approx(
        (40 * MM, 842 - 40 * MM, 60 * MM, 842 - 20 * MM)
    )
    shifted = placement_box(595, 842, spec, origin_pt=(100, 50))
    assert shifted == pytest.approx(
        (100 + 40 * MM, 50 + 842 - 40 * MM, 100 + 60 * MM, 50 + 842 - 20 * MM)
    )
    # /Rotate 90: displayed top-left is user-space bottom-left; x runs up the page.
    assert placement_box(595, 842, spec, rotate=90) == pytest.approx(
        (20 * MM, 40 * MM, 40 * MM, 60 * MM)
    )
    assert placement_box(595, 842, spec, rotate=180) == pytest.approx(
        (595 - 60 * MM, 20 * MM, 595 - 40 * MM, 40 * MM)
    )
    assert placement_box(595, 842, spec, rotate=-90) == placement_box(595, 842, spec, rotate=270)


@pytest.mark.parametrize(
    "spec",
    [
        PlacementSpec(1, 5, 100, 20),
        PlacementSpec(1, 100, 290, 20),
        PlacementSpec(1, 100, 100, 0),
        PlacementSpec(1, float("nan"), 100, 20),
    ],
)
def test_r13_off_page_placement_is_refused(spec: PlacementSpec) -> None:
    with pytest.raises(PlacementError):
        placement_box(595, 842, spec)
    with pytest.raises(InputDocumentError):  # PlacementError is an input error for the API
        placement_box(595, 842, spec)


def _leftovers(directory: Path) -> list[str]:
    return sorted(
        p.name for p in directory.iterdir() if p.name.startswith(".") or p.name == "out.pdf"
    )


@pytest.mark.parametrize(
    "name", ["truncated__no_eof", "broken_xref__offsets", "encrypted__rc4_aes", "not_pdf__text"]
)
def test_failed_sealing_of_bad_input_leaves_nothing_at_output(
    tmp_path: Path,
    token_session: pkcs11.Session,
    seal_fixtures: SealFixtures,
    seal_png: bytes,
    name: str,
) -> None:
    src = _pdf(tmp_path, make_pdfs.malformed_corpus()[name])
    outdir = tmp_path / "out"
    outdir.mkdir()
    with pytest.raises(InputDocumentError):
        _seal(
            token_session,
            seal_fixtures,
            src,
            outdir / "out.pdf",
            seal_png,
            PlacementSpec(1, 100, 100, 40),
        )
    assert _leftovers(outdir) == []


def test_off_page_or_missing_page_leaves_nothing_at_output(
    tmp_path: Path, token_session: pkcs11.Session, seal_fixtures: SealFixtures, seal_png: bytes
) -> None:
    src = _pdf(tmp_path, make_pdfs.valid_pdf())
    outdir = tmp_path / "out"
    outdir.mkdir()
    for spec in (PlacementSpec(1, 205, 100, 40), PlacementSpec(3, 100, 100, 40)):
        with pytest.raises(PlacementError) as err:
            _seal(token_session, seal_fixtures, src, outdir / "out.pdf", seal_png, spec)
        assert err.value.reason in {"off_page", "page_out_of_range"}
    assert _leftovers(outdir) == []


def test_token_failure_mid_signature_is_token_error_and_leaves_nothing(
    tmp_path: Path, seal_fixtures: SealFixtures, seal_png: bytes
) -> None:
    seal = seal_fixtures.seals["contract"]
    token = pkcs11.lib(str(seal_fixtures.module)).get_token(token_label=seal.token_label)
    session = token.open(user_pin=seal.user_pin)
    signer = token_signer(session, seal.key_label, seal.key_label)
    session.close()  # the custodian pulled the token between preparation and signing
    outdir = tmp_path / "out"
    outdir.mkdir()
    with pytest.raises(TokenSigningError) as err:
        seal_pdf(
            _pdf(tmp_path, make_pdfs.valid_pdf()),
            outdir / "out.pdf",
            signer=signer,
            spec=SealSpec(
                seal_png=seal_png,
                placement=PlacementSpec(1, 100, 100, 40),
                reason="r",
                location="l",
                field_name="Seal1",
            ),
        )
    assert err.value.reason == "token_error"
    assert seal.user_pin not in str(err.value)
    assert _leftovers(outdir) == []


def test_wrong_key_label_is_token_error(
    token_session: pkcs11.Session, seal_fixtures: SealFixtures
) -> None:
    with pytest.raises(TokenSigningError) as err:
        token_signer(token_session, "no-such-key", "no-such-cert")
    assert "no-such-cert" in str(err.value)


def test_second_seal_keeps_first_valid(
    tmp_path: Path, token_session: pkcs11.Session, seal_fixtures: SealFixtures, seal_png: bytes
) -> None:
    once = tmp_path / "once.pdf"
    twice = tmp_path / "twice.pdf"
    _seal(
        token_session,
        seal_fixtures,
        _pdf(tmp_path, make_pdfs.valid_pdf()),
        once,
        seal_png,
        PlacementSpec(1, 60, 100, 40),
        field="Seal1",
    )
    _seal(
        token_session,
        seal_fixtures,
        once,
        twice,
        seal_png,
        PlacementSpec(1, 150, 100, 40),
        field="Seal2",
    )
    checks = verify_pdf(twice, _roots(seal_fixtures))
    assert [c.field_name for c in checks] == ["Seal1", "Seal2"]
    assert all(c.intact and c.valid and c.trusted for c in checks)
    assert [c.covers_whole_document for c in checks] == [False, True]
    assert _qpdf_check(twice) == 0
