"""Where the visible seal goes (SEAL-RULES R13).

Requests give the seal's centre in millimetres from the top-left corner of the page
as a person sees it (after /Rotate); PDF annotations live in unrotated user space
with the origin at the bottom-left of the page box. This module converts between
the two, with no PDF library involved.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .errors import PlacementError

POINTS_PER_MM = 72.0 / 25.4


@dataclass(frozen=True)
class PlacementSpec:
    page: int  # 1-based; 0 = last page
    x_mm: float  # CENTRE of the seal, mm from the displayed page's TOP-LEFT corner
    y_mm: float
    size_mm: float
    # Non-empty: centre on this text (x_mm/y_mm become an offset from it); see anchors.py.
    anchor_text: str = ""
    # Cross-page seal (骑缝章): slices on the right edge of every page; see cross_page.py.
    cross_page: bool = False


def mm_to_pt(mm: float) -> float:
    return mm * POINTS_PER_MM


def resolve_page_index(page: int, page_count: int) -> int:
    """0-based page index for a 1-based page number (0 = last page)."""
    if page_count <= 0:
        raise PlacementError("the document has no pages; send a PDF with content", reason="zero_pages")
    if page == 0:
        return page_count - 1
    if 1 <= page <= page_count:
        return page - 1
    raise PlacementError(
        f"seal requested on page {page} but the document has {page_count} page(s); "
        "use 1..page_count, or 0 for the last page",
        reason="page_out_of_range",
    )


def normalise_rotation(rotate: int) -> int:
    quarter_turns, rest = divmod(int(rotate), 90)
    if rest:
        raise PlacementError(
            f"page /Rotate {rotate} is not a multiple of 90; the PDF is malformed", reason="bad_rotate"
        )
    return (quarter_turns % 4) * 90


def placement_box(
    page_width_pt: float,
    page_height_pt: float,
    spec: PlacementSpec,
    *,
    origin_pt: tuple[float, float] = (0.0, 0.0),
    rotate: int = 0,
) -> tuple[float, float, float, float]:
    """The seal's box (x1, y1, x2, y2) in PDF user space, points, origin bottom-left.

    ``page_width_pt``/``page_height_pt`` and ``origin_pt`` describe the unrotated page
    box (/CropBox or /MediaBox: its width, height and lower-left corner); ``rotate`` is
    the page's /Rotate (clockwise degrees when displayed). The seal must lie entirely
    on the page.
    """
    values = (page_width_pt, page_height_pt, spec.x_mm, spec.y_mm, spec.size_mm)
    if not all(math.isfinite(v) for v in values) or page_width_pt <= 0 or page_height_pt <= 0:
        raise PlacementError("page size and seal position must be finite numbers", reason="bad_placement")
    if spec.size_mm <= 0:
        raise PlacementError("seal size must be positive; set size_mm > 0", reason="bad_placement")
    turn = normalise_rotation(rotate)
    shown_w, shown_h = (
        (page_height_pt, page_width_pt) if turn in (90, 270) else (page_width_pt, page_height_pt)
    )
    dx, dy, half = mm_to_pt(spec.x_mm), mm_to_pt(spec.y_mm), mm_to_pt(spec.size_mm) / 2
    if dx - half < 0 or dy - half < 0 or dx + half > shown_w or dy + half > shown_h:
        raise PlacementError(
            f"a {spec.size_mm:g} mm seal centred at ({spec.x_mm:g} mm, {spec.y_mm:g} mm) from "
            f"the top-left does not fit on a {shown_w / POINTS_PER_MM:.0f} x "
            f"{shown_h / POINTS_PER_MM:.0f} mm page; move it so the whole seal is on the page",
            reason="off_page",
        )
    x0, y0 = origin_pt
    w, h = page_width_pt, page_height_pt
    # Displayed (dx right, dy down from top-left) -> unrotated user space.
    if turn == 0:
        ux, uy = x0 + dx, y0 + h - dy
    elif turn == 90:
        ux, uy = x0 + dy, y0 + dx
    elif turn == 180:
        ux, uy = x0 + w - dx, y0 + dy
    else:
        ux, uy = x0 + w - dy, y0 + h - dx
    return (ux - half, uy - half, ux + half, uy + half)
