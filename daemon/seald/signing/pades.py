"""PAdES sealing of a PDF with a key on a PKCS#11 token (SEAL-RULES R13, R14, R15).

PAdES baseline B-B (ETSI.CAdES.detached), SHA-256, visible appearance = the seal
PNG at the requested box, added as an incremental update so the original bytes
stay intact. Called from worker threads; never from the asyncio loop.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, cast

import pkcs11.exceptions
from asn1crypto import x509
from pyhanko.pdf_utils import generic, layout, misc
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import fields, signers
from pyhanko.sign.pkcs11 import PKCS11Signer
from pyhanko.sign.timestamps import TimestampRequestError
from pyhanko.sign.validation import read_certification_data
from pyhanko.stamp import StaticStampStyle
from pyhanko_certvalidator.errors import PathBuildingError, PathValidationError, RevokedError

from .anchors import resolve_anchor
from .cross_page import PageBox, draw_slices
from .errors import InputDocumentError, SigningError, TokenSigningError
from .input_checks import count_pages
from .levels import Certification, LevelSettings, SignatureLevel
from .placement import PlacementSpec, normalise_rotation, placement_box, resolve_page_index
from .seal_xobject import seal_image

if TYPE_CHECKING:
    import pkcs11
    from pyhanko.sign.signers import Signer


@dataclass(frozen=True)
class SealResult:
    sha256: str
    size: int
    field_name: str
    page: int  # 1-based page the seal is on (cross-page: the last page)
    box_pt: tuple[float, float, float, float]
    # Cross-page seal: every page's slice box (user space, points), page order.
    slice_boxes_pt: tuple[tuple[float, float, float, float], ...] = ()
    # A job's signature (signing/job.py): every mark drawn, (1-based page, user-space box).
    mark_boxes_pt: tuple[tuple[int, tuple[float, float, float, float]], ...] = ()


@dataclass(frozen=True)
class PageGeometry:
    width_pt: float
    height_pt: float
    origin_pt: tuple[float, float]
    rotate: int


def token_signer(
    session: pkcs11.Session,
    key_label: str,
    cert_label: str,
    *,
    ca_chain_der: Sequence[bytes] = (),
    signing_cert_der: bytes | None = None,
) -> Signer:
    """A pyHanko signer over an already logged-in python-pkcs11 session.

    The certificate is read from the token now, so that a missing key/certificate
    shows up here and not in the middle of a signature. The PKCS#11 spec forbids
    concurrent use of one session: callers serialise signatures per token.
    ``signing_cert_der`` overrides the token's certificate (e.g. the registry's copy
    after a re-issue that was not yet written to the token).
    """
    try:
        chain = [x509.Certificate.load(der) for der in ca_chain_der]
        signer = PKCS11Signer(
            session,
            cert_label=None if signing_cert_der else cert_label,
            key_label=key_label,
            ca_chain=chain or None,
            signing_cert=x509.Certificate.load(signing_cert_der) if signing_cert_der else None,
        )
        if signer.signing_cert is None:
            raise TokenSigningError(
                f"no certificate labelled {cert_label!r} on the token; check the seal's "
                "cert_label in the registry or re-import the certificate",
                reason="certificate_not_found",
            )
        if signer.signing_cert.public_key.algorithm == "ec":
            # ECDSA seal keys: SoftHSM (and many tokens) lack CKM_ECDSA_SHA256; pyHanko
            # hashes and uses raw CKM_ECDSA instead (FIELD-NOTES).
            signer = PKCS11Signer(
                session,
                cert_label=None,
                key_label=key_label,
                ca_chain=chain or None,
                signing_cert=signer.signing_cert,
                use_raw_mechanism=True,
            )
    except SigningError:
        raise
    except Exception as ex:
        raise TokenSigningError(
            f"could not load key {key_label!r} / certificate {cert_label!r} from the token "
            f"({type(ex).__name__}); check the labels and that the token is unlocked",
            reason="token_objects_unavailable",
        ) from ex
    return signer


@dataclass(frozen=True)
class SealSpec:
    """One seal as it goes on a document: image, place, meaning and level (issue 15:
    one parameter object instead of a dozen arguments to every sealing function)."""

    seal_png: bytes
    placement: PlacementSpec
    reason: str
    location: str
    field_name: str
    signer_name: str = ""
    level: LevelSettings = dataclasses.field(default_factory=LevelSettings)
    certification: Certification = Certification.NONE
    # An already signed document gets an approval seal instead of a refusal.
    certify_only_if_first: bool = False
    # Bytes reserved for the CMS; None: the level's default (pyHanko #515).
    signature_bytes: int | None = None


def seal_pdf(input_path: Path, output_path: Path, *, signer: Signer, spec: SealSpec) -> SealResult:
    """Seal ``input_path`` into ``output_path`` (atomically: all or nothing there).

    ``spec.placement.anchor_text`` (if set) replaces x/y by the centre of that text on
    the page; ``spec.level`` selects B-B (default) .. B-LTA; ``spec.certification``
    makes this a DocMDP certification signature (only allowed as the document's first
    signature; with ``certify_only_if_first`` an already signed document gets an
    approval seal).
    """
    # The writer reads the original from the open file and copies it to the output in
    # chunks: memory stays bounded whatever the document's size (issue 8).
    with _open_input(input_path) as source:
        plan = plan_seal(source, input_path, signer=signer, spec=spec)
        with _atomic_output(output_path) as out:
            with _translate_signing_errors(plan.field_name):
                plan.pdf_signer.sign_pdf(plan.writer, output=out, bytes_reserved=plan.bytes_reserved)
            return plan.result(out)


@dataclass
class SealPlan:
    """A document opened for sealing with its signature field laid out, not yet signed."""

    writer: IncrementalPdfFileWriter
    pdf_signer: signers.PdfSigner
    field_name: str
    page_ix: int
    box: tuple[float, float, float, float]
    slice_boxes: tuple[tuple[float, float, float, float], ...]
    bytes_reserved: int
    # A job's signature (signing/job.py): every mark drawn, (1-based page, box).
    mark_boxes: tuple[tuple[int, tuple[float, float, float, float]], ...] = ()

    def result(self, out: BinaryIO) -> SealResult:
        result = _result(out, self.field_name, self.page_ix, self.box)
        return dataclasses.replace(result, slice_boxes_pt=self.slice_boxes, mark_boxes_pt=self.mark_boxes)


def plan_seal(source: BinaryIO, input_path: Path, *, signer: Signer, spec: SealSpec) -> SealPlan:
    """Open ``source`` incrementally, check it may be sealed, place the seal (visible
    box, or 骑缝章 slices drawn on every page) and set up pyHanko's PdfSigner."""
    level = spec.level
    bytes_reserved = spec.signature_bytes or level.signature_bytes
    writer = open_incremental(source)
    certification = _check_may_add_signature(writer, spec.certification, spec.certify_only_if_first)
    meta = signature_metadata(
        spec.field_name,
        reason=spec.reason,
        location=spec.location,
        signer_name=spec.signer_name,
        level=level,
        certification=certification,
    )
    placement = spec.placement
    if placement.cross_page:
        return _plan_cross_page(
            writer,
            signer,
            seal_png=spec.seal_png,
            placement=placement,
            meta=meta,
            level=level,
            bytes_reserved=bytes_reserved,
        )
    if placement.anchor_text:
        placement = resolve_anchor(input_path, placement, page_rotations(writer))
    page_ix, box = _page_and_box(writer, placement)
    rotate = page_geometry(writer, page_ix).rotate
    # pyHanko annotates the box as ints but writes floats fine; rounding to whole
    # points would move the seal by up to 0.35 mm.
    exact_box = cast("tuple[int, int, int, int]", tuple(round(v, 3) for v in box))
    spec_field = fields.SigFieldSpec(sig_field_name=spec.field_name, on_page=page_ix, box=exact_box)
    pdf_signer = signers.PdfSigner(
        meta,
        signer,
        stamp_style=seal_stamp_style(spec.seal_png, rotate),
        new_field_spec=spec_field,
        timestamper=level.timestamper(),
    )
    return SealPlan(writer, pdf_signer, spec.field_name, page_ix, box, (), bytes_reserved)


