"""USB token hot-plug with umockdev: a mock udev device per token, its SoftHSM directory
moved in and out. Only under umockdev-wrapper (its LD_PRELOAD); scripts/test.sh runs the
tests marked `umockdev` that way.
"""

from __future__ import annotations

import itertools
import os
from typing import Any

import pytest
from fixture_layout import SealFixtures

from seald_testing.tokens import token_dir

MODEL = ("096e", "0807")
DEVICE_NUMBERS = itertools.count()


def make_testbed() -> Any:
    if "umockdev" not in os.environ.get("LD_PRELOAD", ""):
        pytest.fail("run under umockdev-wrapper (scripts/test.sh does); umockdev is required")
    import gi  # noqa: PLC0415  (only under the wrapper)

    gi.require_version("UMockdev", "1.0")
    from gi.repository import UMockdev  # noqa: PLC0415

    return UMockdev.Testbed.new()


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
        self.path = self.bed.add_device(
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
        )

    def remove(self) -> None:
        self.bed.uevent(self.path, "remove")
        self.bed.remove_device(self.path)
        self.dir.rename(self.parked)
