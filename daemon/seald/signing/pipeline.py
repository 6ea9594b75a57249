"""Sealing split in three so only the key operation is serial (issue 8).

pyHanko's interrupted signing separates a PAdES signature into:

1. ``prepare_seal`` (worker process): open the original, place the seal, write the
   incremental update with an empty /Contents to a temp file next to the output,
   digest the /ByteRange and build the CMS signed attributes. Returns their DER: the
   exact bytes the token signs.
2. ``sign_prepared`` (the token's thread, in the daemon): one raw C_Sign over those
   bytes. The worker processes never see the token, a session or a PIN.
3. ``finish_seal`` (worker process): wrap the signature value in the CMS (with the
   signature timestamp for B-T and up), write it into the reserved /Contents; for
   B-LT/B-LTA run pyHanko's post-signature processing (DSS with the certificates,
   OCSP responses and CRLs, and for B-LTA the document timestamp); fsync, hash.
   The daemon then renames the temp file into place (``publish``), so a sealed file
   appears only complete and only when the daemon says so.

Steps 1 and 3 are CPU-bound pure Python (asn1crypto, the PDF writer) or wait on the
network (TSA, OCSP, CRL); run in a process pool they overlap across cores while the
token signs the next document.

B-LT/B-LTA follow pyHanko's own interrupted signing: step 1 is
``PdfSigner.async_digest_doc_for_signing``, whose pre-signing validation checks the
seal certificate (revocation hard-fail: a revoked certificate is never signed with)
and collects the validation paths and revocation info into the ``PdfTBSDocument``'s
``PostSignInstructions``; step 3 is ``PdfTBSDocument.async_finish_signing`` with those
instructions. They cross the process boundary as data: the validation paths, OCSP
responses and CRLs as DER, the remaining settings pickled (without the timestamper,
rebuilt from the level). The finish worker preloads that revocation info into an
offline context (``LevelSettings.collected_validation_context``: one-step signing
reuses its one context's cache there too). The result means the same as one
``PdfSigner.sign_pdf``: same DSS contents, same signature and document timestamps.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import hashlib
import os
import pickle
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar

from asn1crypto import cms, crl, ocsp, x509
from pyhanko.sign import signers
from pyhanko.sign.signers.pdf_byterange import PreparedByteRangeDigest
from pyhanko.sign.signers.pdf_cms import PdfCMSSignedAttributes
from pyhanko.sign.signers.pdf_signer import (
    PdfTBSDocument,
    PostSignInstructions,
    PreSignValidationStatus,
)
from pyhanko_certvalidator.authority import CertTrustAnchor
from pyhanko_certvalidator.path import ValidationPath
from pyhanko_certvalidator.registry import SimpleCertificateStore

from .cms_cache import CmsTemplates, PreEncodedSigner
from .errors import SigningError
from .job import JobLayout, plan_job_signature
from .levels import Certification, LevelSettings, SignatureLevel
from .pades import (
    SealResult,
    SealSpec,
    _open_input,
    _translate_signing_errors,
    plan_seal,
    translate_signing_exception,
)
from .placement import PlacementSpec

if TYPE_CHECKING:
    from pyhanko.sign.signers import Signer

    from seald.domain.marks import Mark

DIGEST = "sha256"


@dataclass(frozen=True)
class SealJob:
    """Everything a worker process needs to seal one document: plain, picklable data."""

    input_path: Path
    output_path: Path
    signing_cert_der: bytes
    chain_der: tuple[bytes, ...]
    seal_png: bytes
    placement: PlacementSpec
    reason: str
    location: str
    field_name: str
    signer_name: str = ""
    level: LevelSettings = field(default_factory=LevelSettings)
    certification: Certification = Certification.NONE
    certify_only_if_first: bool = False
    # A sealing job's seal (issue 16): this seal's marks, all drawn under this one
    # signature (signing/job.py); empty = the single ``placement``. ``layout``: the job's
    # layout made once on the original (job.layout_document), else made from the input.
    marks: tuple[Mark, ...] = ()
    layout: JobLayout | None = None

    def with_certificate(self, signing_cert_der: bytes, chain_der: tuple[bytes, ...]) -> SealJob:
        return dataclasses.replace(self, signing_cert_der=signing_cert_der, chain_der=chain_der)

    def without_image(self) -> SealJob:
        """The job as ``finish_seal`` needs it: the appearance was written by
        ``prepare_seal``, so the seal image need not travel to a worker again (issue 20:
        seald's per-document pickling)."""
        return dataclasses.replace(self, seal_png=b"")

    @property
    def spec(self) -> SealSpec:
        """The seal as it goes on this document (pades' parameter object)."""
        return SealSpec(
            seal_png=self.seal_png,
            placement=self.placement,
            reason=self.reason,
            location=self.location,
            field_name=self.field_name,
            signer_name=self.signer_name,
            level=self.level,
            certification=self.certification,
            certify_only_if_first=self.certify_only_if_first,
        )


@dataclass(frozen=True)
class PreparedSeal:
    """A document written up to its empty signature; ``to_sign`` goes to the token."""

    temp_path: Path
    to_sign: bytes  # DER of the CMS signed attributes
    document_digest: bytes
    reserved_start: int
    reserved_end: int
    field_name: str
    page_ix: int
    box: tuple[float, float, float, float]
    slice_boxes: tuple[tuple[float, float, float, float], ...]
    # B-LT/B-LTA: pyHanko's PostSignInstructions (DSS settings, document timestamp
    # field) pickled without validation info and timestamper; b"" below B-LT. Produced
    # by our own worker for the daemon, never read from outside the daemon.
    post_sign: bytes = b""
    # ... the validation paths of the seal and TSA certificates (each root first, DER)
    validation_paths: tuple[tuple[bytes, ...], ...] = ()
    # ... and the revocation info the pre-signing validation fetched (DER).
    revinfo_ocsps: tuple[bytes, ...] = ()
    revinfo_crls: tuple[bytes, ...] = ()


def _external_signer(job: SealJob, signature: bytes | None = None) -> signers.ExternalSigner:
    chain = [x509.Certificate.load(der) for der in job.chain_der]
    return signers.ExternalSigner(
        signing_cert=x509.Certificate.load(job.signing_cert_der),
        cert_registry=SimpleCertificateStore.from_certs(chain),  # type: ignore[no-untyped-call]
        signature_value=signature if signature is not None else 512,
    )


@dataclass(frozen=True)
class _SignerMaterial:
    signing_cert: x509.Certificate
    registry: SimpleCertificateStore
    templates: CmsTemplates


# Per process, per (certificate, chain): the certificates parsed once and the CMS
# pieces encoded once, reused for every document of every request sealed with that
# seal certificate (see cms_cache.py). A handful of seals: the bound only guards leaks.
_MATERIAL: dict[tuple[bytes, tuple[bytes, ...]], _SignerMaterial] = {}
_MAX_MATERIAL = 64


def _pre_encoded_signer(job: SealJob, signature: bytes | None = None) -> PreEncodedSigner:
    key = (job.signing_cert_der, job.chain_der)
    material = _MATERIAL.get(key)
    if material is None:
        if len(_MATERIAL) >= _MAX_MATERIAL:
            _MATERIAL.clear()
        chain = [x509.Certificate.load(der) for der in job.chain_der]
        material = _MATERIAL[key] = _SignerMaterial(
            x509.Certificate.load(job.signing_cert_der),
            SimpleCertificateStore.from_certs(chain),  # type: ignore[no-untyped-call]
            CmsTemplates(),
        )
    return PreEncodedSigner(
        signing_cert=material.signing_cert,
        cert_registry=material.registry,
        signature_value=signature if signature is not None else 512,
        templates=material.templates,
    )


def _signer(job: SealJob, pre_encoded: bool, signature: bytes | None = None) -> signers.ExternalSigner:
    if pre_encoded:
        return _pre_encoded_signer(job, signature)
    return _external_signer(job, signature)


def prepare_seal(job: SealJob, *, pre_encoded: bool = True) -> PreparedSeal:
    """Step 1 (worker): temp file with the placeholder signature, and the bytes to sign.

    ``pre_encoded=False`` builds the signed attributes with pyHanko's plain
    ExternalSigner, as before issue 20: the reference the tests compare against.
    """
    with _only_signing_errors(job.field_name):
        return _thread_loop().run_until_complete(_prepare(job, pre_encoded))


async def _prepare(job: SealJob, pre_encoded: bool = True) -> PreparedSeal:
    signer = _signer(job, pre_encoded)
    with _open_input(job.input_path) as source:
        plan = (
            plan_job_signature(
                source, job.input_path, signer=signer, spec=job.spec, marks=job.marks, layout=job.layout
            )
            if job.marks
            else plan_seal(source, job.input_path, signer=signer, spec=job.spec)
        )
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{job.output_path.name}.", suffix=".part", dir=job.output_path.parent
        )
        temp = Path(tmp_name)
        context = plan.pdf_signer.signature_meta.validation_context
        try:
            with os.fdopen(fd, "w+b") as out, _translate_signing_errors(plan.field_name):
                digest, tbs, _ = await plan.pdf_signer.async_digest_doc_for_signing(
                    plan.writer, bytes_reserved=plan.bytes_reserved, output=out
                )
                attrs = await signer.signed_attrs(
                    digest.document_digest,
                    DIGEST,
                    attr_settings=PdfCMSSignedAttributes(
                        signing_time=datetime.now(UTC),
                        cades_signed_attrs=plan.pdf_signer.signature_meta.cades_signed_attr_spec,
                    ),
                    use_pades=True,
                )
                post_sign = _post_sign_state(tbs)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        finally:
            if context is not None:
                await context.aclose()  # type: ignore[no-untyped-call]  # the OCSP/CRL fetchers' HTTP sessions
    return PreparedSeal(
        temp_path=temp,
        to_sign=attrs.dump(),
        document_digest=digest.document_digest,
        reserved_start=digest.reserved_region_start,
        reserved_end=digest.reserved_region_end,
        field_name=plan.field_name,
        page_ix=plan.page_ix,
        box=plan.box,
        slice_boxes=plan.slice_boxes,
        post_sign=post_sign.instructions,
        validation_paths=post_sign.paths,
        revinfo_ocsps=post_sign.ocsps,
        revinfo_crls=post_sign.crls,
    )


