"""Cross-page seal (骑缝章, SEAL-RULES R13): the seal image cut into N equal vertical
slices, slice k drawn flush with the right edge of page k (as displayed), so that the
pages fanned out side by side show the whole seal; plus ONE signature over all of it.

The slices are page content written in the same incremental revision as the
signature, so the signature covers them: removing or moving a slice breaks it.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.images import pil_image
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

from .errors import PlacementError, SigningError
from .placement import POINTS_PER_MM, PlacementSpec, mm_to_pt, normalise_rotation

MIN_PAGES = 2
MIN_SLICE_MM = 1.0  # thinner slices are no longer recognisable as part of a seal


@dataclass(frozen=True)
class PageBox:
    width_pt: float  # unrotated page box (/CropBox or /MediaBox)
    height_pt: float
    origin_pt: tuple[float, float]
    rotate: int


def displayed_rect_to_user(
    page: PageBox, rect_pt: tuple[float, float, float, float]
) -> tuple[float, float, float, float]:
    """A rectangle given as (left, top, right, bottom) in points from the DISPLAYED
    page's top-left corner, as (x1, y1, x2, y2) in unrotated PDF user space."""
    corners = [_point_to_user(page, dx, dy) for dx in rect_pt[0::2] for dy in rect_pt[1::2]]
    xs, ys = [c[0] for c in corners], [c[1] for c in corners]
    return (min(xs), min(ys), max(xs), max(ys))


def _point_to_user(page: PageBox, dx: float, dy: float) -> tuple[float, float]:
    x0, y0 = page.origin_pt
    w, h = page.width_pt, page.height_pt
    turn = normalise_rotation(page.rotate)
    if turn == 0:
        return x0 + dx, y0 + h - dy
    if turn == 90:
        return x0 + dy, y0 + dx
    if turn == 180:
        return x0 + w - dx, y0 + dy
    return x0 + w - dy, y0 + h - dx


def slice_rects_displayed(
    pages: list[PageBox], placement: PlacementSpec, *, page_numbers: Sequence[int] = ()
) -> list[tuple[float, float, float, float]]:
    """Per page, the slice's (left, top, right, bottom) in displayed points.

    ``page_numbers``: the pages' 1-based numbers in the document, for the error
    message (a job's cross-page group need not start on page 1)."""
    n = len(pages)
    if n < MIN_PAGES:
        raise PlacementError(
            f"a cross-page seal needs at least {MIN_PAGES} pages; this document has {n}. "
            "Use a normal placement instead",
            reason="cross_page_needs_pages",
        )
    if placement.size_mm <= 0:
        raise PlacementError("seal size must be positive; set size_mm > 0", reason="bad_placement")
    slice_mm = placement.size_mm / n
    if slice_mm < MIN_SLICE_MM:
        raise PlacementError(
            f"{n} pages would cut a {placement.size_mm:g} mm seal into {slice_mm:.2f} mm slices "
            f"(minimum {MIN_SLICE_MM:g} mm); use a larger seal or seal the document in parts",
            reason="cross_page_too_many_pages",
        )
    half = mm_to_pt(placement.size_mm) / 2
    cy = mm_to_pt(placement.y_mm)
    slice_pt = mm_to_pt(slice_mm)
    rects = []
    numbers = list(page_numbers) or list(range(1, n + 1))
    for number, page in zip(numbers, pages, strict=True):
        shown_w, shown_h = (
            (page.height_pt, page.width_pt)
            if normalise_rotation(page.rotate) in (90, 270)
            else (page.width_pt, page.height_pt)
        )
        if cy - half < 0 or cy + half > shown_h:
            raise PlacementError(
                f"a {placement.size_mm:g} mm cross-page seal centred {placement.y_mm:g} mm from "
                f"the top does not fit on page {number} ({shown_h / POINTS_PER_MM:.0f} mm high); "
                "move it so the whole seal is on every page",
                reason="off_page",
            )
        rects.append((shown_w - slice_pt, cy - half, shown_w, cy + half))
    return rects


def image_slices(seal_png: bytes, count: int) -> list[Image.Image]:
    """The seal cut left to right into ``count`` equal-width slices (pixel-rounded)."""
    try:
        opened = Image.open(io.BytesIO(seal_png))
        opened.load()
    except Exception as ex:
        raise SigningError(
            "the seal image is not a readable PNG; re-render it", reason="bad_seal_image"
        ) from ex
    image = opened.convert("RGBA")
    edges = [round(k * image.width / count) for k in range(count + 1)]
    return [image.crop((edges[k], 0, edges[k + 1], image.height)) for k in range(count)]


def draw_slices(
    writer: IncrementalPdfFileWriter,
    pages: list[PageBox],
    seal_png: bytes,
    placement: PlacementSpec,
) -> list[tuple[float, float, float, float]]:
    """Add slice k to page k's content; return each slice's user-space box."""
    rects = slice_rects_displayed(pages, placement)
    boxes = []
    for page_ix, (page, rect, raw_piece) in enumerate(
        zip(pages, rects, image_slices(seal_png, len(pages)), strict=True)
    ):
        turn = normalise_rotation(page.rotate)
        # Drawn in unrotated space: turn it back so it shows upright on screen.
        piece = raw_piece.rotate(turn, expand=True) if turn else raw_piece
        box = displayed_rect_to_user(page, rect)
        x1, y1, x2, y2 = box
        name = generic.pdf_name(f"/SealSlice{page_ix + 1}")
        xobjects = generic.DictionaryObject({name: pil_image(piece, writer)})  # type: ignore[no-untyped-call]
        resources = generic.DictionaryObject({generic.pdf_name("/XObject"): xobjects})  # type: ignore[no-untyped-call]
        # Existing content may leave the graphics state changed: isolate it in q..Q.
        writer.add_stream_to_page(  # type: ignore[no-untyped-call]
            page_ix, writer.add_object(generic.StreamObject(stream_data=b"q\n")), prepend=True
        )
        ops = b"Q\nq %.4f 0 0 %.4f %.4f %.4f cm %s Do Q\n" % (
            x2 - x1,
            y2 - y1,
            x1,
            y1,
            name.encode(),
        )
        writer.add_stream_to_page(  # type: ignore[no-untyped-call]
            page_ix, writer.add_object(generic.StreamObject(stream_data=ops)), resources
        )
        boxes.append(box)
    return boxes
