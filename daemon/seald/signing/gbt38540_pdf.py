"""PDF seals in the GB/T 38540 format: an ``SES_Signature`` in the signature's ``/Contents``.

The document hash the SES_Signature signs (``TBS_Sign.dataHash``) is the SM3 hash of the
PDF's ``/ByteRange`` (everything but the ``/Contents`` hex string), exactly what a PAdES
signature's CMS would cover. pyHanko lays out the signature field and placeholder and
computes the ByteRange hash (``PdfCMSEmbedder``, its low-level "embed bytes we made
ourselves" API); the bytes embedded are our DER ``SES_Signature`` instead of a CMS.

**/SubFilter.** We write ``/Filter /Adobe.PPKLite /SubFilter /GBT38540.SES``. No registered
PDF SubFilter names a bare GB/T 38540 signature; ``adbe.pkcs7.detached`` or
``ETSI.CAdES.detached`` would tell every PDF validator to parse the contents as CMS and
call the signature broken. With our own name, validators (pdfsig, Acrobat) report a
signature of a type they do not handle, and seald / ``sealctl verify`` verify it
(``verify_gbt38540_pdf``). ``qpdf --check`` passes: the file structure is ordinary.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import datetime as dt
import hashlib
import io
import tempfile
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from asn1crypto import cms
from asn1crypto import x509 as asn1_x509
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.fields import SigFieldSpec, append_signature_field
from pyhanko.sign.signers import SignatureObject
from pyhanko.sign.signers.cms_embedder import PdfCMSEmbedder, SigAppearanceSetup, SigIOSetup, SigObjSetup
from pyhanko.sign.validation.generic_cms import validate_tst_signed_data
from pyhanko.sign.validation.status import TimestampSignatureStatus
from pyhanko_certvalidator import ValidationContext

from seald.domain.errors import InvalidInput
from seald.gm import certs, ses, sm2
from seald.signing import pades
from seald.signing.anchors import resolve_anchor
from seald.signing.cross_page import PageBox, draw_slices
from seald.signing.errors import SigningError
from seald.signing.placement import PlacementSpec

SUBFILTER = "/GBT38540.SES"
FILTER = "/Adobe.PPKLite"


class Gbt38540PdfError(ses.GbtError):
    """The PDF carries no readable GB/T 38540 signature, or its layout is wrong."""


# Extra /Contents space when an RFC 3161 token joins the SES_Signature: certomancer's token
# with its TSA certificate is ~1.8 KiB; a commercial TSA's chain of 4096-bit RSA certificates
# stays well under this.
TIMESTAMP_RESERVE = 16 * 1024


@dataclass
class PreparedGbt38540:
    """A PDF laid out for a GB/T 38540 signature: the field, the placeholder, the ByteRange
    SM3 hash. ``finish`` embeds the SES_Signature and returns the new PDF. Splitting it this
    way keeps the PDF work off the token thread and lets the daemon ask the TSA between the
    signature and the embedding (the timestamp covers the signature value)."""

    document_digest: bytes
    time_info: dt.datetime
    _embedder: Generator[Any, Any, Any]
    _output: io.BytesIO

    def finish(self, ses_signature: bytes) -> bytes:
        try:
            self._embedder.send(ses_signature)
        except StopIteration:
            pass
        except Exception as ex:  # pyHanko: the DER does not fit the reserved /Contents
            # our reservation was too small: seald's fault, not the caller's input (INTERNAL)
            raise SigningError(
                f"the SES_Signature ({len(ses_signature)} bytes) could not be embedded: {ex}",
                reason="gbt38540_embed_failed",
            ) from None
        data: bytes = self._output.getvalue()
        return data


def prepare_gbt38540(
    pdf: bytes,
    *,
    seal: bytes,
    signer_cert: bytes,
    time_info: dt.datetime,
    field_name: str = "Seal1",
    placement: PlacementSpec | None = None,
    source_path: Path | None = None,
    with_timestamp: bool = False,
) -> PreparedGbt38540:
    """Lay out the signature field and placeholder of ``pdf`` and hash its ByteRange (SM3).

    The seal is checked first (verifies, valid at ``time_info``), so a bad seal is refused
    before anything is laid out. With ``placement`` the seal's own impression (``SES_Seal``
    picture, PNG) is drawn with the PAdES path's placement code (R13): at page/x/y, centred
    on ``anchor_text`` (found in ``source_path``, the same bytes on disk), or as a cross-page
    seal (骑缝章: one slice on every page's right edge, the field invisible on the last page).
    Without ``placement`` the field is invisible.
    """
    parsed = ses.parse_seal(seal)
    ses.verify_seal(parsed, at=time_info)
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf))
    appearance = None
    if placement is None:
        append_signature_field(writer, SigFieldSpec(sig_field_name=field_name))
    else:
        picture = parsed["e_seal_info"]["picture"]
        if str(picture["type"].native).upper() != "PNG":
            raise ses.GbtError(
                f"SES_Seal.eSealInfo.picture.type is {picture['type'].native}; a visible seal needs PNG",
                reason="gbt38540_picture_unsupported",
            )
        picture_png = bytes(picture["data"].native)
        if placement.cross_page:
            count = len(pades.page_rotations(writer))
            pages = [pades.page_geometry(writer, ix) for ix in range(count)]
            boxes = [PageBox(p.width_pt, p.height_pt, p.origin_pt, p.rotate) for p in pages]
            draw_slices(writer, boxes, picture_png, placement)
            append_signature_field(writer, SigFieldSpec(sig_field_name=field_name, on_page=count - 1))
        else:
            if placement.anchor_text:
                placement = _resolve_anchor(pdf, source_path, placement, pades.page_rotations(writer))
            page_ix, box = pades._page_and_box(writer, placement)
            rotate = pades.page_geometry(writer, page_ix).rotate
            # as in pades.plan_seal: pyHanko annotates ints but writes floats; rounding would move the seal
            exact_box = cast("tuple[int, int, int, int]", tuple(round(v, 3) for v in box))
            spec = SigFieldSpec(sig_field_name=field_name, on_page=page_ix, box=exact_box)
            append_signature_field(writer, spec)
            style = pades.seal_stamp_style(picture_png, rotate)
            appearance = SigAppearanceSetup(style=style, timestamp=time_info, name=None)
    reserve = 2 * (len(seal) + len(signer_cert) + 1024) + (TIMESTAMP_RESERVE if with_timestamp else 0)
    placeholder = SignatureObject(timestamp=time_info, bytes_reserved=reserve)
    placeholder[generic.NameObject("/Filter")] = generic.NameObject(FILTER)
    placeholder[generic.NameObject("/SubFilter")] = generic.NameObject(SUBFILTER)
    embedder = PdfCMSEmbedder().write_cms(field_name=field_name, writer=writer, existing_fields_only=True)
    next(embedder)
    embedder.send(SigObjSetup(sig_placeholder=placeholder, appearance_setup=appearance))
    prepared, output = embedder.send(SigIOSetup(md_algorithm="sm3", in_place=False))
    return PreparedGbt38540(prepared.document_digest, time_info, embedder, output)


def _resolve_anchor(
    pdf: bytes, source_path: Path | None, placement: PlacementSpec, rotations: list[int]
) -> PlacementSpec:
    """The anchor text's position (signing/anchors.py reads the file with pdftotext)."""
    if source_path is not None:
        return resolve_anchor(source_path, placement, rotations)
    with tempfile.TemporaryDirectory(prefix="seald-anchor-") as tmp:
        path = Path(tmp) / "document.pdf"
        path.write_bytes(pdf)
        return resolve_anchor(path, placement, rotations)


def sign_prepared(
    prepared: PreparedGbt38540,
    *,
    seal: bytes,
    signer_cert: bytes,
    sign: certs.Signer,
    property_info: str = "PDF ByteRange",
) -> bytes:
    """The SES_Signature over the prepared ByteRange hash (``ses.build_signature``: every
    check before ``sign`` is called). The only step that needs the seal's key."""
    return ses.build_signature(
        seal=seal,
        signer_cert=signer_cert,
        data_hash=prepared.document_digest,
        property_info=property_info,
        sign=sign,
        time_info=prepared.time_info,
    )


def timestamp_imprint(ses_signature: bytes) -> bytes:
    """What the TSA is asked to stamp: SM3 of SES_Signature.signature (GB/T 38540 timeStamp)."""
    return sm2.sm3(bytes(ses.parse_signature(ses_signature)["signature"].native))


def seal_pdf_gbt38540(
    pdf: bytes,
    *,
    seal: bytes,
    signer_cert: bytes,
    sign: certs.Signer,
    time_info: dt.datetime,
    field_name: str = "Seal1",
    property_info: str = "PDF ByteRange",
    placement: PlacementSpec | None = None,
    timestamper: Callable[[bytes], bytes] | None = None,
) -> bytes:
    """Seal ``pdf`` with an SES_Signature over its ByteRange SM3 hash; returns the new PDF.

    The checks in ``ses.build_signature`` (seal verifies and is valid now, signer is an SM2
    holder) run before ``sign`` is called; if any fails, nothing is signed or written.
    ``timestamper(sm3_of_signature_value) -> RFC 3161 token (DER)`` adds GB/T 38540's
    timeStamp. The daemon runs the same steps split across threads (service/signer.py).
    """
    prepared = prepare_gbt38540(
        pdf,
        seal=seal,
        signer_cert=signer_cert,
        time_info=time_info,
        field_name=field_name,
        placement=placement,
        with_timestamp=timestamper is not None,
    )
    der = sign_prepared(prepared, seal=seal, signer_cert=signer_cert, sign=sign, property_info=property_info)
    if timestamper is not None:
        der = ses.add_timestamp(der, timestamper(timestamp_imprint(der)))
    return prepared.finish(der)


@dataclass(frozen=True)
class Gbt38540PdfCheck:
    field_name: str
    report: ses.SignatureReport
    covers_whole_document: bool


@dataclass(frozen=True)
class Gbt38540FieldResult:
    """One GB/T 38540 signature field: its report, or why it failed (field and reason)."""

    field_name: str
    report: ses.SignatureReport | None
    problem: str
    reason: str
    covers_whole_document: bool
    signer_cert_der: bytes
    ses_signature: bytes = b""  # the DER from /Contents (for the timestamp's TSA check)


def _der_length(data: bytes) -> int:
    """Length of the DER TLV at the start of ``data`` (the hex string is zero-padded)."""
    if len(data) < 2 or data[0] != 0x30:
        raise Gbt38540PdfError("signature /Contents is not a DER SEQUENCE", reason="gbt38540_malformed")
    first = data[1]
    if first < 0x80:
        return 2 + first
    n = first & 0x7F
    if n == 0 or n > 4 or len(data) < 2 + n:
        raise Gbt38540PdfError("signature /Contents has a bad DER length", reason="gbt38540_malformed")
    return 2 + n + int.from_bytes(data[2 : 2 + n], "big")


def _gbt_fields(pdf: bytes) -> list[tuple[str, generic.DictionaryObject]]:
    """(field name, signature dictionary) of every GB/T 38540 signature field."""
    try:
        reader = PdfFileReader(io.BytesIO(pdf), strict=False)
        fields = reader.root["/AcroForm"]["/Fields"]
    except (KeyError, ValueError, TypeError):
        return []
    found = []
    for ref in fields:
        fld = ref.get_object()
        if fld.get("/FT") != "/Sig" or "/V" not in fld:
            continue
        sig = fld["/V"]
        if sig.get("/SubFilter") != SUBFILTER:
            continue
        found.append((str(fld.get("/T", "")), sig))
    return found


def _field_layout(pdf: bytes, name: str, sig: generic.DictionaryObject) -> tuple[list[int], bytes, bytes]:
    """(ByteRange, SES_Signature DER, SM3 of the byte ranges) of one field; refuses a
    ByteRange that does not describe this file."""
    try:
        br = [int(x) for x in sig["/ByteRange"]]
        contents = bytes(sig.raw_get("/Contents").original_bytes)
    except (KeyError, ValueError, TypeError, AttributeError) as exc:
        raise Gbt38540PdfError(
            f"signature {name}: /ByteRange or /Contents unreadable: {exc}",
            reason="gbt38540_malformed",
        ) from None
    if len(br) != 4 or br[0] != 0 or br[1] > br[2] or br[2] + br[3] > len(pdf):
        raise Gbt38540PdfError(
            f"signature {name}: /ByteRange {br} does not describe this file",
            reason="gbt38540_malformed",
        )
    data_hash = sm2.sm3(pdf[br[0] : br[0] + br[1]] + pdf[br[2] : br[2] + br[3]])
    return br, contents[: _der_length(contents)], data_hash


def _field(pdf: bytes, field_name: str) -> tuple[list[int], bytes, bytes]:
    for name, sig in _gbt_fields(pdf):
        if name == field_name:
            return _field_layout(pdf, name, sig)
    raise Gbt38540PdfError(
        f"the PDF has no GB/T 38540 signature field {field_name!r}", reason="gbt38540_not_found"
    )


def signature_and_hash(pdf: bytes, field_name: str) -> tuple[bytes, bytes]:
    """The SES_Signature (DER) in field ``field_name`` and the SM3 hash of its byte ranges."""
    _br, der, data_hash = _field(pdf, field_name)
    return der, data_hash


def byte_range(pdf: bytes, field_name: str) -> list[int]:
    """The /ByteRange of GB/T 38540 signature field ``field_name``."""
    return _field(pdf, field_name)[0]


def check_fields(pdf: bytes, *, trusted_makers: Sequence[bytes] | None = None) -> list[Gbt38540FieldResult]:
    """Every GB/T 38540 signature field of the PDF, each checked on its own (never raises for
    a bad signature: the result says what is wrong); [] when there is none."""
    results = []
    for name, sig in _gbt_fields(pdf):
        signer = b""
        whole = False
        try:
            br, der, data_hash = _field_layout(pdf, name, sig)
            whole = br[2] + br[3] == len(pdf)
            with contextlib.suppress(ses.GbtError):
                signer = bytes(ses.parse_signature(der)["cert"].native)
            report = ses.verify_signature(der, data_hash=data_hash, trusted_makers=trusted_makers)
            results.append(Gbt38540FieldResult(name, report, "", "", whole, signer, der))
        except InvalidInput as exc:  # GbtError, Sm2Error: the field and the reason are in it
            results.append(Gbt38540FieldResult(name, None, exc.message, exc.reason, whole, signer))
    return results


def verify_gbt38540_pdf(
    pdf: bytes, *, trusted_makers: Sequence[bytes] | None = None
) -> list[Gbt38540PdfCheck]:
    """Every GB/T 38540 signature in the PDF: ByteRange SM3 hash = dataHash, and both layers verify.

    Raises ``GbtError`` (with the field and reason) on the first signature that fails.
    """
    results = check_fields(pdf, trusted_makers=trusted_makers)
    if not results:
        raise Gbt38540PdfError(
            f"the PDF has no signature with /SubFilter {SUBFILTER}", reason="gbt38540_not_found"
        )
    checks = []
    for r in results:
        if r.report is None:
            raise ses.GbtError(r.problem, reason=r.reason)
        checks.append(Gbt38540PdfCheck(r.field_name, r.report, r.covers_whole_document))
    return checks


async def timestamp_problem(signature_der: bytes, tsa_roots: Sequence[bytes]) -> str:
    """'' if the SES_Signature's timestamp is a valid RFC 3161 token over its signature value,
    signed by a TSA chaining to ``tsa_roots`` (DER); else what is wrong. No timestamp: a problem.

    ``ses.verify_signature`` checks the imprint only (pure, no PKI); this adds the TSA's CMS
    signature and chain with pyHanko's token validation (offline, revocation soft-fail), as
    the audit checkpoints do.
    """
    sig = ses.parse_signature(signature_der)
    token = sig["time_stamp"].native
    if token is None:
        return "SES_Signature.timeStamp is absent"
    value = bytes(sig["signature"].native)

    def imprint(algorithm: str) -> bytes:
        return sm2.sm3(value) if algorithm in ("sm3", sm2.SM3_OID) else hashlib.new(algorithm, value).digest()

    try:
        content = cms.ContentInfo.load(bytes(token))
        roots = [asn1_x509.Certificate.load(bytes(r)) for r in tsa_roots]
        context = ValidationContext(trust_roots=roots, allow_fetching=False, revocation_mode="soft-fail")
        kwargs = await validate_tst_signed_data(content["content"], context, imprint)
        status = TimestampSignatureStatus(**kwargs)
    except Exception as ex:  # a malformed token can fail anywhere in parsing
        return f"SES_Signature.timeStamp cannot be validated ({type(ex).__name__}); damaged or not RFC 3161"
    if not status.intact:
        return "SES_Signature.timeStamp does not cover SES_Signature.signature (message imprint differs)"
    if not status.valid:
        return "SES_Signature.timeStamp has a broken TSA signature"
    if not status.trusted:
        return "SES_Signature.timeStamp is not signed by a TSA chaining to the configured TSA roots"
    return ""


def timestamp_problem_blocking(signature_der: bytes, tsa_roots: Sequence[bytes]) -> str:
    """``timestamp_problem`` for synchronous callers (VerifyDocument's executor thread, the
    offline ``sealctl`` verifiers); from a thread running an event loop it uses a helper thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(timestamp_problem(signature_der, tsa_roots))
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, timestamp_problem(signature_der, tsa_roots)).result()