@dataclass(frozen=True)
class _PostSignState:
    instructions: bytes = b""
    paths: tuple[tuple[bytes, ...], ...] = ()
    ocsps: tuple[bytes, ...] = ()
    crls: tuple[bytes, ...] = ()


def _post_sign_state(tbs: PdfTBSDocument) -> _PostSignState:
    """What step 3 needs of pyHanko's pre-signing validation, as plain data.

    Certificates, OCSP responses and CRLs travel as DER: asn1crypto objects do not
    survive pickling into a fresh worker process (their classes set up their field
    maps on first construction, which unpickling skips).
    """
    instructions = tbs.post_sign_instructions
    if instructions is None:  # below B-LT: nothing to do after the signature
        return _PostSignState()
    info = instructions.validation_info
    context = tbs.validation_context
    paths = []
    for path in info.validation_paths:
        if not isinstance(path.trust_anchor, CertTrustAnchor):
            raise SigningError(
                "a validation path ends in a trust anchor that is not a certificate; "
                "configure [trust] signing_roots as CA certificates",
                reason="seal_certificate_invalid",
            )
        paths.append(tuple(cert.dump() for cert in path))
    return _PostSignState(
        # The rest is plain settings (DSS placement, field name, decode limits); the
        # timestamper holds an HTTP client: step 3 builds its own from the level.
        instructions=pickle.dumps(
            dataclasses.replace(instructions, validation_info=None, timestamper=None)  # type: ignore[arg-type]
        ),
        paths=tuple(paths),
        ocsps=tuple(response.dump() for response in context.ocsps) if context else (),
        crls=tuple(revocation_list.dump() for revocation_list in context.crls) if context else (),
    )


