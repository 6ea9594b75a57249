"""The PDF side of a sealing job (issue 16): every mark of a job checked against the
document, one signature per seal carrying all of that seal's marks, and the preview.

A job's marks (seald.domain.marks.Mark) are laid out on the document once, by
``layout_marks``: each mark becomes one or more drawings, a drawing being the seal
image (or slice k of n of it, for a cross-page seal) in a rectangle of a page, in
points from the DISPLAYED page's top-left corner (after /Rotate, /CropBox as the page
box), the convention of placement.py. The submit-time checks, the signature and the
preview all use this one layout, so what the approvers see is what gets sealed.

How a mark is laid out:

- position: the seal's centre at (x_mm, y_mm) on every page of ``pages``.
- anchor: centred on every occurrence of ``anchor_text`` (plus the x/y offset) on the
  pages of ``pages``. An explicit page set ("3", "1,3", "2-7", "last") needs the text on
  EACH of its pages; "all" searches the whole document and needs it at least once.
  More than ``anchor_max_matches`` occurrences on one page is refused (anchor_ambiguous):
  the approvers approved a mark, not a guess which "（盖章）" was meant.
- cross-page (骑缝章): the seal cut into slices on the right edge of the pages of
  ``cross_page.pages``, one seal per group of ``group_size`` pages (0 = one across all),
  centred ``y_mm`` from the top (``x_mm`` is not used: the slices sit on the edge).

``size_mm`` 0 means the seal's registered size.

The API (jobflow calls these; names and meaning are fixed):

- ``check_job_marks(pdf_path, marks, *, seal_sizes_mm, allow_overlap)``: at submit.
  Raises PlacementError naming the mark ("mark 2 (seal contract): ..."), reasons
  page_out_of_range, anchor_not_found, anchor_ambiguous, off_page,
  cross_page_needs_pages, cross_page_too_many_pages, bad_placement, marks_overlap
  (two DIFFERENT seals' drawings share area on a page and ``allow_overlap(a, b)`` is
  False; the test is on the seals' square boxes, so it is conservative for round seals).
- ``seal_job_signature(input_path, output_path, *, signer, spec, marks, layout=None)``:
  ONE signature of ONE seal over all its marks; see plan_job_signature. In the daemon's
  pipeline the same is ``pipeline.SealJob(..., marks=..., layout=...)`` (prepare in a
  worker, the key operation on the token's thread, finish), so a job's seal gets the
  pipeline's PreEncodedSigner, levels and crash handling like any request.
- ``layout_document(pdf_path, marks, *, seal_sizes_mm)``: the job's layout, made once on
  the ORIGINAL and passed to every seal's signature (``layout=``).
- ``plan_job_preview(pdf_path, marks_with_images, *, seal_sizes_mm, dpi)``: a
  ``preview.PreviewPlan`` whose ``seal_pages`` are every page a mark touches (at most
  preview.MAX_PAGES) and whose overlays are every mark's drawings; ``plan.render(ix)``
  renders a page as the existing preview does.

Blocking (poppler, image work, the token): call from a worker thread.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, cast

from PIL import Image
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import fields, signers
from pyhanko.sign.signers import Signer

from seald.domain.errors import InvalidInput
from seald.domain.marks import Mark, PageSetKind, cross_page_groups, mark_label

from .anchors import TextHit, document_text, find_in_text
from .cross_page import PageBox, displayed_rect_to_user, image_slices, slice_rects_displayed
from .errors import InputDocumentError, PlacementError, SigningError
from .input_checks import count_pages
from .pades import (
    PageGeometry,
    SealPlan,
    SealResult,
    SealSpec,
    _atomic_output,
    _check_may_add_signature,
    _open_input,
    _translate_signing_errors,
    open_incremental,
    page_geometry,
    seal_stamp_style,
    signature_metadata,
)
from .placement import POINTS_PER_MM, PlacementSpec, placement_box
from .preview import DEFAULT_DPI, MAX_PAGES, PreviewPlan, check_dpi
from .seal_xobject import EncodedImage, encode_image

# (left, top, right, bottom) in points from the displayed page's top-left corner.
Rect = tuple[float, float, float, float]
# (x1, y1, x2, y2) in unrotated PDF user space, points.
UserBox = tuple[float, float, float, float]
# Slice k of n of the seal image; (0, 1) is the whole seal.
Piece = tuple[int, int]
WHOLE: Piece = (0, 1)


@dataclass(frozen=True)
class Drawing:
    """One visible piece of a mark: where on which page, and which piece of the seal."""

    mark: int  # index of the mark in the list laid out
    seal_id: str
    page_ix: int  # 0-based
    rect_pt: Rect
    piece: Piece = WHOLE


@dataclass(frozen=True)
class JobLayout:
    page_count: int
    geometry: tuple[PageGeometry, ...]  # every page, in order
    drawings: tuple[Drawing, ...]  # mark order, then page order

    def pages_touched(self) -> list[int]:
        """0-based pages any mark is drawn on, in page order."""
        return sorted({d.page_ix for d in self.drawings})


def check_job_marks(
    pdf_path: Path,
    marks: Sequence[Mark],
    *,
    seal_sizes_mm: Mapping[str, float],
    allow_overlap: Callable[[str, str], bool] = lambda a, b: False,
) -> None:
    """Submit-time checks that need the document (issue 16 "Bad input"): refused here,
    before any approval, whatever sealing would refuse later. PlacementError names the
    mark; see the module docstring for the reasons."""
    layout = layout_document(pdf_path, marks, seal_sizes_mm=seal_sizes_mm)
    check_overlaps(layout, marks, allow_overlap)


def layout_document(
    pdf_path: Path, marks: Sequence[Mark], *, seal_sizes_mm: Mapping[str, float]
) -> JobLayout:
    """Read the page tree (and the text, if a mark has an anchor) and lay out ``marks``."""
    with _open_input(pdf_path) as source:
        writer = open_incremental(source)
        geometry = _all_geometry(writer)
    return layout_marks(geometry, marks, seal_sizes_mm=seal_sizes_mm, text_of=_text_source(pdf_path))


def _text_source(pdf_path: Path) -> Callable[[], str]:
    """The document's text, extracted on first use and only once."""
    return functools.cache(lambda: document_text(pdf_path))


