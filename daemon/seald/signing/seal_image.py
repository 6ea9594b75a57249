"""Seal images (SEAL-RULES R01): round red stamps for organisation seals, square for people.

Everything is drawn as a single-colour coverage mask at several times the target
resolution and then downsampled, so that edges are anti-aliased and crisp at 300 dpi;
the final PNG is solid seal red with the mask as alpha (transparent background).
"""

from __future__ import annotations

import bisect
import functools
import io
import itertools
import math
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageChops, ImageDraw, ImageFont

from seald.domain.seal_shapes import allowed_shapes, default_shape

from .errors import SealImageError

SEAL_RED = (230, 0, 0)  # #E60000
ROUND_SEAL_TYPES = frozenset({"official", "contract", "finance"})
SQUARE_SEAL_TYPES = frozenset({"personal", "legal_representative"})
SEAL_TYPES = ROUND_SEAL_TYPES | SQUARE_SEAL_TYPES
# An oval finance seal is 45 x 30 mm: height = width * OVAL_ASPECT. It is drawn centred in
# the square size_mm box (transparent above and below), so placement stays a square box.
OVAL_ASPECT = 2 / 3

_SUPERSAMPLE = 4
_MAX_SIDE_PX = 4000  # refuse absurd size/dpi combinations instead of allocating gigabytes
# (path, face index in a .ttc) tried in order; SC faces first, serif before sans.
_KNOWN_CJK_FONTS: tuple[tuple[str, int], ...] = (
    ("/usr/share/fonts/opentype/noto/NotoSerifCJK-Bold.ttc", 2),
    ("/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc", 2),
    ("/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc", 2),
    ("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc", 2),
    ("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc", 0),
)
_FC_QUERIES = ("Noto Serif CJK SC:bold", "Noto Sans CJK SC:bold", "WenQuanYi Zen Hei")
_CJK_FAMILY_MARKERS = ("CJK", "WenQuanYi", "Source Han", "SimSun", "FangSong", "Song")


@dataclass(frozen=True)
class SealImageSpec:
    seal_type: str  # "official" | "legal_representative" | "contract" | "finance" | "personal"
    organisation: str  # along the upper arc of round seals
    purpose_text: str  # e.g. "合同专用章"; "" for the official seal
    holder_name: str = ""  # for personal / legal-representative (square) seals
    code_number: str = ""  # optional 13-digit code along the bottom arc
    shape: str = ""  # "round" | "oval" | "square"; "" = the seal type's default



@dataclass(frozen=True)
class CjkFont:
    path: Path
    index: int


def render_seal_png(spec: SealImageSpec, size_mm: float, dpi: int = 300) -> bytes:
    """Render the seal as an RGBA PNG, ``size_mm`` wide and high at ``dpi``."""
    side_px = _side_px(size_mm, dpi)
    if spec.seal_type not in SEAL_TYPES:
        raise SealImageError(
            f"unknown seal type {spec.seal_type!r}; use one of {', '.join(sorted(SEAL_TYPES))}",
            reason="unknown_seal_type",
        )
    shape = spec.shape or default_shape(spec.seal_type)
    if shape not in allowed_shapes(spec.seal_type):
        raise SealImageError(
            f"a {spec.seal_type} seal cannot be {shape!r}; use "
            + " or ".join(repr(s) for s in allowed_shapes(spec.seal_type)),
            reason="bad_shape",
        )
    font = find_cjk_font()
    if shape == "round":
        _check_round_spec(spec)
        mask = _round_seal_mask(spec, side_px * _SUPERSAMPLE, font)
    elif shape == "oval":
        _check_round_spec(spec)
        mask = _oval_seal_mask(spec, side_px * _SUPERSAMPLE, font)
    else:
        mask = _square_seal_mask(square_seal_characters(spec.holder_name), side_px * _SUPERSAMPLE, font)
    return _mask_to_png(mask.resize((side_px, side_px), Image.Resampling.LANCZOS), dpi)


def find_cjk_font() -> CjkFont:
    """The CJK font used for seal text; SealImageError if none is installed."""
    return _find_cjk_font_cached()


@functools.lru_cache(maxsize=1)
def _find_cjk_font_cached() -> CjkFont:
    for path, index in _KNOWN_CJK_FONTS:
        if Path(path).is_file():
            return CjkFont(Path(path), index)
    found = _fc_match_cjk()
    if found is not None:
        return found
    raise SealImageError(
        "no CJK font found for the seal text; install the Debian package fonts-noto-cjk "
        "(or fonts-wqy-zenhei) on the seal host",
        reason="no_cjk_font",
    )


