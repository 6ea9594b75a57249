"""The seal image converted to a PDF image once (issue 8): the XObject written for each
document must be the one pyHanko's own PdfImage writes, colour and alpha mask alike
(R13: the seal looks the same wherever it is drawn)."""

from __future__ import annotations

import io

import pytest
from PIL import Image
from pyhanko.pdf_utils.images import PdfImage
from pyhanko.pdf_utils.writer import PdfFileWriter

from seald.signing.errors import SigningError
from seald.signing.seal_xobject import seal_image
from seald_testing.images import contract_seal_png


@pytest.fixture(scope="module")
def seal_png() -> bytes:
    return contract_seal_png(dpi=150)


def _xobject(content: PdfImage) -> tuple[dict[str, object], bytes, dict[str, object], bytes]:
    """(image dict, decoded pixels, soft mask dict, decoded alpha) as written to a writer."""
    writer = PdfFileWriter()  # type: ignore[no-untyped-call]
    content.set_writer(writer)
    image = content.image_ref.get_object()
    mask = image["/SMask"].get_object()

    def entries(stream: object) -> dict[str, object]:
        return {str(k): v for k, v in stream.items() if k not in ("/SMask", "/Length")}  # type: ignore[attr-defined]

    return entries(image), image.data, entries(mask), mask.data


def test_r13_cached_seal_xobject_is_what_pyhanko_writes(seal_png: bytes) -> None:
    ours = _xobject(seal_image(seal_png))
    pyhanko = _xobject(PdfImage(Image.open(io.BytesIO(seal_png))))
    assert ours == pyhanko
    assert ours[0]["/Filter"] == "/FlateDecode" and ours[0]["/ColorSpace"] == "/DeviceRGB"
    assert ours[2]["/ColorSpace"] == "/DeviceGray"


def test_r13_rotated_seal_is_encoded_per_angle(seal_png: bytes) -> None:
    original = Image.open(io.BytesIO(seal_png))
    turned = original.rotate(90, expand=True)
    ours = _xobject(seal_image(seal_png, 90))
    assert ours == _xobject(PdfImage(turned))
    assert seal_image(seal_png, 90)._encoded is not seal_image(seal_png)._encoded


def test_seal_image_is_encoded_once_per_image(seal_png: bytes) -> None:
    first, second = seal_image(seal_png), seal_image(bytes(seal_png))  # equal, not the same object
    assert first._encoded is second._encoded
    # Each document still gets its own XObject in its own writer.
    w1, w2 = PdfFileWriter(), PdfFileWriter()  # type: ignore[no-untyped-call]
    first.set_writer(w1)
    second.set_writer(w2)
    assert first.image_ref.get_pdf_handler() is w1  # type: ignore[no-untyped-call]
    assert second.image_ref.get_pdf_handler() is w2  # type: ignore[no-untyped-call]


def test_unreadable_seal_png_is_a_named_signing_error() -> None:
    with pytest.raises(SigningError) as caught:
        seal_image(b"\x89PNG\r\n\x1a\n not really")
    assert caught.value.reason == "bad_seal_image"
