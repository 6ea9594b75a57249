"""Preview bounds (issue 6, render_preview with the real pdftoppm): huge pages are
rendered at a lower resolution (no side over MAX_SIDE_PX) with the seal still where
the placement says, a PNG over the size cap is scaled down consistently, cross-page
previews stop at MAX_PAGES pages, and bad requests are refused with a reason."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from make_pdfs import valid_pdf
from PIL import Image

from seald.signing import preview
from seald.signing.errors import PlacementError
from seald.signing.placement import PlacementSpec
from seald_testing.images import contract_seal_png

SEAL = contract_seal_png()


def _red_centre_mm(png: bytes) -> tuple[tuple[float, float], float]:
    image = Image.open(io.BytesIO(png)).convert("RGB")
    dpi = float(Image.open(io.BytesIO(png)).info["dpi"][0])
    r, g, b = image.split()
    mask = (
        Image.merge(
            "RGB",
            (
                r.point(lambda v: 255 if v > 180 else 0),
                g.point(lambda v: 255 if v < 90 else 0),
                b.point(lambda v: 255 if v < 90 else 0),
            ),
        )
        .convert("L")
        .point(lambda v: 255 if v == 255 else 0)
    )
    box = mask.getbbox()
    assert box is not None
    mm = 25.4 / dpi
    return ((box[0] + box[2]) / 2 * mm, (box[1] + box[3]) / 2 * mm), mm


def test_r13_huge_page_is_previewed_within_the_pixel_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(preview, "MAX_SIDE_PX", 1500)  # the same rule, fewer pixels to test
    pdf = tmp_path / "poster.pdf"
    pdf.write_bytes(valid_pdf(1, media_box=(0.0, 0.0, 7200.0, 7200.0), chinese=False))  # 100 in
    placement = PlacementSpec(page=1, x_mm=1000.0, y_mm=2000.0, size_mm=100.0)
    (page,) = preview.render_preview(pdf, SEAL, placement, dpi=300)
    image = Image.open(io.BytesIO(page.png))
    assert max(image.size) <= preview.MAX_SIDE_PX
    assert page.dpi == pytest.approx(preview.MAX_SIDE_PX / 100, rel=0.01)
    (cx, cy), px_mm = _red_centre_mm(page.png)
    assert abs(cx - 1000.0) <= 2 * px_mm and abs(cy - 2000.0) <= 2 * px_mm


def test_r13_oversized_png_is_scaled_down_with_the_seal_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pdf = tmp_path / "a4.pdf"
    pdf.write_bytes(valid_pdf(1))
    monkeypatch.setattr(preview, "MAX_PNG_BYTES", 30_000)
    placement = PlacementSpec(page=1, x_mm=150.0, y_mm=230.0, size_mm=40.0)
    (page,) = preview.render_preview(pdf, SEAL, placement, dpi=100)
    assert len(page.png) <= 30_000 and page.dpi < 100
    (cx, cy), px_mm = _red_centre_mm(page.png)
    assert abs(cx - 150.0) <= max(1.0, 2 * px_mm) and abs(cy - 230.0) <= max(1.0, 2 * px_mm)


def test_r13_cross_page_preview_stops_at_max_pages(tmp_path: Path) -> None:
    pdf = tmp_path / "long.pdf"
    pdf.write_bytes(valid_pdf(preview.MAX_PAGES + 2, chinese=False))
    placement = PlacementSpec(page=0, x_mm=0.0, y_mm=150.0, size_mm=40.0, cross_page=True)
    pages = preview.render_preview(pdf, SEAL, placement, dpi=40)
    assert [p.page for p in pages] == list(range(1, preview.MAX_PAGES + 1))


@pytest.mark.parametrize(
    "placement,dpi,reason",
    [
        (PlacementSpec(page=1, x_mm=100, y_mm=100, size_mm=40), 5, "bad_preview_dpi"),
        (PlacementSpec(page=1, x_mm=100, y_mm=100, size_mm=40), 301, "bad_preview_dpi"),
        (PlacementSpec(page=3, x_mm=100, y_mm=100, size_mm=40), 100, "page_out_of_range"),
        (PlacementSpec(page=1, x_mm=5, y_mm=100, size_mm=40), 100, "off_page"),
        (PlacementSpec(page=0, x_mm=0, y_mm=0, size_mm=40, anchor_text="（签字）"), 100, "anchor_not_found"),
    ],
)
def test_r13_preview_refuses_what_sealing_would_refuse(
    tmp_path: Path, placement: PlacementSpec, dpi: int, reason: str
) -> None:
    pdf = tmp_path / "doc.pdf"
    pdf.write_bytes(valid_pdf(2))
    with pytest.raises(PlacementError) as refused:
        preview.render_preview(pdf, SEAL, placement, dpi=dpi)
    assert refused.value.reason == reason
