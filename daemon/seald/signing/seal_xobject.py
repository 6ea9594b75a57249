"""The seal image as a PDF image XObject, converted once per image instead of per document.

pyHanko's ``PdfImage`` turns a PIL image into an image XObject for every PDF it is
drawn into: PNG decode, raw pixel dump and two zlib compressions (colour and alpha
mask), about a quarter of the CPU of sealing a one-page document. The seal image is
the same for every document of a seal, so the compressed streams are made once and
each document gets a fresh XObject carrying those bytes. The objects written are the
ones ``pyhanko.pdf_utils.images.pil_image`` writes (same dictionary, same Flate data).
"""

from __future__ import annotations

import functools
import io
import zlib
from dataclasses import dataclass

from PIL import Image
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.generic import IndirectObject, pdf_name
from pyhanko.pdf_utils.images import PdfImage
from pyhanko.pdf_utils.writer import BasePdfFileWriter

from .errors import SigningError


@dataclass(frozen=True)
class EncodedImage:
    """One image XObject's dictionary entries and its Flate-compressed pixels."""

    width: int
    height: int
    colour_space: str  # "/DeviceRGB" or "/DeviceGray"
    flate_data: bytes
    soft_mask: EncodedImage | None

    def write_to(self, writer: BasePdfFileWriter) -> IndirectObject:
        entries: dict[generic.NameObject, generic.PdfObject] = {
            pdf_name("/Type"): pdf_name("/XObject"),
            pdf_name("/Subtype"): pdf_name("/Image"),
            pdf_name("/Width"): _number(self.width),
            pdf_name("/Height"): _number(self.height),
        }
        if self.soft_mask is not None:
            entries[pdf_name("/SMask")] = self.soft_mask.write_to(writer)
        entries[pdf_name("/ColorSpace")] = pdf_name(self.colour_space)
        entries[pdf_name("/BitsPerComponent")] = _number(8)
        entries[pdf_name("/Filter")] = pdf_name("/FlateDecode")
        stream = generic.StreamObject(entries, encoded_data=self.flate_data)
        return writer.add_object(stream)


def _number(value: int) -> generic.NumberObject:
    return generic.NumberObject(value)  # type: ignore[no-untyped-call]


def encode_image(image: Image.Image) -> EncodedImage:
    """A PIL image as the XObject streams pyHanko's ``pil_image`` would write."""
    return _encode(image)


def _encode(image: Image.Image) -> EncodedImage:
    soft_mask = None
    if image.mode.endswith("A"):
        soft_mask = _encode(image.split()[-1])
        image = image.convert(image.mode[:-1])
    if image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    return EncodedImage(
        width=image.width,
        height=image.height,
        colour_space="/DeviceGray" if image.mode == "L" else "/DeviceRGB",
        flate_data=zlib.compress(image.tobytes()),
        soft_mask=soft_mask,
    )


@functools.lru_cache(maxsize=32)
def _encoded_seal(png: bytes, rotate: int) -> tuple[EncodedImage, Image.Image]:
    try:
        image: Image.Image = Image.open(io.BytesIO(png))
        image.load()
    except Exception as ex:
        raise SigningError(
            "the seal image is not a readable PNG; re-render it", reason="bad_seal_image"
        ) from ex
    if rotate:
        image = image.rotate(rotate, expand=True)  # PIL turns counter-clockwise
    return _encode(image), image


class SealImage(PdfImage):
    """A ``PdfImage`` whose XObject is written from the once-encoded streams."""

    def __init__(self, encoded: EncodedImage, image: Image.Image) -> None:
        super().__init__(image)
        self._encoded = encoded

    @property
    def image_ref(self) -> generic.IndirectObject:
        assert self.writer is not None
        ref = self._image_ref
        if ref is None or ref.get_pdf_handler() is not self.writer:  # type: ignore[no-untyped-call]
            self._image_ref = ref = self._encoded.write_to(self.writer)
        return ref


def seal_image(png: bytes, rotate: int = 0) -> SealImage:
    """The seal PNG as drawable PDF content; the conversion is cached per (image, angle)."""
    encoded, image = _encoded_seal(png, rotate)
    return SealImage(encoded, image)

