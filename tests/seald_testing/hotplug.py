"""USB token hot-plug with umockdev: a mock udev device per token, its SoftHSM directory
moved in and out. Only under umockdev-wrapper (its LD_PRELOAD); scripts/test.sh runs the
tests marked `umockdev` that way.
"""

from __future__ import annotations

import itertools
import os
import tempfile
from collections.abc import Callable
from typing import Any

import pytest
from fixture_layout import SealFixtures

from seald_testing.tokens import token_dir

MODEL = ("096e", "0807")
DEVICE_NUMBERS = itertools.count()
# Every testbed made in this process, kept alive to the end: a Testbed's destructor
# unsets UMOCKDEV_DIR (and deletes its tree), so an earlier module's testbed collected in
# the middle of a later module switched umockdev off there and every uevent after it was
# dropped ("uevent_sender_send: No such device"; the soak, last in the run, saw it).
_TESTBEDS: list[Any] = []


def _stderr_of(call: Callable[[], Any]) -> tuple[Any, str]:
    """Run ``call`` with fd 2 captured (umockdev reports a failed send only there)."""
    with tempfile.TemporaryFile() as captured:
        saved = os.dup(2)
        try:
            os.dup2(captured.fileno(), 2)
            result = call()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        captured.seek(0)
        text = captured.read().decode("utf-8", "replace")
    if text:
        os.write(2, text.encode())  # still shown in the test's output
    return result, text


def _sent(action: str, send: Callable[[], Any]) -> Any:
    """``send()``, which emits a uevent; a uevent umockdev says it did not send fails the
    test here, naming it, instead of as a token that never changes state."""
    result, text = _stderr_of(send)
    if "uevent_sender_send" in text:
        raise AssertionError(
            f"umockdev did not send the {action} uevent (UMOCKDEV_DIR="
            f"{os.environ.get('UMOCKDEV_DIR', '<unset>')}): {text.strip()}"
        )
    return result


def make_testbed() -> Any:
    if "umockdev" not in os.environ.get("LD_PRELOAD", ""):
        pytest.fail("run under umockdev-wrapper (scripts/test.sh does); umockdev is required")
    import gi  # noqa: PLC0415  (only under the wrapper)

    gi.require_version("UMockdev", "1.0")
    from gi.repository import UMockdev  # noqa: PLC0415

    bed = UMockdev.Testbed.new()
    _TESTBEDS.append(bed)
    return bed


class Usb:
    """A USB token: its SoftHSM directory and its mock udev device."""

    def __init__(self, bed: Any, fx: SealFixtures, seal_id: str, serial: str | None = None) -> None:
        self.bed, self.dir = bed, token_dir(fx, seal_id)
        self.parked = fx.root / f"parked-{self.dir.name}"
        self.serial = serial if serial is not None else fx.seals[seal_id].token_serial
        self.path = ""

    def insert(self) -> None:
        if self.parked.exists():
            self.parked.rename(self.dir)
        self.path = _sent(
            "add",
            lambda: self.bed.add_device(
                "usb",
                f"token-{self.serial}-{next(DEVICE_NUMBERS)}",  # sysfs names must never repeat
                None,
                ["idVendor", MODEL[0], "idProduct", MODEL[1], "serial", self.serial],
                [
                    "ID_VENDOR_ID",
                    MODEL[0],
                    "ID_MODEL_ID",
                    MODEL[1],
                    "ID_SERIAL_SHORT",
                    self.serial,
                    "DEVTYPE",
                    "usb_device",
                ],
            ),
        )

    def remove(self) -> None:
        _sent("remove", lambda: self.bed.uevent(self.path, "remove"))
        self.bed.remove_device(self.path)
        self.dir.rename(self.parked)
