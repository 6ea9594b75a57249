"""Issue 3: USB hot-plug gates signing (R07, R15), in process, under umockdev-wrapper.

Real pieces: UMockdev testbed uevents read by pyudev on the asyncio loop, SoftHSM tokens
moved in and out of the token directory, python-pkcs11 sessions, the real TokenManager.
Run: umockdev-wrapper .venv/bin/pytest -m umockdev (scripts/test.sh does).
"""

from __future__ import annotations

import asyncio
import shutil
from typing import Any

import pytest
from fixture_layout import SealFixtures

from seald.config import load_config
from seald.domain.errors import PreconditionFailed
from seald.tokens.hotplug import HotplugWatcher
from seald.tokens.manager import TokenManager
from seald_testing.hotplug import DEVICE_NUMBERS, Usb
from seald_testing.tokens import token_dir

pytestmark = pytest.mark.umockdev








async def wait_for(predicate: Any, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.005)


def manager(fx: SealFixtures) -> tuple[TokenManager, dict[str, bytes]]:
    from seald.runtime.daemon import load_seal_certificates  # noqa: PLC0415

    config = load_config(fx.config)
    certs = load_seal_certificates(config)
    return TokenManager(fx.module, config.seals, certs), certs


def sign_probe(session: Any) -> bool:
    return session is not None


def test_r07_insert_unlock_sign_remove_refused_reinsert_works(
    fresh_seal_fixtures: SealFixtures, bed: Any
) -> None:
    fx = fresh_seal_fixtures
    contract = Usb(bed, fx, "contract")
    contract.dir.rename(contract.parked)  # start with the token out of the host

    async def run() -> None:
        tokens, _ = manager(fx)
        watcher = HotplugWatcher(tokens, {"096e:0807"}, {fx.seals["contract"].token_serial: "contract"})
        watcher.start()
        await tokens.rescan(None)
        assert not tokens.state("contract").present
        contract.insert()
        await wait_for(lambda: tokens.state("contract").present)
        await tokens.unlock("contract", fx.seals["contract"].user_pin, "liu.yang")
        assert await tokens.with_session("contract", sign_probe)
        contract.remove()
        await wait_for(lambda: not tokens.state("contract").present)
        with pytest.raises(PreconditionFailed) as refused:
            await tokens.with_session("contract", sign_probe)
        assert refused.value.reason == "token_absent"
        assert "seal-contract" in refused.value.message and "not inserted" in refused.value.message
        contract.insert()
        await wait_for(lambda: tokens.state("contract").present)
        await watcher.settle()
        await tokens.unlock("contract", fx.seals["contract"].user_pin, "liu.yang")
        assert await tokens.with_session("contract", sign_probe)
        watcher.stop()
        await tokens.close()

    asyncio.run(run())


def test_r15_removal_during_a_signature_fails_closed(fresh_seal_fixtures: SealFixtures, bed: Any) -> None:
    fx = fresh_seal_fixtures
    contract = Usb(bed, fx, "contract")
    contract.insert()

    async def run() -> None:
        tokens, _ = manager(fx)
        watcher = HotplugWatcher(tokens, {"096e:0807"}, {fx.seals["contract"].token_serial: "contract"})
        watcher.start()
        await tokens.refresh()
        await tokens.unlock("contract", fx.seals["contract"].user_pin, "liu.yang")
        started = asyncio.Event()
        loop = asyncio.get_running_loop()

        def slow_sign(session: Any) -> str:
            loop.call_soon_threadsafe(started.set)
            import time  # noqa: PLC0415

            time.sleep(0.3)  # the key operation is running when the token is pulled
            return "signature"

        signing = asyncio.create_task(tokens.with_session("contract", slow_sign))
        await started.wait()
        contract.remove()
        with pytest.raises(PreconditionFailed) as refused:
            await signing
        assert refused.value.reason == "token_absent"
        watcher.stop()
        await tokens.close()

    asyncio.run(run())


def test_r15_unknown_usb_device_ignored_and_unknown_serial_is_rogue(
    fresh_seal_fixtures: SealFixtures, bed: Any
) -> None:
    fx = fresh_seal_fixtures
    contract = Usb(bed, fx, "contract")
    contract.insert()
    rogues: list[str] = []

    async def run() -> None:
        tokens, _ = manager(fx)
        watcher = HotplugWatcher(
            tokens,
            {"096e:0807"},
            {fx.seals["contract"].token_serial: "contract"},
            on_rogue=lambda e: rogues.append(e.serial),
        )
        watcher.start()
        await tokens.refresh()
        await tokens.unlock("contract", fx.seals["contract"].user_pin, "liu.yang")
        seen = watcher.events_seen
        bed.add_device(
            "usb",
            f"keyboard-{next(DEVICE_NUMBERS)}",
            None,
            ["idVendor", "046d", "idProduct", "c31c"],
            ["ID_VENDOR_ID", "046d", "ID_MODEL_ID", "c31c", "DEVTYPE", "usb_device"],
        )
        await wait_for(lambda: watcher.events_seen > seen)
        path = bed.add_device(
            "usb",
            f"other-token-{next(DEVICE_NUMBERS)}",
            None,
            ["idVendor", "096e", "idProduct", "0807"],
            [
                "ID_VENDOR_ID",
                "096e",
                "ID_MODEL_ID",
                "0807",
                "ID_SERIAL_SHORT",
                "0000deadbeef0000",
                "DEVTYPE",
                "usb_device",
            ],
        )
        await wait_for(lambda: rogues == ["0000deadbeef0000"])
        assert tokens.state("contract").unlocked  # neither event touched the real seal
        bed.uevent(path, "remove")  # an allow-listed model we cannot tie to a seal: fail closed
        await wait_for(lambda: not tokens.state("contract").unlocked)
        watcher.stop()
        await tokens.close()

    asyncio.run(run())


def test_r15_rogue_token_same_label_other_key_is_refused(fresh_seal_fixtures: SealFixtures, bed: Any) -> None:
    """The official token's files relabelled as the contract token: same label and serial, other key."""
    fx = fresh_seal_fixtures
    contract_dir = token_dir(fx, "contract")
    official_dir = token_dir(fx, "official")
    shutil.rmtree(contract_dir)
    # Same label AND serial in the token file: SoftHSM serial comes from the directory name.
    data = (official_dir / "token.object").read_bytes()
    data = data.replace(b"seal-official", b"seal-contract")
    official_dir.rename(contract_dir)
    (contract_dir / "token.object").write_bytes(data)

    async def run() -> None:
        tokens, _ = manager(fx)
        await tokens.rescan(None)
        state = tokens.state("contract")
        assert not state.present and "rogue" in state.rogue_reason
        with pytest.raises(PreconditionFailed) as refused:
            await tokens.with_session("contract", sign_probe)
        assert refused.value.reason == "token_rogue"
        await tokens.close()

    asyncio.run(run())
