"""The signing layer of sealing jobs (issue 16, seald.signing.job): one signature per
seal carrying all of that seal's marks (positions on page sets, anchors, cross-page
seals over all pages, a range or groups of N) as page content, on real SoftHSM keys;
every output checked with pyHanko, pdfsig and qpdf --check, and every mark found in
pixels rendered by pdftoppm where it was asked (SEAL-RULES R13, R14)."""

from __future__ import annotations

import dataclasses
import io
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path

import make_pdfs
import pkcs11
import pytest
from contract_pdf import ANCHOR, CENTRED_LINE, contract_pdf
from fixture_layout import SealFixtures
from PIL import Image, ImageChops, ImageFilter
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign.fields import SigFieldSpec, append_signature_field

from seald.domain.marks import CrossPage, Mark, PageSet, marks_of_seal, signing_order
from seald.signing.errors import PlacementError, SigningError
from seald.signing.job import (
    JobLayout,
    check_job_marks,
    has_signed_field,
    layout_document,
    plan_job_preview,
    seal_job_signature,
)
from seald.signing.levels import Certification
from seald.signing.pades import SealResult, SealSpec, token_signer
from seald.signing.pipeline import SealJob, finish_seal, prepare_seal, publish, sign_prepared
from seald.signing.placement import POINTS_PER_MM, PlacementSpec
from seald.signing.seal_image import SealImageSpec, render_seal_png
from seald.signing.verify import verify_pdf

DPI = 150
PX_PER_PT = DPI / 72.0
PX_MM = 25.4 / DPI
SIZES = {"contract": 40.0, "official": 42.0, "legal_rep": 20.0}


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is required (Debian poppler-utils / qpdf) and is not installed")
    return path


@pytest.fixture(scope="module")
def official_session(seal_fixtures: SealFixtures) -> Iterator[pkcs11.Session]:
    seal = seal_fixtures.seals["official"]
    token = pkcs11.lib(str(seal_fixtures.module)).get_token(token_label=seal.token_label)
    with token.open(user_pin=seal.user_pin) as session:
        yield session


@pytest.fixture(scope="module")
def legal_rep_png() -> bytes:
    return render_seal_png(SealImageSpec("legal_representative", "", "", "王建国"), 20)


def _spec(png: bytes, field: str, size_mm: float) -> SealSpec:
    return SealSpec(
        seal_png=png,
        placement=PlacementSpec(page=0, x_mm=0, y_mm=0, size_mm=size_mm),
        reason="合同盖章",
        location="北京",
        field_name=field,
    )


def _sign(
    session: pkcs11.Session,
    fx: SealFixtures,
    key_seal: str,
    src: Path,
    dst: Path,
    png: bytes,
    marks: Sequence[Mark],
    *,
    field: str,
    layout: JobLayout | None = None,
) -> SealResult:
    label = fx.seals[key_seal].key_label
    return seal_job_signature(
        src,
        dst,
        signer=token_signer(session, label, label),
        spec=_spec(png, field, SIZES[marks[0].seal_id]),
        marks=marks,
        layout=layout,
    )


def check_valid(path: Path, fx: SealFixtures, fields: int) -> None:
    """pyHanko: every signature intact, valid and trusted, the last over the whole file;
    pdfsig: as many valid signatures, total document signed; qpdf --check clean."""
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


def render(pdf: Path, page: int, tmp_path: Path) -> Image.Image:
    prefix = tmp_path / f"{pdf.stem}-p{page}"
    subprocess.run(
        [
            *(_tool("pdftoppm"), "-cropbox", "-r", str(DPI), "-f", str(page), "-l", str(page)),
            *("-png", "-singlefile", str(pdf), str(prefix)),
        ],
        check=True,
        timeout=60,
    )
    with Image.open(f"{prefix}.png") as image:
        return image.convert("RGB")


def red_mask(image: Image.Image) -> Image.Image:
    r, g, b = image.split()
    masks = [r.point(lambda v: 255 if v > 180 else 0)]
    masks += [c.point(lambda v: 255 if v < 90 else 0) for c in (g, b)]
    return ImageChops.multiply(ImageChops.multiply(masks[0], masks[1]), masks[2])