def _validation_status(prepared: PreparedSeal) -> PreSignValidationStatus:
    """The parts of pyHanko's PreSignValidationStatus that post-signature processing
    reads (validation paths, revocation info to embed), rebuilt from DER."""
    paths = []
    for ders in prepared.validation_paths:
        certs = [x509.Certificate.load(der) for der in ders]
        leaf = certs[-1] if len(certs) > 1 else None
        paths.append(ValidationPath(CertTrustAnchor(certs[0]), certs[1:-1], leaf))
    return PreSignValidationStatus(
        signer_path=paths[0],
        validation_paths=paths,
        ocsps_to_embed=[ocsp.OCSPResponse.load(der) for der in prepared.revinfo_ocsps],
        crls_to_embed=[crl.CertificateList.load(der) for der in prepared.revinfo_crls],
    )


T = TypeVar("T")
_thread_loops = threading.local()


class _RunHere(concurrent.futures.ThreadPoolExecutor):
    """An executor that runs each call at once, on the calling thread.

    pyHanko's ``PKCS11Signer.async_sign_raw`` hands C_Sign to its loop's default
    executor: on our token thread's loop that would move the PKCS#11 call to another
    thread (the token's session belongs to the token thread) and add a hand-off.
    A ThreadPoolExecutor only because asyncio accepts no other default executor; it
    never starts a thread.
    """

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[T]:
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as ex:
            future.set_exception(ex)
        return future


