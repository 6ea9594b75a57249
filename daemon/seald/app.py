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
import fcntl
import os
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import grpc
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from grpc_health.v1 import _async as health_aio  # what health.aio re-exports
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

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
)
from seald import backup_cli, test_hooks
from seald.api.servicers import (
    AuditServicer,
    SealRegistryServicer,
    SealRequestServicer,
    TokenServicer,
    VerifyServicer,
)
from seald.audit_ops import AuditOperations
from seald.config import Config, load_config
from seald.domain.audit import AuditEvent
from seald.domain.errors import ConfigError, SealError
from seald.logs import configure_logging, get_logger
from seald.metrics import Snapshot, read_store_counts, split_listen
from seald.reload import config_digest, restart_only_changes
from seald.sdnotify import SystemdNotifier
from seald.service import SealService
from seald.store.ledger import Ledger
from seald.store.orphans import sweep_orphans
from seald.store.requests import Store
from seald.tokens.hotplug import HotplugWatcher
from seald.tokens.manager import TokenManager

log = get_logger("seald")

MAX_MESSAGE_BYTES = 4 * 1024 * 1024  # chunks are 256 KiB; nothing legitimate is bigger
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
)


def seal_health_name(seal_id: str) -> str:
    """Per-seal health service name: SERVING only if that seal can sign now."""
    return f"seal/{seal_id}"


def custody_interval(config: Config) -> float:
    """Seconds between custody checks: often enough that an idle lock is late by at most half."""
    interval = CUSTODY_INTERVAL_S
    if config.tokens.idle_lock_minutes > 0:
        interval = min(interval, max(0.5, config.tokens.idle_lock_minutes * 60 / 2))
    return test_hooks.custody_interval(interval)


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


def acquire_state_lock(state_dir: Path) -> IO[str]:
    """One daemon per state directory: a second instance refuses to start."""
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    handle = (state_dir / "seald.lock").open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as ex:
        handle.close()
        raise ConfigError(
            f"another seald is already running on {state_dir}; stop it first (one daemon per state directory)"
        ) from ex
    return handle


