"""Anchor placement (SEAL-RULES R13): put the seal on a text found in the page, e.g. "（盖章）".

Text positions come from poppler's ``pdftotext -bbox`` (already needed for pdfsig/
pdftoppm; no new Python dependency): word boxes in points, in the page as displayed
(after /Rotate), origin top-left, which is exactly our placement convention. A word
is a run of text without spaces, so "乙方（盖章）：" is one word; the anchor's box
inside it is interpolated by character count along the reading direction. That is
exact for CJK text (every character is full-width) and approximate for mixed text.
"""

from __future__ import annotations

import dataclasses
import html
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .errors import PlacementError, SigningError
from .placement import PlacementSpec

POINTS_PER_MM = 72.0 / 25.4
_PAGE_RE = re.compile(r"<page\b[^>]*>(.*?)</page>", re.S)
_WORD_RE = re.compile(
    r'<word xMin="([-\d.]+)" yMin="([-\d.]+)" xMax="([-\d.]+)" yMax="([-\d.]+)">(.*?)</word>', re.S
)
_TIMEOUT_S = 30


@dataclass(frozen=True)
class TextHit:
    page: int  # 1-based
    x_mm: float  # centre of the anchor text, mm from the displayed page's top-left
    y_mm: float
    width_mm: float
    height_mm: float


def resolve_anchor(pdf_path: Path, placement: PlacementSpec, rotations: list[int]) -> PlacementSpec:
    """``placement`` with the anchor replaced by a page and a centre.

    With an anchor, ``x_mm``/``y_mm`` are an OFFSET from the anchor's centre
    (0/0 = centred on it). ``page`` 0 searches the whole document and takes the last
    occurrence (signature blocks are at the end); otherwise only that page.
    ``rotations`` is each page's normalised /Rotate (decides the reading direction).
    """
    if not placement.anchor_text:
        return placement
    hits = find_text(pdf_path, placement.anchor_text, rotations)
    if placement.page:
        hits = [h for h in hits if h.page == placement.page]
    if not hits:
        where = f"page {placement.page}" if placement.page else "the document"
        raise PlacementError(
            f"the anchor text {placement.anchor_text!r} does not occur on {where}; "
            "check the text (exact characters, full-width brackets) or give x/y instead",
            reason="anchor_not_found",
        )
    hit = hits[-1]
    return dataclasses.replace(
        placement,
        page=hit.page,
        x_mm=hit.x_mm + placement.x_mm,
        y_mm=hit.y_mm + placement.y_mm,
        anchor_text="",
    )


def find_text(pdf_path: Path, needle: str, rotations: list[int]) -> list[TextHit]:
    """Every occurrence of ``needle`` inside a word, in document order."""
    return find_in_text(document_text(pdf_path), needle, rotations)


def find_in_text(text: str, needle: str, rotations: list[int]) -> list[TextHit]:
    """find_text on a document's ``document_text`` the caller already has (a job with
    several anchors extracts the text once, not once per anchor)."""
    needle = needle.strip()
    if not needle or any(ch.isspace() for ch in needle):
        raise PlacementError(
            "the anchor text must be one word without spaces, e.g. （盖章）", reason="bad_anchor"
        )
    hits: list[TextHit] = []
    for page_ix, page_xml in enumerate(_PAGE_RE.findall(text)):
        rotate = rotations[page_ix] if page_ix < len(rotations) else 0
        for match in _WORD_RE.finditer(page_xml):
            x1, y1, x2, y2 = (float(v) for v in match.groups()[:4])
            word = html.unescape(match.group(5))
            start = word.find(needle)
            while start >= 0:
                hits.append(_sub_box(page_ix + 1, (x1, y1, x2, y2), (len(word), start, len(needle)), rotate))
                start = word.find(needle, start + 1)
    return hits


def _sub_box(
    page: int,
    box: tuple[float, float, float, float],
    span: tuple[int, int, int],  # (characters in the word, anchor start, anchor length)
    rotate: int,
) -> TextHit:
    n_chars, start, length = span
    x1, y1, x2, y2 = box
    f0, f1 = start / n_chars, (start + length) / n_chars
    # Reading direction of upright text on a page displayed turned by ``rotate``.
    if rotate == 0:
        x1, x2 = x1 + (x2 - x1) * f0, x1 + (x2 - x1) * f1
    elif rotate == 180:
        x1, x2 = x2 - (x2 - x1) * f1, x2 - (x2 - x1) * f0
    elif rotate == 90:
        y1, y2 = y1 + (y2 - y1) * f0, y1 + (y2 - y1) * f1
    else:
        y1, y2 = y2 - (y2 - y1) * f1, y2 - (y2 - y1) * f0
    return TextHit(
        page=page,
        x_mm=(x1 + x2) / 2 / POINTS_PER_MM,
        y_mm=(y1 + y2) / 2 / POINTS_PER_MM,
        width_mm=abs(x2 - x1) / POINTS_PER_MM,
        height_mm=abs(y2 - y1) / POINTS_PER_MM,
    )


def document_text(pdf_path: Path) -> str:
    """The document's words with their boxes (poppler's bbox XHTML), for find_text."""
    tool = shutil.which("pdftotext")
    if tool is None:
        raise SigningError(
            "pdftotext is needed for anchor placement; install poppler-utils", reason="tool_missing"
        )
    try:
        done = subprocess.run(
            [tool, "-q", "-bbox", "-enc", "UTF-8", str(pdf_path), "-"],
            capture_output=True,
            timeout=_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as ex:
        raise PlacementError(
            f"searching the document for the anchor took over {_TIMEOUT_S} s; give x/y instead",
            reason="anchor_search_timeout",
        ) from ex
    if done.returncode != 0:
        raise PlacementError(
            "the document's text could not be extracted to find the anchor; give x/y instead",
            reason="anchor_search_failed",
        )
    return done.stdout.decode("utf-8", "replace")
