"""Seal impressions (印模, issue 16) made with Pillow for the tests, each named after what
is wrong with it (nothing downloaded). The good one is a red ring with a filled square in
the middle - deliberately unlike the generated seals (star, text), so a pixel comparison
tells them apart."""

from __future__ import annotations

import io
import os
from collections.abc import Callable

from PIL import Image, ImageDraw
from PIL.PngImagePlugin import PngInfo

RED = (230, 0, 0, 255)
BLUE = (0, 60, 200, 255)
MM_PER_INCH = 25.4


def _side(size_mm: float, dpi: int) -> int:
    return round(size_mm / MM_PER_INCH * dpi)


def draw_impression(
    size_mm: float = 40.0,
    dpi: int = 600,
    *,
    ink: tuple[int, int, int, int] = RED,
    background: tuple[int, int, int, int] = (0, 0, 0, 0),
    height_mm: float | None = None,
    centre: str = "square",
) -> Image.Image:
    """A ring along the edge (1.5 mm wide, 1 mm in) and a filled square in the centre
    (``centre="bar"``: a wide horizontal bar instead, for a second, different face)."""
    width = _side(size_mm, dpi)
    height = _side(height_mm if height_mm is not None else size_mm, dpi)
    image = Image.new("RGBA", (width, height), background)
    draw = ImageDraw.Draw(image)
    inset, ring = _side(1.0, dpi), _side(1.5, dpi)
    draw.ellipse((inset, inset, width - inset, height - inset), outline=ink, width=ring)
    half = _side(size_mm / 6, dpi)
    cx, cy = width // 2, height // 2
    if centre == "bar":
        draw.rectangle((inset + ring, cy - half // 3, width - inset - ring, cy + half // 3), fill=ink)
    else:
        draw.rectangle((cx - half, cy - half, cx + half, cy + half), fill=ink)
    return image


def png_bytes(image: Image.Image, dpi: int | None = 600, pnginfo: PngInfo | None = None) -> bytes:
    out = io.BytesIO()
    kwargs: dict[str, object] = {"format": "PNG"}
    if dpi is not None:
        kwargs["dpi"] = (dpi, dpi)
    if pnginfo is not None:
        kwargs["pnginfo"] = pnginfo
    image.save(out, **kwargs)  # type: ignore[arg-type]
    return out.getvalue()


def good_png(size_mm: float = 40.0, dpi: int = 600) -> bytes:
    return png_bytes(draw_impression(size_mm, dpi), dpi)


def second_png(size_mm: float = 40.0, dpi: int = 600) -> bytes:
    """Another good impression (a bar across instead of the square)."""
    return png_bytes(draw_impression(size_mm, dpi, centre="bar"), dpi)


def good_svg(size_mm: float = 40.0) -> bytes:
    s = size_mm
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{s}mm" height="{s}mm" viewBox="0 0 {s} {s}">'
        f'<circle cx="{s / 2}" cy="{s / 2}" r="{s / 2 - 1.75}" fill="none" stroke="#E60000" '
        'stroke-width="1.5"/>'
        f'<rect x="{s / 2 - s / 6}" y="{s / 2 - s / 6}" width="{s / 3}" height="{s / 3}" fill="#E60000"/>'
        "</svg>"
    ).encode()


# -- bad impressions, named after what is wrong -------------------------------------------------


def jpeg_not_png_or_svg() -> bytes:
    out = io.BytesIO()
    draw_impression().convert("RGB").save(out, format="JPEG", dpi=(600, 600))
    return out.getvalue()


def png_too_large() -> bytes:
    """A good impression carrying 300 KB of incompressible metadata (over a 256 KiB limit)."""
    info = PngInfo()
    info.add_text("padding", os.urandom(150_000).hex())
    return png_bytes(draw_impression(), 600, info)


def png_truncated() -> bytes:
    return good_png()[:2000]


def png_without_alpha_channel() -> bytes:
    return png_bytes(draw_impression(background=(255, 255, 255, 255)).convert("RGB"))


def png_on_white_background() -> bytes:
    return png_bytes(draw_impression(background=(255, 255, 255, 255)))


def png_in_blue_ink() -> bytes:
    return png_bytes(draw_impression(ink=BLUE))


def png_30mm_for_a_40mm_seal() -> bytes:
    return png_bytes(draw_impression(30.0))


def png_at_150_dpi() -> bytes:
    return png_bytes(draw_impression(40.0, 150), 150)


def png_without_resolution() -> bytes:
    return png_bytes(draw_impression(), None)


def png_empty() -> bytes:
    return png_bytes(Image.new("RGBA", (_side(40, 600), _side(40, 600)), (0, 0, 0, 0)))


def svg_with_script() -> bytes:
    return good_svg().replace(b"</svg>", b"<script>alert(1)</script></svg>")


def svg_with_onload() -> bytes:
    return good_svg().replace(b"<svg ", b'<svg onload="alert(1)" ', 1)


def svg_with_external_image() -> bytes:
    return good_svg().replace(
        b"</svg>",
        b'<image href="http://127.0.0.1:9/x.png" width="10" height="10" '
        b'xmlns:xlink="http://www.w3.org/1999/xlink"/></svg>',
    )


def svg_with_external_stylesheet() -> bytes:
    return good_svg().replace(b"</svg>", b'<style>@import url("http://127.0.0.1:9/x.css");</style></svg>')


def svg_with_entity() -> bytes:
    return b'<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY x "y">]>' + good_svg()


def svg_without_size_in_mm() -> bytes:
    return good_svg().replace(b'width="40.0mm" height="40.0mm"', b'width="472" height="472"')


def svg_in_blue_ink() -> bytes:
    return good_svg().replace(b"#E60000", b"#003CC8")


# (maker, reason seald answers) for a 40 mm seal, [impression] max_bytes 262144, min_dpi 300
BAD_IMPRESSIONS: dict[str, tuple[Callable[[], bytes], str]] = {
    "jpeg_not_png_or_svg": (jpeg_not_png_or_svg, "impression_format"),
    "png_too_large": (png_too_large, "impression_too_large"),
    "png_truncated": (png_truncated, "impression_unreadable"),
    "png_without_alpha_channel": (png_without_alpha_channel, "impression_not_transparent"),
    "png_on_white_background": (png_on_white_background, "impression_not_transparent"),
    "png_in_blue_ink": (png_in_blue_ink, "impression_wrong_colour"),
    "png_30mm_for_a_40mm_seal": (png_30mm_for_a_40mm_seal, "impression_wrong_size"),
    "png_at_150_dpi": (png_at_150_dpi, "impression_low_resolution"),
    "png_without_resolution": (png_without_resolution, "impression_no_resolution"),
    "png_empty": (png_empty, "impression_no_ink"),
    "svg_with_script": (svg_with_script, "impression_active_content"),
    "svg_with_onload": (svg_with_onload, "impression_active_content"),
    "svg_with_external_image": (svg_with_external_image, "impression_active_content"),
    "svg_with_external_stylesheet": (svg_with_external_stylesheet, "impression_active_content"),
    "svg_with_entity": (svg_with_entity, "impression_active_content"),
    "svg_without_size_in_mm": (svg_without_size_in_mm, "impression_no_size"),
    "svg_in_blue_ink": (svg_in_blue_ink, "impression_wrong_colour"),
}
IMPRESSION_MAX_BYTES = 262_144
