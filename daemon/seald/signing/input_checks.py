"""Checks on a PDF before it is sealed.

A sealed document is evidence: we refuse inputs a validator or a viewer could read
differently from us (broken cross-references, truncation), inputs we cannot sign
incrementally (encryption), inputs that can change what is shown after sealing
(JavaScript), inputs with active content that runs or sends something when opened or
clicked (issue 14: /Launch, /SubmitForm, /ImportData, /GoToR, /GoToE, /URI as an
automatic action, RichMedia, XFA, embedded files), and unsigned incremental updates
(the shadow-attack family: an earlier revision that a later one hides or replaces).
Anything wrong with the input raises InputDocumentError and nothing else, whatever the
parser throws; an active-content refusal names the object ("object 12 0: /OpenAction
/Launch").
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
from pyhanko.sign.diff_analysis import DEFAULT_DIFF_POLICY, ModificationLevel

from .errors import InputDocumentError

_TRAILER_WINDOW = 1024  # and %%EOF within the last 1024 (ISO 32000 implementations note)
_MAX_PAGE_TREE_DEPTH = 64
_MAX_PAGES = 100_000
_SCAN_CHUNK = 1 << 20
_SCAN_OVERLAP = 64  # longer than any token below plus its look-ahead
# Names that mean active content wherever they occur in an object (not in stream data).
# /URI is not among them: an ordinary link is a /URI action; automatic ones are found by
# the structural walk. /JS and /JavaScript keep their own reason, `javascript`.
_ACTIVE_NAMES = (
    b"Launch|SubmitForm|ImportData|GoToR|GoToE|RichMediaExecute|RichMedia|XFA|EmbeddedFiles|FileAttachment"
)
_SCAN_TOKENS = re.compile(
    rb"/(?P<js>JavaScript|JS)(?![A-Za-z0-9#])|/(?P<active>" + _ACTIVE_NAMES + rb")(?![A-Za-z0-9#])"
    rb"|/ObjStm(?![A-Za-z0-9#])|endstream|(?:(?P<num>\d{1,10})[ \t\r\n]+(?P<gen>\d{1,5})[ \t\r\n]+)?\bobj\b"
    rb"|stream(?=\r?\n)"
)
# Actions that run a program, send data or open another file (ISO 32000-1 12.6.4).
_ACTIVE_ACTIONS = {
    "/Launch": "launches a program or opens a file",
    "/SubmitForm": "sends form data to an address",
    "/ImportData": "imports data from a file",
    "/GoToR": "opens another PDF file",
    "/GoToE": "opens an embedded or another file",
    "/RichMediaExecute": "runs rich media (Flash/3D) commands",
}
_ACTIVE_ANNOTATIONS = {
    "/FileAttachment": "carries an embedded file",
    "/RichMedia": "plays rich media (Flash, video, 3D)",
}
_MAX_WALK = 200_000  # objects visited by the structural walk (fields, outlines, actions)


@dataclass(frozen=True)
class PdfFacts:
    page_count: int
    size: int
    has_javascript: bool
    sha256: str
    pdf_version: str  # from the header, e.g. "1.7"
    existing_signatures: int  # signature fields already holding a signature
    javascript_at: str = ""  # where JavaScript was found, e.g. "object 12 0: /OpenAction"


def check_input_pdf(path: Path, max_bytes: int, *, allow_javascript: bool = False) -> PdfFacts:
    """Facts about an acceptable PDF; InputDocumentError (with .reason) for anything else.

    Works on the open file: memory stays bounded whatever the document's size (issue 8).
    """
    try:
        with path.open("rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size > max_bytes:
                raise InputDocumentError(
                    f"the PDF is larger than the limit of {max_bytes} bytes; split or compress it",
                    reason="too_large",
                )
            return check_input_stream(fh, size, allow_javascript=allow_javascript)
    except OSError as ex:
        raise InputDocumentError(
            f"cannot read the input document ({ex.strerror}); upload it again", reason="unreadable"
        ) from ex


def check_input_bytes(data: bytes, *, allow_javascript: bool = False) -> PdfFacts:
    return check_input_stream(io.BytesIO(data), len(data), allow_javascript=allow_javascript)


def check_input_stream(fh: BinaryIO, size: int, *, allow_javascript: bool = False) -> PdfFacts:
    """The checks over a seekable binary stream of ``size`` bytes, read in chunks."""
    version = _check_envelope(fh, size)
    try:
        return _parse_and_inspect(fh, size, version, allow_javascript=allow_javascript)
    except InputDocumentError:
        raise
    except ObjectHeaderReadError as ex:
        # An xref entry that points at something other than "N G obj".
        raise _broken_xref() from ex
    except Exception as ex:
        raise _malformed(ex) from ex


def _check_envelope(fh: BinaryIO, size: int) -> str:
    """Cheap byte-level checks before any parsing; returns the header version."""
    if size == 0:
        raise InputDocumentError("the document is empty (0 bytes); upload the PDF again", reason="empty")
    fh.seek(0)
    # Viewers tolerate junk before the header, but then every xref offset is off by
    # its length and validators disagree about the bytes; we require it at offset 0.
    header = re.match(rb"%PDF-(\d\.\d)", fh.read(16))
    if header is None:
        raise InputDocumentError(
            "the document is not a PDF (it does not start with %PDF-); convert it to PDF first",
            reason="not_pdf",
        )
    fh.seek(max(0, size - _TRAILER_WINDOW))
    if b"%%EOF" not in fh.read(_TRAILER_WINDOW):
        raise InputDocumentError(
            "the PDF is incomplete (no %%EOF at the end); the upload was probably cut off, "
            "send the complete file",
            reason="truncated",
        )
    return header.group(1).decode("ascii")


def _parse_and_inspect(fh: BinaryIO, size: int, version: str, *, allow_javascript: bool) -> PdfFacts:
    fh.seek(0)
    try:
        reader = PdfFileReader(fh, strict=True)
    except misc.PdfError as ex:
        raise _broken_xref() from ex
    if reader.encrypt_dict is not None:
        raise InputDocumentError(
            "the PDF is encrypted or password-protected; remove the protection and submit it again",
            reason="encrypted",
        )
    root = reader.root
    page_count = count_pages(root["/Pages"])
    if page_count == 0:
        raise InputDocumentError("the PDF has no pages; submit a document with pages", reason="zero_pages")
    walk = _ActiveContentWalk(reader)
    walk.run()
    sha256, found = _scan_bytes(fh)
    js_at = walk.javascript_at
    if found is not None:
        kind, where = found
        if kind == "active" and not walk.active:
            walk.active = where
        elif kind == "js" and not js_at:
            js_at = where
    if walk.active:
        raise InputDocumentError(
            f"the PDF has active content ({walk.active}): it runs, opens or sends something "
            "when the document is opened or clicked, outside what the seal shows; remove it "
            "(e.g. print to PDF) and submit the document again",
            reason="active_content",
        )
    if js_at and not allow_javascript:
        raise InputDocumentError(
            f"the PDF contains JavaScript ({js_at}), which could change what the sealed "
            "document shows; export or print it to a PDF without scripts",
            reason="javascript",
        )
    _check_revisions(reader)
    return PdfFacts(
        page_count=page_count,
        size=size,
        has_javascript=bool(js_at),
        sha256=sha256,
        pdf_version=version,
        existing_signatures=_count_signatures(root),
        javascript_at=js_at,
    )


def _check_revisions(reader: PdfFileReader) -> None:
    """The shadow-attack family (hide, replace, hide-and-replace) lives in incremental
    updates: a later revision changes what an earlier one shows. Policy (issue 14):
    - an input with incremental updates and no signature is refused (`incremental_update`):
      nobody vouched for the earlier revision, and re-saving it as one revision costs the
      user nothing;
    - a signed input may carry updates after its last signature only if pyHanko's
      difference analysis finds nothing but validation data and timestamps in them (a
      later form fill, annotation or content change is refused the same way); updates
      before a signature were seen and signed by that signer.
    The refusal names the revision and the objects it changes."""
    total = reader.xrefs.total_revisions
    if total <= 1:
        return
    signatures = list(reader.embedded_signatures)
    if not signatures:
        raise InputDocumentError(
            f"the PDF has {total - 1} unsigned incremental update(s); revision "
            f"{_revision_changes(reader, total - 1)}: an update can hide or replace what an "
            "earlier revision shows (shadow attack). Re-save it as one revision (e.g. "
            "`qpdf in.pdf out.pdf` or print to PDF) and submit that",
            reason="incremental_update",
        )
    last = max(signatures, key=lambda sig: sig.signed_revision)
    if last.signed_revision >= total - 1:
        return
    # Coverage and difference analysis only: no digest (that is the signer's business and
    # `verify`'s), so a large signed input is not read once more here.
    last.coverage = last.evaluate_signature_coverage()
    result = last.evaluate_modifications(DEFAULT_DIFF_POLICY)
    level = getattr(result, "modification_level", None)
    if level not in (ModificationLevel.NONE, ModificationLevel.LTA_UPDATES):
        what = level.name if level is not None else f"suspicious: {result}"
        raise InputDocumentError(
            f"after its last signature ({last.field_name}) the PDF was changed ({what}); "
            f"revision {_revision_changes(reader, total - 1)}: such an update can hide or "
            "replace what the signer saw (shadow attack); seal the document as it was signed",
            reason="incremental_update",
        )


def _revision_changes(reader: PdfFileReader, revision: int) -> str:
    """"2 changes object 3 0, object 7 0": how a refused revision is named."""
    refs = sorted(reader.xrefs.explicit_refs_in_revision(revision), key=lambda r: (r.idnum, r.generation))
    named = ", ".join(f"object {r.idnum} {r.generation}" for r in refs[:8])
    more = f" and {len(refs) - 8} more" if len(refs) > 8 else ""
    return f"{revision} changes {named}{more}" if refs else f"{revision}"


class _ActiveContentWalk:
    """A structural walk over the places a viewer acts on: the catalog's /OpenAction and
    /AA, its /Names trees (/JavaScript, /EmbeddedFiles), /AcroForm (/XFA, every field's
    /A and /AA), the outline items, every page's /AA and every annotation (its subtype,
    /A and /AA), following each action's /Next chain. Objects come through pyHanko's
    reader, so those in compressed object streams are seen like any other; only
    dictionaries are resolved, never stream data, so memory stays bounded.
    The first finding of each kind is kept as "object N G: path"."""

    def __init__(self, reader: PdfFileReader) -> None:
        self.reader = reader
        self.active = ""
        self.javascript_at = ""
        self._visited: set[tuple[int, int]] = set()
        self._steps = 0

    def run(self) -> None:
        reader = self.reader
        root_ref = reader.trailer.raw_get("/Root")
        root_label = _label(root_ref, "the catalog")
        root = reader.root
        self._actions_of(root, root_label, "", automatic=True, keys=("/OpenAction",))
        self._trigger_dict(root, root_label, "")
        names, names_label = _get(root, "/Names", root_label)
        if isinstance(names, generic.DictionaryObject):
            if "/JavaScript" in names:
                self._js(f"{names_label}: /Names /JavaScript")
            if "/EmbeddedFiles" in names:
                self._hit(f"{names_label}: /Names /EmbeddedFiles (embedded files)")
        acroform, form_label = _get(root, "/AcroForm", root_label)
        if isinstance(acroform, generic.DictionaryObject):
            if "/XFA" in acroform:
                self._hit(f"{form_label}: /AcroForm /XFA (an XFA form, rendered by its own engine)")
            fields, fields_label = _get(acroform, "/Fields", form_label)
            self._fields(fields, fields_label)
        outlines, outlines_label = _get(root, "/Outlines", root_label)
        if isinstance(outlines, generic.DictionaryObject):
            self._outlines(outlines, outlines_label)
        for number, (page, label) in enumerate(self._pages(root), start=1):
            where = f"{label} (page {number})"
            self._trigger_dict(page, where, "")
            annots, annots_label = _get(page, "/Annots", where)
            if isinstance(annots, generic.ArrayObject):
                for raw in annots:
                    annot = _deref(raw)
                    if isinstance(annot, generic.DictionaryObject):
                        self._annotation(annot, _label(raw, annots_label))

    # -- helpers -------------------------------------------------------------------

    def _step(self) -> bool:
        self._steps += 1
        if self._steps > _MAX_WALK:
            raise InputDocumentError(
                f"the PDF has more than {_MAX_WALK} actions, fields or outline items to "
                "check; simplify it (e.g. print to PDF)",
                reason="too_complex",
            )
        return True

    def _hit(self, where: str) -> None:
        if not self.active:
            self.active = where

    def _js(self, where: str) -> None:
        if not self.javascript_at:
            self.javascript_at = where

    def _pages(self, root: generic.DictionaryObject) -> Iterator[tuple[generic.DictionaryObject, str]]:
        stack: list[Any] = [root.raw_get("/Pages")]
        while stack:
            raw = stack.pop()
            node = _deref(raw)
            if not isinstance(node, generic.DictionaryObject):
                continue
            if "/Kids" in node and node.get("/Type") != "/Page":
                kids = node.raw_get("/Kids")
                kids = _deref(kids)
                stack.extend(reversed(list(kids)))
            else:
                yield node, _label(raw, "a page")

    def _annotation(self, annot: generic.DictionaryObject, label: str) -> None:
        subtype = annot.get("/Subtype")
        if subtype in _ACTIVE_ANNOTATIONS:
            self._hit(f"{label}: /Annots {subtype} ({_ACTIVE_ANNOTATIONS[subtype]})")
        self._actions_of(annot, label, "/Annots", automatic=False, keys=("/A",))
        self._trigger_dict(annot, label, "/Annots")

    def _fields(self, fields: Any, label: str) -> None:
        stack: list[tuple[Any, str]] = [(raw, label) for raw in (fields if isinstance(fields, list) else [])]
        while stack:
            raw, parent = stack.pop()
            field = _deref(raw)
            where = _label(raw, parent)
            if not isinstance(field, generic.DictionaryObject) or not self._first_visit(raw):
                continue
            self._step()
            self._actions_of(field, where, "/AcroForm field", automatic=False, keys=("/A",))
            self._trigger_dict(field, where, "/AcroForm field")
            kids = _deref(field.get("/Kids"))
            if isinstance(kids, list):
                stack.extend((kid, where) for kid in kids)

    def _outlines(self, outlines: generic.DictionaryObject, label: str) -> None:
        stack: list[tuple[Any, str]] = []
        first = outlines.raw_get("/First") if "/First" in outlines else None
        if first is not None:
            stack.append((first, label))
        while stack:
            raw, parent = stack.pop()
            item = _deref(raw)
            where = _label(raw, parent)
            if not isinstance(item, generic.DictionaryObject) or not self._first_visit(raw):
                continue
            self._step()
            self._actions_of(item, where, "/Outlines", automatic=False, keys=("/A",))
            for key in ("/First", "/Next"):
                if key in item:
                    stack.append((item.raw_get(key), where))

    def _first_visit(self, raw: Any) -> bool:
        if isinstance(raw, generic.IndirectObject):
            key = (raw.idnum, raw.generation)
            if key in self._visited:
                return False
            self._visited.add(key)
        return True

    def _trigger_dict(self, owner: generic.DictionaryObject, label: str, path: str) -> None:
        """/AA: additional actions run by events (open, close, focus, page shown): every
        one is automatic."""
        aa, aa_label = _get(owner, "/AA", label)
        if isinstance(aa, generic.DictionaryObject):
            for trigger in list(aa.keys()):
                raw = aa.raw_get(trigger)
                self._action(raw, _label(raw, aa_label), f"{path} /AA {trigger}".strip(), automatic=True)

    def _actions_of(
        self,
        owner: generic.DictionaryObject,
        label: str,
        path: str,
        *,
        automatic: bool,
        keys: tuple[str, ...],
    ) -> None:
        for key in keys:
            if key in owner:
                raw = owner.raw_get(key)
                self._action(raw, _label(raw, label), f"{path} {key}".strip(), automatic=automatic)

    def _action(self, raw: Any, label: str, path: str, *, automatic: bool) -> None:
        """One action and its /Next chain (a dictionary or an array of them)."""
        stack: list[tuple[Any, str, str]] = [(raw, label, path)]
        while stack:
            current, where, trail = stack.pop()
            action = _deref(current)
            if isinstance(action, generic.ArrayObject) and trail.endswith("/Next"):
                stack.extend((item, _label(item, where), trail) for item in action)
                continue
            if not isinstance(action, generic.DictionaryObject) or not self._first_visit(current):
                continue
            self._step()
            kind = action.get("/S")
            if kind == "/JavaScript":
                self._js(f"{where}: {trail} /JavaScript")
            elif kind in _ACTIVE_ACTIONS:
                self._hit(f"{where}: {trail} {kind} ({_ACTIVE_ACTIONS[kind]})")
            elif kind == "/URI" and automatic:
                self._hit(f"{where}: {trail} /URI (opens a web address by itself)")
            if "/Next" in action:
                nxt = action.raw_get("/Next")
                stack.append((nxt, _label(nxt, where), f"{trail} /Next"))


def _label(raw: Any, fallback: str) -> str:
    """"object 12 0" for an indirect reference; else the label of the object holding it."""
    if isinstance(raw, generic.IndirectObject):
        return f"object {raw.idnum} {raw.generation}"
    return fallback


def _get(owner: generic.DictionaryObject, key: str, label: str) -> tuple[Any, str]:
    """(value, label of the object it lives in) for one key of a dictionary."""
    if key not in owner:
        return None, label
    raw = owner.raw_get(key)
    return _deref(raw), _label(raw, label)


def _scan_bytes(fh: BinaryIO) -> tuple[str, tuple[str, str] | None]:
    """SHA-256 of the whole stream and the first JavaScript (`js`) or active-content
    (`active`) name outside stream data with the object it is in, in one chunked pass.

    Catches what the structural walk does not reach (an object no walked path leads
    to, e.g. a dictionary an incremental update left behind). The bodies of
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
    current = "an object"
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
            kind = "js" if match.group("js") else "active" if match.group("active") else ""
            if kind:
                inside = f"object stream {current}" if objstm else current
                found = (kind, f"{inside}: {token.decode('ascii')}")
                return (digest.hexdigest() if final else _finish_digest(digest, fh)), found
            if token == b"/ObjStm":
                objstm = True
            elif token.endswith(b"obj"):
                objstm = False
                if match.group("num") is not None:
                    current = f"object {int(match.group('num'))} {int(match.group('gen'))}"
            elif token == b"stream" and not objstm:
                in_stream = True
        if final:
            return digest.hexdigest(), None
        carry = buf[pos:]


