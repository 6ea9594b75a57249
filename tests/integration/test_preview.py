"""PreviewRequest over the real seald (mTLS, SoftHSM, poppler): an approver sees the
ORIGINAL page with the seal drawn where the placement says (SEAL-RULES R06, R13), the
same place the sealed document then shows it (x/y, anchor text, cross-page slices), and
only the requester and the seal's approvers, admins and auditors may look (R04).

Red pixels are measured on PNGs exactly as in test_placement_render.py (±1 mm)."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import grpc
import pytest
from make_pdfs import valid_pdf
from PIL import Image, ImageChops

from sealapi.v1 import common_pb2
from sealclient.errors import SealClientError
from seald_testing.clients import approve_twice_and_unlock, sealctl, wait_signed
from seald_testing.daemon import SealDaemon
from seald_testing.plugin import DaemonFactory

DPI = 150
PX_MM = 25.4 / DPI
# Page box not at the origin: placement is measured on the displayed page box.
OFFSET_A4 = (100.0, 50.0, 695.28, 891.89)


@pytest.fixture(scope="module")
def daemon(module_daemon_factory: DaemonFactory) -> SealDaemon:
    """One daemon for the module: each test submits its own request."""
    return module_daemon_factory()


def _submit(daemon: SealDaemon, pdf: bytes, path: Path, placement: common_pb2.Placement) -> str:
    path.write_bytes(pdf)
    with daemon.client("zhang.wei") as c:
        return c.submit(
            [path], seal_id="contract", reason="采购合同", category="contract", placement=placement
        ).request_id


def _png(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data)).convert("RGB")


def _pdftoppm(pdf: Path, page: int, tmp_path: Path) -> Image.Image:
    prefix = tmp_path / f"{pdf.stem}-p{page}"
    subprocess.run(
        [
            "pdftoppm",
            "-cropbox",
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


def _red_mask(image: Image.Image) -> Image.Image:
    r, g, b = image.split()
    masks = [r.point(lambda v: 255 if v > 180 else 0)]
    masks += [c.point(lambda v: 255 if v < 90 else 0) for c in (g, b)]
    return ImageChops.multiply(ImageChops.multiply(masks[0], masks[1]), masks[2])


def _red_bbox_mm(image: Image.Image) -> tuple[float, float, float, float]:
    box = _red_mask(image).getbbox()
    assert box is not None, "no seal-red pixels in the picture"
    return (box[0] * PX_MM, box[1] * PX_MM, box[2] * PX_MM, box[3] * PX_MM)


def _centre(box: tuple[float, float, float, float]) -> tuple[float, float]:
    return ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)


def _close(a: tuple[float, ...], b: tuple[float, ...], tolerance: float = 1.0) -> bool:
    return all(abs(x - y) <= tolerance for x, y in zip(a, b, strict=True))


def test_r06_r13_approver_previews_the_original_with_the_seal_where_placement_says(
    daemon: SealDaemon, tmp_path: Path
) -> None:
    placement = common_pb2.Placement(page=2, x_mm=150.0, y_mm=230.0, size_mm=40.0)
    request_id = _submit(daemon, valid_pdf(3, media_box=OFFSET_A4), tmp_path / "c.pdf", placement)
    with daemon.client("li.na") as approver:
        pages = approver.preview(request_id, 0, DPI)
    # Only the page the seal goes on, and the request is still waiting for approvals.
    assert [p.page for p in pages] == [2]
    preview = _png(pages[0].png)
    box = _red_bbox_mm(preview)
    assert _close(_centre(box), (150.0, 230.0)), box
    assert abs((box[2] - box[0]) - 40.0) <= 1.0 and abs((box[3] - box[1]) - 40.0) <= 1.0, box

    # It is the original page: away from the seal, every pixel is poppler's own
    # rendering of the submitted PDF (nothing is sealed yet, nothing else drawn).
    original = _pdftoppm(tmp_path / "c.pdf", 2, tmp_path)
    assert preview.size == original.size
    seal_px = [round(v / PX_MM) for v in (150 - 21, 230 - 21, 150 + 21, 230 + 21)]
    outside = Image.new("L", preview.size, 255)
    outside.paste(0, tuple(seal_px))  # type: ignore[arg-type]
    diff = ImageChops.difference(preview, original).convert("L").point(lambda v: 255 if v else 0)
    assert ImageChops.multiply(diff, outside).getbbox() is None
    assert ImageChops.multiply(diff, ImageChops.invert(outside)).getbbox() is not None

    # sealctl preview writes the same picture as a PNG file.
    out_dir = tmp_path / "previews"
    out_dir.mkdir()
    done = sealctl(daemon, "wang.fang", "preview", request_id, "--out", str(out_dir), "--dpi", str(DPI))
    assert done.returncode == 0, done.stderr
    written = out_dir / f"{request_id}-0-page2.png"
    assert str(written) in done.stdout
    assert ImageChops.difference(_png(written.read_bytes()), preview).getbbox() is None


def test_r13_preview_matches_the_sealed_result_for_anchor_and_cross_page(
    daemon: SealDaemon, tmp_path: Path
) -> None:
    anchor_id = _submit(
        daemon,
        valid_pdf(2),
        tmp_path / "anchor.pdf",
        common_pb2.Placement(page=0, size_mm=30.0, anchor_text="（盖章）"),
    )
    cross_id = _submit(
        daemon,
        valid_pdf(3, media_box=OFFSET_A4),
        tmp_path / "cross.pdf",
        common_pb2.Placement(y_mm=150.0, size_mm=40.0, cross_page=True),
    )
    with daemon.client("zhang.wei") as requester:  # the requester may look too
        anchor_pages = requester.preview(anchor_id, 0, DPI)
    with daemon.client("zhao.min") as auditor:
        cross_pages = auditor.preview(cross_id, 0, DPI)
    assert [p.page for p in anchor_pages] == [2]  # page 0 = last occurrence = last page
    assert [p.page for p in cross_pages] == [1, 2, 3]  # a slice on every page

    for request_id in (anchor_id, cross_id):
        approve_twice_and_unlock(daemon, request_id)
        wait_signed(daemon, request_id)
    with daemon.client("zhang.wei") as requester:
        requester.download(anchor_id, 0, tmp_path / "anchor-sealed.pdf")
        requester.download(cross_id, 0, tmp_path / "cross-sealed.pdf")

    sealed = _red_bbox_mm(_pdftoppm(tmp_path / "anchor-sealed.pdf", 2, tmp_path))
    previewed = _red_bbox_mm(_png(anchor_pages[0].png))
    assert _close(previewed, sealed), (previewed, sealed)

    page_w_mm = (OFFSET_A4[2] - OFFSET_A4[0]) / 72 * 25.4
    for page in cross_pages:
        previewed = _red_bbox_mm(_png(page.png))
        sealed = _red_bbox_mm(_pdftoppm(tmp_path / "cross-sealed.pdf", page.page, tmp_path))
        assert _close(previewed, sealed), (page.page, previewed, sealed)
        assert abs(previewed[2] - page_w_mm) <= 1.0  # flush with the right edge
        assert previewed[2] - previewed[0] <= 40.0 / 3 + 1.0  # one third of the seal


def test_r04_preview_refused_to_custodian_and_bad_arguments_named(daemon: SealDaemon, tmp_path: Path) -> None:
    placement = common_pb2.Placement(page=1, x_mm=100.0, y_mm=100.0, size_mm=40.0)
    request_id = _submit(daemon, valid_pdf(1), tmp_path / "r.pdf", placement)
    with daemon.client("liu.yang") as custodian, pytest.raises(SealClientError) as refused:
        custodian.preview(request_id)
    assert refused.value.code is grpc.StatusCode.PERMISSION_DENIED
    assert refused.value.reason == "not_allowed_to_preview"
    done = sealctl(daemon, "liu.yang", "preview", request_id, "--out", str(tmp_path))
    assert done.returncode != 0 and "not_allowed_to_preview" in done.stderr
    assert not list(tmp_path.glob("*.png"))

    with daemon.client("li.na") as approver:
        for kwargs, reason in (
            ({"dpi": 2000}, "bad_preview_dpi"),
            ({"index": 3}, "bad_document_index"),
        ):
            with pytest.raises(SealClientError) as bad:
                approver.preview(request_id, **kwargs)
            assert bad.value.code is grpc.StatusCode.INVALID_ARGUMENT, kwargs
            assert bad.value.reason == reason


def test_r13_page_range_preview_shows_every_page_with_the_seal_only_where_it_goes(
    daemon: SealDaemon, tmp_path: Path
) -> None:
    """PreviewRequest with first_page/page_count: any page of the document, at most
    MAX_PAGES per call, page_total given, the seal drawn only on the page it goes on."""
    placement = common_pb2.Placement(page=2, x_mm=150.0, y_mm=230.0, size_mm=40.0)
    pdf = tmp_path / "long.pdf"
    request_id = _submit(daemon, valid_pdf(12), pdf, placement)
    with daemon.client("li.na") as approver:
        first = approver.preview(request_id, 0, DPI, first_page=1)
        rest = approver.preview(request_id, 0, DPI, first_page=11, page_count=5)
        legacy = approver.preview(request_id, 0, DPI)
        with pytest.raises(SealClientError) as beyond:
            approver.preview(request_id, 0, DPI, first_page=13)
    assert [p.page for p in first] == list(range(1, 11))  # capped at MAX_PAGES per call
    assert [p.page for p in rest] == [11, 12]  # clipped to the document
    assert {p.page_total for p in first + rest} == {12}
    assert beyond.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert beyond.value.reason == "bad_preview_page" and "12 page" in beyond.value.message
    # the seal's page is the same picture the seal-only preview gives
    assert [p.page for p in legacy] == [2] and first[1].png == legacy[0].png
    assert _red_mask(_png(first[1].png)).getbbox() is not None
    # pages without the seal are poppler's own rendering of the original, nothing drawn
    for page in (first[0], first[9], rest[1]):
        assert ImageChops.difference(_png(page.png), _pdftoppm(pdf, page.page, tmp_path)).getbbox() is None

    # sealctl preview --first-page writes the same pictures
    out_dir = tmp_path / "range"
    out_dir.mkdir()
    done = sealctl(
        daemon, "wang.fang", "preview", request_id, "--out", str(out_dir), "--dpi", str(DPI),
        "--first-page", "12", "--page-count", "1",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (out_dir / f"{request_id}-0-page12.png").read_bytes() == rest[1].png