def _all_geometry(writer: IncrementalPdfFileWriter) -> tuple[PageGeometry, ...]:
    try:
        count = count_pages(writer.root["/Pages"])
        return tuple(page_geometry(writer, ix) for ix in range(count))
    except SigningError:
        raise
    except Exception as ex:
        raise InputDocumentError(
            f"the PDF's page tree cannot be read ({type(ex).__name__}); re-save it", reason="malformed"
        ) from ex


@contextlib.contextmanager
def _naming(label: str) -> Iterator[None]:
    """Errors about one mark start with the mark's label (issue 16: name the mark)."""
    try:
        yield
    except (InvalidInput, PlacementError) as ex:
        message = ex.message if ex.message.startswith(label) else f"{label}: {ex.message}"
        raise PlacementError(message, reason=ex.reason) from ex


def layout_marks(
    geometry: Sequence[PageGeometry],
    marks: Sequence[Mark],
    *,
    seal_sizes_mm: Mapping[str, float],
    text_of: Callable[[], str],
) -> JobLayout:
    """Every mark's drawings on a document with these pages; ``text_of`` gives the
    document's text (document_text) when an anchor needs it."""
    count = len(geometry)
    rotations = [g.rotate for g in geometry]
    drawings: list[Drawing] = []
    for index, mark in enumerate(marks):
        label = mark_label(index, mark)
        with _naming(label):
            size = mark.size_mm or seal_sizes_mm.get(mark.seal_id, 0.0)
            if size <= 0:
                raise PlacementError(
                    "no size: give size_mm > 0 or register the seal's size", reason="bad_placement"
                )
            if mark.cross_page is not None:
                drawings += _cross_page(index, mark, geometry, size, label)
                continue
            pages = mark.pages.resolve(count, what=f"{label} pages")
            if mark.anchor_text:
                hits = find_in_text(text_of(), mark.anchor_text, rotations)
                centres = _anchor_centres(mark, pages, hits)
            else:
                centres = [(p, mark.x_mm, mark.y_mm) for p in pages]
            for page, x_mm, y_mm in centres:
                rect = _seal_rect(geometry[page - 1], x_mm, y_mm, size, page)
                drawings.append(Drawing(index, mark.seal_id, page - 1, rect))
    return JobLayout(count, tuple(geometry), tuple(drawings))


