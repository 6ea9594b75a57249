"""The registered seal impression (印模, issue 16 item 4): checks and rendering.

An admin imports the impression the company registered for a seal, as a PNG or an SVG
with a transparent background. Before it is ever proposed it must pass every check
below; each refusal is INVALID_ARGUMENT with its own reason and a message naming what is
wrong and what to do (docs/operations.md "Registering a seal impression").

- Format: PNG or SVG, nothing else (``impression_format``); at most ``max_bytes``
  (``impression_too_large``, ``[impression] max_bytes``).
- SVG: parsed with defusedxml (no DTD, no entities); scripts, event attributes
  (``on*``), ``foreignObject``, animation, and any reference that is not to the SVG
  itself (``href`` not ``#...``, ``url(...)`` not ``#...``, ``@import``) are refused
  (``impression_active_content``): an impression is a picture, nothing in it may run or
  fetch. The SVG must state its width and height in mm, cm, in, pt or pc
  (``impression_no_size``). It is rasterised by CairoSVG (``unsafe=False``: no external
  files, no entities) for the pixel checks and for every use.
- Physical size (``impression_wrong_size``): the PNG's resolution comes from its pHYs
  chunk (``impression_no_resolution`` without one: "save it with its resolution"); the
  decision is to trust the file, not a size typed by the admin, so the registered face
  is self-describing. Its width must be the seal's registered ``size_mm`` within
  ``SIZE_TOLERANCE_MM`` (the larger of 0.5 mm and 1 %); its height at most that (a
  45x30 mm oval finance seal is a wide canvas) and at least half of it.
- Resolution (``impression_low_resolution``): pixels across the registered size must be
  at least ``[impression] min_dpi`` (default 300) per inch. SVGs are vectors: rendered
  at whatever resolution is asked.
- Transparency (``impression_not_transparent``): an alpha channel (RGBA, LA, or a
  palette/grey image with a tRNS entry); a frame at the image's edge
  (``max(1 px, 1 % of the side)``) fully transparent (alpha <= 16) and at least 30 % of
  all pixels transparent: a scan on white paper is refused.
- Colour (``impression_wrong_colour``): the seal's colour is red. Of the ink pixels
  (alpha >= 128), at least 98 % must be red within a tolerance: hue within 15 degrees of
  pure red, saturation >= 0.6, value >= 0.45 (the generated seals' #E60000 is hue 0,
  saturation 1, value 0.9). Some ink is needed: at least 2 % of the canvas
  (``impression_no_ink``).

``render_impression_png`` gives the picture sealing, previews and the SES_Seal use: the
seal's square ``size_mm`` box at the asked dpi, the impression scaled to its width and
centred (transparent above and below a wide canvas), like the generated images.
"""

from __future__ import annotations

import hashlib
import io
import re
from dataclasses import dataclass
from typing import Any, Final

import cairosvg
from defusedxml import DefusedXmlException
from defusedxml import ElementTree as SafeTree
from PIL import Image, ImageChops

from seald.domain.errors import InvalidInput

PNG_MAGIC: Final = b"\x89PNG\r\n\x1a\n"
MEDIA_PNG: Final = "image/png"
MEDIA_SVG: Final = "image/svg+xml"
MM_PER_INCH: Final = 25.4
MAX_PIXELS: Final = 40_000_000  # a 100 mm seal at 1200 dpi is ~22 Mpx; refuse bombs before decoding
MAX_RENDER_SIDE_PX: Final = 8000
TRANSPARENT_ALPHA: Final = 16
INK_ALPHA: Final = 128
MIN_BACKGROUND_SHARE: Final = 0.30
MIN_INK_SHARE: Final = 0.02
MIN_RED_SHARE: Final = 0.98
# Pillow's HSV channels are 0..255: hue 15 degrees = 10.6, saturation 0.6 = 153, value 0.45 = 115.
_RED_HUE_SPAN: Final = 10
_MIN_SATURATION: Final = 153
_MIN_VALUE: Final = 115
_SVG_UNITS_MM: Final = {"mm": 1.0, "cm": 10.0, "in": 25.4, "pt": 25.4 / 72, "pc": 25.4 / 6}
_SVG_LENGTH = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([a-z]*)\s*$")
_SVG_REFUSED_ELEMENTS: Final = frozenset(
    {
        "script",
        "foreignobject",
        "iframe",
        "embed",
        "object",
        "handler",
        "listener",
        "animate",
        "animatemotion",
        "animatetransform",
        "animatecolor",
        "set",
        "image",
        "use",
    }
)


def size_tolerance_mm(size_mm: float) -> float:
    """How far the impression's physical width may be from the registered size."""
    return max(0.5, size_mm * 0.01)


@dataclass(frozen=True)
class ImpressionLimits:
    max_bytes: int = 2 * 1024 * 1024
    min_dpi: int = 300