def _px(rect_pt: tuple[float, float, float, float]) -> tuple[int, int, int, int]:
    return tuple(round(v * PX_PER_PT) for v in rect_pt)  # type: ignore[return-value]


def check_marks_in_pixels(pdf: Path, layout: JobLayout, tmp_path: Path, pages: Sequence[int] = ()) -> None:
    """Every drawing of ``layout`` is red ink within 1 mm of its rectangle, and no red ink
    is anywhere else on the pages (R13: where it was asked, and nowhere else)."""
    margin = round(1.0 / PX_MM)
    for page_ix in pages or range(layout.page_count):
        image = render(pdf, page_ix + 1, tmp_path)
        mask = red_mask(image)
        drawn = [d for d in layout.drawings if d.page_ix == page_ix]
        outside = mask.copy()
        for d in drawn:
            left, top, right, bottom = _px(d.rect_pt)
            window = (
                max(left - 3 * margin, 0),
                max(top - 3 * margin, 0),
                right + 3 * margin,
                bottom + 3 * margin,
            )
            box = mask.crop(window).getbbox()
            assert box is not None, f"no red ink for mark {d.mark + 1} on page {page_ix + 1}"
            ink = (box[0] + window[0], box[1] + window[1], box[2] + window[0], box[3] + window[1])
            if d.piece == (0, 1):
                # a whole round seal fills its square: every edge within 1 mm
                for got, want in zip(ink, (left, top, right, bottom), strict=True):
                    assert abs(got - want) <= margin, (page_ix + 1, d, ink, (left, top, right, bottom))
            else:
                # a slice: inside its strip, on the page's right edge, centred vertically
                assert ink[0] >= left - margin and abs(ink[2] - right) <= margin, (page_ix + 1, d, ink)
                assert abs((ink[1] + ink[3]) / 2 - (top + bottom) / 2) <= margin, (page_ix + 1, d, ink)
            outside.paste(0, (left - margin, top - margin, right + margin, bottom + margin))
        stray = outside.getbbox()
        assert stray is None, f"red ink outside every mark on page {page_ix + 1} at {stray}"


# --- one seal, several marks: positions, page sets, anchors, cross-page ---------------------


@pytest.mark.parametrize(
    "marks,signed_pages",
    [
        # position on a list of pages: the widget on page 1, pages 3 and 5 as page content
        ([Mark("contract", PageSet.parse("1,3,5"), x_mm=60, y_mm=200)], (1, 3, 5)),
        # a range and "last" in one signature
        (
            [
                Mark("contract", PageSet.parse("2-3"), x_mm=150, y_mm=60),
                Mark("contract", PageSet.parse("last"), x_mm=60, y_mm=240, size_mm=30),
            ],
            (2, 3, 5),
        ),
        # an anchor on the signature page plus the same seal on every page
        (
            [
                Mark("contract", PageSet.parse("last"), anchor_text=ANCHOR),
                Mark("contract", PageSet.parse("all"), x_mm=40, y_mm=40, size_mm=25),
            ],
            (1, 2, 3, 4, 5),
        ),
    ],
    ids=["page-list", "range-and-last", "anchor-and-all"],
)
def test_job_one_signature_carries_every_mark_of_the_seal(
    token_session: pkcs11.Session,
    seal_fixtures: SealFixtures,
    seal_png: bytes,
    tmp_path: Path,
    marks: list[Mark],
    signed_pages: tuple[int, ...],
) -> None:
    src = tmp_path / "in.pdf"
    src.write_bytes(contract_pdf(5))
    out = tmp_path / "out.pdf"
    layout = layout_document(src, marks, seal_sizes_mm=SIZES)
    result = _sign(token_session, seal_fixtures, "contract", src, out, seal_png, marks, field="Contract")
    check_valid(out, seal_fixtures, 1)
    assert sorted({page for page, _ in result.mark_boxes_pt}) == list(signed_pages)
    assert len(result.mark_boxes_pt) == len(layout.drawings)
    check_marks_in_pixels(out, layout, tmp_path)


