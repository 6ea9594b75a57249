"""Issue 3: time from a USB `remove` uevent to the moment a sign call is refused.

Run under umockdev-wrapper (real uevents read by pyudev on the asyncio loop):
    umockdev-wrapper .venv/bin/python bench/bench_token_removal.py [N]
Prints p50/p99 over N >= 200 removals (target p99 <= 50 ms) and the ratio against an
in-process baseline (TokenManager.mark_removed called directly, no udev).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "softhsm-fixtures"))
from fixture_layout import load_fixtures  # noqa: E402

from seald.config import load_config  # noqa: E402
from seald.domain.errors import PreconditionFailed  # noqa: E402
from seald.runtime.daemon import load_seal_certificates  # noqa: E402
from seald.tokens.hotplug import HotplugWatcher  # noqa: E402
from seald.tokens.manager import TokenManager  # noqa: E402


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def refused(tokens: TokenManager) -> bool:
    try:
        await tokens.with_session("contract", lambda s: None)
    except PreconditionFailed:
        return True
    return False


async def main(n: int) -> None:
    import gi  # noqa: PLC0415

    gi.require_version("UMockdev", "1.0")
    from gi.repository import UMockdev  # noqa: PLC0415

    out = Path(tempfile.mkdtemp(prefix="bench-removal-"))
    subprocess.run([sys.executable, str(ROOT / "softhsm-fixtures/build_fixtures.py"), str(out)], check=True)
    fx = load_fixtures(out)
    os.environ["SOFTHSM2_CONF"] = str(fx.softhsm2_conf)
    config = load_config(fx.config)
    tokens = TokenManager(fx.module, config.seals, load_seal_certificates(config))
    serial = fx.seals["contract"].token_serial
    watcher = HotplugWatcher(tokens, {"096e:0807"}, {serial: "contract"})
    bed = UMockdev.Testbed.new()
    watcher.start()
    await tokens.refresh()
    names = itertools.count()
    pin = fx.seals["contract"].user_pin
    udev_ms: list[float] = []
    direct_ms: list[float] = []
    for i in range(2 * n):
        path = bed.add_device(
            "usb",
            f"tok{next(names)}",
            None,
            ["idVendor", "096e", "idProduct", "0807"],
            [
                "ID_VENDOR_ID",
                "096e",
                "ID_MODEL_ID",
                "0807",
                "ID_SERIAL_SHORT",
                serial,
                "DEVTYPE",
                "usb_device",
            ],
        )
        while not tokens.state("contract").present:
            await asyncio.sleep(0.001)
        await watcher.settle()
        await tokens.unlock("contract", pin, "bench")
        assert not await refused(tokens)
        start = time.perf_counter()
        if i % 2 == 0:
            bed.uevent(path, "remove")
        else:
            tokens.mark_removed(serial)  # baseline: no udev round trip
        while not await refused(tokens):
            await asyncio.sleep(0)
        (udev_ms if i % 2 == 0 else direct_ms).append((time.perf_counter() - start) * 1000)
        bed.remove_device(path)
        await watcher.settle()
    watcher.stop()
    await tokens.close()
    p50, p99 = pct(udev_ms, 50), pct(udev_ms, 99)
    b50, b99 = pct(direct_ms, 50), pct(direct_ms, 99)
    print(f"removals: {len(udev_ms)} via udev, {len(direct_ms)} direct baseline")
    print(f"remove uevent -> sign refused: p50 {p50:.3f} ms, p99 {p99:.3f} ms (target p99 <= 50 ms)")
    print(f"baseline mark_removed -> refused: p50 {b50:.3f} ms, p99 {b99:.3f} ms")
    print(f"ratio udev/baseline: p50 {p50 / b50:.1f}x, p99 {p99 / b99:.1f}x")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 200))