def _cross_page(
    index: int, mark: Mark, geometry: Sequence[PageGeometry], size: float, label: str
) -> list[Drawing]:
    assert mark.cross_page is not None
    cp = mark.cross_page
    pages = cp.pages.resolve(len(geometry), what=f"{label} cross-page pages")
    out = []
    for group in cross_page_groups(pages, cp.group_size, what=label):
        boxes = [_page_box(geometry[p - 1]) for p in group]
        spec = PlacementSpec(page=0, x_mm=0.0, y_mm=mark.y_mm, size_mm=size, cross_page=True)
        rects = slice_rects_displayed(boxes, spec, page_numbers=group)
        out += [
            Drawing(index, mark.seal_id, p - 1, rect, (k, len(group)))
            for k, (p, rect) in enumerate(zip(group, rects, strict=True))
        ]
    return out


def _anchor_centres(
    mark: Mark, pages: Sequence[int], hits: Sequence[TextHit]
) -> list[tuple[int, float, float]]:
    wanted = set(pages)
    per_page: dict[int, list[TextHit]] = {}
    for hit in hits:
        if hit.page in wanted:
            per_page.setdefault(hit.page, []).append(hit)
    if mark.pages.kind is PageSetKind.ALL:
        if not per_page:
            raise PlacementError(
                f"the anchor text {mark.anchor_text!r} does not occur in the document; check the "
                "text (exact characters, full-width brackets) or give x/y instead",
                reason="anchor_not_found",
            )
    else:
        missing = [p for p in pages if p not in per_page]
        if missing:
            raise PlacementError(
                f"the anchor text {mark.anchor_text!r} does not occur on page {missing[0]}; check "
                "the text (exact characters, full-width brackets), the mark's pages, or give x/y",
                reason="anchor_not_found",
            )
    for page, found in sorted(per_page.items()):
        if len(found) > mark.anchor_max_matches:
            raise PlacementError(
                f"the anchor text {mark.anchor_text!r} occurs {len(found)} times on page {page} "
                f"but the mark allows {mark.anchor_max_matches}; use a longer, unique anchor "
                "text, name the page, or raise anchor_max_matches to seal every occurrence",
                reason="anchor_ambiguous",
            )
    return [
        (page, hit.x_mm + mark.x_mm, hit.y_mm + mark.y_mm)
        for page, found in sorted(per_page.items())
        for hit in found
    ]


def _page_box(g: PageGeometry) -> PageBox:
    return PageBox(g.width_pt, g.height_pt, g.origin_pt, g.rotate)


def _seal_rect(g: PageGeometry, x_mm: float, y_mm: float, size_mm: float, page: int) -> Rect:
    """The seal's displayed rectangle; refused (off_page) unless it lies on the page."""
    try:
        # The same check as single-placement sealing.
        placement_box(
            g.width_pt,
            g.height_pt,
            PlacementSpec(page=page, x_mm=x_mm, y_mm=y_mm, size_mm=size_mm),
            origin_pt=g.origin_pt,
            rotate=g.rotate,
        )
    except PlacementError as ex:
        raise PlacementError(f"page {page}: {ex.message}", reason=ex.reason) from ex
    half = size_mm * POINTS_PER_MM / 2
    cx, cy = x_mm * POINTS_PER_MM, y_mm * POINTS_PER_MM
    return (cx - half, cy - half, cx + half, cy + half)


