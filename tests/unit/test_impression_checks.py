"""The registered seal impression (印模, issue 16 item 4): the image checks, the rendering
that sealing uses, the two-admin rules and the approval digest. Real Pillow and CairoSVG
on images made here (seald_testing.impressions), no I/O beyond that."""

from __future__ import annotations

import io
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from PIL import Image

from seald.domain import impressions, lifecycle
from seald.domain.errors import AlreadyDone, InvalidInput, NotFound, PermissionDenied, PreconditionFailed
from seald.domain.model import Placement, Principal, Role, SealStatus
from seald.signing.impression import (
    MEDIA_PNG,
    MEDIA_SVG,
    ImpressionLimits,
    check_impression,
    render_impression_png,
)
from seald_testing import impressions as imp

LIMITS = ImpressionLimits(max_bytes=imp.IMPRESSION_MAX_BYTES, min_dpi=300)
NOW = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)


def test_impression_good_png_and_svg_pass_with_their_measures() -> None:
    png = check_impression(imp.good_png(), size_mm=40.0, limits=LIMITS)
    assert png.media_type == MEDIA_PNG and png.width_px == png.height_px == 945
    assert abs(png.width_mm - 40.0) < 0.05 and abs(png.dpi - 600) < 1
    svg = check_impression(imp.good_svg(), size_mm=40.0, limits=LIMITS)
    assert svg.media_type == MEDIA_SVG and svg.width_mm == svg.height_mm == 40.0 and svg.dpi == 0
    # An oval (45 x 30 mm) impression of a 45 mm seal fits: the height may be smaller.
    oval = imp.png_bytes(imp.draw_impression(45.0, 600, height_mm=30.0))
    assert check_impression(oval, size_mm=45.0, limits=LIMITS).height_mm == pytest.approx(30.0, abs=0.1)


@pytest.mark.parametrize("name", sorted(imp.BAD_IMPRESSIONS))
def test_impression_import_refused_for_each_bad_image(name: str) -> None:
    make, reason = imp.BAD_IMPRESSIONS[name]
    with pytest.raises(InvalidInput) as refused:
        check_impression(make(), size_mm=40.0, limits=LIMITS)
    assert refused.value.reason == reason, refused.value.message
    # The message names what is wrong and what to do, never a traceback.
    message = refused.value.message
    assert any(word in message for word in ("export", "save", "remove", "reduce", "give")), message


def test_impression_colour_tolerance_edges() -> None:
    """#E60000 passes; a dark or orange-ish red beyond the documented tolerance does not."""
    for ink, ok in (
        ((200, 30, 30, 255), True),  # hue 0, saturation 0.85, value 0.78
        ((230, 50, 0, 255), True),  # hue 13 degrees: inside the 15 degree tolerance
        ((230, 70, 0, 255), False),  # hue 18 degrees: outside
        ((230, 120, 0, 255), False),  # orange, hue 31
        ((90, 0, 0, 255), False),  # too dark (value 0.35)
        ((230, 150, 150, 255), False),  # pink (saturation 0.35)
    ):
        data = imp.png_bytes(imp.draw_impression(ink=ink))
        if ok:
            check_impression(data, size_mm=40.0, limits=LIMITS)
        else:
            with pytest.raises(InvalidInput) as refused:
                check_impression(data, size_mm=40.0, limits=LIMITS)
            assert refused.value.reason == "impression_wrong_colour"


def test_impression_min_dpi_is_configurable() -> None:
    data = imp.png_at_150_dpi()
    check_impression(data, size_mm=40.0, limits=replace(LIMITS, min_dpi=150))
    with pytest.raises(InvalidInput):
        check_impression(data, size_mm=40.0, limits=replace(LIMITS, min_dpi=151))