def _check_may_add_signature(
    writer: IncrementalPdfFileWriter,
    certification: Certification,
    only_if_first: bool,
    *,
    is_signed: Callable[[IncrementalPdfFileWriter], bool] | None = None,
) -> Certification:
    """Refuse up front what would produce an invalid document (fail closed).

    ``is_signed``: how to tell whether the document already carries a signature
    (default: pyHanko's ``embedded_signatures``, which reads every signature)."""
    try:
        docmdp = read_certification_data(writer.prev)
        signed = is_signed(writer) if is_signed else bool(writer.prev.embedded_signatures)
    except Exception as ex:
        raise InputDocumentError(
            f"the PDF's signature fields cannot be read ({type(ex).__name__})", reason="malformed"
        ) from ex
    if docmdp is not None and docmdp.permission == fields.MDPPerm.NO_CHANGES:
        raise SigningError(
            "the document is certified with 'no changes allowed' (DocMDP P=1): another seal "
            "would invalidate that certification; seal the uncertified original instead",
            reason="certified_no_changes",
        )
    if certification is not Certification.NONE and (docmdp is not None or signed):
        if only_if_first:
            return Certification.NONE
        raise SigningError(
            "a certification seal must be the document's first signature, and this document "
            "is already signed; seal it without certification",
            reason="certification_not_first",
        )
    return certification