def check_overlaps(
    layout: JobLayout, marks: Sequence[Mark], allow_overlap: Callable[[str, str], bool]
) -> None:
    """Refuse drawings of two different seals that share area on a page (marks_overlap),
    unless ``allow_overlap(seal_a, seal_b)``. Marks of one seal may overlap."""
    by_page: dict[int, list[Drawing]] = {}
    for d in layout.drawings:
        by_page.setdefault(d.page_ix, []).append(d)
    for page_ix, drawn in sorted(by_page.items()):
        for i, a in enumerate(drawn):
            for b in drawn[i + 1 :]:
                seal_a, seal_b = marks[a.mark].seal_id, marks[b.mark].seal_id
                if seal_a == seal_b or not _intersect(a.rect_pt, b.rect_pt):
                    continue
                if allow_overlap(seal_a, seal_b):
                    continue
                first, second = sorted((a.mark, b.mark))
                raise PlacementError(
                    f"{mark_label(first, marks[first])} and {mark_label(second, marks[second])} "
                    f"overlap on page {page_ix + 1} and the seals' policies do not allow one "
                    "seal over another; move one of them",
                    reason="marks_overlap",
                )


def _intersect(a: Rect, b: Rect) -> bool:
    # Touching edges are no overlap (0.01 pt: below any rendering resolution).
    return min(a[2], b[2]) - max(a[0], b[0]) > 0.01 and min(a[3], b[3]) - max(a[1], b[1]) > 0.01


# --- the signature -----------------------------------------------------------------------


def seal_job_signature(
    input_path: Path,
    output_path: Path,
    *,
    signer: Signer,
    spec: SealSpec,
    marks: Sequence[Mark],
    seal_size_mm: float = 0.0,
    layout: JobLayout | None = None,
) -> SealResult:
    """ONE signature of ONE seal carrying all of that seal's ``marks`` (all with the same
    seal_id), written atomically to ``output_path`` like seal_pdf; see plan_job_signature.
    The daemon's pipeline does the same in steps (``pipeline.SealJob.marks``)."""
    with _open_input(input_path) as source:
        plan = plan_job_signature(
            source,
            input_path,
            signer=signer,
            spec=spec,
            marks=marks,
            seal_size_mm=seal_size_mm,
            layout=layout,
        )
        with _atomic_output(output_path) as out:
            with _translate_signing_errors(plan.field_name):
                plan.pdf_signer.sign_pdf(plan.writer, output=out, bytes_reserved=plan.bytes_reserved)
            return plan.result(out)


