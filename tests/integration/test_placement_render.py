"""Where the seal really lands, checked on pages rendered by poppler's pdftoppm
(SEAL-RULES R13): anchor placement within 1 mm of the anchor text's own ink, and the
cross-page seal (骑缝章) as slices on the right edge of EVERY page; plus multiple seals
and DocMDP certification (R13/R14), validated by pyHanko, pdfsig and qpdf."""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import make_pdfs
import pkcs11
import pytest
from fixture_layout import SealFixtures
from PIL import Image, ImageChops
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.font.opentype import GlyphAccumulatorFactory
from pyhanko.pdf_utils.text import TextBox, TextBoxStyle
from pyhanko.pdf_utils.writer import PageObject, PdfFileWriter

from seald.signing.errors import PlacementError, SigningError
from seald.signing.levels import Certification
from seald.signing.pades import SealResult, SealSpec, seal_pdf, token_signer
from seald.signing.placement import PlacementSpec
from seald.signing.seal_image import SealImageSpec, render_seal_png
from seald.signing.verify import verify_pdf

DPI = 150
PX_MM = 25.4 / DPI
A4 = (0.0, 0.0, 595.28, 841.89)
# The anchor sits in the middle of a word, so the search must interpolate inside it;
# "华夏" on both sides makes the anchor's centre the centre of the line's ink.
ANCHOR_LINE = "华夏（盖章）华夏"


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is required (Debian poppler-utils / qpdf) and is not installed")
    return path


def _seal(
    session: pkcs11.Session,
    fx: SealFixtures,
    src: Path,
    dst: Path,
    png: bytes,
    placement: PlacementSpec,
    *,
    field: str = "Seal1",
    certification: Certification = Certification.NONE,
) -> SealResult:
    label = fx.seals["contract"].key_label
    return seal_pdf(
        src,
        dst,
        signer=token_signer(session, label, label),
        spec=SealSpec(
            seal_png=png,
            placement=placement,
            reason="合同盖章",
            location="北京",
            field_name=field,
            certification=certification,
        ),
    )