def _fc_match_cjk() -> CjkFont | None:
    fc_match = shutil.which("fc-match")
    if fc_match is None:
        return None
    for query in _FC_QUERIES:
        try:
            out = subprocess.run(
                [fc_match, "-f", "%{file}|%{index}|%{family}", query],
                capture_output=True,
                text=True,
                timeout=10,
                check=True,
            ).stdout
        except (OSError, subprocess.SubprocessError):
            return None
        parts = out.split("|", 2)
        # fc-match always answers with *some* font; accept only a CJK family.
        if len(parts) == 3 and any(m in parts[2] for m in _CJK_FAMILY_MARKERS):
            return CjkFont(Path(parts[0]), int(parts[1] or 0))
    return None


def square_seal_characters(holder_name: str) -> str:
    """The four characters of a square personal seal, in reading order (right column first).

    Chinese personal seals read top-to-bottom, right column first: 张三 -> 张三之印,
    张三丰 -> 张三丰印, 欧阳明华 -> 欧阳明华.
    """
    name = "".join(holder_name.split())
    if len(name) == 2:
        return name + "之印"
    if len(name) == 3:
        return name + "印"
    if len(name) == 4:
        return name
    raise SealImageError(
        f"a square seal needs a holder name of 2 to 4 characters, got {len(name)}; "
        "set holder_name to the person's name",
        reason="bad_holder_name",
    )


def _side_px(size_mm: float, dpi: int) -> int:
    if not (math.isfinite(size_mm) and size_mm > 0 and 0 < dpi <= 1200):
        raise SealImageError(
            "seal size must be a positive number of mm and dpi between 1 and 1200", reason="bad_size"
        )
    side = round(size_mm / 25.4 * dpi)
    if not 16 <= side <= _MAX_SIDE_PX:
        raise SealImageError(
            f"a {size_mm} mm seal at {dpi} dpi would be {side} px; choose size/dpi giving "
            f"16..{_MAX_SIDE_PX} px",
            reason="bad_size",
        )
    return side


def _check_round_spec(spec: SealImageSpec) -> None:
    if not spec.organisation.strip():
        raise SealImageError(
            "a round seal needs the organisation name; set organisation", reason="bad_organisation"
        )
    if spec.code_number and not spec.code_number.isdigit():
        raise SealImageError("code_number must contain digits only", reason="bad_code_number")


def _load_font(font: CjkFont, size_px: int) -> ImageFont.FreeTypeFont:
    try:
        return ImageFont.truetype(str(font.path), max(size_px, 4), index=font.index)
    except OSError as ex:
        raise SealImageError(
            f"cannot load the CJK font {font.path}; reinstall fonts-noto-cjk", reason="no_cjk_font"
        ) from ex


def _glyph_mask(
    char: str, font: ImageFont.FreeTypeFont, width: int, height: int, em_width: float = 1.0
) -> Image.Image:
    """One glyph drawn centred in its em box (``em_width`` x 1 em) and scaled to
    width x height. Scaling the em box, not the ink, keeps 一 flat and 口 square while
    still allowing the tall narrow lettering of official seals."""
    em = round(font.size)
    canvas = Image.new("L", (max(round(em * em_width), 1), em), 0)
    ImageDraw.Draw(canvas).text((canvas.width / 2, em / 2), char, fill=255, font=font, anchor="mm")
    return canvas.resize((max(width, 1), max(height, 1)), Image.Resampling.LANCZOS)


def _paste_rotated(
    mask: Image.Image, glyph: Image.Image, centre: tuple[float, float], clockwise_deg: float
) -> None:
    rotated = glyph.rotate(-clockwise_deg, resample=Image.Resampling.BICUBIC, expand=True)
    x = round(centre[0] - rotated.width / 2)
    y = round(centre[1] - rotated.height / 2)
    layer = Image.new("L", mask.size, 0)
    layer.paste(rotated, (x, y))
    mask.paste(ImageChops.lighter(mask, layer))


def star_points(cx: float, cy: float, outer_r: float) -> list[tuple[float, float]]:
    """Ten vertices of an upright five-point star (inner/outer radius ratio of a regular star)."""
    inner_r = outer_r * math.sin(math.radians(18)) / math.sin(math.radians(54))
    points = []
    for i in range(10):
        radius = outer_r if i % 2 == 0 else inner_r
        angle = math.radians(i * 36)
        points.append((cx + radius * math.sin(angle), cy - radius * math.cos(angle)))
    return points