def _thread_loop() -> asyncio.AbstractEventLoop:
    """This thread's event loop for pyHanko's async API, made once: a token thread or a
    worker process runs one call at a time, and a fresh loop per call costs ~0.3 ms."""
    loop: asyncio.AbstractEventLoop | None = getattr(_thread_loops, "loop", None)
    if loop is None:
        loop = _thread_loops.loop = asyncio.new_event_loop()
    return loop


_RUN_HERE = _RunHere(max_workers=1)


def sign_prepared(signer: Signer, prepared: PreparedSeal) -> bytes:
    """Step 2 (token thread): the raw signature over the signed attributes, with the
    PKCS#11 call on this very thread (see ``_RunHere``)."""
    loop = _thread_loop()
    loop.set_default_executor(_RUN_HERE)
    with _translate_signing_errors(prepared.field_name):
        signature = loop.run_until_complete(signer.async_sign_raw(prepared.to_sign, DIGEST))
    if not signature:
        raise SigningError("the token returned an empty signature; retry", reason="signing_failed")
    return bytes(signature)


def finish_seal(
    job: SealJob, prepared: PreparedSeal, signature: bytes, *, pre_encoded: bool = True
) -> SealResult:
    """Step 3 (worker): the CMS into the reserved /Contents, fsync'd; returns its hash.

    ``pre_encoded=False``: pyHanko's plain ExternalSigner builds the CMS (the reference).
    """
    try:
        with _only_signing_errors(job.field_name):
            return _thread_loop().run_until_complete(_finish(job, prepared, signature, pre_encoded))
    except BaseException:
        prepared.temp_path.unlink(missing_ok=True)
        raise


def prepare_seals(jobs: Sequence[SealJob]) -> list[PreparedSeal]:
    """``prepare_seal`` for several documents in one worker call (issue 20: one pickled
    hand-off instead of one per document). All or none: a failure removes the temp
    files of those already prepared before it is raised."""
    done: list[PreparedSeal] = []
    try:
        for job in jobs:
            done.append(prepare_seal(job))
    except BaseException:
        for prepared in done:
            discard(prepared)
        raise
    return done