def _finish_digest(digest: Any, fh: BinaryIO) -> str:
    for chunk in iter(lambda: fh.read(_SCAN_CHUNK), b""):
        digest.update(chunk)
    return str(digest.hexdigest())


def _broken_xref() -> InputDocumentError:
    return InputDocumentError(
        "the PDF's cross-reference table or trailer is damaged; open and re-save it "
        "(e.g. print to PDF) and submit the repaired file",
        reason="broken_xref",
    )


def _malformed(ex: BaseException) -> InputDocumentError:
    return InputDocumentError(
        f"the PDF is malformed and cannot be parsed reliably ({type(ex).__name__}); re-save it "
        "with a PDF tool (e.g. print to PDF) and submit it again",
        reason="malformed",
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
                "the PDF's page tree is damaged; re-save the document", reason="broken_page_tree"
            )
        seen.add(id(node))
        node_type = node.get("/Type")
        if node_type == "/Page" or (node_type is None and "/Kids" not in node):
            count += 1
        else:
            if depth > _MAX_PAGE_TREE_DEPTH:
                raise InputDocumentError(
                    "the PDF's page tree is too deep; re-save the document", reason="broken_page_tree"
                )
            stack.extend((kid, depth + 1) for kid in node["/Kids"])
        if count > _MAX_PAGES:
            raise InputDocumentError(
                f"the PDF has more than {_MAX_PAGES} pages; split it", reason="too_many_pages"
            )
    return count


def _deref(obj: Any) -> Any:
    """The object behind an indirect reference (pyHanko's get_object is untyped)."""
    if isinstance(obj, generic.IndirectObject):
        return obj.get_object()  # type: ignore[no-untyped-call]
    return obj


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