def _plan_cross_page(
    writer: IncrementalPdfFileWriter,
    signer: Signer,
    *,
    seal_png: bytes,
    placement: PlacementSpec,
    meta: signers.PdfSignatureMetadata,
    level: LevelSettings,
    bytes_reserved: int,
) -> SealPlan:
    """骑缝章: slices on every page's right edge + one invisible signature over them."""
    try:
        count = count_pages(writer.root["/Pages"])
        pages = [page_geometry(writer, ix) for ix in range(count)]
    except SigningError:
        raise
    except Exception as ex:
        raise InputDocumentError(
            f"the PDF's page tree cannot be read ({type(ex).__name__}); re-save it", reason="malformed"
        ) from ex
    page_boxes = [PageBox(p.width_pt, p.height_pt, p.origin_pt, p.rotate) for p in pages]
    boxes = draw_slices(writer, page_boxes, seal_png, placement)
    field_name = meta.field_name or "CrossPageSeal"
    # Invisible field: the visible part is the slices, which the signature covers.
    spec = fields.SigFieldSpec(sig_field_name=field_name, on_page=count - 1)
    pdf_signer = signers.PdfSigner(meta, signer, new_field_spec=spec, timestamper=level.timestamper())
    return SealPlan(writer, pdf_signer, field_name, count - 1, boxes[-1], tuple(boxes), bytes_reserved)


def page_geometry(writer: IncrementalPdfFileWriter, page_ix: int) -> PageGeometry:
    """Visible page box (/CropBox, else /MediaBox, both inheritable) and /Rotate."""
    page_ref, _ = writer.find_page_for_modification(page_ix)  # type: ignore[no-untyped-call]
    page = page_ref.get_object()
    media = _inherited(page, "/MediaBox")
    crop = _inherited(page, "/CropBox") or media
    if crop is None:
        raise InputDocumentError(f"page {page_ix + 1} has no /MediaBox; re-save it", reason="malformed")
    x1, y1, x2, y2 = (float(v) for v in crop)
    rotate = normalise_rotation(int(_inherited(page, "/Rotate") or 0))
    return PageGeometry(abs(x2 - x1), abs(y2 - y1), (min(x1, x2), min(y1, y2)), rotate)


def page_rotations(writer: IncrementalPdfFileWriter) -> list[int]:
    """Each page's normalised /Rotate, in page order."""
    try:
        count = count_pages(writer.root["/Pages"])
        return [page_geometry(writer, ix).rotate for ix in range(count)]
    except SigningError:
        raise
    except Exception as ex:
        raise InputDocumentError(
            f"the PDF's page tree cannot be read ({type(ex).__name__}); re-save it", reason="malformed"
        ) from ex


def _inherited(page: generic.DictionaryObject, key: str) -> Any:
    node: Any = page
    for _ in range(64):  # page trees deeper than this are refused by input checks anyway
        if key in node:
            return node[key]
        parent = node.get("/Parent")
        if parent is None:
            return None
        node = parent.get_object()
    return None


def _open_input(path: Path) -> BinaryIO:
    try:
        return path.open("rb")
    except OSError as ex:
        raise InputDocumentError(
            f"cannot read the input document ({ex.strerror}); submit it again", reason="unreadable"
        ) from ex


def open_incremental(source: BinaryIO) -> IncrementalPdfFileWriter:
    try:
        writer = IncrementalPdfFileWriter(source, strict=True)
    except Exception as ex:
        raise InputDocumentError(
            f"the PDF cannot be opened for sealing ({type(ex).__name__}); run the input checks "
            "and re-save the document",
            reason="malformed",
        ) from ex
    if writer.prev.encrypted:
        raise InputDocumentError("the PDF is encrypted; remove the protection first", reason="encrypted")
    return writer


def _page_and_box(
    writer: IncrementalPdfFileWriter, placement: PlacementSpec
) -> tuple[int, tuple[float, float, float, float]]:
    try:
        page_ix = resolve_page_index(placement.page, count_pages(writer.root["/Pages"]))
        geometry = page_geometry(writer, page_ix)
    except SigningError:
        raise
    except Exception as ex:
        raise InputDocumentError(
            f"the PDF's page tree cannot be read ({type(ex).__name__}); re-save it", reason="malformed"
        ) from ex
    box = placement_box(
        geometry.width_pt,
        geometry.height_pt,
        placement,
        origin_pt=geometry.origin_pt,
        rotate=geometry.rotate,
    )
    return page_ix, box