@dataclass(frozen=True)
class CheckedImpression:
    """What the checks found: kept with the impression and shown by ``show``."""

    media_type: str
    sha256: str
    width_mm: float
    height_mm: float
    width_px: int  # 0 for an SVG (a vector)
    height_px: int
    dpi: float  # pixels per inch across the registered size; 0 for an SVG


def _refuse(message: str, reason: str) -> InvalidInput:
    return InvalidInput(message, reason=reason)


def media_type_of(data: bytes) -> str:
    """PNG by its signature, SVG by its root element; anything else is refused."""
    if data.startswith(PNG_MAGIC):
        return MEDIA_PNG
    head = data[:4096].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith((b"<?xml", b"<svg", b"<!--", b"<!doctype svg")) and b"<svg" in data[:65536].lower():
        return MEDIA_SVG
    raise _refuse(
        "the impression is neither a PNG nor an SVG file; export the registered impression "
        "(印模) as a PNG with a transparent background, or as an SVG",
        "impression_format",
    )


def check_impression(data: bytes, *, size_mm: float, limits: ImpressionLimits) -> CheckedImpression:
    """Every check of the module docstring, in that order; the first failure is raised.

    Whatever a crafted file makes a decoder raise is a refusal, never a crash of seald."""
    try:
        return _check(data, size_mm=size_mm, limits=limits)
    except InvalidInput:
        raise
    except Exception as ex:
        raise _refuse(
            f"the impression cannot be decoded ({type(ex).__name__}); export it again as a plain "
            "PNG or SVG",
            "impression_unreadable",
        ) from ex


def _check(data: bytes, *, size_mm: float, limits: ImpressionLimits) -> CheckedImpression:
    if len(data) > limits.max_bytes:
        raise _refuse(
            f"the impression file is {len(data)} bytes, over the limit of {limits.max_bytes} "
            "([impression] max_bytes); reduce it (e.g. 600 dpi is plenty, or optimise the PNG)",
            "impression_too_large",
        )
    media_type = media_type_of(data)
    sha256 = hashlib.sha256(data).hexdigest()
    if media_type == MEDIA_PNG:
        image, dpi = _open_png(data)
        width_mm, height_mm = image.width / dpi * MM_PER_INCH, image.height / dpi * MM_PER_INCH
        _check_size(width_mm, height_mm, size_mm, f"{image.width}x{image.height} px at {dpi:g} dpi")
        effective_dpi = image.width / (size_mm / MM_PER_INCH)
        if effective_dpi + 0.5 < limits.min_dpi:
            raise _refuse(
                f"the impression has {image.width} px across the seal's {size_mm:g} mm, "
                f"{effective_dpi:.0f} dpi; at least {limits.min_dpi} dpi are needed "
                "([impression] min_dpi): export it again at a higher resolution",
                "impression_low_resolution",
            )
        _check_pixels(_rgba(image))
        return CheckedImpression(
            media_type, sha256, width_mm, height_mm, image.width, image.height, effective_dpi
        )
    width_mm, height_mm = svg_size_mm(data)
    _check_size(width_mm, height_mm, size_mm, "the SVG's width and height")
    raster = Image.open(io.BytesIO(_rasterise_svg(data, width_mm, height_mm, limits.min_dpi)))
    _check_pixels(raster.convert("RGBA"))
    return CheckedImpression(media_type, sha256, width_mm, height_mm, 0, 0, 0.0)


