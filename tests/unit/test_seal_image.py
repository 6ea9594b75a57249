"""SEAL-RULES R01: seal images look like Chinese seals (round red stamp for
organisation seals, square for people), with a transparent background."""

from __future__ import annotations

import io

import pytest
from PIL import Image, ImageChops, ImageDraw

from seald.signing.errors import SealImageError
from seald.signing.seal_image import (
    SEAL_RED,
    SealImageSpec,
    find_cjk_font,
    render_seal_png,
    square_seal_characters,
)

ORG = "华夏示例科技有限公司"


def _render(spec: SealImageSpec, size_mm: float = 40, dpi: int = 300) -> Image.Image:
    image = Image.open(io.BytesIO(render_seal_png(spec, size_mm, dpi)))
    assert image.format == "PNG"
    return image


def _alphas(image: Image.Image) -> bytes:
    return image.getchannel("A").tobytes()


def _visible_colours(image: Image.Image) -> set[tuple[int, int, int]]:
    raw = image.tobytes()
    return {(raw[i], raw[i + 1], raw[i + 2]) for i in range(0, len(raw), 4) if raw[i + 3] > 0}


def _alpha(image: Image.Image, x: int, y: int) -> int:
    value = image.getpixel((x, y))
    assert isinstance(value, tuple)
    return int(value[3])


def _ink_fraction(image: Image.Image, box: tuple[int, int, int, int]) -> float:
    region = image.crop(box)
    inked = sum(1 for a in _alphas(region) if a > 128)
    return inked / (region.width * region.height)


def test_r01_cjk_font_is_found() -> None:
    font = find_cjk_font()
    assert font.path.is_file()


