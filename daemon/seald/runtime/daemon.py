"""Wiring: config -> store, tokens, service, gRPC server; systemd notify; signals.

seald --config /etc/seald/seald.toml
seald --config seald.toml --check-config     (validate and exit)
seald --config seald.toml --backup FILE      (online backup + signed manifest)
seald --config seald.toml --restore FILE     (seald stopped: verify, then restore)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2_grpc

from sealapi.v1 import (
    audit_pb2,
    audit_pb2_grpc,
    requests_pb2,
    requests_pb2_grpc,
    seals_pb2,
    seals_pb2_grpc,
    tokens_pb2,
    tokens_pb2_grpc,
    verify_pb2,
    verify_pb2_grpc,
    webauthn_pb2,
    webauthn_pb2_grpc,
)
from seald.api.audit import AuditServicer
from seald.api.call import Gate
from seald.api.probes import GuardedHealth, GuardedReflection
from seald.api.registry import SealRegistryServicer
from seald.api.requests import SealRequestServicer
from seald.api.tokens import TokenServicer
from seald.api.verify import VerifyServicer
from seald.api.webauthn import WebAuthnServicer
from seald.audit import backup_cli
from seald.audit.archive import ArchiveRenewer
from seald.audit.operations import AuditOperations
from seald.config import Config, load_config
from seald.domain.audit import AuditEvent
from seald.domain.errors import ConfigError, SealError
from seald.runtime.hooks import NO_HOOKS, Clock, Hooks, real_clock
from seald.runtime.logs import configure_logging, get_logger
from seald.runtime.memory import bound_native_heap
from seald.runtime.metrics import Snapshot, split_listen
from seald.runtime.reload import config_digest, restart_only_changes
from seald.runtime.sdnotify import SystemdNotifier
from seald.runtime.wiring import build_services
from seald.store.database import Store
from seald.store.ledger import Ledger
from seald.store.orphans import sweep_orphans
from seald.store.state_lock import acquire_state_lock
from seald.tokens.hotplug import HotplugWatcher
from seald.tokens.manager import TokenManager
from seald.tokens.skf import SkfError, SkfLibrary
from seald.tokens.skf_backend import SkfSealBinding, SkfTokenManager

log = get_logger("seald")

MAX_MESSAGE_BYTES = 4 * 1024 * 1024  # inbound: chunks are 256 KiB; nothing legitimate is bigger
# Outbound: a SealRequest carries every document and each approval's signed statement,
# which lists every document hash: 10,000 documents with two approvals are ~4.2 MB
# (issue 20; config caps max_documents_per_request so one stays well below this).
MAX_SEND_MESSAGE_BYTES = 32 * 1024 * 1024
EXPIRY_INTERVAL_S = 30.0
HEALTH_INTERVAL_S = 1.0
CUSTODY_INTERVAL_S = 15.0  # R08 hours / same-day return and the idle lock are checked this often
SHUTDOWN_GRACE_S = 20.0  # signatures in flight at SIGTERM; TimeoutStopSec=30s covers it
RPC_GRACE_S = 5.0  # in-flight RPCs (e.g. watch streams) at SIGTERM, then cancelled

SERVICE_NAMES = (
    requests_pb2.DESCRIPTOR.services_by_name["SealRequestService"].full_name,
    tokens_pb2.DESCRIPTOR.services_by_name["TokenService"].full_name,
    seals_pb2.DESCRIPTOR.services_by_name["SealRegistryService"].full_name,
    verify_pb2.DESCRIPTOR.services_by_name["VerifyService"].full_name,
    audit_pb2.DESCRIPTOR.services_by_name["AuditService"].full_name,
    webauthn_pb2.DESCRIPTOR.services_by_name["WebAuthnService"].full_name,
)


def seal_health_name(seal_id: str) -> str:
    """Per-seal health service name: SERVING only if that seal can sign now."""
    return f"seal/{seal_id}"


def custody_interval(config: Config) -> float:
    """Seconds between custody checks: often enough that an idle lock is late by at most half."""
    interval = CUSTODY_INTERVAL_S
    if config.tokens.idle_lock_minutes > 0:
        interval = min(interval, max(0.5, config.tokens.idle_lock_minutes * 60 / 2))
    return interval


def load_seal_certificates(config: Config) -> dict[str, bytes]:
    certificates = {}
    for seal_id, seal in config.seals.items():
        if seal.certificate is None:
            continue  # a new seal: its certificate comes through ImportSealCertificate
        try:
            cert = x509.load_pem_x509_certificate(seal.certificate.read_bytes())
        except ValueError as ex:
            raise ConfigError(
                f"{config.path}: seal[{seal_id}].certificate {seal.certificate} is not a PEM certificate"
            ) from ex
        certificates[seal_id] = cert.public_bytes(Encoding.DER)
    return certificates


def _skf_tokens(
    config: Config, certificates: dict[str, bytes], clock: Callable[[], datetime]
) -> SkfTokenManager | None:
    """The SKF backend for the config's sm2 seals (token_serial = DEVINFO serial,
    key_label = container, skf_application = application), or None without any."""
    bindings = {
        seal_id: SkfSealBinding(seal_id, sc.token_serial, sc.token_label, sc.skf_application, sc.key_label)
        for seal_id, sc in config.seals.items()
        if sc.algorithm == "sm2" and not sc.pkcs11_sm2_profile  # the others: PKCS#11, TokenManager
    }
    if not bindings or config.skf is None:
        return None
    try:
        library = SkfLibrary(str(config.skf.library))
    except (OSError, SkfError) as ex:
        raise ConfigError(f"{config.path}: skf.library {config.skf.library} cannot be loaded: {ex}") from ex
    registered = {seal_id: certificates[seal_id] for seal_id in bindings if seal_id in certificates}
    return SkfTokenManager(library, bindings, registered, clock=clock)


class Daemon:
    def __init__(
        self,
        config: Config,
        *,
        clock: Clock = real_clock,
        hooks: Hooks = NO_HOOKS,
        custody_interval_s: float | None = None,
    ) -> None:
        """``clock`` is the custody and request clock (the ledger keeps real time);
        ``hooks`` and ``custody_interval_s`` exist for the test entry point only
        (tests/seald_under_test.py): the shipped ``main`` passes neither."""
        self.config = config
        self.notifier = SystemdNotifier()
        self.ledger = Ledger(config.server.host_name, lambda: datetime.now(UTC))
        self.store = Store(config.store.state_dir, self.ledger, hooks=hooks)
        self._custody_interval_s = custody_interval_s
        self.tokens_certificates = load_seal_certificates(config)
        self.skf_tokens = _skf_tokens(config, self.tokens_certificates, clock)
        self.tokens = TokenManager(
            config.pkcs11.module, config.seals, self.tokens_certificates, clock=clock, skf=self.skf_tokens
        )
        self.services = build_services(config, self.store, self.tokens, clock, hooks)
        self.signer = self.services.signer
        self.recorder = self.services.recorder
        self.audit_ops = AuditOperations(
            self.store,
            config.server.host_name,
            lambda: datetime.now(UTC),
            self._audit_writable_again,
            directory=config.audit_dir,
            tsa_url=config.audit.tsa_url if config.audit.timestamp_checkpoints else "",
            tsa_roots=config.audit.tsa_roots,
        )
        self.audit_ops.quotas = lambda: {
            sid: (sc.quotas, sc.hours.tz) for sid, sc in self.services.live.current.seals.items()
        }
        # Issue 16: archive timestamp renewal over the live config ([archive], [trust]).
        self.archive = ArchiveRenewer(self.store, clock, lambda: self.services.live.current)
        parts = self.services
        self.gate = Gate(
            parts.live, parts.admission, parts.recorder, parts.metrics, web_sessions=parts.webauthn
        )
        # The asyncio flavour: its set() is a coroutine, safe to call from the loop.
        # Per-seal entries and reflection only for allow-listed principals (api/probes.py).
        self.health: Any = GuardedHealth(self.gate)
        self.server: grpc.aio.Server | None = None
        self.port = 0
        self._tasks: list[asyncio.Task[Any]] = []
        self._stop = asyncio.Event()
        self.hotplug: HotplugWatcher | None = None  # set when [tokens].models is configured
        self.metrics = self.services.metrics
        self.metrics_port = 0
        self._reload_lock = asyncio.Lock()
        self._reloads: set[asyncio.Task[bool]] = set()

    def _credentials(self) -> grpc.ServerCredentials:
        server = self.config.server
        return grpc.ssl_server_credentials(
            [(server.tls_key.read_bytes(), server.tls_cert.read_bytes())],
            root_certificates=server.client_ca.read_bytes(),
            require_client_auth=True,  # mutual TLS only: there is no insecure port
        )

    async def start(self) -> None:
        # Subscribed before recover(): requests recovered as signed count as seals applied.
        self._tasks.append(asyncio.create_task(self._feed_metrics(), name="metrics-feed"))
        await asyncio.sleep(0)
        await self.store.open()
        head = await self.audit_ops.start()  # chain verified against the latest signed checkpoint
        if not head.ok:
            raise ConfigError(
                f"the audit chain in {self.store.db_path} does not verify: {head.problem}; "
                "refusing to start. Restore a verified backup"
            )
        # Before recovery and before the server: nothing can be uploading yet.
        uploads, documents, partials = await self.store.call(lambda: sweep_orphans(self.store))
        if uploads or documents or partials:
            log.warning(
                "store.orphans_removed",
                uploads=uploads,
                document_directories=documents,
                sealing_temp_files=partials,
            )
        await self.signer.recover()
        await self.services.custody.open()
        await self.services.webauthn.open()
        await self.tokens.refresh()  # tokens already inserted are found at start
        if self.skf_tokens is not None:  # SKF_WaitForDevEvent beside udev (issue 19)
            self.skf_tokens.start_presence(asyncio.get_running_loop())
        # Issue 19: each GB/T 38540 seal's SES_Seal made (configured certificate) or remade
        # (its face or validity changed in the config) before anything can seal.
        await self.services.ses_seals.bring_up_to_date()
        if self.config.tokens.models:
            self.hotplug = HotplugWatcher(
                self.tokens,
                self.config.tokens.models,
                {s.token_serial: s.seal_id for s in self.config.seals.values()},
            )
            self.hotplug.start()
        self._tasks.append(
            asyncio.create_task(
                self._periodic(self.services.custody.tick, self._custody_interval()), name="custody"
            )
        )
        server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_send_message_length", MAX_SEND_MESSAGE_BYTES),
                ("grpc.so_reuseport", 0),
            ]
        )
        self._add_servicers(server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        reflection_pb2_grpc.add_ServerReflectionServicer_to_server(
            GuardedReflection(
                self.gate,
                (
                    *SERVICE_NAMES,
                    health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                    reflection.SERVICE_NAME,
                ),
            ),
            server,
        )
        self.port = server.add_secure_port(self.config.server.listen, self._credentials())
        if self.port == 0:
            raise ConfigError(
                f"{self.config.path}: cannot listen on {self.config.server.listen}; is the port in use?"
            )
        await server.start()
        self.server = server
        await self._update_health()
        (self.config.store.state_dir / "seald.port").write_text(f"{self.port}\n")
        await self.recorder.audit(
            AuditEvent(
                event="daemon.started",
                outcome="started",
                details={"port": self.port, "audit_head": head.head_sequence},
            )
        )
        if self.config.metrics.listen is not None:
            host, port = split_listen(self.config.metrics.listen)
            self.metrics.attach(self, asyncio.get_running_loop())
            try:
                self.metrics_port = self.metrics.serve(host, port)
            except OSError as ex:
                raise ConfigError(
                    f"{self.config.path}: cannot serve metrics on {self.config.metrics.listen} "
                    f"({ex.strerror}); free the port or change [metrics] listen"
                ) from ex
            log.info("metrics.serving", listen=self.config.metrics.listen, port=self.metrics_port)
        self._tasks += [
            asyncio.create_task(self.signer.run(), name="signer"),
            asyncio.create_task(
                self._periodic(self.services.expiry.expire_due, EXPIRY_INTERVAL_S), name="expiry"
            ),
            asyncio.create_task(self._periodic(self._update_health, HEALTH_INTERVAL_S), name="health"),
            # Issue 17: delegations past their range end, and their approvals are void.
            asyncio.create_task(
                self._periodic(self.services.workflow.sweep, EXPIRY_INTERVAL_S), name="delegations"
            ),
            asyncio.create_task(
                self._periodic(self.audit_ops.checkpoint, self.config.audit.checkpoint_interval_s),
                name="checkpoint",
            ),
        ]
        if self.services.deliverer is not None:  # issue 17: webhooks, off the signing path
            self.services.deliverer.start()
        interval = self.notifier.watchdog_interval()
        if interval:
            self._tasks.append(asyncio.create_task(self._watchdog(interval), name="watchdog"))
        self.signer.wake()
        log.info(
            "seald.ready",
            listen=self.config.server.listen,
            port=self.port,
            seals=sorted(self.config.seals),
            audit_records=head.records_checked,
        )
        self.notifier.ready(f"serving on port {self.port}")

    def _add_servicers(self, server: grpc.aio.Server) -> None:
        """One servicer per gRPC service, each given the parts it uses."""
        parts = self.services
        gate = self.gate
        webauthn_pb2_grpc.add_WebAuthnServiceServicer_to_server(
            WebAuthnServicer(gate, registry=parts.webauthn), server
        )
        requests_pb2_grpc.add_SealRequestServiceServicer_to_server(
            SealRequestServicer(
                gate,
                requests=parts.requests,
                catalog=parts.catalog,
                store=self.store,
                previews=parts.previews,
                audit_ops=self.audit_ops,
            ),
            server,
        )
        tokens_pb2_grpc.add_TokenServiceServicer_to_server(
            TokenServicer(
                gate,
                catalog=parts.catalog,
                tokens=self.tokens,
                token_service=parts.token_service,
                custody=parts.custody,
                readiness=parts.readiness,
            ),
            server,
        )
        seals_pb2_grpc.add_SealRegistryServiceServicer_to_server(
            SealRegistryServicer(
                gate,
                catalog=parts.catalog,
                tokens=self.tokens,
                custody=parts.custody,
                admin=parts.seal_admin,
                seal_image=parts.signer.seal_image,
                workflow=parts.workflow,
                impressions=parts.impressions,
                deliverer=parts.deliverer,
                clock=parts.clock,
            ),
            server,
        )
        verify_pb2_grpc.add_VerifyServiceServicer_to_server(
            VerifyServicer(gate, store=self.store, tokens=self.tokens), server
        )
        audit_pb2_grpc.add_AuditServiceServicer_to_server(
            AuditServicer(gate, store=self.store, audit_ops=self.audit_ops, archive=self.archive), server
        )

    def _custody_interval(self) -> float:
        return self._custody_interval_s or custody_interval(self.config)

    async def _periodic(self, fn: Any, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await fn()
            except SealError as ex:
                log.warning("periodic.failed", task=getattr(fn, "__name__", "?"), reason=ex.reason)

    async def _watchdog(self, interval: float) -> None:
        # Sent from the event loop itself: a stuck loop stops the pings and systemd restarts us.
        while True:
            self.notifier.watchdog()
            await asyncio.sleep(interval)

    async def _update_health(self) -> None:
        serving = health_pb2.HealthCheckResponse.SERVING
        not_serving = health_pb2.HealthCheckResponse.NOT_SERVING
        await self.audit_ops.probe()
        await self.health.set("", serving if self.store.writable else not_serving)
        for seal_id in self.config.seals:
            ready, _ = self.services.readiness(seal_id)
            await self.health.set(seal_health_name(seal_id), serving if ready else not_serving)

    async def _audit_writable_again(self) -> None:
        # Requests left SIGNING by a failed result write are resolved as after a crash.
        if not self.signer.in_flight:
            await self.signer.recover()
        self.signer.wake()

    # -- metrics -----------------------------------------------------------------------------
    async def snapshot(self) -> Snapshot:
        """State gauges for a scrape (seald.runtime.metrics calls this on the loop)."""
        now = datetime.now(UTC)
        counts = await self.store.counts(now)
        snap = Snapshot(
            requests_by_state=counts.requests_by_state,
            pending_by_seal=counts.pending_by_seal,
            audit_records=counts.audit_records,
            last_checkpoint_age_s=counts.last_checkpoint_age_s,
            notify_queue_depth=counts.notify_queue_depth,
            notify_oldest_undelivered_s=counts.notify_oldest_undelivered_s,
            notify_dead_letters=counts.notify_dead_letters,
        )
        for seal_id in self.config.seals:
            state = self.tokens.state(seal_id)
            snap.token_present[seal_id] = state.present
            snap.token_unlocked[seal_id] = state.unlocked
            snap.token_return_overdue[seal_id] = self.services.custody.return_overdue(seal_id)
        snap.open_streams = self.services.admission.open_streams.total
        return snap

    async def _feed_metrics(self) -> None:
        async with self.recorder.request_events.subscribe() as events:
            while True:
                event, request = await events.get()
                self.metrics.request_event(
                    event, request.seal_id, request.request_id, len(request.documents)
                )

    # -- SIGHUP: reload ------------------------------------------------------------------------
    def request_reload(self) -> None:
        task = asyncio.create_task(self.reload(), name="reload")
        self._reloads.add(task)
        task.add_done_callback(self._reloads.discard)

    async def reload(self) -> bool:
        """Load and validate the config file again; swap it in whole, or keep the old one."""
        async with self._reload_lock:
            if self.server is None or self._stop.is_set():
                log.warning("config.reload_ignored", why="not serving (starting or stopping)")
                return False
            self.notifier.notify("RELOADING=1", f"MONOTONIC_USEC={time.monotonic_ns() // 1000}")
            try:
                return await self._reload()
            finally:
                self.notifier.ready(f"serving on port {self.port}")

    async def _reload(self) -> bool:
        path = self.config.path
        loop = asyncio.get_running_loop()

        def _load() -> tuple[str, Config, list[str]]:
            digest = config_digest(path.read_bytes())
            new = load_config(path)
            changes = restart_only_changes(
                self.config, new, self.tokens_certificates, load_seal_certificates(new)
            )
            return digest, new, changes

        try:
            digest, new, changes = await loop.run_in_executor(None, _load)
        except (ConfigError, OSError) as ex:
            await self._reload_refused("invalid_config", str(ex), "")
            return False
        except Exception as ex:  # fail closed: whatever went wrong, the old config stays
            log.exception("config.reload_failed")
            await self._reload_refused("internal", f"reload failed ({type(ex).__name__})", "")
            return False
        if changes:
            await self._reload_refused(
                "restart_required",
                "these settings are read only at start: "
                + ", ".join(changes)
                + "; run systemctl restart seald to apply them",
                digest,
            )
            return False
        self.config = new
        self.services.live.current = new
        self.signer.clear_images()  # display name / organisation may have changed
        self.metrics.config_reload("reloaded")
        with contextlib.suppress(SealError):
            await self.recorder.audit(
                AuditEvent(
                    event="config.reloaded",
                    outcome="reloaded",
                    details={
                        "config_sha256": digest,
                        "principals": len(new.principals),
                        "seals": len(new.seals),
                    },
                )
            )
        log.info("config.reloaded", config_sha256=digest, principals=len(new.principals))
        # Issue 19: a reloaded name, look or validity of a GB/T 38540 seal = a new SES_Seal.
        await self.services.ses_seals.bring_up_to_date()
        await self._update_health()
        self.signer.wake()
        return True

    async def _reload_refused(self, reason: str, problem: str, digest: str) -> None:
        # The old configuration stays in force; the operator reads why in the log.
        self.metrics.config_reload("refused")
        log.error("config.reload_refused", reason=reason, problem=problem)
        with contextlib.suppress(SealError):
            await self.recorder.audit(
                AuditEvent(
                    event="config.reload_refused",
                    outcome="refused",
                    reason=reason,
                    details={"problem": problem[:1000], "config_sha256": digest},
                )
            )

    # -- SIGTERM: graceful stop ------------------------------------------------------------------
    def request_stop(self) -> None:
        self._stop.set()

    async def wait_stopped(self) -> None:
        await self._stop.wait()

    async def stop(self) -> None:
        """Refuse new calls, let signatures in flight finish (bounded), record, close."""
        self.notifier.stopping()
        self.signer.stop_starting()  # no new signature starts from here on
        in_flight = self.signer.in_flight
        log.info("seald.stopping", signatures_in_flight=len(in_flight))
        with contextlib.suppress(SealError):
            await self.recorder.audit(
                AuditEvent(
                    event="daemon.stopping",
                    outcome="stopping",
                    details={"signatures_in_flight": len(in_flight)},
                )
            )
        for task in self._tasks:
            if task.get_name() != "watchdog":  # keep pinging while we drain
                task.cancel()
        rpcs_stopped = (
            asyncio.create_task(self.server.stop(RPC_GRACE_S)) if self.server is not None else None
        )
        # Past the grace: the request stays SIGNING with its intent record, no result is
        # released, and recover() at the next start resolves it from the files on disk.
        abandoned = await self.signer.drain(asyncio.get_running_loop().time() + SHUTDOWN_GRACE_S)
        self.services.workers.shutdown()
        if self.services.deliverer is not None:
            await self.services.deliverer.stop()  # undelivered events stay in the outbox
        if rpcs_stopped is not None:
            await rpcs_stopped
        with contextlib.suppress(SealError):
            await self.recorder.audit(
                AuditEvent(
                    event="daemon.stopped",
                    outcome="stopped",
                    details={"signatures_abandoned": abandoned},
                )
            )
            await self.audit_ops.checkpoint()  # the clean shutdown's head, signed
        if self.hotplug is not None:
            self.hotplug.stop()
        for task in self._tasks:
            task.cancel()
        self.metrics.close()
        self.services.ses_seals.close()
        await self.tokens.close()
        await self.store.close()
        log.info("seald.stopped", signatures_abandoned=abandoned)


SWITCH_INTERVAL_S = 0.001


async def serve(
    config: Config,
    *,
    clock: Clock = real_clock,
    hooks: Hooks = NO_HOOKS,
    custody_interval_s: float | None = None,
) -> int:
    daemon = Daemon(config, clock=clock, hooks=hooks, custody_interval_s=custody_interval_s)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, daemon.request_stop)
    # SIGHUP = reload (ExecReload=); one that arrives while starting is logged and ignored.
    loop.add_signal_handler(signal.SIGHUP, daemon.request_reload)
    await daemon.start()
    await daemon.wait_stopped()
    await daemon.stop()
    return 0


def main(
    argv: list[str] | None = None,
    *,
    clock: Clock = real_clock,
    hooks: Hooks = NO_HOOKS,
    custody_interval_s: float | None = None,
) -> int:
    """The ``seald`` command. The keywords reach :class:`Daemon`; only the test entry
    point (tests/seald_under_test.py) gives them, never the console script."""
    parser = argparse.ArgumentParser(prog="seald", description="Electronic-seal signing appliance daemon")
    parser.add_argument("--config", type=Path, default=Path("/etc/seald/seald.toml"))
    parser.add_argument("--check-config", action="store_true", help="validate the config and exit")
    parser.add_argument("--backup", type=Path, metavar="FILE", help="online backup of the state database")
    parser.add_argument("--restore", type=Path, metavar="FILE", help="verify a backup and restore it")
    args = parser.parse_args(argv)
    bound_native_heap()  # before any thread: see runtime/memory.py (issue 20)
    configure_logging()
    try:
        config = load_config(args.config)
        if args.check_config:
            load_seal_certificates(config)
            print(f"{config.path}: OK ({len(config.seals)} seals, {len(config.principals)} principals)")
            return 0
        if args.backup is not None:
            return backup_cli.run_backup(config, args.backup)
        if args.restore is not None:
            return backup_cli.run_restore(config, args.restore)
        lock = acquire_state_lock(config.store.state_dir)
    except ConfigError as ex:
        print(f"seald: configuration error: {ex}", file=sys.stderr)
        return 78  # EX_CONFIG: systemd will not restart-loop on a broken config
    # The event loop hands work to the store, token and worker-pool threads; a thread
    # waiting for the GIL waits up to the switch interval (5 ms by default) while another
    # runs Python. A request's hand-offs meet exactly that (issue 8 latency): 1 ms.
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    try:
        return asyncio.run(
            serve(config, clock=clock, hooks=hooks, custody_interval_s=custody_interval_s)
        )
    except ConfigError as ex:
        log.error("seald.start_failed", error=str(ex))
        print(f"seald: {ex}", file=sys.stderr)
        return 78
    finally:
        lock.close()
        with contextlib.suppress(OSError):
            os.unlink(config.store.state_dir / "seald.port")


if __name__ == "__main__":
    sys.exit(main())