def render_impression_png(data: bytes, media_type: str, size_mm: float, dpi: int) -> bytes:
    """The impression as sealing uses it: an RGBA PNG ``size_mm`` square at ``dpi``."""
    side = max(1, round(size_mm / MM_PER_INCH * dpi))
    if side > MAX_RENDER_SIDE_PX:
        raise _refuse(
            f"a {size_mm:g} mm impression at {dpi} dpi would be {side} px wide; ask for a lower dpi",
            "bad_dpi",
        )
    if media_type == MEDIA_SVG:
        width_mm, height_mm = svg_size_mm(data)
        height = max(1, round(side * height_mm / width_mm))
        picture = Image.open(io.BytesIO(_rasterise_svg_px(data, side, height))).convert("RGBA")
    else:
        picture, _ = _open_png(data)
        picture = _rgba(picture)
        height = max(1, round(side * picture.height / picture.width))
        picture = picture.resize((side, height), Image.Resampling.LANCZOS)
    canvas = Image.new("RGBA", (side, side), (0, 0, 0, 0))
    top = max(0, (side - picture.height) // 2)  # a wide (oval) canvas is centred in the box
    canvas.alpha_composite(picture.crop((0, 0, side, min(side, picture.height))), (0, top))
    out = io.BytesIO()
    canvas.save(out, format="PNG", dpi=(dpi, dpi), optimize=False)
    return out.getvalue()


# -- PNG -------------------------------------------------------------------------------------------


def _open_png(data: bytes) -> tuple[Image.Image, float]:
    try:
        image = Image.open(io.BytesIO(data), formats=["PNG"])
        if image.width * image.height > MAX_PIXELS:
            raise _refuse(
                f"the impression is {image.width}x{image.height} px, more than {MAX_PIXELS} "
                "pixels; export it at 600 dpi or less",
                "impression_too_large",
            )
        image.load()
    except InvalidInput:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as ex:
        raise _refuse(
            f"the PNG cannot be read ({type(ex).__name__}); export the impression again",
            "impression_unreadable",
        ) from ex
    dpi = image.info.get("dpi")
    if not dpi or not dpi[0] or not dpi[1]:
        raise _refuse(
            "the PNG does not say its resolution (no pHYs chunk), so its size in mm is unknown; "
            "save it with its resolution (e.g. 600 dpi) so that it measures the seal's size",
            "impression_no_resolution",
        )
    if abs(float(dpi[0]) - float(dpi[1])) > 0.01 * float(dpi[0]):
        raise _refuse(
            f"the PNG's horizontal and vertical resolutions differ ({dpi[0]:g} and {dpi[1]:g} "
            "dpi); save it with square pixels",
            "impression_no_resolution",
        )
    return image, float(dpi[0])


def _rgba(image: Image.Image) -> Image.Image:
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        image.mode in ("P", "L", "RGB", "I", "I;16") and "transparency" in image.info
    )
    if not has_alpha:
        raise _refuse(
            f"the PNG has no alpha channel (mode {image.mode}), so its background is not "
            "transparent; export the impression as an RGBA PNG with a transparent background",
            "impression_not_transparent",
        )
    return image.convert("RGBA")


def _check_size(width_mm: float, height_mm: float, size_mm: float, what: str) -> None:
    tolerance = size_tolerance_mm(size_mm)
    if abs(width_mm - size_mm) > tolerance or height_mm > size_mm + tolerance or height_mm < size_mm / 2:
        raise _refuse(
            f"the impression measures {width_mm:.1f} x {height_mm:.1f} mm ({what}); the seal is "
            f"registered as {size_mm:g} mm wide (tolerance {tolerance:g} mm, height at most the "
            "width): export it at its real size, or correct the seal's size_mm",
            "impression_wrong_size",
        )


def _count(mask: Image.Image) -> int:
    """Pixels set in an L-mode 0/255 mask."""
    return mask.histogram()[255]


