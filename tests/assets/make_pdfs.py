"""Test PDFs, generated (nothing binary is committed).

`valid_pdf()` builds a small document with pyHanko's writer (an English line in
Helvetica and a Chinese line "（盖章）" in an embedded subset of a CJK font).
`malformed_corpus()` derives broken documents from it for the input checks.

Run `python tests/assets/make_pdfs.py OUTDIR` to write them all to OUTDIR.
"""

from __future__ import annotations

import functools
import io
import random
import sys
import tempfile
from pathlib import Path

from fontTools import subset
from fontTools.ttLib import TTFont
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.font.opentype import GlyphAccumulatorFactory
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.text import TextBox, TextBoxStyle
from pyhanko.pdf_utils.writer import PageObject, PdfFileWriter

A4 = (0, 0, 595.28, 841.89)
CJK_TTC = Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc")
CHINESE_LINE = "（盖章）华夏示例科技有限公司"


@functools.lru_cache(maxsize=1)
def _cjk_subset_font() -> str:
    """A small TrueType file with just the glyphs we print (pyHanko can't open a .ttc face)."""
    if not CJK_TTC.is_file():
        raise RuntimeError(f"{CJK_TTC} missing: install the Debian package fonts-wqy-zenhei")
    font = TTFont(str(CJK_TTC), fontNumber=0)
    subsetter = subset.Subsetter(subset.Options())
    subsetter.populate(text=CHINESE_LINE)
    subsetter.subset(font)
    out = Path(tempfile.mkdtemp(prefix="seal-test-font-")) / "cjk-subset.ttf"
    font.save(str(out))
    return str(out)


def valid_pdf(
    pages: int = 1,
    *,
    media_box: tuple[float, float, float, float] = A4,
    rotate: int = 0,
    chinese: bool = True,
) -> bytes:
    writer = PdfFileWriter(stream_xrefs=False)
    helv = generic.DictionaryObject(
        {
            generic.pdf_name("/Type"): generic.pdf_name("/Font"),
            generic.pdf_name("/Subtype"): generic.pdf_name("/Type1"),
            generic.pdf_name("/BaseFont"): generic.pdf_name("/Helvetica"),
        }
    )
    helv_ref = writer.add_object(helv)
    x0, y0 = media_box[0], media_box[1]
    for number in range(1, pages + 1):
        fonts = generic.DictionaryObject({generic.pdf_name("/Helv"): helv_ref})
        resources = generic.DictionaryObject({generic.pdf_name("/Font"): fonts})
        ops = b"BT /Helv 14 Tf %g %g Td (Contract page %d of %d) Tj ET\n" % (
            x0 + 72,
            y0 + 760,
            number,
            pages,
        )
        if chinese:
            box = TextBox(
                TextBoxStyle(
                    font=GlyphAccumulatorFactory(_cjk_subset_font()), font_size=14, border_width=0
                ),
                writer=writer,
            )
            box.content = CHINESE_LINE
            rendered = box.render()
            ops += b"q 1 0 0 1 %g %g cm %s Q\n" % (x0 + 72, y0 + 700, rendered)
            resources[generic.pdf_name("/Font")].update(box.resources.font)
        stream = generic.StreamObject(stream_data=ops)
        page = PageObject(
            contents=writer.add_object(stream),
            media_box=generic.ArrayObject(map(generic.FloatObject, media_box)),
            resources=resources,
        )
        if rotate:
            page[generic.pdf_name("/Rotate")] = generic.NumberObject(rotate)
        writer.insert_page(page)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def encrypted_pdf() -> bytes:
    """A one-page PDF protected with a user password (pyHanko's standard security handler)."""
    writer = PdfFileWriter()
    stream = generic.StreamObject(stream_data=b"BT /F1 12 Tf 72 720 Td (secret) Tj ET")
    writer.insert_page(
        PageObject(
            contents=writer.add_object(stream),
            media_box=generic.ArrayObject(map(generic.NumberObject, (0, 0, 595, 842))),
        )
    )
    writer.encrypt("owner-secret", "user-secret")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def javascript_pdf() -> bytes:
    """A valid PDF with a JavaScript /OpenAction added in an incremental update."""
    writer = IncrementalPdfFileWriter(io.BytesIO(valid_pdf(chinese=False)))
    action = generic.DictionaryObject(
        {
            generic.pdf_name("/S"): generic.pdf_name("/JavaScript"),
            generic.pdf_name("/JS"): generic.TextStringObject("app.alert('hi');"),
        }
    )
    writer.root[generic.pdf_name("/OpenAction")] = writer.add_object(action)
    writer.update_root()
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def zero_pages_pdf() -> bytes:
    """A syntactically fine PDF whose page tree is empty."""
    body = [
        b"%PDF-1.7\n",
        b"1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n",
        b"2 0 obj\n<< /Type /Pages /Kids [] /Count 0 >>\nendobj\n",
    ]
    return _with_xref(body, root=1)