def _round_seal_mask(spec: SealImageSpec, side: int, font: CjkFont) -> Image.Image:
    mask = Image.new("L", (side, side), 0)
    draw = ImageDraw.Draw(mask)
    c = side / 2
    ring = side * 0.035  # ~1.5 mm on a 42 mm seal
    margin = side * 0.01
    draw.ellipse((margin, margin, side - margin, side - margin), outline=255, width=round(ring))
    inner_r = c - margin - ring

    draw.polygon(star_points(c, c * 1.0, side * 0.17), fill=255)

    name = "".join(spec.organisation.split())
    _draw_arc_text(mask, name, font, centre=c, inner_r=inner_r, side=side)

    if spec.purpose_text.strip():
        purpose = spec.purpose_text.strip()
        height = side * 0.11
        width = min(height * 0.85, side * 0.5 / len(purpose))
        glyphs = [
            _glyph_mask(ch, _load_font(font, round(height)), round(width), round(height)) for ch in purpose
        ]
        gap = width * 0.02
        total = len(glyphs) * width + (len(glyphs) - 1) * gap
        y = c + side * 0.24
        for i, glyph in enumerate(glyphs):
            x = c - total / 2 + i * (width + gap) + width / 2
            _paste_rotated(mask, glyph, (x, y), 0.0)

    if spec.code_number:
        _draw_bottom_code(mask, spec.code_number, font, centre=c, inner_r=inner_r, side=side)
    return mask


def _draw_arc_text(
    mask: Image.Image, text: str, font: CjkFont, *, centre: float, inner_r: float, side: int
) -> None:
    """Organisation name clockwise along the upper arc, tops of the characters outwards."""
    height = side * 0.15
    text_r = inner_r - side * 0.012 - height / 2
    n = len(text)
    # Long names spread over up to 230 degrees; short ones keep a natural spacing.
    step = min(math.radians(230) / max(n - 1, 1), math.radians(30))
    width = min(height * 0.78, text_r * step * 1.05)
    glyph_font = _load_font(font, round(height))
    span = step * (n - 1)
    for i, ch in enumerate(text):
        theta = -span / 2 + i * step
        pos = (centre + text_r * math.sin(theta), centre - text_r * math.cos(theta))
        _paste_rotated(
            mask, _glyph_mask(ch, glyph_font, round(width), round(height)), pos, math.degrees(theta)
        )


def _draw_bottom_code(
    mask: Image.Image, code: str, font: CjkFont, *, centre: float, inner_r: float, side: int
) -> None:
    """Registration code left-to-right along the bottom arc, bottoms of the digits outwards."""
    height = side * 0.06
    width = height * 0.5
    text_r = inner_r - side * 0.008 - height / 2
    step = (width * 1.2) / text_r
    span = step * (len(code) - 1)
    glyph_font = _load_font(font, round(height))
    for i, ch in enumerate(code):
        phi = span / 2 - i * step  # positive = left of the bottom centre
        pos = (centre - text_r * math.sin(phi), centre + text_r * math.cos(phi))
        glyph = _glyph_mask(ch, glyph_font, round(width), round(height), em_width=0.6)
        _paste_rotated(mask, glyph, pos, math.degrees(phi))


def oval_axes(side: float) -> tuple[float, float]:
    """Outer semi-axes (a, b) of the oval seal's ring on a ``side`` x ``side`` canvas."""
    a = side / 2 - side * 0.01
    return a, a * OVAL_ASPECT