class Daemon:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.notifier = SystemdNotifier()
        self.ledger = Ledger(config.server.host_name, lambda: datetime.now(UTC))
        self.store = Store(config.store.state_dir, self.ledger)
        self.tokens_certificates = load_seal_certificates(config)
        # The custody clock: the real time, or a test's moved clock (test_hooks, tests only).
        clock = test_hooks.offset_clock() or (lambda: datetime.now(UTC))
        self.tokens = TokenManager(
            config.pkcs11.module, config.seals, self.tokens_certificates, clock=clock
        )
        self.service = SealService(config, self.store, self.tokens, clock=clock)
        self.audit_ops = AuditOperations(
            self.store,
            config.server.host_name,
            lambda: datetime.now(UTC),
            self._audit_writable_again,
            directory=config.audit_dir,
            tsa_url=config.audit.tsa_url if config.audit.timestamp_checkpoints else "",
            tsa_roots=config.audit.tsa_roots,
        )
        # The asyncio flavour: its set() is a coroutine, safe to call from the loop.
        self.health: Any = health_aio.HealthServicer()
        self.server: grpc.aio.Server | None = None
        self.port = 0
        self._tasks: list[asyncio.Task[Any]] = []
        self._stop = asyncio.Event()
        self.hotplug: HotplugWatcher | None = None  # set when [tokens].models is configured
        self.metrics = self.service.metrics
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
        await self.service.recover()
        await self.service.custody.open()
        await self.tokens.refresh()  # tokens already inserted are found at start
        if self.config.tokens.models:
            self.hotplug = HotplugWatcher(
                self.tokens,
                self.config.tokens.models,
                {s.token_serial: s.seal_id for s in self.config.seals.values()},
            )
            self.hotplug.start()
        self._tasks.append(
            asyncio.create_task(
                self._periodic(self.service.custody.tick, custody_interval(self.config)), name="custody"
            )
        )
        server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                ("grpc.so_reuseport", 0),
            ]
        )
        requests_pb2_grpc.add_SealRequestServiceServicer_to_server(
            SealRequestServicer(self.service, self.audit_ops), server
        )
        tokens_pb2_grpc.add_TokenServiceServicer_to_server(TokenServicer(self.service), server)
        seals_pb2_grpc.add_SealRegistryServiceServicer_to_server(SealRegistryServicer(self.service), server)
        verify_pb2_grpc.add_VerifyServiceServicer_to_server(VerifyServicer(self.service), server)
        audit_pb2_grpc.add_AuditServiceServicer_to_server(AuditServicer(self.service, self.audit_ops), server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        reflection.enable_server_reflection(
            (
                *SERVICE_NAMES,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
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
        await self.service.audit(
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
            asyncio.create_task(self.service.run_signer(), name="signer"),
            asyncio.create_task(self._periodic(self.service.expire_due, EXPIRY_INTERVAL_S), name="expiry"),
            asyncio.create_task(self._periodic(self._update_health, HEALTH_INTERVAL_S), name="health"),
            asyncio.create_task(
                self._periodic(self.audit_ops.checkpoint, self.config.audit.checkpoint_interval_s),
                name="checkpoint",
            ),
        ]
        interval = self.notifier.watchdog_interval()
        if interval:
            self._tasks.append(asyncio.create_task(self._watchdog(interval), name="watchdog"))
        self.service.wake_signer()
        log.info(
            "seald.ready",
            listen=self.config.server.listen,
            port=self.port,
            seals=sorted(self.config.seals),
            audit_records=head.records_checked,
        )
        self.notifier.ready(f"serving on port {self.port}")

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
            ready, _ = self.service.readiness(seal_id)
            await self.health.set(seal_health_name(seal_id), serving if ready else not_serving)

    async def _audit_writable_again(self) -> None:
        # Requests left SIGNING by a failed result write are resolved as after a crash.
        if not self.service._signing_tasks:
            await self.service.recover()
        self.service.wake_signer()

    # -- metrics -----------------------------------------------------------------------------
    async def snapshot(self) -> Snapshot:
        """State gauges for a scrape (seald.metrics calls this on the loop)."""
        now = datetime.now(UTC)
        snap = await self.store.call(lambda: read_store_counts(self.store._connection(), now))
        for seal_id in self.config.seals:
            state = self.tokens.state(seal_id)
            snap.token_present[seal_id] = state.present
            snap.token_unlocked[seal_id] = state.unlocked
            snap.token_return_overdue[seal_id] = self.service.custody.return_overdue(seal_id)
        snap.open_streams = self.service.open_streams.total
        return snap

    async def _feed_metrics(self) -> None:
        async with self.service.request_events.subscribe() as events:
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
        self.service.config = new
        self.service._seal_images.clear()  # display name / organisation may have changed
        self.metrics.config_reload("reloaded")
        with contextlib.suppress(SealError):
            await self.service.audit(
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
        await self._update_health()
        self.service.wake_signer()
        return True

    async def _reload_refused(self, reason: str, problem: str, digest: str) -> None:
        # The old configuration stays in force; the operator reads why in the log.
        self.metrics.config_reload("refused")
        log.error("config.reload_refused", reason=reason, problem=problem)
        with contextlib.suppress(SealError):
            await self.service.audit(
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
        self.service.draining = True  # no new signature starts from here on
        in_flight = [t for t in self.service._signing_tasks if not t.done()]
        log.info("seald.stopping", signatures_in_flight=len(in_flight))
        with contextlib.suppress(SealError):
            await self.service.audit(
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
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SHUTDOWN_GRACE_S
        while pending := [t for t in self.service._signing_tasks if not t.done()]:
            if loop.time() >= deadline:
                break
            await asyncio.wait(pending, timeout=deadline - loop.time())
        # Past the grace: the request stays SIGNING with its intent record, no result is
        # released, and recover() at the next start resolves it from the files on disk.
        abandoned = [t for t in self.service._signing_tasks if not t.done()]
        for task in abandoned:
            task.cancel()
        self.service.seal_workers.shutdown()
        if rpcs_stopped is not None:
            await rpcs_stopped
        with contextlib.suppress(SealError):
            await self.service.audit(
                AuditEvent(
                    event="daemon.stopped",
                    outcome="stopped",
                    details={"signatures_abandoned": len(abandoned)},
                )
            )
            await self.audit_ops.checkpoint()  # the clean shutdown's head, signed
        if self.hotplug is not None:
            self.hotplug.stop()
        for task in self._tasks:
            task.cancel()
        self.metrics.close()
        await self.tokens.close()
        await self.store.close()
        log.info("seald.stopped", signatures_abandoned=len(abandoned))


SWITCH_INTERVAL_S = 0.001


async def serve(config: Config) -> int:
    daemon = Daemon(config)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, daemon.request_stop)
    # SIGHUP = reload (ExecReload=); one that arrives while starting is logged and ignored.
    loop.add_signal_handler(signal.SIGHUP, daemon.request_reload)
    await daemon.start()
    await daemon.wait_stopped()
    await daemon.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="seald", description="Electronic-seal signing appliance daemon")
    parser.add_argument("--config", type=Path, default=Path("/etc/seald/seald.toml"))
    parser.add_argument("--check-config", action="store_true", help="validate the config and exit")
    parser.add_argument("--backup", type=Path, metavar="FILE", help="online backup of the state database")
    parser.add_argument("--restore", type=Path, metavar="FILE", help="verify a backup and restore it")
    args = parser.parse_args(argv)
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
        return asyncio.run(serve(config))
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
