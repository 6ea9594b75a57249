"""A generated contract for sealing-job tests (issue 16): N pages of text, the anchor
"（盖章）" only where asked (by default once, on the last page: the signature page).

Made with pyHanko's writer and a CJK subset font (make_pdfs._cjk_subset_font); nothing
binary is committed.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import make_pdfs
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.font.opentype import GlyphAccumulatorFactory
from pyhanko.pdf_utils.text import TextBox, TextBoxStyle
from pyhanko.pdf_utils.writer import PageObject, PdfFileWriter

A4 = (0.0, 0.0, 595.28, 841.89)
# Only glyphs of make_pdfs.CHINESE_LINE are in the subset font.
SIGNATURE_LINE = "华夏示例科技有限公司（盖章）"
ANCHOR = "（盖章）"
# The anchor in the middle: the centre of the line's ink is the anchor's centre.
CENTRED_LINE = "华夏（盖章）华夏"


def contract_pdf(
    pages: int,
    *,
    anchors: Mapping[int, Sequence[tuple[float, float]]] | None = None,
    media_box: tuple[float, float, float, float] = A4,
    line: str = SIGNATURE_LINE,
) -> bytes:
    """``pages`` pages with a Helvetica heading; ``anchors`` maps a 1-based page to the
    points (user space, from the box origin) where ``line`` starts on it. Default:
    one line on the last page at (300, 200)."""
    if anchors is None:
        anchors = {pages: [(300.0, 200.0)]}
    writer = PdfFileWriter(stream_xrefs=False)
    helv = writer.add_object(
        generic.DictionaryObject(
            {
                generic.pdf_name("/Type"): generic.pdf_name("/Font"),
                generic.pdf_name("/Subtype"): generic.pdf_name("/Type1"),
                generic.pdf_name("/BaseFont"): generic.pdf_name("/Helvetica"),
            }
        )
    )
    x0, y0 = media_box[0], media_box[1]
    for number in range(1, pages + 1):
        fonts = generic.DictionaryObject({generic.pdf_name("/Helv"): helv})
        ops = b"BT /Helv 14 Tf %g %g Td (Contract page %d of %d) Tj ET\n" % (
            x0 + 72,
            y0 + 760,
            number,
            pages,
        )
        for at in anchors.get(number, ()):
            box = TextBox(
                TextBoxStyle(
                    font=GlyphAccumulatorFactory(make_pdfs._cjk_subset_font()), font_size=14, border_width=0
                ),
                writer=writer,
            )
            box.content = line
            ops += b"q 1 0 0 1 %g %g cm %s Q\n" % (x0 + at[0], y0 + at[1], box.render())
            fonts.update(box.resources.font)
        resources = generic.DictionaryObject({generic.pdf_name("/Font"): fonts})
        writer.insert_page(
            PageObject(
                contents=writer.add_object(generic.StreamObject(stream_data=ops)),
                media_box=generic.ArrayObject(map(generic.FloatObject, media_box)),
                resources=resources,
            )
        )
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()