def _oval_seal_mask(spec: SealImageSpec, side: int, font: CjkFont) -> Image.Image:
    """财务专用章 as an oval: name along the upper elliptic arc, purpose text straight
    across the middle, the optional code along the bottom; no star."""
    mask = Image.new("L", (side, side), 0)
    draw = ImageDraw.Draw(mask)
    c = side / 2
    a, b = oval_axes(side)
    ring = side * 0.03
    draw.ellipse((c - a, c - b, c + a, c + b), outline=255, width=round(ring))
    inner_a, inner_b = a - ring, b - ring

    name = "".join(spec.organisation.split())
    height = inner_b * 0.3
    gap = side * 0.02
    _draw_elliptic_arc_text(
        mask,
        name,
        font,
        centre=c,
        axes=(inner_a - gap - height / 2, inner_b - gap - height / 2),
        height=height,
    )
    if spec.purpose_text.strip():
        purpose = spec.purpose_text.strip()
        p_height = inner_b * 0.3
        p_width = min(p_height * 0.9, inner_a * 1.1 / len(purpose))
        glyph_font = _load_font(font, round(p_height))
        total = len(purpose) * p_width
        y = c + inner_b * 0.14
        for i, ch in enumerate(purpose):
            x = c - total / 2 + (i + 0.5) * p_width
            glyph = _glyph_mask(ch, glyph_font, round(p_width * 0.96), round(p_height))
            _paste_rotated(mask, glyph, (x, y), 0.0)
    if spec.code_number:
        code_height = inner_b * 0.13
        code_width = code_height * 0.5
        glyph_font = _load_font(font, round(code_height))
        total = len(spec.code_number) * code_width * 1.15
        y = c + inner_b - gap - code_height / 2 - inner_b * 0.02
        for i, ch in enumerate(spec.code_number):
            x = c - total / 2 + (i + 0.5) * code_width * 1.15
            glyph = _glyph_mask(ch, glyph_font, round(code_width), round(code_height), em_width=0.6)
            _paste_rotated(mask, glyph, (x, y), 0.0)
    return mask


def _draw_elliptic_arc_text(
    mask: Image.Image,
    text: str,
    font: CjkFont,
    *,
    centre: float,
    axes: tuple[float, float],
    height: float,
) -> None:
    """Text clockwise along the upper part of an ellipse, equally spaced by ARC LENGTH
    (equal angles would crowd the characters at the flat top), each upright to the
    ellipse's outward normal."""
    a, b = axes
    n = len(text)
    # Arc length s(t) from the top along x = a sin t, y = -b cos t, sampled finely.
    samples = 2000
    limit = math.radians(115)  # the name may run down to 25 degrees below the sides
    ts = [-limit + 2 * limit * k / samples for k in range(samples + 1)]
    lengths = [0.0]
    for t0, t1 in itertools.pairwise(ts):
        lengths.append(
            lengths[-1] + math.hypot(a * (math.sin(t1) - math.sin(t0)), b * (math.cos(t1) - math.cos(t0)))
        )
    top = lengths[samples // 2]
    usable = lengths[-1]
    step = min(usable / max(n - 1, 1), height * 1.15)
    width = min(height * 0.8, step * 0.9)
    glyph_font = _load_font(font, round(height))
    for i, ch in enumerate(text):
        target = top + (i - (n - 1) / 2) * step
        k = min(bisect.bisect_left(lengths, target), samples)
        t = ts[k]
        pos = (centre + a * math.sin(t), centre - b * math.cos(t))
        # Outward normal (sin t / a, -cos t / b) as a clockwise angle from "up".
        angle = math.degrees(math.atan2(math.sin(t) / a, math.cos(t) / b))
        _paste_rotated(mask, _glyph_mask(ch, glyph_font, round(width), round(height)), pos, angle)


def _square_seal_mask(chars: str, side: int, font: CjkFont) -> Image.Image:
    mask = Image.new("L", (side, side), 0)
    draw = ImageDraw.Draw(mask)
    border = side * 0.075
    margin = side * 0.01
    draw.rectangle((margin, margin, side - margin, side - margin), outline=255, width=round(border))
    inner = side - 2 * (margin + border)
    pad = inner * 0.05
    cell = (inner - 3 * pad) / 2
    glyph_font = _load_font(font, round(cell))
    origin = margin + border + pad
    # Reading order: right column top, right column bottom, left column top, left bottom.
    cells = [(1, 0), (1, 1), (0, 0), (0, 1)]
    for ch, (col, row) in zip(chars, cells, strict=True):
        x = origin + col * (cell + pad) + cell / 2
        y = origin + row * (cell + pad) + cell / 2
        # The em box is scaled past the cell so that the ink (~90 % of an em) fills it.
        glyph = _glyph_mask(ch, glyph_font, round(cell * 1.1), round(cell * 1.1))
        _paste_rotated(mask, glyph, (x, y), 0.0)
    return mask


def _mask_to_png(mask: Image.Image, dpi: int) -> bytes:
    image = Image.new("RGBA", mask.size, (*SEAL_RED, 0))
    image.putalpha(mask)
    out = io.BytesIO()
    image.save(out, format="PNG", dpi=(dpi, dpi), optimize=True)
    return out.getvalue()
