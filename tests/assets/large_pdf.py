"""A large PDF (many pages, each with an incompressible image), written as a stream.

Used by bench/bench_large.py (200 MiB) and the bounded CI test (~30 MiB) to check that
the daemon never holds a whole document in memory. Nothing here keeps more than one
page's image in memory, so generating the file itself is memory-bounded too.

    python tests/assets/large_pdf.py OUT.pdf SIZE_MIB
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

_A4 = b"[0 0 595.28 841.89]"
_IMAGE_SIDE = 512  # 512 x 512 RGB = 768 KiB of raw samples per page


def write_large_pdf(path: Path, target_bytes: int, *, seed: int = 8) -> int:
    """Write a valid PDF of about ``target_bytes`` to ``path``; returns its page count."""
    image_bytes = _IMAGE_SIDE * _IMAGE_SIDE * 3
    pages = max(1, target_bytes // image_bytes)
    rng = random.Random(seed)
    offsets: list[int] = []
    # Objects: 1 catalog, 2 page tree, then per page: page, content stream, image.
    page_obj = [3 + 3 * i for i in range(pages)]
    with path.open("wb") as out:

        def obj(number: int, body: bytes, stream: bytes | None = None) -> None:
            assert number == len(offsets) + 1, "objects are written in number order"
            offsets.append(out.tell())
            out.write(b"%d 0 obj\n" % number + body)
            if stream is not None:
                out.write(b"\nstream\n")
                out.write(stream)
                out.write(b"\nendstream")
            out.write(b"\nendobj\n")

        out.write(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
        obj(1, b"<< /Type /Catalog /Pages 2 0 R >>")
        kids = b" ".join(b"%d 0 R" % n for n in page_obj)
        obj(2, b"<< /Type /Pages /Count %d /Kids [%s] >>" % (pages, kids))
        for i, number in enumerate(page_obj):
            content = (
                b"q 400 0 0 400 97 300 cm /Im0 Do Q\n"
                b"BT /F1 18 Tf 72 780 Td (Large bench page %d of %d) Tj ET" % (i + 1, pages)
            )
            obj(
                number,
                b"<< /Type /Page /Parent 2 0 R /MediaBox %s /Contents %d 0 R "
                b"/Resources << /XObject << /Im0 %d 0 R >> /Font << /F1 << /Type /Font "
                b"/Subtype /Type1 /BaseFont /Helvetica >> >> >> >>" % (_A4, number + 1, number + 2),
            )
            obj(number + 1, b"<< /Length %d >>" % len(content), content)
            obj(
                number + 2,
                b"<< /Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceRGB "
                b"/BitsPerComponent 8 /Length %d >>" % (_IMAGE_SIDE, _IMAGE_SIDE, image_bytes),
                rng.randbytes(image_bytes),
            )
        xref_at = out.tell()
        out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(offsets) + 1))
        for offset in offsets:
            out.write(b"%010d 00000 n \n" % offset)
        out.write(
            b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n"
            % (len(offsets) + 1, xref_at)
        )
    return pages


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    pages = write_large_pdf(Path(argv[1]), int(float(argv[2]) * (1 << 20)))
    print(f"{argv[1]}: {pages} pages")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