def test_job_anchor_mark_is_centred_on_the_anchor_ink_within_1mm(
    token_session: pkcs11.Session, seal_fixtures: SealFixtures, seal_png: bytes, tmp_path: Path
) -> None:
    """The anchor's own ink (rendered) is the reference, not the text search."""
    src = tmp_path / "in.pdf"
    src.write_bytes(contract_pdf(3, anchors={2: [(250.0, 400.0)]}, line=CENTRED_LINE))
    original = render(src, 2, tmp_path)
    r, g, b = original.split()
    dark = ImageChops.multiply(
        ImageChops.multiply(*(c.point(lambda v: 255 if v < 100 else 0) for c in (r, g))),
        b.point(lambda v: 255 if v < 100 else 0),
    )
    # The signature line is the only dark ink below the heading (y > 100 pt).
    top = round(100 * PX_PER_PT)
    box = dark.crop((0, top, dark.width, dark.height)).getbbox()
    assert box is not None
    anchor_cx = (box[0] + box[2]) / 2 * PX_MM
    anchor_cy = (box[1] + box[3]) / 2 * PX_MM + top * PX_MM
    out = tmp_path / "out.pdf"
    mark = Mark("contract", PageSet.parse("2"), x_mm=0, y_mm=5, anchor_text=ANCHOR)
    _sign(token_session, seal_fixtures, "contract", src, out, seal_png, [mark], field="Contract")
    red = red_mask(render(out, 2, tmp_path)).getbbox()
    assert red is not None
    cx, cy = (red[0] + red[2]) / 2 * PX_MM, (red[1] + red[3]) / 2 * PX_MM
    assert abs(cx - anchor_cx) <= 1.0 and abs(cy - (anchor_cy + 5)) <= 1.0, (cx, cy, anchor_cx, anchor_cy)
    check_valid(out, seal_fixtures, 1)


@pytest.mark.parametrize(
    "pages,group_size,rotate,count",
    [("all", 0, 0, 4), ("2-4", 0, 0, 5), ("all", 3, 0, 7), ("all", 2, 90, 4)],
    ids=["all-pages", "range", "groups-of-3", "groups-of-2-rotated"],
)
def test_job_cross_page_seal_over_a_range_or_in_groups(
    token_session: pkcs11.Session,
    seal_fixtures: SealFixtures,
    seal_png: bytes,
    tmp_path: Path,
    pages: str,
    group_size: int,
    rotate: int,
    count: int,
) -> None:
    src = tmp_path / "in.pdf"
    src.write_bytes(make_pdfs.valid_pdf(count, rotate=rotate, chinese=False))
    mark = Mark(
        "contract", PageSet.parse("all"), y_mm=120, cross_page=CrossPage(PageSet.parse(pages), group_size)
    )
    layout = layout_document(src, [mark], seal_sizes_mm=SIZES)
    out = tmp_path / "out.pdf"
    result = _sign(token_session, seal_fixtures, "contract", src, out, seal_png, [mark], field="Seam")
    check_valid(out, seal_fixtures, 1)
    wanted = PageSet.parse(pages).resolve(count)
    assert sorted({page for page, _ in result.mark_boxes_pt}) == list(wanted)
    pieces = [d.piece[1] for d in layout.drawings]
    if group_size == 3:
        assert pieces == [3, 3, 3, 4, 4, 4, 4]  # pages 1-3 and 4-7 (a one-page tail joins)
    check_marks_in_pixels(out, layout, tmp_path)


def test_job_signature_covers_its_page_content(
    token_session: pkcs11.Session, seal_fixtures: SealFixtures, seal_png: bytes, tmp_path: Path
) -> None:
    """R14: a mark drawn as page content is under the signature; editing it breaks it."""
    src = tmp_path / "in.pdf"
    src.write_bytes(contract_pdf(3))
    out = tmp_path / "out.pdf"
    marks = [Mark("contract", PageSet.parse("1,3"), x_mm=60, y_mm=200)]
    _sign(token_session, seal_fixtures, "contract", src, out, seal_png, marks, field="Contract")
    data = bytearray(out.read_bytes())
    at = data.find(b"0 0 113.3858 ")  # the page-3 mark's transformation matrix
    assert at > 0
    data[at + 4] = ord("2")  # 0 0 213.3858: a silent in-place edit of its size
    tampered = tmp_path / "tampered.pdf"
    tampered.write_bytes(bytes(data))
    checks = verify_pdf(tampered, [seal_fixtures.seal_ca.read_bytes()])
    assert checks and not checks[0].intact