def test_impression_rendered_at_the_seals_size_and_dpi() -> None:
    for data, media in ((imp.good_png(), MEDIA_PNG), (imp.good_svg(), MEDIA_SVG)):
        out = Image.open(io.BytesIO(render_impression_png(data, media, 40.0, 300)))
        assert out.mode == "RGBA" and out.size == (472, 472)
        assert out.info["dpi"][0] == pytest.approx(300, abs=0.1)
        # Transparent corner, red centre (the square), like the imported picture.
        assert out.getpixel((2, 2))[3] == 0  # type: ignore[index]
        r, g, b, a = out.getpixel((236, 236))  # type: ignore[misc]
        assert a == 255 and r > 200 and g < 30 and b < 30
    # A wide (oval) canvas is centred vertically in the square box.
    oval = imp.png_bytes(imp.draw_impression(45.0, 600, height_mm=30.0))
    out = Image.open(io.BytesIO(render_impression_png(oval, MEDIA_PNG, 45.0, 300)))
    assert out.size == (531, 531)
    bbox = out.getchannel("A").getbbox()
    assert bbox is not None
    top = bbox[1]
    assert abs(top - (531 - 354) // 2) <= 14  # ring 1 mm in from the canvas edge


# -- the two-admin rules (pure) -----------------------------------------------------------------

ADMIN = Principal("chen.jie", "陈杰", frozenset({Role.ADMIN}), frozenset({"contract"}))
SECOND = Principal("zhou.qiang", "周强", frozenset({Role.ADMIN}), frozenset({"contract"}))
APPROVER = Principal("li.na", "李娜", frozenset({Role.APPROVER}), frozenset({"contract"}))
SHA = "a" * 64


def _propose(**changes: object) -> impressions.Impression:
    fields: dict[str, object] = {
        "impression_id": "imp-1",
        "seal_id": "contract",
        "status": SealStatus.ACTIVE,
        "admin": ADMIN,
        "sha256": SHA,
        "media_type": MEDIA_PNG,
        "seal_code": "4401060012345",
        "configured_code": "",
        "width_mm": 40.0,
        "height_mm": 40.0,
        "dpi": 600.0,
        "current_sha256": "",
        "comment": "备案印模",
        "now": NOW,
    }
    fields.update(changes)
    return impressions.propose(**fields)  # type: ignore[arg-type]


def test_impression_two_admin_rules() -> None:
    proposal = _propose()
    assert proposal.proposed_by == "chen.jie" and not proposal.approved_by

    def approve(p: impressions.Impression | None, **changes: object) -> impressions.Impression:
        fields: dict[str, object] = {
            "impression_id": "imp-1",
            "seal_id": "contract",
            "status": SealStatus.ACTIVE,
            "admin": SECOND,
            "sha256": SHA,
            "current_sha256": "",
            "now": NOW + timedelta(hours=1),
        }
        fields.update(changes)
        return impressions.approve(p, **fields)  # type: ignore[arg-type]

    approved = approve(proposal)
    assert approved.approved_by == "zhou.qiang" and approved.approved_at == NOW + timedelta(hours=1)
    cases: list[tuple[type[Exception], str, impressions.Impression | None, dict[str, object]]] = [
        (PermissionDenied, "same_admin", proposal, {"admin": ADMIN}),
        (PermissionDenied, "not_an_admin", proposal, {"admin": APPROVER}),
        (InvalidInput, "impression_sha256_mismatch", proposal, {"sha256": "b" * 64}),
        (PreconditionFailed, "proposal_expired", proposal, {"now": NOW + timedelta(hours=25)}),
        (NotFound, "impression_proposal_unknown", None, {}),
        (AlreadyDone, "proposal_done", approved, {}),
        (PreconditionFailed, "seal_lost", proposal, {"status": SealStatus.LOST}),
        (AlreadyDone, "impression_unchanged", proposal, {"current_sha256": SHA}),
    ]
    for error, reason, p, changes in cases:
        with pytest.raises(error) as refused:
            approve(p, **changes)
        assert refused.value.reason == reason  # type: ignore[attr-defined]


def test_impression_seal_code_must_be_given_and_match_the_registered_one() -> None:
    for code, configured, reason in (
        ("", "", "bad_seal_code"),
        ("44 01", "", "bad_seal_code"),
        ("4401060012345", "4401060099999", "impression_code_mismatch"),
    ):
        with pytest.raises(InvalidInput) as refused:
            _propose(seal_code=code, configured_code=configured)
        assert refused.value.reason == reason
    assert _propose(seal_code=" 4401060012345 ", configured_code="4401060012345").seal_code == "4401060012345"
    with pytest.raises(PreconditionFailed):
        _propose(status=SealStatus.DESTROYED)


# -- the approval digest (R02, R06) ------------------------------------------------------------


def test_impression_change_changes_the_digest_and_an_empty_one_keeps_older_digests() -> None:
    args = {
        "request_id": "r1",
        "seal_id": "contract",
        "seal_certificate_sha256": "c" * 64,
        "requester": "zhang.wei",
        "reason": "采购合同",
        "category": "contract",
        "placement": Placement(page=0, x_mm=150, y_mm=240, size_mm=40),
        "documents": [],
    }
    without = lifecycle.compute_approval_digest(**args)  # type: ignore[arg-type]
    assert lifecycle.compute_approval_digest(**args, seal_impression_sha256="") == without  # type: ignore[arg-type]
    first = lifecycle.compute_approval_digest(**args, seal_impression_sha256=SHA)  # type: ignore[arg-type]
    second = lifecycle.compute_approval_digest(**args, seal_impression_sha256="b" * 64)  # type: ignore[arg-type]
    assert len({without, first, second}) == 3
