"""USB hot-plug watcher (R07, R15): udev events gate signing the moment a token leaves.

pyudev's netlink monitor is read on the asyncio loop (``loop.add_reader``), so a
``remove`` is handled without a thread hop: the seal is locked before the loop
runs anything else. Presence itself is still decided by the PKCS#11 slot list
(the token must be there AND hold the registered key); udev says *when* to look,
and a removal locks at once without waiting for the slot list.

Which seal a USB device belongs to: its serial (``ID_SERIAL_SHORT``) against the
seals' ``token_serial``. A removal of an allow-listed model whose serial maps to
no seal locks every seal (fail closed: we cannot tell which token left).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

import pyudev

from seald.domain.errors import ConfigError
from seald.runtime.logs import get_logger
from seald.tokens.manager import TokenManager

log = get_logger("seald.hotplug")


@dataclass(frozen=True)
class UsbEvent:
    """One uevent of an allow-listed token model."""

    action: str  # "add" | "remove"
    model: str  # "vendor:product"
    serial: str  # USB serial, "" when the device has none
    seal_id: str  # the seal whose token_serial it is, "" if none


def usb_model(properties: Mapping[str, str]) -> str:
    """Pure: 'vvvv:pppp' from udev properties (ID_VENDOR_ID/ID_MODEL_ID, else PRODUCT)."""
    vendor, product = properties.get("ID_VENDOR_ID", ""), properties.get("ID_MODEL_ID", "")
    if not (vendor and product) and properties.get("PRODUCT"):
        # Kernel form: PRODUCT=96e/807/100 (hex without leading zeros).
        parts = properties["PRODUCT"].split("/")
        if len(parts) >= 2:
            vendor, product = parts[0], parts[1]
    if not (vendor and product):
        return ""
    try:
        return f"{int(vendor, 16):04x}:{int(product, 16):04x}"
    except ValueError:
        return ""


def classify(
    action: str,
    properties: Mapping[str, str],
    models: Collection[str],
    seal_by_serial: Mapping[str, str],
) -> UsbEvent | None:
    """Pure: the event if it concerns an allow-listed token model, else None (ignored)."""
    if action not in ("add", "remove"):
        return None
    if properties.get("DEVTYPE", "usb_device") != "usb_device":
        return None  # interfaces of the same device: one event per device is enough
    model = usb_model(properties)
    if model not in models:
        return None
    serial = properties.get("ID_SERIAL_SHORT", "")
    return UsbEvent(action=action, model=model, serial=serial, seal_id=seal_by_serial.get(serial, ""))


class HotplugWatcher:
    def __init__(
        self,
        tokens: TokenManager,
        models: Collection[str],
        seal_by_serial: Mapping[str, str],
        on_rogue: Callable[[UsbEvent], None] | None = None,
    ) -> None:
        self.tokens = tokens
        self.models = frozenset(models)
        self.seal_by_serial = dict(seal_by_serial)
        self.on_rogue = on_rogue
        self._monitor: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.events_seen = 0

    def start(self) -> list[UsbEvent]:
        """Open the monitor, watch it on the running loop; return allow-listed devices present now."""
        try:
            context = pyudev.Context()
            monitor = pyudev.Monitor.from_netlink(context)
            monitor.filter_by(subsystem="usb")
            monitor.start()
        except (OSError, ImportError) as ex:
            raise ConfigError(
                f"[tokens].models is set but udev events cannot be read ({type(ex).__name__}: {ex}); "
                "run seald where the udev netlink socket is reachable, or remove [tokens].models"
            ) from ex
        self._monitor = monitor
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(monitor.fileno(), self._on_readable)
        present = []
        for device in context.list_devices(subsystem="usb"):
            event = classify("add", dict(device.properties), self.models, self.seal_by_serial)
            if event is not None:
                present.append(event)
                log.info("token.usb_present", model=event.model, seal_id=event.seal_id)
        return present

    def stop(self) -> None:
        if self._monitor is not None and self._loop is not None:
            self._loop.remove_reader(self._monitor.fileno())
        self._monitor = None

    def _on_readable(self) -> None:
        monitor = self._monitor
        if monitor is None:
            return
        while True:
            device = monitor.poll(timeout=0)
            if device is None:
                return
            self.events_seen += 1
            self.handle(device.action or "", dict(device.properties))

    def handle(self, action: str, properties: Mapping[str, str]) -> UsbEvent | None:
        """One uevent. A removal locks synchronously, before this returns."""
        event = classify(action, properties, self.models, self.seal_by_serial)
        if event is None:
            return None  # unknown USB devices are none of our business
        if event.action == "remove":
            locked = self.tokens.mark_removed(event.serial if event.seal_id else None)
            log.info("token.usb_removed", model=event.model, seal_id=event.seal_id, locked=locked)
            # Re-read the slot list too: the token may have been the only one of several.
            self._spawn(self.tokens.refresh())
            return event
        if not event.seal_id:
            log.warning(
                "token.rogue",
                model=event.model,
                usb_serial=event.serial,
                why="allow-listed model with a serial that belongs to no seal",
            )
            if self.on_rogue is not None:
                self.on_rogue(event)
            return event
        log.info("token.usb_added", model=event.model, seal_id=event.seal_id)
        self._spawn(self.tokens.rescan(event.serial))
        return event

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        with contextlib.suppress(asyncio.CancelledError):
            error = task.exception()
            if error is not None:
                log.error("token.rescan_failed", error=type(error).__name__)

    async def settle(self) -> None:
        """Wait for the rescans started by events so far (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