def plan_job_signature(
    source: BinaryIO,
    input_path: Path,
    *,
    signer: Signer,
    spec: SealSpec,
    marks: Sequence[Mark],
    seal_size_mm: float = 0.0,
    layout: JobLayout | None = None,
) -> SealPlan:
    """``pades.plan_seal`` for a job's seal: the document opened, checked, every mark of
    this seal drawn, pyHanko's PdfSigner set up; not yet signed.

    The signature's widget shows the first drawing of the first mark when that is a whole
    seal (a position or an anchor); every other drawing (other pages, other positions,
    further anchor occurrences, cross-page slices) is page content added in the same
    incremental update, so the one signature covers all of them: moving or removing any
    of them breaks it (R14). A job whose first mark is cross-page gets an invisible field
    on that mark's first page, as the single cross-page seal does.

    ``spec.placement`` is not used for the position; its ``size_mm`` is the seal's size
    for marks with size_mm 0 unless ``seal_size_mm`` is given. ``layout``: the job's
    layout made on the ORIGINAL (``layout_document``), when the caller already has it;
    it is the same for every seal's signature (signatures add no pages and no text), so
    a job lays out once and does not search anchors again for every seal. Without it the
    marks are laid out on ``input_path``.
    """
    if not marks:
        raise InvalidInput("a seal's signature needs at least one mark", reason="no_marks")
    seal_ids = {m.seal_id for m in marks}
    if len(seal_ids) != 1:
        raise InvalidInput(
            f"one signature carries the marks of one seal, not of {sorted(seal_ids)}; "
            "call it once per seal (domain.marks.marks_of_seal)",
            reason="bad_mark",
        )
    size = seal_size_mm or spec.placement.size_mm
    writer = open_incremental(source)
    certification = _check_may_add_signature(
        writer, spec.certification, spec.certify_only_if_first, is_signed=has_signed_field
    )
    if layout is None:
        layout = layout_marks(
            _all_geometry(writer),
            marks,
            seal_sizes_mm={marks[0].seal_id: size},
            text_of=_text_source(input_path),
        )
    meta = signature_metadata(
        spec.field_name,
        reason=spec.reason,
        location=spec.location,
        signer_name=spec.signer_name,
        level=spec.level,
        certification=certification,
    )
    # A job's layout has every seal's marks: this signature draws its own seal's.
    drawings = [d for d in layout.drawings if d.seal_id == marks[0].seal_id]
    if not drawings:
        raise PlacementError("the marks draw nothing on this document", reason="bad_placement")
    first = drawings[0]
    page = layout.geometry[first.page_ix]
    box = displayed_rect_to_user(_page_box(page), first.rect_pt)
    stamp = None
    widget: list[tuple[int, UserBox]] = []
    if first.piece == WHOLE:
        drawings = drawings[1:]
        exact_box = cast("tuple[int, int, int, int]", tuple(round(v, 3) for v in box))
        field_spec = fields.SigFieldSpec(sig_field_name=spec.field_name, on_page=first.page_ix, box=exact_box)
        stamp = seal_stamp_style(spec.seal_png, page.rotate)
        widget = [(first.page_ix + 1, box)]
    else:
        field_spec = fields.SigFieldSpec(sig_field_name=spec.field_name, on_page=first.page_ix)
    boxes = tuple(widget + _draw_marks(writer, layout.geometry, drawings, spec.seal_png, spec.field_name))
    pdf_signer = signers.PdfSigner(
        meta,
        signer,
        stamp_style=stamp,
        new_field_spec=field_spec,
        timestamper=spec.level.timestamper(),
    )
    return SealPlan(
        writer,
        pdf_signer,
        spec.field_name,
        first.page_ix,
        box,
        tuple(b for _, b in boxes),
        spec.signature_bytes or spec.level.signature_bytes,
        mark_boxes=boxes,
    )


def has_signed_field(writer: IncrementalPdfFileWriter) -> bool:
    """Whether any signature field of the document is filled, without reading the
    signatures: pyHanko's ``embedded_signatures`` parses each signature's reserved
    /Contents (32 KiB and more of hex) in Python, about a third of the CPU of a job's
    second and third signature (bench/bench_job.py). Only the PRESENCE of /V is looked
    at (raw_get: the signature dictionary is not loaded)."""
    try:
        acroform = writer.prev.root.get("/AcroForm")
        fields = acroform.get_object().get("/Fields") if acroform is not None else None
    except Exception as ex:
        raise InputDocumentError(
            f"the PDF's form fields cannot be read ({type(ex).__name__}); re-save it", reason="malformed"
        ) from ex
    if fields is None:
        return False
    # (field reference, inherited /FT); the tree is bounded by the input checks, and a
    # reference seen twice (a malformed loop) is visited once.
    stack: list[tuple[generic.PdfObject, object]] = [(ref, None) for ref in fields.get_object()]
    seen: set[object] = set()
    while stack:
        ref, inherited = stack.pop()
        key = ref.reference if isinstance(ref, generic.IndirectObject) else id(ref)
        if key in seen:
            continue
        seen.add(key)
        field = ref.get_object()  # type: ignore[no-untyped-call]
        if not isinstance(field, generic.DictionaryObject):
            continue
        kind = field.raw_get("/FT") if "/FT" in field else inherited
        if kind == "/Sig" and "/V" in field:
            return True
        kids = field.raw_get("/Kids") if "/Kids" in field else None
        if kids is not None:
            stack += [(kid, kind) for kid in kids.get_object()]
    return False


