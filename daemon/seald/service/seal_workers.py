"""The daemon's side of the sealing pipeline (issue 8; see seald/signing/pipeline.py).

A request's documents flow through prepare (worker process) -> raw signature (the
token's thread) -> finish (worker process), several documents in flight at once, so
PDF work overlaps across cores while the token signs. Fail closed: after the first
failure no further document is signed, every temp file is deleted, and nothing is
renamed into place; only when every document of the request is finished are the
sealed files renamed (and their directory fsync'd once).

Workers are spawned (not forked: the daemon runs gRPC threads) and get only the
paths, the seal image, the placement and the certificate: never a token session or
a PIN.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hashlib
import multiprocessing
import os
import signal
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, TypeVar

from seald.runtime.hooks import NO_HOOKS, Hooks, WorkerInitializer
from seald.runtime.logs import get_logger
from seald.signing.errors import TokenSigningError
from seald.signing.pades import SealResult, token_signer
from seald.signing.pipeline import (
    PreparedSeal,
    SealJob,
    discard,
    exit_with_parent,
    finish_seal,
    finish_seals,
    fsync_directory,
    prepare_seal,
    prepare_seals,
    publish,
    sign_prepared,
    warm_up,
)
from seald.tokens.manager import TokenManager

log = get_logger("seald.seal_workers")
T = TypeVar("T")


class _Skipped(Exception):
    """A document not started because another one of the request already failed."""


def _start_worker(parent_pid: int, extra: WorkerInitializer | None) -> None:
    """Each worker's first call: end with seald (exit_with_parent), then the test hook's
    initializer if one was injected (tests/seald_under_test.py: a slow start)."""
    exit_with_parent(parent_pid)
    if extra is not None:
        fn, args = extra
        fn(*args)


class SealWorkers:
    """A process pool for the CPU-bound halves of PAdES sealing."""

    def __init__(self, workers: int | None = None, *, initializer: WorkerInitializer | None = None) -> None:
        self.size = max(1, workers or os.cpu_count() or 1)
        # Run first in every worker process (spawned: passed as pool arguments, tests only).
        self._initializer = initializer
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None

    def _executor(self) -> concurrent.futures.ProcessPoolExecutor:
        if self._pool is None:
            self._pool = concurrent.futures.ProcessPoolExecutor(
                max_workers=self.size,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_worker,
                initargs=(os.getpid(), self._initializer),
            )
        return self._pool

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor(), fn, *args)
        except BrokenProcessPool as ex:
            # A worker died (killed, out of memory): start a fresh pool next time and let
            # the request wait, like a token error; nothing was released.
            self.shutdown()
            log.error("seal_workers.broken_pool")
            raise TokenSigningError(
                "a sealing worker process died; the request will be retried", reason="seal_worker_died"
            ) from ex

    async def warm(self) -> None:
        """Start every worker now, so the first request does not wait for imports."""
        await asyncio.gather(*(self.run(warm_up) for _ in range(self.size)))

    def shutdown(self) -> None:
        """Stop the pool and its processes now.

        Called when nothing waits on a worker any more (signing drained or abandoned, or
        the pool broke). Workers still starting (spawn + imports: seconds, tens of seconds
        on a loaded host) or running are terminated: the interpreter's exit would
        otherwise join them and hold up a SIGTERM well past systemd's stop timeout. What
        they wrote is a temp file that recovery removes.
        """
        pool, self._pool = self._pool, None
        if pool is None:
            return
        # ProcessPoolExecutor has no public handle on its processes before Python 3.14
        # (terminate_workers); _processes is the pid -> Process map it keeps.
        processes = list(getattr(pool, "_processes", None) or {})
        pool.shutdown(wait=False, cancel_futures=True)
        for process in [p for p in processes if isinstance(p, int)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process, signal.SIGTERM)


class SignerCache:
    """One pyHanko signer (certificate and key handle read from the token once) per
    token session and registered certificate: a new session (unlock after a lock or a
    re-insertion) or a renewed certificate (written to the token while it stays
    unlocked, R06) reads again."""

    def __init__(self) -> None:
        self._signers: dict[str, tuple[Any, str, Any]] = {}

    def cached(self, seal_id: str, session: Any, certificate_sha256: str) -> Any | None:
        entry = self._signers.get(seal_id)
        if entry is None or entry[0] is not session or entry[1] != certificate_sha256:
            return None
        return entry[2]

    def for_session(self, seal_id: str, session: Any, key_label: str, certificate_sha256: str) -> Any:
        signer = self.cached(seal_id, session, certificate_sha256)
        if signer is None:
            signer = token_signer(session, key_label=key_label, cert_label=key_label)
            read_der: bytes = signer.signing_cert.dump()  # type: ignore[union-attr]
            read = hashlib.sha256(read_der).hexdigest()
            self._signers[seal_id] = (session, read, signer)
        return signer


async def seal_documents(
    workers: SealWorkers,
    tokens: TokenManager,
    seal_id: str,
    jobs: Sequence[SealJob],
    *,
    key_label: str,
    signers: SignerCache | None = None,
    before_sign: asyncio.Future[None] | None = None,
    early: Sequence[EarlyPrepare] = (),
    hooks: Hooks = NO_HOOKS,
) -> list[SealResult]:
    """Seal every job or none: results in job order, sealed files renamed into place.

    ``before_sign`` gates the token: documents are prepared while it runs (the caller
    commits its intent record there) and nothing is signed unless it succeeds. It is
    settled before this returns or raises, and its failure is the one raised.
    """
    try:
        return await _seal_documents(
            workers,
            tokens,
            seal_id,
            jobs,
            key_label=key_label,
            cache=signers or SignerCache(),
            gate=before_sign,
            early=early,
            hooks=hooks,
        )
    except asyncio.CancelledError:
        if before_sign is not None:
            before_sign.cancel()
        raise
    except BaseException:
        if before_sign is not None:
            await settled(before_sign)  # raises the gate's own failure first
        raise


@dataclass(frozen=True)
class EarlyPrepare:
    """A document's preparation started before its request's intent record (issue 8:
    latency); the worker writes only a temp file, nothing is signed."""

    job: SealJob
    prepared: asyncio.Future[PreparedSeal]


def start_prepare(
    workers: SealWorkers,
    tokens: TokenManager,
    cache: SignerCache,
    seal_id: str,
    jobs: Sequence[SealJob],
) -> list[EarlyPrepare]:
    """Start preparing ``jobs`` now if the token's certificate is already known for its
    current session (no token call here); else nothing (the normal path prepares)."""
    signer: Any = cache.cached(
        seal_id, tokens.current_session(seal_id), tokens.certificate_sha256(seal_id)
    )
    if signer is None or len(jobs) > workers.size:
        return []
    cert_der = signer.signing_cert.dump()
    chain = tuple(cert.dump() for cert in signer.cert_registry)
    ready = [job.with_certificate(cert_der, chain) for job in jobs]
    return [EarlyPrepare(job, asyncio.ensure_future(workers.run(prepare_seal, job))) for job in ready]


def discard_early(early: EarlyPrepare) -> None:
    """Delete what an unused early preparation wrote, once it is done."""

    def _done(future: asyncio.Future[PreparedSeal]) -> None:
        if not future.cancelled() and future.exception() is None:
            discard(future.result())
        # Rare (the approval was refused after all, or the token went away): worth a line.
        log.info(
            "seal.early_prepare_discarded",
            request_id=early.job.output_path.parent.name,
            document=early.job.output_path.name,
        )

    early.prepared.add_done_callback(_done)


async def settled(gate: asyncio.Future[None]) -> None:
    """Wait for ``gate``; raise its exception if it failed."""
    await asyncio.wait([gate])
    gate.result()


MAX_GROUP = 8
_Sealed = list[tuple[PreparedSeal, SealResult]]  # one unit of work's documents, in order


def _units(
    jobs: Sequence[SealJob],
    early_for: Sequence[asyncio.Future[PreparedSeal] | None],
    workers: int,
    one: Callable[[SealJob, asyncio.Future[PreparedSeal] | None], Awaitable[T]],
    group: Callable[[list[SealJob]], Awaitable[T]],
) -> list[Awaitable[T]]:
    """The documents in job order as units of work: one with an early preparation (or
    in a small request) alone, the rest in groups of up to MAX_GROUP, small enough that
    every worker still gets at least two groups (a request of one document keeps its
    latency; a volume chunk of 256 goes in groups of 8)."""
    size = max(1, min(MAX_GROUP, len(jobs) // (2 * workers)))
    units: list[Awaitable[T]] = []
    batch: list[SealJob] = []
    for job, early in zip(jobs, early_for, strict=True):
        if early is not None or size == 1:
            units.append(one(job, early))
            continue
        batch.append(job)
        if len(batch) == size:
            units.append(group(batch) if len(batch) > 1 else one(batch[0], None))
            batch = []
    if batch:
        units.append(group(batch) if len(batch) > 1 else one(batch[0], None))
    return units


async def _seal_documents(  # noqa: C901 - the fail-closed pipeline of one request, in one place
    workers: SealWorkers,
    tokens: TokenManager,
    seal_id: str,
    jobs: Sequence[SealJob],
    *,
    key_label: str,
    cache: SignerCache,
    gate: asyncio.Future[None] | None,
    early: Sequence[EarlyPrepare],
    hooks: Hooks,
) -> list[SealResult]:
    registered = tokens.certificate_sha256(seal_id)  # the seal's certificate as registered

    def signer_for(session: Any) -> Any:
        return cache.for_session(seal_id, session, key_label, registered)

    # The certificate the signed attributes name: from the cache while the session that
    # read it is the token's current one, else read on the token's thread.
    first: Any = cache.cached(seal_id, tokens.current_session(seal_id), registered)
    if first is None:
        try:
            first = await tokens.with_session(seal_id, signer_for)
        except BaseException:
            # The token went away before any document was matched: the early
            # preparations' temp files go too (the soak found one left behind).
            for unused in early:
                discard_early(unused)
            raise
    cert_der = first.signing_cert.dump()
    chain = tuple(cert.dump() for cert in first.cert_registry)
    jobs = [job.with_certificate(cert_der, chain) for job in jobs]
    # Preparations started before the intent (start_prepare) are used only for the very
    # job they were made for (same certificate, same everything); any other is discarded.
    started = {id(e): e for e in early}
    early_for: list[asyncio.Future[PreparedSeal] | None] = []
    for job in jobs:
        match = next((e for e in started.values() if e.job == job), None)
        if match is not None:
            del started[id(match)]
        early_for.append(match.prepared if match is not None else None)
    for unused in started.values():
        discard_early(unused)

    in_flight = asyncio.Semaphore(workers.size + 1)  # one preparing ahead per worker
    failed = asyncio.Event()
    prepared_all: list[PreparedSeal] = []

    async def one(
        job: SealJob, early: asyncio.Future[PreparedSeal] | None
    ) -> _Sealed:
        async with in_flight:
            if early is not None:
                prepared = await early  # already under way: kept track of even if we stop now
                prepared_all.append(prepared)
            if failed.is_set():
                raise _Skipped
            if early is None:
                prepared = await workers.run(prepare_seal, job)
                prepared_all.append(prepared)
            if gate is not None:
                await asyncio.shield(gate)  # shared by every document; raises if it failed
            if failed.is_set():
                raise _Skipped
            def _sign(session: Any) -> bytes:
                hooks.kill_point("sign.before_document")  # the crash matrix (tests)
                return sign_prepared(signer_for(session), prepared)

            signature = await tokens.with_session(seal_id, _sign)
            # Finishing never draws the seal: its image (~60 KB) is not pickled twice.
            return [(prepared, await workers.run(finish_seal, job.without_image(), prepared, signature))]

    async def group(batch: list[SealJob]) -> _Sealed:
        """Several documents per worker call and per token hop (issue 20: seald's own
        CPU per document was mostly these hand-offs); the same steps as ``one``."""
        async with in_flight:
            if failed.is_set():
                raise _Skipped
            prepared = await workers.run(prepare_seals, batch)
            prepared_all.extend(prepared)
            if gate is not None:
                await asyncio.shield(gate)
            if failed.is_set():
                raise _Skipped

            def _sign(session: Any) -> list[bytes]:
                signatures = []
                for each in prepared:
                    hooks.kill_point("sign.before_document")  # the crash matrix (tests)
                    signatures.append(sign_prepared(signer_for(session), each))
                return signatures

            signatures = await tokens.with_session(seal_id, _sign)
            finishing = [job.without_image() for job in batch]
            results = await workers.run(finish_seals, finishing, prepared, signatures)
            return list(zip(prepared, results, strict=True))

    async def guarded(unit: Awaitable[_Sealed]) -> _Sealed:
        try:
            return await unit
        except BaseException:
            failed.set()
            raise

    try:
        outcomes = await asyncio.gather(
            *(guarded(unit) for unit in _units(jobs, early_for, workers.size, one, group)),
            return_exceptions=True,
        )
        if gate is not None:
            await settled(gate)  # also with no jobs, or all failed before it
    except BaseException:  # cancelled (daemon stopping), or the gate failed: nothing is published
        for prepared in prepared_all:
            discard(prepared)
        raise
    errors = [o for o in outcomes if isinstance(o, BaseException)]
    if errors:
        for prepared in prepared_all:
            discard(prepared)
        raise next((e for e in errors if not isinstance(e, _Skipped)), errors[0])
    done = [pair for o in outcomes if not isinstance(o, BaseException) for pair in o]
    for (prepared, _), job in zip(done, jobs, strict=True):
        publish(prepared, job.output_path)
        hooks.kill_point("sign.document_sealed")  # one sealed file renamed (tests)
    if jobs:
        fsync_directory(jobs[0].output_path.parent)
    return [result for _, result in done]

