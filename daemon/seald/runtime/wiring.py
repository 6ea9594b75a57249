"""Builds the service parts (seald.service) for the daemon: who gets which collaborator."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from seald.config import Config
from seald.notify.deliverer import Deliverer
from seald.registry.admin import SealAdmin
from seald.registry.impressions import ImpressionRegistry
from seald.registry.ses_seal import SesSeals
from seald.runtime.hooks import NO_HOOKS, Hooks
from seald.runtime.metrics import SealMetrics
from seald.service.admission import Admission
from seald.service.catalog import SealCatalog
from seald.service.expiry import Expiry
from seald.service.previews import Previews
from seald.service.recorder import Recorder
from seald.service.requests import RequestService
from seald.service.seal_workers import SealWorkers
from seald.service.settings import LiveConfig
from seald.service.signer import Signer
from seald.service.tokens import Readiness, TokenService
from seald.store.database import Store
from seald.tokens.custody_guard import CustodyGuard
from seald.tokens.manager import TokenManager
from seald.webauthn.registry import WebAuthnRegistry
from seald.workflow import Workflow, request_notifier


@dataclass(frozen=True)
class Services:
    """The parts, for the daemon's wiring (seald.runtime.daemon) only: servicers and
    background tasks each receive the parts they use, never this bundle."""

    live: LiveConfig
    store: Store
    tokens: TokenManager
    clock: Callable[[], datetime]
    metrics: SealMetrics
    recorder: Recorder
    catalog: SealCatalog
    admission: Admission
    custody: CustodyGuard
    readiness: Readiness
    expiry: Expiry
    workers: SealWorkers
    signer: Signer
    requests: RequestService
    token_service: TokenService
    previews: Previews
    seal_admin: SealAdmin
    ses_seals: SesSeals
    impressions: ImpressionRegistry
    webauthn: WebAuthnRegistry
    # Issue 17: delegations, quotas, the outbox; the deliverer only when webhooks are set.
    workflow: Workflow
    deliverer: Deliverer | None


def build_services(
    config: Config,
    store: Store,
    tokens: TokenManager,
    clock: Callable[[], datetime],
    hooks: Hooks = NO_HOOKS,
) -> Services:
    live = LiveConfig(config)
    # Ops counters (seald.runtime.metrics); served only if [metrics] listen is set.
    metrics = SealMetrics(config.seals)
    recorder = Recorder(store)
    workflow = Workflow(store, lambda: live.current, clock)
    deliverer: Deliverer | None = None
    if config.notify.webhooks:
        # Every request change writes its events in its own transaction (store notifier).
        store.notifier = request_notifier(lambda: live.current, clock)
        deliverer = Deliverer(store, config.notify, clock)
        recorder.after_commit = deliverer.wake
    catalog = SealCatalog(live, store, tokens)
    # R07/R08/R09: initial PIN, hours, custody holder (issue 3).
    custody = CustodyGuard(config, store, tokens, clock)
    custody.on_not_returned = metrics.not_returned_alert
    readiness = Readiness(store, tokens, custody)
    expiry = Expiry(store, recorder, clock)
    # Worker processes for the CPU-bound halves of sealing (started by the signer loop).
    workers = SealWorkers(
        config.server.seal_workers or None, initializer=hooks.worker_initializer()
    )
    signer = Signer(
        live,
        store,
        tokens,
        catalog,
        recorder,
        expiry=expiry,
        workers=workers,
        workflow=workflow,
        readiness=readiness,
        clock=clock,
        hooks=hooks,
    )
    custody.on_ready_change = signer.wake
    token_service = TokenService(
        catalog,
        tokens,
        custody,
        recorder,
        wake_signer=signer.wake,
        read_seal_certificate=signer.read_seal_certificate,
    )
    requests = RequestService(
        live, store, catalog, recorder, signer=signer, workers=workers, workflow=workflow, clock=clock
    )
    previews = Previews(
        requests.get,
        store,
        signer.seal_image,
        recorder.audit,
        seal_size_mm=lambda seal_id: live.current.seals[seal_id].size_mm,
    )
    # Issue 19: GB/T 38540 seals' SES_Seal, made by the seal maker with each change of face.
    ses_seals = SesSeals(live, store, tokens, catalog, seal_image=signer.seal_image, clock=clock)
    seal_admin = SealAdmin(
        live, store, tokens, catalog, clock=clock, wake_signer=signer.wake, ses_seals=ses_seals
    )
    # Issue 16: a registered impression is the seal's new face: the SES_Seal follows it.
    impressions = ImpressionRegistry(
        live,
        store,
        catalog,
        clock=clock,
        changed=signer.impression_changed,
        wake_signer=signer.wake,
        ses_seals=ses_seals,
    )
    return Services(
        live=live,
        store=store,
        tokens=tokens,
        clock=clock,
        metrics=metrics,
        recorder=recorder,
        catalog=catalog,
        admission=Admission(live, store),
        custody=custody,
        readiness=readiness,
        expiry=expiry,
        workers=workers,
        signer=signer,
        requests=requests,
        token_service=token_service,
        previews=previews,
        seal_admin=seal_admin,
        ses_seals=ses_seals,
        impressions=impressions,
        # Issue 18: approvers' security keys, approvals by assertion, web sessions.
        webauthn=WebAuthnRegistry(live, store, requests, clock),
        workflow=workflow,
        deliverer=deliverer,
    )


__all__ = ["Services", "build_services"]
