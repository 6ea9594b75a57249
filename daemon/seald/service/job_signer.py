"""Sealing jobs (issue 16): every document gets one signature per seal, in a fixed order,
all or nothing.

Per document, for each seal in the job's signing order (each seal's first mark,
``domain.marks.signing_order``), the next intermediate file is written (previous output
-> next) through the daemon's sealing pipeline with that seal's marks (``SealJob.marks``
and ``layout``: ``signing.job.plan_job_signature`` prepares it in a seal worker, the
seal's token makes the one raw signature, a worker finishes it; the same result as
``signing.job.seal_job_signature``, without PDF work on the event loop or the token
thread). The completed signature is recorded durably (``lifecycle.record_step`` and a
``seal.job_signature`` audit record naming the seal, the document and the
intermediate's SHA-256) BEFORE the next seal signs. A token removal, a lock or a crash
therefore resumes from the last recorded intermediate: a recorded seal is never signed
again, and an unrecorded signature (crash between the file and its record) is discarded
and made again from the recorded input. A recorded intermediate that is missing or
changed is never signed over (the request fails, nothing released).

Intermediates are never downloadable. A document's sealed file appears (a hard link to
its last intermediate) only once every document of the request has every signature,
and the request is SIGNED in the same result transaction as always. Anything short of
that is not released.

Files in ``documents/<request>/``: ``NNNN.step<k>-<seal>.pdf`` (after the k-th
signature, 1-based), removed once the request is SIGNED or fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
from collections.abc import Awaitable, Callable
from datetime import datetime
from functools import partial
from pathlib import Path

from seald.config import Config
from seald.domain import lifecycle
from seald.domain.audit import AuditEvent
from seald.domain.errors import PreconditionFailed
from seald.domain.marks import marks_of_seal
from seald.domain.model import Document, SealRequest
from seald.runtime.hooks import Hooks
from seald.runtime.logs import get_logger
from seald.service.catalog import SealCatalog
from seald.service.recorder import Recorder, request_event
from seald.service.seal_workers import SealWorkers, SignerCache, seal_documents
from seald.signing.job import JobLayout, layout_document
from seald.signing.levels import Certification, LevelSettings
from seald.signing.pipeline import SealJob, fsync_directory
from seald.signing.placement import PlacementSpec
from seald.store.database import Store, Transaction
from seald.tokens.manager import TokenManager

log = get_logger("seald")

# Documents of a job laid out ahead when an approval arrives (the first ones signed).
LAYOUT_AHEAD = 8


def step_path(store: Store, request_id: str, index: int, step: int, seal_id: str) -> Path:
    """The intermediate after the ``step``-th signature (1-based) of document ``index``."""
    return store.original_path(request_id, index).with_name(f"{index:04d}.step{step}-{seal_id}.pdf")


def step_files(store: Store, request: SealRequest) -> list[Path]:
    directory = store.original_path(request.request_id, 0).parent
    return sorted(directory.glob("*.step*-*.pdf"))


def remove_step_files(store: Store, request: SealRequest) -> None:
    """The intermediates of a request that is SIGNED (released) or will never be."""
    for path in step_files(store, request):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class JobSealing:
    """Makes a job's signatures one by one, each recorded before the next (see module)."""

    def __init__(
        self,
        *,
        config: Callable[[], Config],
        store: Store,
        tokens: TokenManager,
        catalog: SealCatalog,
        recorder: Recorder,
        signers: SignerCache,
        workers: SealWorkers,
        seal_image: Callable[[str, str], Awaitable[bytes]],
        level: Callable[[str], LevelSettings],
        clock: Callable[[], datetime],
        hooks: Hooks,
    ) -> None:
        self._config = config
        self._store = store
        self._tokens = tokens
        self._catalog = catalog
        self._recorder = recorder
        self._signers = signers
        self._workers = workers
        self._seal_image = seal_image
        self._level = level
        self._clock = clock
        self._hooks = hooks
        self._layouts: dict[tuple[str, int, str], asyncio.Future[JobLayout]] = {}

    def input_of(self, request: SealRequest, doc: Document) -> Path:
        """What the next signature signs: the original, or the last recorded intermediate
        (checked against its recorded hash: a changed file is never signed over)."""
        if not doc.steps:
            return self._store.original_path(request.request_id, doc.index)
        last = doc.steps[-1]
        path = step_path(self._store, request.request_id, doc.index, len(doc.steps), last.seal_id)
        if not path.exists() or sha256_file(path) != last.sha256:
            raise PreconditionFailed(
                f"document {doc.index} of request {request.request_id}: the recorded "
                f"intermediate after seal {last.seal_id} is missing or changed; nothing was "
                "released",
                reason="incomplete_batch",
            )
        return path

    async def sign_all(self, request: SealRequest) -> SealRequest:
        """Every missing signature of every document, each recorded; returns the request
        with every step recorded (still SIGNING: the caller releases)."""
        for position in range(len(request.documents)):
            while True:
                doc = request.documents[position]
                seal_id = lifecycle.next_job_seal(request, doc)
                if seal_id is None:
                    break
                request = await self._one_signature(request, doc, seal_id)
        return request

    def lay_out_ahead(self, request: SealRequest) -> None:
        """Start laying out a job's first documents when an approval of it arrives (best
        effort): the anchor search (pdftotext) and page walk are then done, or under way,
        when the completing approval starts the signatures, instead of the first
        signature waiting for them (bench/bench_job_daemon.py: ~35 ms of a 20-page
        contract's ~150 ms from the last approval to SIGNED). Nothing is signed here."""
        try:
            for doc in request.documents[:LAYOUT_AHEAD]:
                self._layout_future(request, doc)
        except Exception as ex:  # the signature lays it out again and reports any problem
            log.warning("job.layout_ahead_failed", request_id=request.request_id, problem=type(ex).__name__)

    async def _layout(self, request: SealRequest, doc: Document) -> JobLayout:
        """The document's marks laid out on its ORIGINAL, once per document: every
        seal's signature draws its own part of this one layout (what the approvers saw in
        the preview), and anchors are not searched again for every seal."""
        return await asyncio.shield(self._layout_future(request, doc))

    def _layout_future(self, request: SealRequest, doc: Document) -> asyncio.Future[JobLayout]:
        sizes = {s: self._config().seals[s].size_mm for s in request.seal_ids}
        marks = request.marks_of(doc)
        # Keyed by what the layout is made of, so a layout made ahead is used only for
        # the very marks and sizes the signature signs with.
        key = (request.request_id, doc.index, repr((marks, sorted(sizes.items()))))
        future = self._layouts.get(key)
        if future is None or (future.done() and (future.cancelled() or future.exception() is not None)):
            original = self._store.original_path(request.request_id, doc.index)
            future = asyncio.get_running_loop().run_in_executor(
                None, partial(layout_document, original, marks, seal_sizes_mm=sizes)
            )
            # A failure is raised to the signature that awaits it (made again there);
            # one laid out ahead and never awaited is not reported as unretrieved.
            future.add_done_callback(lambda f: f.cancelled() or f.exception())
            self._layouts.pop(key, None)
            self._layouts[key] = future
            while len(self._layouts) > 64:  # a bound, not a cache policy: oldest first
                self._layouts.pop(next(iter(self._layouts)))
        return future

    async def _one_signature(self, request: SealRequest, doc: Document, seal_id: str) -> SealRequest:
        config = self._config()
        sc = config.seals[seal_id]
        step = len(doc.steps) + 1
        source = self.input_of(request, doc)
        target = step_path(self._store, request.request_id, doc.index, step, seal_id)
        marks = marks_of_seal(request.marks_of(doc), seal_id)
        layout = await self._layout(request, doc)
        # The face its approvers approved (the digest covers each seal's impression).
        approved = next(s for s in request.job_seals if s.seal_id == seal_id)
        seal_png = await self._seal_image(seal_id, approved.impression_sha256)
        job = SealJob(
            input_path=source,
            output_path=target,
            signing_cert_der=b"",  # read from the token by seal_documents
            chain_der=(),
            seal_png=seal_png,
            # Not the position (the layout has it): the seal's size for marks of size 0.
            placement=PlacementSpec(page=0, x_mm=0, y_mm=0, size_mm=sc.size_mm),
            reason=request.reason,
            location=config.server.host_name,
            field_name=f"Seal-{seal_id}-{request.request_id[:12]}",
            signer_name=f"{sc.organisation} {sc.display_name}",
            level=self._level(seal_id),
            certification=Certification(sc.certify),
            certify_only_if_first=True,
            marks=marks,
            layout=layout,
        )
        self._hooks.kill_point("job.before_signature")  # the crash matrix (tests)
        # The daemon's pipeline (issue 8): the PDF work in a seal worker process, only the
        # raw signature on the seal's token thread; the output renamed into place whole.
        (result,) = await seal_documents(
            self._workers,
            self._tokens,
            seal_id,
            [job],
            key_label=sc.key_label,
            signers=self._signers,
            hooks=self._hooks,
        )
        self._hooks.kill_point("job.signature_written")  # file in place, not yet recorded
        index = doc.index

        def _record(tx: Transaction) -> SealRequest:
            current = tx.get_request(request.request_id)
            # R02: a seal stopped while its token signed: this signature is not kept.
            lifecycle.check_seal_usable(self._catalog.seal(seal_id, tx), current.category)
            new = lifecycle.record_step(
                current,
                index=index,
                seal_id=seal_id,
                sha256=result.sha256,
                size=result.size,
                now=self._clock(),
            )
            tx.save_request(new)
            tx.audit(
                AuditEvent(
                    event="seal.job_signature",
                    seal_id=seal_id,
                    request_id=new.request_id,
                    document_name=doc.name,
                    document_sha256=doc.sha256,
                    outcome="signing",
                    details={
                        "document_index": index,
                        "step": step,
                        "intermediate_sha256": result.sha256,
                    },
                )
            )
            return new

        try:
            recorded = await self._recorder.commit(_record, "seal.job_signature")
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                target.unlink()  # not recorded: never used, made again from the recorded input
            raise
        self._hooks.kill_point("job.signature_recorded")
        await self._hooks.pause("between_signatures", request.request_id)
        log.info(
            "seal.job_signature",
            request_id=request.request_id,
            seal_id=seal_id,
            document=index,
            step=step,
        )
        await asyncio.sleep(0)  # let a removal or lock event in before the next token call
        return recorded

    def release_files(self, request: SealRequest) -> dict[int, tuple[str, int]]:
        """Every document's last intermediate becomes its sealed file: a hard link (atomic;
        the bytes recorded, nothing re-signed) while the intermediate stays until the
        request is SIGNED, so a crash halfway through still resumes from the records.
        Returns index -> (sha256, size) as recorded."""
        out: dict[int, tuple[str, int]] = {}
        for doc in request.documents:
            last = doc.steps[-1]
            source = self.input_of(request, doc)
            target = self._store.sealed_path(request.request_id, doc.index)
            target.unlink(missing_ok=True)
            os.link(source, target)
            out[doc.index] = (last.sha256, last.size)
            self._hooks.kill_point("job.document_released")
        if request.documents:
            fsync_directory(self._store.sealed_path(request.request_id, 0).parent)
        return out

    def result_event(self, new: SealRequest, tx: Transaction, latency_ms: int) -> None:
        for doc in new.documents:
            tx.audit(
                request_event(
                    "seal.signed",
                    new,
                    None,
                    None,
                    doc,
                    outcome="signed",
                    details={
                        "sealed_sha256": doc.sealed_sha256,
                        "latency_ms": latency_ms,
                        "seals": ",".join(s.seal_id for s in doc.steps),
                    },
                )
            )