def finish_seals(
    jobs: Sequence[SealJob], prepared: Sequence[PreparedSeal], signatures: Sequence[bytes]
) -> list[SealResult]:
    """``finish_seal`` for several documents in one worker call. A failure leaves the
    other temp files to the caller, which discards every one it prepared."""
    return [
        finish_seal(job, each, signature)
        for job, each, signature in zip(jobs, prepared, signatures, strict=True)
    ]


@contextlib.contextmanager
def _only_signing_errors(field_name: str) -> Iterator[None]:
    """What leaves a worker is a SigningError (pickles back with its reason) and
    never a library exception that might not unpickle in the daemon."""
    try:
        yield
    except SigningError:
        raise
    except Exception as ex:
        raise translate_signing_exception(ex, field_name) from None


async def _finish(job: SealJob, prepared: PreparedSeal, signature: bytes, pre_encoded: bool) -> SealResult:
    signer = _signer(job, pre_encoded, signature)
    with _translate_signing_errors(prepared.field_name):
        signed_data = await signer.async_sign_prescribed_attributes(
            DIGEST, cms.CMSAttributes.load(prepared.to_sign), timestamper=job.level.timestamper()
        )
        digest = PreparedByteRangeDigest(
            document_digest=prepared.document_digest,
            reserved_region_start=prepared.reserved_start,
            reserved_region_end=prepared.reserved_end,
        )
        with prepared.temp_path.open("r+b") as out:
            if prepared.post_sign:
                await _finish_with_validation_info(job, prepared, digest, signed_data, out)
            else:
                digest.fill_with_cms(out, signed_data)
            out.flush()
            os.fsync(out.fileno())
    sha, size = _hash_file(prepared.temp_path)
    return SealResult(
        sha256=sha,
        size=size,
        field_name=prepared.field_name,
        page=prepared.page_ix + 1,
        box_pt=prepared.box,
        slice_boxes_pt=prepared.slice_boxes,
    )


async def _finish_with_validation_info(
    job: SealJob,
    prepared: PreparedSeal,
    digest: PreparedByteRangeDigest,
    signed_data: cms.ContentInfo,
    out: BinaryIO,
) -> None:
    """B-LT/B-LTA: the CMS into /Contents, then the DSS update (and the document
    timestamp), exactly as ``PdfSigner.sign_pdf`` does after its signature."""
    settings: PostSignInstructions = pickle.loads(prepared.post_sign)  # noqa: S301 (our own worker's bytes)
    status = _validation_status(prepared)
    instructions = dataclasses.replace(
        settings,
        validation_info=status,
        timestamper=job.level.timestamper() if job.level.level is SignatureLevel.B_LTA else None,
    )
    context = job.level.collected_validation_context(
        certs=[cert for path in status.validation_paths for cert in path],
        ocsps=prepared.revinfo_ocsps,
        crls=prepared.revinfo_crls,
    )
    try:
        await PdfTBSDocument.async_finish_signing(
            out, digest, signed_data, post_sign_instr=instructions, validation_context=context
        )
    finally:
        if context is not None:
            await context.aclose()  # type: ignore[no-untyped-call]


def publish(prepared: PreparedSeal, output_path: Path) -> None:
    """Rename the finished temp file into place (the daemon does this, not a worker)."""
    os.replace(prepared.temp_path, output_path)


def discard(prepared: PreparedSeal) -> None:
    with contextlib.suppress(FileNotFoundError):
        prepared.temp_path.unlink()


def fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _hash_file(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def exit_with_parent(parent_pid: int, interval_s: float = 1.0) -> None:
    """Worker initializer: end this worker when seald is gone.

    A SIGKILLed daemon leaves its spawned workers blocked on their call queue for
    ever (seen after the crash tests: idle workers holding ~100 MB each). A daemon
    thread notices the re-parenting within ``interval_s`` and exits the process; a
    worker has nothing to save (its temp files are swept at the next start).
    """

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(interval_s)
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def warm_up() -> int:
    """Run in each new worker so the first real document does not pay for imports."""
    return os.getpid()