def anchor_pdf(
    pages: int, *, media_box: tuple[float, float, float, float] = A4, anchor_at: tuple[float, float]
) -> bytes:
    """Pages with ANCHOR_LINE drawn at ``anchor_at`` (user space, from the box origin)."""
    writer = PdfFileWriter(stream_xrefs=False)
    for _ in range(pages):
        box = TextBox(
            TextBoxStyle(
                font=GlyphAccumulatorFactory(make_pdfs._cjk_subset_font()),
                font_size=14,
                border_width=0,
            ),
            writer=writer,
        )
        box.content = ANCHOR_LINE
        ops = b"q 1 0 0 1 %g %g cm %s Q\n" % (
            media_box[0] + anchor_at[0],
            media_box[1] + anchor_at[1],
            box.render(),
        )
        resources = generic.DictionaryObject(
            {generic.pdf_name("/Font"): generic.DictionaryObject(box.resources.font)}
        )
        writer.insert_page(
            PageObject(
                contents=writer.add_object(generic.StreamObject(stream_data=ops)),
                media_box=generic.ArrayObject(map(generic.FloatObject, media_box)),
                resources=resources,
            )
        )
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _render(pdf: Path, page: int, tmp_path: Path) -> Image.Image:
    prefix = tmp_path / f"{pdf.stem}-p{page}"
    subprocess.run(
        [
            _tool("pdftoppm"),
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
    return Image.open(f"{prefix}.png").convert("RGB")


def _bbox_mm(image: Image.Image, *, red: bool) -> tuple[float, float, float, float]:
    """Bounding box (mm from the top-left) of seal-red pixels, or of dark ink."""
    r, g, b = image.split()
    if red:
        masks = [r.point(lambda v: 255 if v > 180 else 0)]
        masks += [c.point(lambda v: 255 if v < 90 else 0) for c in (g, b)]
    else:
        masks = [c.point(lambda v: 255 if v < 100 else 0) for c in (r, g, b)]
    mask = ImageChops.multiply(ImageChops.multiply(masks[0], masks[1]), masks[2])
    box = mask.getbbox()
    assert box is not None, f"no {'red' if red else 'dark'} pixels on the rendered page"
    return (box[0] * PX_MM, box[1] * PX_MM, box[2] * PX_MM, box[3] * PX_MM)


def _centre(box: tuple[float, float, float, float]) -> tuple[float, float]:
    return ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)


def _check_valid(path: Path, fx: SealFixtures, fields: int) -> None:
    checks = verify_pdf(path, [fx.seal_ca.read_bytes()])
    assert len(checks) == fields
    assert all(c.intact and c.valid and c.trusted for c in checks), checks
    assert checks[-1].covers_whole_document
    done = subprocess.run(
        [_tool("pdfsig"), "-nocert", str(path)], capture_output=True, text=True, check=False
    )
    assert done.stdout.count("Signature is Valid") == fields, done.stdout
    assert "Total document signed" in done.stdout, done.stdout
    qpdf = subprocess.run([_tool("qpdf"), "--check", str(path)], capture_output=True, text=True, check=False)
    assert qpdf.returncode == 0, qpdf.stdout + qpdf.stderr


@pytest.mark.parametrize(
    "media_box,anchor_at,size_mm",
    [
        (A4, (300.0, 200.0), 40.0),
        ((100.0, 50.0, 695.28, 891.89), (120.0, 500.0), 30.0),
    ],
)
def test_r13_anchor_seal_is_centred_on_the_anchor_text_within_1mm(
    token_session: pkcs11.Session,
    seal_fixtures: SealFixtures,
    seal_png: bytes,
    tmp_path: Path,
    media_box: tuple[float, float, float, float],
    anchor_at: tuple[float, float],
    size_mm: float,
) -> None:
    src = tmp_path / "in.pdf"
    src.write_bytes(anchor_pdf(2, media_box=media_box, anchor_at=anchor_at))
    ink = _centre(_bbox_mm(_render(src, 2, tmp_path), red=False))
    out = tmp_path / "out.pdf"
    result = _seal(
        token_session,
        seal_fixtures,
        src,
        out,
        seal_png,
        PlacementSpec(page=0, x_mm=0, y_mm=0, size_mm=size_mm, anchor_text="（盖章）"),
    )
    assert result.page == 2  # page 0 = the last occurrence: the last page
    red = _bbox_mm(_render(out, 2, tmp_path), red=True)
    cx, cy = _centre(red)
    assert abs(cx - ink[0]) <= 1.0 and abs(cy - ink[1]) <= 1.0, (red, ink)
    assert abs((red[2] - red[0]) - size_mm) <= 1.0
    _check_valid(out, seal_fixtures, 1)


def test_r13_anchor_offset_moves_the_seal(
    token_session: pkcs11.Session, seal_fixtures: SealFixtures, seal_png: bytes, tmp_path: Path
) -> None:
    src = tmp_path / "in.pdf"
    src.write_bytes(anchor_pdf(1, anchor_at=(300.0, 200.0)))
    ink = _centre(_bbox_mm(_render(src, 1, tmp_path), red=False))
    out = tmp_path / "out.pdf"
    _seal(
        token_session,
        seal_fixtures,
        src,
        out,
        seal_png,
        PlacementSpec(page=1, x_mm=25, y_mm=-10, size_mm=40, anchor_text="（盖章）"),
    )
    cx, cy = _centre(_bbox_mm(_render(out, 1, tmp_path), red=True))
    assert abs(cx - (ink[0] + 25)) <= 1.0 and abs(cy - (ink[1] - 10)) <= 1.0


def test_r13_missing_anchor_is_refused_and_nothing_written(
    token_session: pkcs11.Session, seal_fixtures: SealFixtures, seal_png: bytes, tmp_path: Path
) -> None:
    src = tmp_path / "in.pdf"
    src.write_bytes(anchor_pdf(1, anchor_at=(300.0, 200.0)))
    out = tmp_path / "out.pdf"
    with pytest.raises(PlacementError) as refused:
        _seal(
            token_session,
            seal_fixtures,
            src,
            out,
            seal_png,
            PlacementSpec(page=0, x_mm=0, y_mm=0, size_mm=40, anchor_text="（签字）"),
        )
    assert refused.value.reason == "anchor_not_found"
    assert "（签字）" in str(refused.value)
    assert not out.exists()


@pytest.mark.parametrize("pages,rotate", [(3, 0), (4, 90), (2, 270)])
def test_r13_cross_page_slices_are_on_every_page_right_edge(
    token_session: pkcs11.Session,
    seal_fixtures: SealFixtures,
    seal_png: bytes,
    tmp_path: Path,
    pages: int,
    rotate: int,
) -> None:
    size_mm, y_mm = 40.0, 120.0
    src = tmp_path / "in.pdf"
    src.write_bytes(make_pdfs.valid_pdf(pages, rotate=rotate))
    out = tmp_path / "out.pdf"
    result = _seal(
        token_session,
        seal_fixtures,
        src,
        out,
        seal_png,
        PlacementSpec(page=0, x_mm=0, y_mm=y_mm, size_mm=size_mm, cross_page=True),
        field="CrossPage",
    )
    assert len(result.slice_boxes_pt) == pages
    widths, tops, bottoms = [], [], []
    for page in range(1, pages + 1):
        image = _render(out, page, tmp_path)
        page_w_mm = image.width * PX_MM
        left, top, right, bottom = _bbox_mm(image, red=True)
        assert abs(right - page_w_mm) <= 1.0, (page, right, page_w_mm)
        # a round seal is symmetric about its horizontal axis: every slice is centred on y
        assert abs((top + bottom) / 2 - y_mm) <= 1.0, (page, top, bottom)
        assert right - left <= size_mm / pages + 1.0, (page, left, right)
        widths.append(right - left)
        tops.append(top)
        bottoms.append(bottom)
    # together the slices make the whole seal: full height and (almost) full width
    assert abs(min(tops) - (y_mm - size_mm / 2)) <= 1.0
    assert abs(max(bottoms) - (y_mm + size_mm / 2)) <= 1.0
    assert sum(widths) >= size_mm - pages * 1.0
    _check_valid(out, seal_fixtures, 1)


def test_r13_cross_page_on_one_page_is_refused(
    token_session: pkcs11.Session, seal_fixtures: SealFixtures, seal_png: bytes, tmp_path: Path
) -> None:
    src = tmp_path / "in.pdf"
    src.write_bytes(make_pdfs.valid_pdf(1))
    with pytest.raises(PlacementError) as refused:
        _seal(
            token_session,
            seal_fixtures,
            src,
            tmp_path / "out.pdf",
            seal_png,
            PlacementSpec(page=0, x_mm=0, y_mm=120, size_mm=40, cross_page=True),
        )
    assert refused.value.reason == "cross_page_needs_pages"


def test_r14_cross_page_slice_removed_breaks_the_signature(
    token_session: pkcs11.Session, seal_fixtures: SealFixtures, seal_png: bytes, tmp_path: Path
) -> None:
    src = tmp_path / "in.pdf"
    src.write_bytes(make_pdfs.valid_pdf(2))
    out = tmp_path / "out.pdf"
    _seal(
        token_session,
        seal_fixtures,
        src,
        out,
        seal_png,
        PlacementSpec(page=0, x_mm=0, y_mm=120, size_mm=40, cross_page=True),
    )
    data = bytearray(out.read_bytes())
    at = data.find(b"/SealSlice1 Do")
    assert at > 0
    data[at : at + 14] = b"/SealSlice2 Do"  # same length: a silent in-place edit
    tampered = tmp_path / "tampered.pdf"
    tampered.write_bytes(bytes(data))
    checks = verify_pdf(tampered, [seal_fixtures.seal_ca.read_bytes()])
    assert checks and not checks[0].intact


def test_r13_contract_and_legal_representative_seals_both_stay_valid(
    token_session: pkcs11.Session, seal_fixtures: SealFixtures, seal_png: bytes, tmp_path: Path
) -> None:
    """Two successive seals, the first a DocMDP certification that allows signing."""
    personal = render_seal_png(SealImageSpec("legal_representative", "", "", "王建国"), 20)
    src = tmp_path / "in.pdf"
    src.write_bytes(make_pdfs.valid_pdf(1))
    first, second = tmp_path / "one.pdf", tmp_path / "two.pdf"
    _seal(
        token_session,
        seal_fixtures,
        src,
        first,
        seal_png,
        PlacementSpec(1, 60, 200, 40),
        field="Contract",
        certification=Certification.FORM_FILLING,
    )
    _seal(token_session, seal_fixtures, first, second, personal, PlacementSpec(1, 150, 200, 20), field="LR")
    _check_valid(second, seal_fixtures, 2)
    checks = verify_pdf(second, [seal_fixtures.seal_ca.read_bytes()])
    assert [c.field_name for c in checks] == ["Contract", "LR"]
    assert [c.covers_whole_document for c in checks] == [False, True]
    red = _bbox_mm(_render(second, 1, tmp_path), red=True)
    assert red[0] <= 60 - 20 + 1 and red[2] >= 150 + 10 - 1  # both seals are drawn


def test_r13_no_changes_certification_refuses_a_second_seal(
    token_session: pkcs11.Session, seal_fixtures: SealFixtures, seal_png: bytes, tmp_path: Path
) -> None:
    src = tmp_path / "in.pdf"
    src.write_bytes(make_pdfs.valid_pdf(1))
    first = tmp_path / "one.pdf"
    _seal(
        token_session,
        seal_fixtures,
        src,
        first,
        seal_png,
        PlacementSpec(1, 60, 200, 40),
        certification=Certification.NO_CHANGES,
    )
    _check_valid(first, seal_fixtures, 1)
    with pytest.raises(SigningError) as refused:
        _seal(
            token_session,
            seal_fixtures,
            first,
            tmp_path / "two.pdf",
            seal_png,
            PlacementSpec(1, 150, 200, 40),
            field="Seal2",
        )
    assert refused.value.reason == "certified_no_changes"
    assert not (tmp_path / "two.pdf").exists()