def _draw_marks(
    writer: IncrementalPdfFileWriter,
    geometry: Sequence[PageGeometry],
    drawings: Sequence[Drawing],
    seal_png: bytes,
    field_name: str,
) -> list[tuple[int, UserBox]]:
    """Add every drawing to its page's content; return (1-based page, user-space box)."""
    # Resource names unique to this signature's field, so a later seal's marks on the
    # same page never clash with these (pyHanko refuses a resource name twice).
    tag = hashlib.sha256(field_name.encode()).hexdigest()[:8]
    images: dict[tuple[Piece, int], generic.IndirectObject] = {}
    by_page: dict[int, list[Drawing]] = {}
    for d in drawings:
        by_page.setdefault(d.page_ix, []).append(d)
    boxes = []
    for page_ix, drawn in sorted(by_page.items()):
        page = geometry[page_ix]
        xobjects = generic.DictionaryObject()  # type: ignore[no-untyped-call]
        ops = [b"Q\n"]
        for n, d in enumerate(drawn, start=1):
            key = (d.piece, page.rotate)
            if key not in images:
                images[key] = seal_piece(seal_png, d.piece, page.rotate).write_to(writer)
            name = generic.pdf_name(f"/SealMark{tag}p{page_ix + 1}n{n}")
            xobjects[name] = images[key]
            x1, y1, x2, y2 = box = displayed_rect_to_user(_page_box(page), d.rect_pt)
            ops.append(b"q %.4f 0 0 %.4f %.4f %.4f cm %s Do Q\n" % (x2 - x1, y2 - y1, x1, y1, name.encode()))
            boxes.append((page_ix + 1, box))
        resources = generic.DictionaryObject({generic.pdf_name("/XObject"): xobjects})  # type: ignore[no-untyped-call]
        # Existing content may leave the graphics state changed: isolate it in q..Q.
        writer.add_stream_to_page(  # type: ignore[no-untyped-call]
            page_ix, writer.add_object(generic.StreamObject(stream_data=b"q\n")), prepend=True
        )
        writer.add_stream_to_page(  # type: ignore[no-untyped-call]
            page_ix, writer.add_object(generic.StreamObject(stream_data=b"".join(ops))), resources
        )
    return boxes


@functools.lru_cache(maxsize=256)
def seal_piece(seal_png: bytes, piece: Piece, rotate: int) -> EncodedImage:
    """Slice k of n of the seal (the whole seal for (0, 1)), turned back by the page's
    /Rotate so it shows upright, encoded once per (image, piece, angle): a 20-page
    cross-page seal does not re-encode its slices for every document or signature."""
    return encode_image(seal_piece_image(seal_png, piece, rotate))


def seal_piece_image(seal_png: bytes, piece: Piece, rotate: int = 0) -> Image.Image:
    k, n = piece
    image = image_slices(seal_png, n)[k]
    return image.rotate(rotate, expand=True) if rotate else image


# --- the preview -------------------------------------------------------------------------


def plan_job_preview(
    pdf_path: Path,
    marks_with_images: Sequence[tuple[Mark, bytes]],
    *,
    seal_sizes_mm: Mapping[str, float],
    dpi: int = DEFAULT_DPI,
) -> PreviewPlan:
    """What the approver sees: every page the job's marks touch, every mark drawn where
    sealing puts it (the same ``layout_marks``), each with its own seal's image.

    ``seal_pages`` (what to show by default) are the touched pages in order, at most
    preview.MAX_PAGES; ``render(ix)`` renders any page with what touches it."""
    dpi = check_dpi(dpi)
    marks = [m for m, _ in marks_with_images]
    layout = layout_document(pdf_path, marks, seal_sizes_mm=seal_sizes_mm)
    overlays: dict[int, list[tuple[Image.Image, Rect]]] = {}
    for d in layout.drawings:
        png = marks_with_images[d.mark][1]
        piece = seal_piece_image(png, d.piece).convert("RGBA")
        overlays.setdefault(d.page_ix, []).append((piece, d.rect_pt))
    return PreviewPlan(
        pdf_path,
        dpi,
        layout.page_count,
        dict(enumerate(layout.geometry)),
        overlays,
        layout.pages_touched()[:MAX_PAGES],
    )


__all__ = [
    "Drawing",
    "JobLayout",
    "check_job_marks",
    "check_overlaps",
    "layout_document",
    "layout_marks",
    "plan_job_preview",
    "seal_job_signature",
]