def _with_xref(objects: list[bytes], root: int) -> bytes:
    out = bytearray(objects[0])
    offsets = []
    for obj in objects[1:]:
        offsets.append(len(out))
        out += obj
    xref_at = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(offsets) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += b"trailer\n<< /Size %d /Root %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(offsets) + 1,
        root,
        xref_at,
    )
    return bytes(out)


def broken_xref_pdf() -> bytes:
    """Valid bytes, but every xref offset points 7 bytes off."""
    data = valid_pdf(chinese=False)
    start = data.rindex(b"\nxref\n") + 1
    table_end = data.index(b"trailer", start)
    table = data[start:table_end]
    lines = table.split(b"\n")
    fixed = [lines[0], lines[1]]
    for line in lines[2:]:
        if len(line) >= 18 and line.endswith(b" n "):
            fixed.append(b"%010d" % (int(line[:10]) + 7) + line[10:])
        else:
            fixed.append(line)
    return data[:start] + b"\n".join(fixed) + data[table_end:]


def bad_startxref_pdf() -> bytes:
    data = valid_pdf(chinese=False)
    at = data.rindex(b"startxref\n") + len(b"startxref\n")
    end = data.index(b"\n", at)
    return data[:at] + b"999999" + data[end:]


def truncated_pdfs(data: bytes) -> dict[str, bytes]:
    cuts = (len(data) // 10, len(data) // 2, len(data) - 40, len(data) - 7)
    return {f"truncated_at_{cut}": data[:cut] for cut in cuts}


def mutated_pdfs(data: bytes, count: int = 40, seed: int = 1234) -> dict[str, bytes]:
    """Random byte flips, deletions and garbage insertions in structural regions.

    Not every mutation breaks a PDF (a flipped byte inside a text string is still a
    valid document), so tests use these for "never anything but InputDocumentError".
    """
    rng = random.Random(seed)
    out: dict[str, bytes] = {}
    for i in range(count):
        buf = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            pos = rng.randrange(len(buf))
            op = rng.choice(("flip", "delete", "insert"))
            if op == "flip":
                buf[pos] = rng.randrange(256)
            elif op == "delete":
                del buf[pos : pos + rng.randint(1, 40)]
            else:
                buf[pos:pos] = rng.randbytes(rng.randint(1, 40))
        out[f"mutation_{i:02d}"] = bytes(buf)
    return out


def malformed_corpus() -> dict[str, bytes]:
    """Name -> bytes of a document that check_input_pdf must refuse (expected reason first)."""
    good = valid_pdf(chinese=False)
    corpus = {
        "not_pdf__png": b"\x89PNG\r\n\x1a\n" + b"\0" * 100,
        "not_pdf__text": "合同正文，不是PDF。\n".encode() * 10,
        "not_pdf__html": b"<html><body>%PDF-1.7 in text</body></html>" + b" " * 1100 + b"%%EOF",
        "empty__file": b"",
        "encrypted__rc4_aes": encrypted_pdf(),
        "broken_xref__offsets": broken_xref_pdf(),
        "broken_xref__startxref": bad_startxref_pdf(),
        "javascript__open_action": javascript_pdf(),
        "zero_pages__empty_tree": zero_pages_pdf(),
        "truncated__no_eof": good.replace(b"%%EOF", b"%%EOX"),
    }
    for name, blob in truncated_pdfs(good).items():
        corpus[f"truncated__{name}"] = blob
    return corpus


def expected_reason(corpus_name: str) -> str:
    return corpus_name.split("__", 1)[0]


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: make_pdfs.py OUTDIR", file=sys.stderr)
        return 2
    outdir = Path(argv[1])
    outdir.mkdir(parents=True, exist_ok=True)
    (outdir / "valid.pdf").write_bytes(valid_pdf())
    (outdir / "valid-3-pages.pdf").write_bytes(valid_pdf(3))
    (outdir / "valid-rotated-90.pdf").write_bytes(valid_pdf(rotate=90))
    for name, blob in {**malformed_corpus(), **mutated_pdfs(valid_pdf(chinese=False))}.items():
        (outdir / f"{name}.pdf").write_bytes(blob)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
