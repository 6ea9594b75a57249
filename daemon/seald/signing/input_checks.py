"""Checks on a PDF before it is sealed.

A sealed document is evidence: we refuse inputs a validator or a viewer could read
differently from us (broken cross-references, truncation), inputs we cannot sign
incrementally (encryption), and inputs that can change what is shown after
sealing (JavaScript). Anything wrong with the input raises InputDocumentError and
nothing else, whatever the parser throws.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from pyhanko.pdf_utils import generic, misc
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.pdf_utils.xref import ObjectHeaderReadError

from .errors import InputDocumentError

_TRAILER_WINDOW = 1024  # and %%EOF within the last 1024 (ISO 32000 implementations note)
_MAX_PAGE_TREE_DEPTH = 64
_MAX_PAGES = 100_000
_SCAN_CHUNK = 1 << 20
_SCAN_OVERLAP = 16  # longer than any token below plus its look-ahead
_SCAN_TOKENS = re.compile(
    rb"/(?:JavaScript|JS)(?![A-Za-z0-9#])|/ObjStm(?![A-Za-z0-9#])|endstream|\bobj\b|stream(?=\r?\n)"
)


@dataclass(frozen=True)
class PdfFacts:
    page_count: int
    size: int
    has_javascript: bool
    sha256: str
    pdf_version: str  # from the header, e.g. "1.7"
    existing_signatures: int  # signature fields already holding a signature


def check_input_pdf(path: Path, max_bytes: int, *, allow_javascript: bool = False) -> PdfFacts:
    """Facts about an acceptable PDF; InputDocumentError (with .reason) for anything else.

    Works on the open file: memory stays bounded whatever the document's size (issue 8).
    """
    try:
        with path.open("rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size > max_bytes:
                raise InputDocumentError(
                    "too_large",
                    f"the PDF is larger than the limit of {max_bytes} bytes; split or compress it",
                )
            return check_input_stream(fh, size, allow_javascript=allow_javascript)
    except OSError as ex:
        raise InputDocumentError(
            "unreadable", f"cannot read the input document ({ex.strerror}); upload it again"
        ) from ex


def check_input_bytes(data: bytes, *, allow_javascript: bool = False) -> PdfFacts:
    return check_input_stream(io.BytesIO(data), len(data), allow_javascript=allow_javascript)


def check_input_stream(fh: BinaryIO, size: int, *, allow_javascript: bool = False) -> PdfFacts:
    """The checks over a seekable binary stream of ``size`` bytes, read in chunks."""
    version = _check_envelope(fh, size)
    try:
        facts = _parse_and_inspect(fh, size, version)
    except InputDocumentError:
        raise
    except ObjectHeaderReadError as ex:
        # An xref entry that points at something other than "N G obj".
        raise _broken_xref() from ex
    except Exception as ex:
        raise _malformed(ex) from ex
    if facts.has_javascript and not allow_javascript:
        raise InputDocumentError(
            "javascript",
            "the PDF contains JavaScript (document, page or link actions), which could change "
            "what the sealed document shows; export or print it to a PDF without scripts",
        )
    return facts


def _check_envelope(fh: BinaryIO, size: int) -> str:
    """Cheap byte-level checks before any parsing; returns the header version."""
    if size == 0:
        raise InputDocumentError("empty", "the document is empty (0 bytes); upload the PDF again")
    fh.seek(0)
    # Viewers tolerate junk before the header, but then every xref offset is off by
    # its length and validators disagree about the bytes; we require it at offset 0.
    header = re.match(rb"%PDF-(\d\.\d)", fh.read(16))
    if header is None:
        raise InputDocumentError(
            "not_pdf",
            "the document is not a PDF (it does not start with %PDF-); convert it to PDF first",
        )
    fh.seek(max(0, size - _TRAILER_WINDOW))
    if b"%%EOF" not in fh.read(_TRAILER_WINDOW):
        raise InputDocumentError(
            "truncated",
            "the PDF is incomplete (no %%EOF at the end); the upload was probably cut off, "
            "send the complete file",
        )
    return header.group(1).decode("ascii")


def _parse_and_inspect(fh: BinaryIO, size: int, version: str) -> PdfFacts:
    fh.seek(0)
    try:
        reader = PdfFileReader(fh, strict=True)
    except misc.PdfError as ex:
        raise _broken_xref() from ex
    if reader.encrypt_dict is not None:
        raise InputDocumentError(
            "encrypted",
            "the PDF is encrypted or password-protected; remove the protection and submit it again",
        )
    root = reader.root
    page_count = count_pages(root["/Pages"])
    if page_count == 0:
        raise InputDocumentError("zero_pages", "the PDF has no pages; submit a document with pages")
    has_js = _has_document_javascript(root)
    sha256, js_name = _scan_bytes(fh)
    return PdfFacts(
        page_count=page_count,
        size=size,
        has_javascript=has_js or js_name,
        sha256=sha256,
        pdf_version=version,
        existing_signatures=_count_signatures(root),
    )


def _scan_bytes(fh: BinaryIO) -> tuple[str, bool]:
    """SHA-256 of the whole stream and whether a /JS or /JavaScript name occurs outside
    stream data, in one chunked pass.

    Catches JavaScript in places the structured check does not walk. The bodies of
    ordinary streams (images, fonts, page content) are skipped: their bytes are data,
    and in a large compressed or image-heavy file "/JS" turns up there by chance (about
    once per 20 MiB of random bytes). Uncompressed object streams (/ObjStm) hold
    dictionaries, so their bodies are scanned.
    """
    fh.seek(0)
    digest = hashlib.sha256()
    carry = b""
    in_stream = False
    objstm = False
    while True:
        chunk = fh.read(_SCAN_CHUNK)
        digest.update(chunk)
        buf = carry + chunk
        final = not chunk
        # Tokens may straddle chunks: leave the last few bytes for the next round.
        limit = len(buf) if final else max(0, len(buf) - _SCAN_OVERLAP)
        pos = 0
        while pos < limit:
            if in_stream:
                end = buf.find(b"endstream", pos)
                if end < 0 or end >= limit:
                    pos = limit
                    break
                in_stream, pos = False, end + len(b"endstream")
                continue
            match = _SCAN_TOKENS.search(buf, pos)
            if match is None or match.start() >= limit:
                pos = limit
                break
            token = match.group()
            pos = match.end()
            if token.startswith(b"/J"):
                return digest.hexdigest() if final else _finish_digest(digest, fh), True
            if token == b"/ObjStm":
                objstm = True
            elif token == b"obj":
                objstm = False
            elif token == b"stream" and not objstm:
                in_stream = True
        if final:
            return digest.hexdigest(), False
        carry = buf[pos:]


def _finish_digest(digest: Any, fh: BinaryIO) -> str:
    for chunk in iter(lambda: fh.read(_SCAN_CHUNK), b""):
        digest.update(chunk)
    return str(digest.hexdigest())


def _broken_xref() -> InputDocumentError:
    return InputDocumentError(
        "broken_xref",
        "the PDF's cross-reference table or trailer is damaged; open and re-save it "
        "(e.g. print to PDF) and submit the repaired file",
    )


def _malformed(ex: BaseException) -> InputDocumentError:
    return InputDocumentError(
        "malformed",
        f"the PDF is malformed and cannot be parsed reliably ({type(ex).__name__}); re-save it "
        "with a PDF tool (e.g. print to PDF) and submit it again",
    )


def count_pages(pages_root: Any) -> int:
    """Walk the page tree (not /Count, which can lie), refusing cycles and absurd depth."""
    count = 0
    seen: set[int] = set()
    stack: list[tuple[Any, int]] = [(pages_root, 0)]
    while stack:
        node, depth = stack.pop()
        node = _deref(node)
        if not isinstance(node, generic.DictionaryObject) or id(node) in seen:
            raise InputDocumentError(
                "broken_page_tree", "the PDF's page tree is damaged; re-save the document"
            )
        seen.add(id(node))
        node_type = node.get("/Type")
        if node_type == "/Page" or (node_type is None and "/Kids" not in node):
            count += 1
        else:
            if depth > _MAX_PAGE_TREE_DEPTH:
                raise InputDocumentError(
                    "broken_page_tree", "the PDF's page tree is too deep; re-save the document"
                )
            stack.extend((kid, depth + 1) for kid in node["/Kids"])
        if count > _MAX_PAGES:
            raise InputDocumentError(
                "too_many_pages", f"the PDF has more than {_MAX_PAGES} pages; split it"
            )
    return count


def _deref(obj: Any) -> Any:
    """The object behind an indirect reference (pyHanko's get_object is untyped)."""
    if isinstance(obj, generic.IndirectObject):
        return obj.get_object()  # type: ignore[no-untyped-call]
    return obj


def _is_js_action(action: Any) -> bool:
    action = _deref(action)
    return isinstance(action, generic.DictionaryObject) and action.get("/S") == "/JavaScript"


def _actions_in(d: generic.DictionaryObject) -> Iterator[Any]:
    """/A, /OpenAction and every trigger in /AA of one dictionary."""
    for key in ("/A", "/OpenAction"):
        if key in d:
            yield d[key]
    aa = _deref(d.get("/AA"))
    if isinstance(aa, generic.DictionaryObject):
        yield from aa.values()


def _has_document_javascript(root: generic.DictionaryObject) -> bool:
    names = _deref(root.get("/Names"))
    if isinstance(names, generic.DictionaryObject) and "/JavaScript" in names:
        return True
    if any(_is_js_action(a) for a in _actions_in(root)):
        return True
    # Page-level and annotation-level actions (links, widgets).
    for page, _ in _iter_pages(root):
        if any(_is_js_action(a) for a in _actions_in(page)):
            return True
        for annot_ref in _deref(page.get("/Annots")) or []:
            annot = _deref(annot_ref)
            if isinstance(annot, generic.DictionaryObject) and any(
                _is_js_action(a) for a in _actions_in(annot)
            ):
                return True
    return False


def _iter_pages(root: generic.DictionaryObject) -> Iterator[tuple[generic.DictionaryObject, int]]:
    stack: list[Any] = [root["/Pages"]]
    index = 0
    while stack:
        node = _deref(stack.pop())
        if "/Kids" in node and node.get("/Type") != "/Page":
            stack.extend(reversed(list(node["/Kids"])))
        else:
            yield node, index
            index += 1


def _count_signatures(root: generic.DictionaryObject) -> int:
    acroform = root.get("/AcroForm")
    if acroform is None:
        return 0
    count = 0
    stack: list[Any] = list(_deref(_deref(acroform).get("/Fields")) or [])
    seen: set[int] = set()
    while stack:
        field = _deref(stack.pop())
        if id(field) in seen:
            continue
        seen.add(id(field))
        if field.get("/FT") == "/Sig" and "/V" in field:
            count += 1
        stack.extend(_deref(field.get("/Kids")) or [])
    return count