@pytest.mark.parametrize(
    "seal_type,purpose",
    [
        ("official", ""),
        ("contract", "合同专用章"),
        ("finance", "财务专用章"),
    ],
)
def test_r01_organisation_seal_is_round_red_and_transparent(seal_type: str, purpose: str) -> None:
    image = _render(SealImageSpec(seal_type, ORG, purpose, code_number="1101080012345"))
    side = round(40 / 25.4 * 300)
    assert image.mode == "RGBA" and image.size == (side, side)
    # Corners outside the circle are fully transparent: it is round, not square.
    for x, y in [
        (3, 3),
        (side - 4, 3),
        (3, side - 4),
        (side - 4, side - 4),
        (round(side * 0.1), round(side * 0.1)),
    ]:
        assert _alpha(image, x, y) == 0, (x, y)
    # The ring: opaque at the middle of each edge, just inside the border.
    ring = round(side * 0.03)
    for x, y in [
        (side // 2, ring),
        (side // 2, side - 1 - ring),
        (ring, side // 2),
        (side - 1 - ring, side // 2),
    ]:
        assert _alpha(image, x, y) > 200, (x, y)
    # The five-point star fills the centre.
    assert _alpha(image, side // 2, side // 2) == 255
    # Every visible pixel is seal red.
    assert _visible_colours(image) == {SEAL_RED}


def test_r01_round_seal_has_text_along_the_upper_arc() -> None:
    image = _render(SealImageSpec("official", ORG, ""))
    side = image.width
    # Between ring and star, the upper band carries the organisation name...
    assert _ink_fraction(image, (side // 4, round(side * 0.06), 3 * side // 4, round(side * 0.22))) > 0.15
    # ...while an official seal without purpose text leaves the area below the star empty.
    assert _ink_fraction(image, (side // 3, round(side * 0.70), 2 * side // 3, round(side * 0.78))) < 0.01


def test_r01_purpose_text_is_drawn_below_the_star() -> None:
    image = _render(SealImageSpec("contract", ORG, "合同专用章"))
    side = image.width
    assert _ink_fraction(image, (side // 4, round(side * 0.69), 3 * side // 4, round(side * 0.79))) > 0.1


@pytest.mark.parametrize("seal_type", ["personal", "legal_representative"])
def test_r01_personal_seal_is_square(seal_type: str) -> None:
    image = _render(SealImageSpec(seal_type, "", "", holder_name="张三丰"), size_mm=20)
    side = image.width
    # Square border: corners are ink (a round seal has transparent corners).
    for x, y in [(6, 6), (side - 7, 6), (6, side - 7), (side - 7, side - 7)]:
        assert _alpha(image, x, y) > 200, (x, y)
    # Four characters, one per quadrant.
    half = side // 2
    for quadrant in [
        (0, 0, half, half),
        (half, 0, side, half),
        (0, half, half, side),
        (half, half, side, side),
    ]:
        inner = (
            quadrant[0] + side // 8,
            quadrant[1] + side // 8,
            quadrant[2] - side // 8,
            quadrant[3] - side // 8,
        )
        assert _ink_fraction(image, inner) > 0.1, quadrant
    assert _visible_colours(image) == {SEAL_RED}


def test_r01_square_seal_reading_order_adds_yin() -> None:
    assert square_seal_characters("张三") == "张三之印"
    assert square_seal_characters("张三丰") == "张三丰印"
    assert square_seal_characters("欧阳明华") == "欧阳明华"
    with pytest.raises(SealImageError) as err:
        square_seal_characters("张")
    assert err.value.reason == "bad_holder_name"


def test_r01_png_is_crisp_at_300_dpi() -> None:
    image = _render(SealImageSpec("official", ORG, ""), size_mm=42, dpi=300)
    assert image.info["dpi"][0] == pytest.approx(300, abs=1)
    # Anti-aliased but sharp: most inked pixels are fully opaque, edges are thin.
    alphas = [a for a in _alphas(image) if a > 0]
    opaque = sum(1 for a in alphas if a >= 250) / len(alphas)
    assert opaque > 0.6, opaque


@pytest.mark.parametrize(
    "spec,reason",
    [
        (SealImageSpec("stamp", ORG, ""), "unknown_seal_type"),
        (SealImageSpec("official", "  ", ""), "bad_organisation"),
        (SealImageSpec("official", ORG, "", code_number="12AB"), "bad_code_number"),
    ],
)
def test_r01_bad_specs_are_refused_with_a_reason(spec: SealImageSpec, reason: str) -> None:
    with pytest.raises(SealImageError) as err:
        render_seal_png(spec, 40)
    assert err.value.reason == reason


@pytest.mark.parametrize("size_mm,dpi", [(0, 300), (-5, 300), (float("nan"), 300), (500, 1200)])
def test_r01_absurd_sizes_are_refused(size_mm: float, dpi: int) -> None:
    with pytest.raises(SealImageError) as err:
        render_seal_png(SealImageSpec("official", ORG, ""), size_mm, dpi)
    assert err.value.reason == "bad_size"


def test_r01_oval_finance_seal_is_an_ellipse_on_a_transparent_background() -> None:
    image = _render(
        SealImageSpec("finance", ORG, "财务专用章", code_number="1101080012345", shape="oval"),
        size_mm=45,
    )
    side = round(45 / 25.4 * 300)
    assert image.mode == "RGBA" and image.size == (side, side)
    assert _visible_colours(image) == {SEAL_RED}
    alpha = image.getchannel("A")
    box = alpha.point(lambda v: 255 if v > 0 else 0).getbbox()
    assert box is not None
    width, height = box[2] - box[0], box[3] - box[1]
    # 45 x 30 mm proportions, centred in the square box.
    assert width / height == pytest.approx(1.5, abs=0.03), (width, height)
    assert abs((box[0] + box[2]) / 2 - side / 2) <= 2 and abs((box[1] + box[3]) / 2 - side / 2) <= 2
    # Every inked pixel lies inside the ellipse the bounding box describes; the bands
    # above and below it are transparent.
    cx, cy, a, b = side / 2, side / 2, width / 2 + 1, height / 2 + 1
    raw = alpha.tobytes()
    outside = [
        (x, y)
        for y in range(0, side, 3)
        for x in range(0, side, 3)
        if raw[y * side + x] > 0 and ((x + 0.5 - cx) / a) ** 2 + ((y + 0.5 - cy) / b) ** 2 > 1.0
    ]
    assert not outside, outside[:5]
    # The ring is closed: opaque at the ends of both axes, just inside the border.
    ring = round(side * 0.02)
    for x, y in [
        (round(cx), box[1] + ring),
        (round(cx), box[3] - 1 - ring),
        (box[0] + ring, round(cy)),
        (box[2] - 1 - ring, round(cy)),
    ]:
        assert _alpha(image, x, y) > 200, (x, y)
    # Organisation name in the upper band, 财务专用章 across the middle, code at the
    # bottom, no star at the centre (the area just above the purpose text stays empty).
    top, mid = box[1], round(cy)
    assert _ink_fraction(image, (side // 3, top + height // 10, 2 * side // 3, top + height // 4)) > 0.1
    assert _ink_fraction(image, (side // 3, mid + height // 50, 2 * side // 3, mid + height // 6)) > 0.1
    assert _ink_fraction(image, (side // 3, mid - height // 8, 2 * side // 3, mid - height // 25)) < 0.01
    assert (
        _ink_fraction(image, (side // 3, box[3] - height // 5, 2 * side // 3, box[3] - height // 10)) > 0.05
    )


def test_r01_oval_name_follows_the_elliptic_arc() -> None:
    """Inside the ring, the name's first characters sit low on the left side and the
    middle ones at the flat top: the text bends with the ellipse."""
    image = _render(SealImageSpec("finance", ORG, "", shape="oval"), size_mm=45)
    side = image.width
    box = image.getchannel("A").getbbox()
    assert box is not None
    a, b = (box[2] - box[0]) / 2, (box[3] - box[1]) / 2
    cx, cy = side / 2, side / 2
    inside = Image.new("L", image.size, 0)
    ImageDraw.Draw(inside).ellipse((cx - 0.88 * a, cy - 0.88 * b, cx + 0.88 * a, cy + 0.88 * b), fill=255)
    text = ImageChops.multiply(image.getchannel("A").point(lambda v: 255 if v > 128 else 0), inside)
    left = text.crop((box[0], 0, round(box[0] + a * 0.3), side)).getbbox()
    middle = text.crop((round(cx - a * 0.1), 0, round(cx + a * 0.1), side)).getbbox()
    assert left is not None and middle is not None
    # Middle: the name hugs the top of the ellipse. Left: the first character is at
    # the height of the centre, far below the top.
    assert middle[1] < cy - 0.7 * b, (middle, cy, b)
    assert left[1] > cy - 0.6 * b and left[3] > cy - 0.1 * b, (left, cy, b)


@pytest.mark.parametrize(
    "spec,reason",
    [
        (SealImageSpec("official", ORG, "", shape="oval"), "bad_shape"),
        (SealImageSpec("contract", ORG, "合同专用章", shape="square"), "bad_shape"),
        (SealImageSpec("personal", "", "", holder_name="张三", shape="round"), "bad_shape"),
        (SealImageSpec("finance", ORG, "财务专用章", shape="triangle"), "bad_shape"),
    ],
)
def test_r01_shape_must_fit_the_seal_type(spec: SealImageSpec, reason: str) -> None:
    with pytest.raises(SealImageError) as err:
        render_seal_png(spec, 40)
    assert err.value.reason == reason