def test_job_refused_marks_leave_nothing_at_the_output(
    token_session: pkcs11.Session, seal_fixtures: SealFixtures, seal_png: bytes, tmp_path: Path
) -> None:
    src = tmp_path / "in.pdf"
    src.write_bytes(contract_pdf(2))
    outdir = tmp_path / "out"
    outdir.mkdir()
    marks = [
        Mark("contract", PageSet.parse("1"), x_mm=60, y_mm=200),
        Mark("contract", PageSet.parse("2"), x_mm=5, y_mm=200),  # off the page
    ]
    with pytest.raises(PlacementError) as refused:
        _sign(token_session, seal_fixtures, "contract", src, outdir / "out.pdf", seal_png, marks, field="C")
    assert refused.value.reason == "off_page"
    assert str(refused.value).startswith("mark 2 (seal contract)")
    assert list(outdir.iterdir()) == []


# --- submit-time checks -----------------------------------------------------------------


def _refusal(pdf: Path, marks: list[Mark], **kwargs: object) -> PlacementError:
    with pytest.raises(PlacementError) as refused:
        check_job_marks(pdf, marks, seal_sizes_mm=SIZES, **kwargs)  # type: ignore[arg-type]
    return refused.value


CONTRACT_AT_ANCHOR = Mark("contract", PageSet.parse("last"), anchor_text=ANCHOR)


@pytest.mark.parametrize(
    "bad,reason,named",
    [
        (Mark("legal_rep", PageSet.parse("9"), x_mm=60, y_mm=60), "page_out_of_range", "page 9"),
        (Mark("legal_rep", PageSet.parse("2-9"), x_mm=60, y_mm=60), "page_out_of_range", "page 6"),
        (Mark("legal_rep", PageSet.parse("2"), anchor_text=ANCHOR), "anchor_not_found", "page 2"),
        (Mark("legal_rep", PageSet.parse("all"), anchor_text="（签字）"), "anchor_not_found", "（签字）"),
        (Mark("legal_rep", PageSet.parse("3"), anchor_text=ANCHOR), "anchor_ambiguous", "2 times on page 3"),
        (Mark("legal_rep", PageSet.parse("1"), x_mm=5, y_mm=60), "off_page", "page 1"),
        (
            Mark(
                "official",
                PageSet.parse("all"),
                y_mm=150,
                size_mm=4,
                cross_page=CrossPage(PageSet.parse("all")),
            ),
            "cross_page_too_many_pages",
            "5 pages",
        ),
        (
            Mark("official", PageSet.parse("all"), y_mm=5, cross_page=CrossPage(PageSet.parse("3-5"))),
            "off_page",
            "page 3",
        ),
        (
            Mark("official", PageSet.parse("all"), y_mm=150, cross_page=CrossPage(PageSet.parse("5-9"))),
            "page_out_of_range",
            "page 6",
        ),
        # the legal representative's seal on the contract seal at the anchor
        (
            Mark("legal_rep", PageSet.parse("5"), anchor_text=ANCHOR, x_mm=10),
            "marks_overlap",
            "overlap on page 5",
        ),
    ],
)
def test_job_document_checks_refuse_naming_the_mark(
    tmp_path: Path, bad: Mark, reason: str, named: str
) -> None:
    pdf = tmp_path / "contract.pdf"
    pdf.write_bytes(contract_pdf(5, anchors={5: [(300.0, 200.0)], 3: [(100.0, 300.0), (100.0, 500.0)]}))
    refused = _refusal(pdf, [CONTRACT_AT_ANCHOR, bad])
    assert refused.reason == reason, refused
    label = (
        "mark 1 (seal contract) and mark 2" if reason == "marks_overlap" else f"mark 2 (seal {bad.seal_id})"
    )
    assert str(refused).startswith(label), refused
    assert named in str(refused), refused