def seal_stamp_style(seal_png: bytes, rotate: int = 0) -> StaticStampStyle:
    """Appearance: only the transparent seal image, filling the box, no border.

    Appearance streams are drawn in unrotated page space; on a page with /Rotate the
    image is turned the other way so the seal is upright on screen (R13).
    """
    return StaticStampStyle(
        # Converted to a PDF image once per (image, angle), not per document.
        background=seal_image(seal_png, rotate),
        background_opacity=1.0,
        border_width=0,
        background_layout=layout.SimpleBoxLayoutRule(
            x_align=layout.AxisAlignment.ALIGN_MID,
            y_align=layout.AxisAlignment.ALIGN_MID,
            margins=layout.Margins(0, 0, 0, 0),
            inner_content_scaling=layout.InnerScaling.STRETCH_TO_FIT,
        ),
    )


def signature_metadata(
    field_name: str,
    *,
    reason: str,
    location: str,
    signer_name: str,
    level: LevelSettings,
    certification: Certification,
) -> signers.PdfSignatureMetadata:
    """pyHanko's signature settings for one seal at ``level``."""
    perm = certification.mdp_perm
    return signers.PdfSignatureMetadata(
        field_name=field_name,
        md_algorithm="sha256",
        subfilter=fields.SigSeedSubFilter.PADES,
        reason=reason or None,
        location=location or None,
        name=signer_name or None,
        certify=perm is not None,
        docmdp_permissions=perm or fields.MDPPerm.FILL_FORMS,
        embed_validation_info=level.level.embeds_validation_info,
        validation_context=level.validation_context(),
        use_pades_lta=level.level is SignatureLevel.B_LTA,
        timestamp_field_name=f"{field_name}-DocTS" if level.level is SignatureLevel.B_LTA else None,
        # Seal certificates carry digitalSignature + nonRepudiation (R01).
        signer_key_usage={"non_repudiation"},
    )


@contextlib.contextmanager
def _translate_signing_errors(field_name: str) -> Iterator[None]:
    try:
        yield
    except SigningError:
        raise
    except Exception as ex:
        raise translate_signing_exception(ex, field_name) from ex


def translate_signing_exception(ex: BaseException, field_name: str) -> SigningError:
    """Our error for whatever pyHanko/python-pkcs11 raised during a signature."""
    for cause in _chain(ex):
        if isinstance(cause, pkcs11.exceptions.PKCS11Error):
            return TokenSigningError(
                f"the token failed while signing ({type(cause).__name__}); check that it is "
                "still inserted and unlocked, then retry",
                reason="token_error",
            )
    for cause in _chain(ex):
        if isinstance(cause, RevokedError):
            return SigningError(
                "the seal certificate is revoked according to its CA's OCSP/CRL; re-issue the "
                "seal certificate (seal change) before sealing again",
                reason="seal_certificate_revoked",
            )
        if isinstance(cause, TimestampRequestError):
            return SigningError(
                f"the timestamp authority did not answer ({_tsa_hint(cause)}); check [trust] "
                "tsa_url and the network path to it, then retry",
                reason="tsa_unavailable",
            )
        if isinstance(cause, (PathValidationError, PathBuildingError)):
            return SigningError(
                "the seal certificate could not be validated up to the configured trust roots "
                f"with revocation info ({type(cause).__name__}); check [trust] signing_roots and "
                "that the CA's OCSP/CRL responders are reachable",
                reason="seal_certificate_invalid",
            )
    text = str(ex).lower()
    if "already" in text and ("filled" in text or "signed" in text or "exists" in text):
        return SigningError(
            f"the document already has a signed field named {field_name!r}; use another field name",
            reason="field_exists",
        )
    if isinstance(ex, misc.PdfError):
        return InputDocumentError(
            f"the PDF could not be sealed ({type(ex).__name__}); re-save it", reason="malformed"
        )
    return SigningError(
        f"sealing failed ({type(ex).__name__}); see the daemon log and retry", reason="signing_failed"
    )


def _tsa_hint(ex: BaseException) -> str:
    # pyHanko's message names the URL; keep only that, never a response body.
    text = str(ex)
    return text.split("\n", 1)[0][:200] or type(ex).__name__


def _chain(ex: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = ex
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


@contextlib.contextmanager
def _atomic_output(output_path: Path) -> Iterator[BinaryIO]:
    """A temp file next to ``output_path``; renamed over it only if the body succeeds."""
    directory = output_path.parent
    fd, tmp_name = tempfile.mkstemp(prefix=f".{output_path.name}.", suffix=".part", dir=directory)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w+b") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, output_path)
        _fsync_directory(directory)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _result(
    out: BinaryIO, field_name: str, page_ix: int, box: tuple[float, float, float, float]
) -> SealResult:
    out.flush()
    out.seek(0)
    digest = hashlib.sha256()
    size = 0
    for chunk in iter(lambda: out.read(1 << 20), b""):
        digest.update(chunk)
        size += len(chunk)
    return SealResult(
        sha256=digest.hexdigest(), size=size, field_name=field_name, page=page_ix + 1, box_pt=box
    )