def _check_pixels(image: Image.Image) -> None:
    alpha = image.getchannel("A")
    total = image.width * image.height
    background = alpha.point(lambda a: 255 if a <= TRANSPARENT_ALPHA else 0)
    frame = max(1, min(image.width, image.height) // 100)
    border = Image.new("L", image.size, 255)
    border.paste(0, (frame, frame, image.width - frame, image.height - frame))
    opaque_border = _count(ImageChops.subtract(border, background))
    if opaque_border:
        raise _refuse(
            f"{opaque_border} pixels at the image's edge are not transparent (a {frame} px "
            "frame must be): the background must be transparent, not white or scanned paper; "
            "remove the background and export with transparency",
            "impression_not_transparent",
        )
    if _count(background) < MIN_BACKGROUND_SHARE * total:
        raise _refuse(
            f"only {_count(background) * 100 / total:.0f} % of the image is transparent (at "
            f"least {MIN_BACKGROUND_SHARE * 100:.0f} % expected around and inside the seal); "
            "remove the background and export with transparency",
            "impression_not_transparent",
        )
    ink = alpha.point(lambda a: 255 if a >= INK_ALPHA else 0)
    ink_count = _count(ink)
    if ink_count < MIN_INK_SHARE * total:
        raise _refuse(
            f"the impression has almost no ink ({ink_count} of {total} pixels); it looks "
            "empty: export the impression itself",
            "impression_no_ink",
        )
    hue, saturation, value = image.convert("RGB").convert("HSV").split()
    red_hue = hue.point(lambda h: 255 if h <= _RED_HUE_SPAN or h >= 255 - _RED_HUE_SPAN else 0)
    saturated = saturation.point(lambda s: 255 if s >= _MIN_SATURATION else 0)
    bright = value.point(lambda v: 255 if v >= _MIN_VALUE else 0)
    red = ImageChops.multiply(ImageChops.multiply(red_hue, saturated), bright)
    red_ink = _count(ImageChops.multiply(red, ink))
    if red_ink < MIN_RED_SHARE * ink_count:
        r, g, b = _mean_ink_colour(image, ink)
        raise _refuse(
            f"only {red_ink * 100 / ink_count:.1f} % of the impression's ink is seal red "
            f"(at least {MIN_RED_SHARE * 100:.0f} % needed; its average ink colour is "
            f"#{r:02X}{g:02X}{b:02X}); a seal's impression is red (e.g. #E60000): export it "
            "in the seal's colour",
            "impression_wrong_colour",
        )


def _mean_ink_colour(image: Image.Image, ink: Image.Image) -> tuple[int, int, int]:
    sums = [0, 0, 0]
    count = _count(ink) or 1
    for band, channel in enumerate(image.convert("RGB").split()):
        histogram = ImageChops.multiply(channel, ink).histogram()
        sums[band] = sum(level * n for level, n in enumerate(histogram))
    return (sums[0] // count, sums[1] // count, sums[2] // count)


# -- SVG -------------------------------------------------------------------------------------------


def _local(name: str) -> str:
    return name.rsplit("}", 1)[-1].lower()


def _svg_root(data: bytes) -> Any:
    try:
        root = SafeTree.fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as ex:
        raise _refuse(
            f"the SVG has a DTD or entities ({type(ex).__name__}); they are refused: export a "
            "plain SVG without a DOCTYPE",
            "impression_active_content",
        ) from ex
    except SyntaxError as ex:  # ElementTree.ParseError
        raise _refuse(
            f"the SVG is not well-formed XML ({ex}); export it again", "impression_unreadable"
        ) from ex
    if _local(root.tag) != "svg":
        raise _refuse(
            "the file's root element is not <svg>; export the impression as an SVG", "impression_format"
        )
    for element in root.iter():
        tag = _local(element.tag) if isinstance(element.tag, str) else ""
        if tag in _SVG_REFUSED_ELEMENTS:
            raise _refuse(
                f"the SVG contains a <{tag}> element; scripts, embedded objects, images, "
                "references and animation are refused in an impression: export plain shapes "
                "and paths",
                "impression_active_content",
            )
        for key, raw_value in element.attrib.items():
            name, value = _local(key), str(raw_value)
            if name.startswith("on"):
                raise _refuse(
                    f"the SVG's <{tag}> has an event attribute {name!r} (script); remove it",
                    "impression_active_content",
                )
            if name == "href" and not value.strip().startswith("#"):
                raise _refuse(
                    f"the SVG's <{tag}> refers to {value[:60]!r}; an impression may not refer to "
                    "anything outside itself: embed the shapes",
                    "impression_active_content",
                )
            if name == "style" and _external_css(value):
                raise _refuse(
                    f"the SVG's <{tag}> style refers to something outside the file; remove it",
                    "impression_active_content",
                )
        if tag == "style" and _external_css(element.text or ""):
            raise _refuse(
                "the SVG's <style> imports or refers to something outside the file; remove it",
                "impression_active_content",
            )
    return root


def _external_css(text: str) -> bool:
    lowered = text.lower()
    if "@import" in lowered or "javascript:" in lowered or "expression(" in lowered:
        return True
    return any(not ref.strip(" '\"").startswith("#") for ref in re.findall(r"url\(([^)]*)\)", lowered))


def svg_size_mm(data: bytes) -> tuple[float, float]:
    """The SVG's width and height in mm (after the active-content checks)."""
    root = _svg_root(data)
    sizes = []
    for key in ("width", "height"):
        match = _SVG_LENGTH.match(str(root.get(key, "")))
        if match is None or match.group(2) not in _SVG_UNITS_MM:
            raise _refuse(
                f"the SVG's {key} is {root.get(key)!r}; give width and height in mm (or cm, in, "
                'pt, pc), e.g. width="42mm" height="42mm", so that it has a physical size',
                "impression_no_size",
            )
        sizes.append(float(match.group(1)) * _SVG_UNITS_MM[match.group(2)])
    return sizes[0], sizes[1]


def _rasterise_svg(data: bytes, width_mm: float, height_mm: float, dpi: int) -> bytes:
    width = max(1, round(width_mm / MM_PER_INCH * dpi))
    height = max(1, round(height_mm / MM_PER_INCH * dpi))
    return _rasterise_svg_px(data, width, height)


def _rasterise_svg_px(data: bytes, width: int, height: int) -> bytes:
    if max(width, height) > MAX_RENDER_SIDE_PX:
        raise _refuse(f"the SVG would render {width}x{height} px; too large", "impression_too_large")
    try:
        png = cairosvg.svg2png(bytestring=data, output_width=width, output_height=height, unsafe=False)
    except Exception as ex:  # CairoSVG raises many types for bad input; none may crash seald
        raise _refuse(
            f"the SVG cannot be rendered ({type(ex).__name__}); export it again as plain SVG",
            "impression_unreadable",
        ) from ex
    if not isinstance(png, bytes):
        raise _refuse("the SVG rendered to nothing; export it again", "impression_unreadable")
    return png