def test_job_overlap_is_allowed_when_the_policy_says_so_and_within_one_seal(tmp_path: Path) -> None:
    pdf = tmp_path / "contract.pdf"
    pdf.write_bytes(contract_pdf(5))
    lr_on_contract = Mark("legal_rep", PageSet.parse("5"), anchor_text=ANCHOR, x_mm=10)
    allowed: list[tuple[str, str]] = []

    def allow(a: str, b: str) -> bool:
        allowed.append((a, b))
        return True

    check_job_marks(pdf, [CONTRACT_AT_ANCHOR, lr_on_contract], seal_sizes_mm=SIZES, allow_overlap=allow)
    assert allowed == [("contract", "legal_rep")]
    same_seal = Mark("contract", PageSet.parse("5"), anchor_text=ANCHOR, x_mm=10)
    check_job_marks(pdf, [CONTRACT_AT_ANCHOR, same_seal], seal_sizes_mm=SIZES)
    # an anchor found twice on a page is fine when the mark allows two: both are sealed
    twice = tmp_path / "twice.pdf"
    twice.write_bytes(contract_pdf(2, anchors={2: [(100.0, 300.0), (100.0, 500.0)]}))
    both = Mark("contract", PageSet.parse("2"), anchor_text=ANCHOR, anchor_max_matches=2)
    assert len(layout_document(twice, [both], seal_sizes_mm=SIZES).drawings) == 2


def test_job_preview_plan_names_every_touched_page(tmp_path: Path, seal_png: bytes) -> None:
    pdf = tmp_path / "contract.pdf"
    pdf.write_bytes(contract_pdf(5))
    marks = [
        (CONTRACT_AT_ANCHOR, seal_png),
        (Mark("contract", PageSet.parse("2"), x_mm=60, y_mm=60), seal_png),
    ]
    plan = plan_job_preview(pdf, marks, seal_sizes_mm=SIZES)
    assert plan.seal_pages == [1, 4]
    assert len(plan.overlays[4]) == 1 and len(plan.overlays[1]) == 1
    assert plan.page_count == 5
    half = 20 * POINTS_PER_MM
    rect = plan.overlays[1][0][1]
    centre = 60 * POINTS_PER_MM
    assert rect == pytest.approx((centre - half, centre - half, centre + half, centre + half))


# --- the three-seal contract (issue 16's example) and its preview --------------------------

# Contract seal centred on "（盖章）" on the signature page, the 骑缝章 over every page, the
# legal representative's seal 35 mm right of the anchor. The fixtures have two tokens:
# the 骑缝章 is signed with the official seal's key, the legal representative's mark with
# the contract token's key under its own field (at this layer a seal is a key + image).
THREE_SEALS = [
    Mark("contract", PageSet.parse("last"), anchor_text=ANCHOR),
    Mark("official", PageSet.parse("all"), y_mm=120, cross_page=CrossPage(PageSet.parse("all"))),
    Mark("legal_rep", PageSet.parse("last"), anchor_text=ANCHOR, x_mm=35),
]
KEYS = {"contract": "contract", "official": "official", "legal_rep": "contract"}
FIELDS = {"contract": "ContractSeal", "official": "CrossPageSeal", "legal_rep": "LegalRepSeal"}


def seal_three_seal_contract(
    sessions: dict[str, pkcs11.Session],
    fx: SealFixtures,
    images: dict[str, bytes],
    src: Path,
    workdir: Path,
) -> tuple[Path, JobLayout]:
    """The job as jobflow runs it: checked, laid out once on the original, then one
    seal_job_signature per seal in signing order, each output the next input."""
    check_job_marks(src, THREE_SEALS, seal_sizes_mm=SIZES)
    layout = layout_document(src, THREE_SEALS, seal_sizes_mm=SIZES)
    current = src
    for step, seal_id in enumerate(signing_order(THREE_SEALS), start=1):
        out = workdir / f"step{step}.pdf"
        marks = marks_of_seal(THREE_SEALS, seal_id)
        _sign(
            sessions[KEYS[seal_id]],
            fx,
            KEYS[seal_id],
            current,
            out,
            images[seal_id],
            marks,
            field=FIELDS[seal_id],
            layout=layout,
        )
        current = out
    return current, layout


@pytest.fixture
def three_seal_images(seal_png: bytes, legal_rep_png: bytes) -> dict[str, bytes]:
    return {"contract": seal_png, "official": seal_png, "legal_rep": legal_rep_png}


