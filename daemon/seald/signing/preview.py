"""Preview for approvers (issue 6): the ORIGINAL pages where the seal will go, rendered
by poppler's ``pdftoppm``, with the seal image composited at the requested placement
(page + centre, anchor text, or cross-page slices), as PNG.

The geometry is the one the sealing code uses: placement in mm from the top-left of the
displayed page (after /Rotate, /CropBox as the page box), anchors through
``anchors.resolve_anchor``, cross-page slices through ``cross_page.slice_rects_displayed``.
So an approver looks at a picture of the result, not at a hash (R06, R13).

Blocking (subprocesses, image work): call from a worker thread. Bounded: at most
``MAX_PAGES`` pages per call (a page range, or the seal's pages),
``MIN_DPI``..``MAX_DPI``, no page side over ``MAX_SIDE_PX`` pixels
(the dpi is lowered for huge pages) and a timeout on every poppler call.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from PIL import Image

from .anchors import resolve_anchor
from .cross_page import PageBox, image_slices, slice_rects_displayed
from .errors import InputDocumentError, PlacementError, SigningError
from .input_checks import count_pages
from .pades import PageGeometry, open_incremental, page_geometry
from .placement import POINTS_PER_MM, PlacementSpec, placement_box, resolve_page_index

DEFAULT_DPI = 100
MIN_DPI = 30
MAX_DPI = 300
MAX_PAGES = 10  # per call: a page range, or a cross-page seal's first pages
MAX_SIDE_PX = 4000
# A PreviewPage must fit a gRPC message (4 MiB by default) with room to spare.
MAX_PNG_BYTES = 3 * 1024 * 1024
RENDER_TIMEOUT_S = 30

# Displayed-page rectangle in points from the top-left: (left, top, right, bottom).
Rect = tuple[float, float, float, float]


@dataclass(frozen=True)
class PreviewImage:
    page: int  # 1-based page number in the document
    png: bytes
    dpi: float  # pixels per inch of ``png`` (also in its pHYs chunk)


def check_dpi(dpi: int) -> int:
    """The dpi to render at: 0 means DEFAULT_DPI; outside MIN..MAX is refused."""
    if dpi == 0:
        return DEFAULT_DPI
    if not MIN_DPI <= dpi <= MAX_DPI:
        raise PlacementError(
            f"preview resolution {dpi} dpi is outside {MIN_DPI}..{MAX_DPI}; "
            f"ask for {MIN_DPI}..{MAX_DPI} dpi or 0 for the default ({DEFAULT_DPI})",
            reason="bad_preview_dpi",
        )
    return dpi


@dataclass(frozen=True)
class SealLocation:
    """Where the seal goes on a document, found the way sealing finds it."""

    count: int  # pages in the document
    geometry: dict[int, PageGeometry]  # page index -> visible box and rotation
    cross_rects: list[tuple[float, float, float, float]]  # 骑缝章: one slice per page
    page_ix: int  # otherwise: the page (0-based) ...
    placement: PlacementSpec  # ... and the placement with any anchor resolved


def locate_seal(pdf_path: Path, placement: PlacementSpec, *, all_pages: bool = False) -> SealLocation:
    """The placement checks sealing makes (page in range, anchor found, seal on the page,
    cross-page slices fit), without sealing or rendering; PlacementError names the reason.
    Used by the preview and at submit (issue 14: refused before any approval)."""
    with _open_source(pdf_path) as source:
        writer = open_incremental(source)
        try:
            count = count_pages(writer.root["/Pages"])
            # Every page for a cross-page seal, an anchor search or a page-range preview,
            # else only the seal's page.
            wanted = (
                range(count)
                if all_pages or placement.cross_page or placement.anchor_text
                else [resolve_page_index(placement.page, count)]
            )
            geometry = {ix: page_geometry(writer, ix) for ix in wanted}
        except SigningError:
            raise
        except Exception as ex:
            raise InputDocumentError(
                f"the PDF's page tree cannot be read ({type(ex).__name__}); re-save it", reason="malformed"
            ) from ex
    if placement.cross_page:
        boxes = [PageBox(p.width_pt, p.height_pt, p.origin_pt, p.rotate) for p in geometry.values()]
        return SealLocation(count, geometry, slice_rects_displayed(boxes, placement), count - 1, placement)
    if placement.anchor_text:
        rotations = [geometry[ix].rotate for ix in range(count)]
        placement = resolve_anchor(pdf_path, placement, rotations)
    page_ix = resolve_page_index(placement.page, count)
    page = geometry[page_ix]
    # Same check as sealing (off-page refused); the box itself is in user space.
    placement_box(page.width_pt, page.height_pt, placement, origin_pt=page.origin_pt, rotate=page.rotate)
    return SealLocation(count, geometry, [], page_ix, placement)


def check_placement(pdf_path: Path, placement: PlacementSpec) -> int:
    """locate_seal for a worker process: the page count when the seal can be placed."""
    return locate_seal(pdf_path, placement).count


def render_preview(
    pdf_path: Path, seal_png: bytes, placement: PlacementSpec, *, dpi: int = DEFAULT_DPI
) -> list[PreviewImage]:
    """Render the page(s) the seal goes on, with the seal drawn where it will be."""
    plan = plan_preview(pdf_path, seal_png, placement, dpi=dpi)
    return [plan.render(ix) for ix in plan.seal_pages]


@dataclass(frozen=True)
class PreviewPlan:
    """Where the seal goes on every page of one document, ready to render page by page.

    Planning reads only the page tree (cheap); each page is rendered on its own, so a
    caller can send the first picture before the rest exist and ask for any page range.
    """

    pdf_path: Path
    dpi: int
    page_count: int
    geometry: dict[int, PageGeometry]
    overlays: dict[int, list[tuple[Image.Image, Rect]]]  # 0-based page -> what to draw on it
    seal_pages: list[int]  # the pages the legacy preview shows (0-based, at most MAX_PAGES)

    def render(self, page_ix: int) -> PreviewImage:
        """One page (0-based) with the seal drawn on it when it touches that page."""
        return _render_page(
            self.pdf_path, page_ix, self.geometry[page_ix], self.dpi, self.overlays.get(page_ix, [])
        )


def plan_preview(
    pdf_path: Path, seal_png: bytes, placement: PlacementSpec, *, dpi: int = DEFAULT_DPI
) -> PreviewPlan:
    """Resolve the placement (anchor, cross-page slices) once for the whole document."""
    dpi = check_dpi(dpi)
    # Read from the open file: a large document is never held in memory (issue 8).
    where = locate_seal(pdf_path, placement, all_pages=True)
    count, geometry = where.count, where.geometry
    if placement.cross_page:
        slices = image_slices(seal_png, count)
        return PreviewPlan(
            pdf_path,
            dpi,
            count,
            geometry,
            {ix: [(slices[ix], where.cross_rects[ix])] for ix in range(count)},
            list(range(min(count, MAX_PAGES))),
        )
    seal = _open_png(seal_png)
    placement = where.placement
    half = placement.size_mm * POINTS_PER_MM / 2
    cx, cy = placement.x_mm * POINTS_PER_MM, placement.y_mm * POINTS_PER_MM
    rect = (cx - half, cy - half, cx + half, cy + half)
    return PreviewPlan(pdf_path, dpi, count, geometry, {where.page_ix: [(seal, rect)]}, [where.page_ix])


def _render_page(
    pdf_path: Path,
    page_ix: int,
    page: PageGeometry,
    dpi: int,
    overlays: list[tuple[Image.Image, Rect]],
) -> PreviewImage:
    shown_w, shown_h = (
        (page.height_pt, page.width_pt) if page.rotate in (90, 270) else (page.width_pt, page.height_pt)
    )
    # Huge pages are rendered at a lower resolution, never at unbounded size.
    effective = min(float(dpi), MAX_SIDE_PX * 72.0 / max(shown_w, shown_h, 1.0))
    canvas = _pdftoppm(pdf_path, page_ix + 1, effective).convert("RGBA")
    scale = effective / 72.0  # pixels per point
    for image, (left, top, right, bottom) in overlays:
        x1, y1 = round(left * scale), round(top * scale)
        size = (max(round(right * scale) - x1, 1), max(round(bottom * scale) - y1, 1))
        piece = image.convert("RGBA").resize(size, Image.Resampling.LANCZOS)
        # The placement was checked to lie on the page: only rounding can reach past 0.
        canvas.alpha_composite(piece, dest=(max(x1, 0), max(y1, 0)))
    return _encode(page_ix + 1, canvas.convert("RGB"), effective)


def _encode(page: int, image: Image.Image, dpi: float) -> PreviewImage:
    """PNG with its dpi recorded; scaled down until it fits MAX_PNG_BYTES."""
    while True:
        out = io.BytesIO()
        image.save(out, format="PNG", dpi=(dpi, dpi), optimize=False, compress_level=6)
        data = out.getvalue()
        if len(data) <= MAX_PNG_BYTES or min(image.size) < 64:
            return PreviewImage(page=page, png=data, dpi=dpi)
        factor = (MAX_PNG_BYTES / len(data)) ** 0.5 * 0.95
        size = (max(round(image.width * factor), 1), max(round(image.height * factor), 1))
        dpi *= size[0] / image.width
        image = image.resize(size, Image.Resampling.LANCZOS)


def _pdftoppm(pdf_path: Path, page: int, dpi: float) -> Image.Image:
    tool = shutil.which("pdftoppm")
    if tool is None:
        raise SigningError("pdftoppm is needed for previews; install poppler-utils", reason="tool_missing")
    with tempfile.TemporaryDirectory(prefix="seald-preview-") as tmp:
        prefix = Path(tmp) / "page"
        try:
            done = subprocess.run(
                # -cropbox: the visible page box, which is what placement is measured on.
                [
                    tool,
                    "-q",
                    "-cropbox",
                    "-r",
                    f"{dpi:.4f}",
                    "-f",
                    str(page),
                    "-l",
                    str(page),
                    "-png",
                    "-singlefile",
                    str(pdf_path),
                    str(prefix),
                ],
                capture_output=True,
                timeout=RENDER_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired as ex:
            raise SigningError(
                f"rendering page {page} took over {RENDER_TIMEOUT_S} s; the page is too complex "
                "to preview, open the original document instead",
                reason="preview_timeout",
            ) from ex
        png = prefix.with_suffix(".png")
        if done.returncode != 0 or not png.is_file():
            raise InputDocumentError(
                f"page {page} of the document could not be rendered; open the original instead",
                reason="preview_failed",
            )
        with Image.open(png) as rendered:
            rendered.load()
            return rendered.copy()


def _open_png(seal_png: bytes) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(seal_png))
        image.load()
    except Exception as ex:
        raise SigningError(
            "the seal image is not a readable PNG; re-render it", reason="bad_seal_image"
        ) from ex
    return image.convert("RGBA")


def _open_source(path: Path) -> BinaryIO:
    try:
        return path.open("rb")
    except OSError as ex:
        raise InputDocumentError(
            f"cannot read the document to preview ({ex.strerror})", reason="unreadable"
        ) from ex