def test_job_three_seal_contract_has_three_valid_signatures_and_every_mark_in_place(
    token_session: pkcs11.Session,
    official_session: pkcs11.Session,
    seal_fixtures: SealFixtures,
    three_seal_images: dict[str, bytes],
    tmp_path: Path,
) -> None:
    src = tmp_path / "contract.pdf"
    src.write_bytes(contract_pdf(6, anchors={6: [(200.0, 200.0)]}))
    sessions = {"contract": token_session, "official": official_session}
    sealed, layout = seal_three_seal_contract(sessions, seal_fixtures, three_seal_images, src, tmp_path)

    check_valid(sealed, seal_fixtures, 3)
    checks = verify_pdf(sealed, [seal_fixtures.seal_ca.read_bytes()])
    assert [c.field_name for c in checks] == ["ContractSeal", "CrossPageSeal", "LegalRepSeal"]
    # only the last covers the whole document; it covers the two before it
    assert [c.covers_whole_document for c in checks] == [False, False, True]
    # the layout does not change between signatures: laying out once is right
    step2 = tmp_path / "step2.pdf"
    assert layout_document(step2, THREE_SEALS, seal_sizes_mm=SIZES) == layout
    # every mark where it was asked, nothing red anywhere else, on every page
    assert {d.page_ix for d in layout.drawings} == set(range(6))
    check_marks_in_pixels(sealed, layout, tmp_path)


def test_job_preview_of_every_mark_equals_the_sealed_result(
    token_session: pkcs11.Session,
    official_session: pkcs11.Session,
    seal_fixtures: SealFixtures,
    three_seal_images: dict[str, bytes],
    tmp_path: Path,
) -> None:
    """Issue 16 item 3: the approver's picture of every mark is the sealed result, within
    1 mm per mark, and pixel for pixel away from the marks."""
    src = tmp_path / "contract.pdf"
    src.write_bytes(contract_pdf(4, anchors={4: [(200.0, 200.0)]}))
    plan = plan_job_preview(
        src, [(m, three_seal_images[m.seal_id]) for m in THREE_SEALS], seal_sizes_mm=SIZES, dpi=DPI
    )
    assert plan.seal_pages == [0, 1, 2, 3]  # every page a mark touches
    sessions = {"contract": token_session, "official": official_session}
    sealed, layout = seal_three_seal_contract(sessions, seal_fixtures, three_seal_images, src, tmp_path)
    margin = round(1.0 / PX_MM)
    for page_ix in plan.seal_pages:
        shown = Image.open(io.BytesIO(plan.render(page_ix).png)).convert("RGB")
        result = render(sealed, page_ix + 1, tmp_path)
        assert shown.size == result.size
        shown_red, result_red = red_mask(shown), red_mask(result)
        outside = Image.new("L", shown.size, 255)
        for d in (d for d in layout.drawings if d.page_ix == page_ix):
            left, top, right, bottom = _px(d.rect_pt)
            window = (left - 3 * margin, top - 3 * margin, right + 3 * margin, bottom + 3 * margin)
            a, b = shown_red.crop(window), result_red.crop(window)
            box_a, box_b = a.getbbox(), b.getbbox()
            assert box_a is not None and box_b is not None, (page_ix + 1, d)
            for x, y in zip(box_a, box_b, strict=True):
                assert abs(x - y) <= margin, (page_ix + 1, d, box_a, box_b)
            # the same strokes: every red pixel of each picture lies within 2 px (0.34 mm)
            # of a red pixel of the other (resampling moves stroke edges by a pixel)
            for one, other in ((a, b), (b, a)):
                near = ImageChops.multiply(one, other.filter(ImageFilter.MaxFilter(5))).histogram()[255]
                total = one.histogram()[255]
                assert total and near / total >= 0.98, (page_ix + 1, d, near, total)
            outside.paste(0, (left - margin, top - margin, right + margin, bottom + margin))
        differ = ImageChops.difference(shown, result).convert("L").point(lambda v: 255 if v > 8 else 0)
        assert ImageChops.multiply(differ, outside).getbbox() is None, page_ix + 1


def test_job_already_signed_check_agrees_with_pyhanko_and_certification_is_kept(
    token_session: pkcs11.Session, seal_fixtures: SealFixtures, seal_png: bytes, tmp_path: Path
) -> None:
    """The job's cheap "already signed?" (has_signed_field, no signature parsed) says what
    pyHanko's embedded_signatures says, so the certification rules stay as they were: a
    certification seal only first, nothing after a no-changes certification."""
    src = tmp_path / "in.pdf"
    src.write_bytes(contract_pdf(2))
    # an EMPTY signature field is not a signature
    empty = tmp_path / "empty-field.pdf"
    with src.open("rb") as f:
        writer = IncrementalPdfFileWriter(f)
        append_signature_field(writer, SigFieldSpec("Empty", on_page=0, box=(10, 10, 50, 50)))
        with empty.open("wb") as out:
            writer.write(out)
    mark = [Mark("contract", PageSet.parse("1"), x_mm=60, y_mm=60)]
    one, two = tmp_path / "one.pdf", tmp_path / "two.pdf"
    _sign(token_session, seal_fixtures, "contract", empty, one, seal_png, mark, field="A")
    _sign(token_session, seal_fixtures, "contract", one, two, seal_png, mark, field="B")
    for path, signed in ((src, False), (empty, False), (one, True), (two, True)):
        with path.open("rb") as f:
            writer = IncrementalPdfFileWriter(f)
            assert has_signed_field(writer) is signed, path
            assert bool(writer.prev.embedded_signatures) is signed, path

    label = seal_fixtures.seals["contract"].key_label
    signer = token_signer(token_session, label, label)
    certify = dataclasses.replace(_spec(seal_png, "Cert", 40), certification=Certification.FORM_FILLING)
    with pytest.raises(SigningError) as refused:
        seal_job_signature(one, tmp_path / "x.pdf", signer=signer, spec=certify, marks=mark)
    assert refused.value.reason == "certification_not_first"
    locked = tmp_path / "locked.pdf"
    no_changes = dataclasses.replace(_spec(seal_png, "Lock", 40), certification=Certification.NO_CHANGES)
    seal_job_signature(src, locked, signer=signer, spec=no_changes, marks=mark)
    check_valid(locked, seal_fixtures, 1)
    with pytest.raises(SigningError) as refused:
        _sign(token_session, seal_fixtures, "contract", locked, tmp_path / "y.pdf", seal_png, mark, field="C")
    assert refused.value.reason == "certified_no_changes"
    assert not (tmp_path / "x.pdf").exists() and not (tmp_path / "y.pdf").exists()


def test_job_three_seals_through_the_daemons_pipeline_with_pre_encoded_cms(
    token_session: pkcs11.Session,
    official_session: pkcs11.Session,
    seal_fixtures: SealFixtures,
    three_seal_images: dict[str, bytes],
    tmp_path: Path,
) -> None:
    """The daemon's three steps (prepare in a worker, the key operation on the token's
    thread, finish with PreEncodedSigner) with ``SealJob.marks``: the same contract, the
    same checks as the one-step path."""
    src = tmp_path / "contract.pdf"
    src.write_bytes(contract_pdf(5, anchors={5: [(200.0, 200.0)]}))
    layout = layout_document(src, THREE_SEALS, seal_sizes_mm=SIZES)
    sessions = {"contract": token_session, "official": official_session}
    current = src
    for step, seal_id in enumerate(signing_order(THREE_SEALS), start=1):
        key = seal_fixtures.seals[KEYS[seal_id]]
        signer = token_signer(sessions[KEYS[seal_id]], key.key_label, key.key_label)
        out = tmp_path / f"pipeline-{step}.pdf"
        job = SealJob(
            input_path=current,
            output_path=out,
            signing_cert_der=signer.signing_cert.dump(),  # type: ignore[union-attr]
            chain_der=(),
            seal_png=three_seal_images[seal_id],
            placement=PlacementSpec(page=0, x_mm=0, y_mm=0, size_mm=SIZES[seal_id]),
            reason="合同盖章",
            location="北京",
            field_name=FIELDS[seal_id],
            marks=marks_of_seal(THREE_SEALS, seal_id),
            layout=layout,
        )
        prepared = prepare_seal(job)
        finish_seal(job, prepared, sign_prepared(signer, prepared))
        publish(prepared, out)
        assert len(prepared.slice_boxes) == len([d for d in layout.drawings if d.seal_id == seal_id])
        current = out
    check_valid(current, seal_fixtures, 3)
    check_marks_in_pixels(current, layout, tmp_path)
