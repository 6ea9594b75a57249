"""A token re-inserted while another seal is unlocked (R07, R15), real SoftHSM in process.

SoftHSM reads a token directory that vanished as a broken token, and lists it again only
after C_Finalize/C_Initialize, which would log out every other seal. So the daemon leaves
the other seals unlocked, says why the re-inserted token is not ready (naming them), and
re-initialises the moment the last of them locks. Removal here is what the udev handler
does (mark_removed, then a slot-list read) with the token directory moved out; the
umockdev tests drive the same path from real uevents.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fixture_layout import SealFixtures

from seald.config import load_config
from seald.runtime.daemon import load_seal_certificates
from seald.tokens.manager import TokenManager
from seald_testing.tokens import token_dir


def test_r07_token_reinserted_while_another_seal_is_unlocked_waits_for_its_lock_and_says_why(
    fresh_seal_fixtures: SealFixtures,
) -> None:
    fx = fresh_seal_fixtures
    contract_dir = token_dir(fx, "contract")
    parked = fx.root / "parked-contract"
    serial = fx.seals["contract"].token_serial

    async def run() -> None:
        config = load_config(fx.config)
        tokens = TokenManager(fx.module, config.seals, load_seal_certificates(config))
        await tokens.rescan(None)
        await tokens.unlock("official", fx.seals["official"].user_pin, "liu.yang")

        contract_dir.rename(parked)  # pulled out; udev says so; the slot list is read
        tokens.mark_removed(serial)
        await tokens.refresh()
        assert not tokens.state("contract").present
        parked.rename(contract_dir)  # plugged back in
        await tokens.rescan(serial)

        waiting = tokens.state("contract")
        assert not waiting.present
        assert waiting.unlisted_until_locked == ("official",)
        assert "plugged in" in waiting.not_ready_reason
        assert "official" in waiting.not_ready_reason
        assert "sealctl token lock" in waiting.not_ready_reason
        # The other seal was not logged out behind its custodian's back.
        assert tokens.state("official").unlocked
        assert await tokens.with_session("official", lambda session: session is not None)

        await tokens.refresh()  # an ordinary status read changes nothing while it is held
        assert not tokens.state("contract").present

        await tokens.lock("official")
        ready = tokens.state("contract")
        assert ready.present and not ready.unlocked
        assert ready.unlisted_until_locked == ()
        assert "plugged in" not in ready.not_ready_reason
        await tokens.unlock("contract", fx.seals["contract"].user_pin, "liu.yang")
        assert await tokens.with_session("contract", lambda session: session is not None)
        await tokens.close()

    asyncio.run(run())


def test_r15_token_pulled_again_while_waiting_to_be_read_is_simply_absent(
    fresh_seal_fixtures: SealFixtures,
) -> None:
    fx = fresh_seal_fixtures
    contract_dir = token_dir(fx, "contract")
    parked = fx.root / "parked-contract"
    serial = fx.seals["contract"].token_serial

    async def run() -> Any:
        config = load_config(fx.config)
        tokens = TokenManager(fx.module, config.seals, load_seal_certificates(config))
        await tokens.rescan(None)
        await tokens.unlock("official", fx.seals["official"].user_pin, "liu.yang")
        contract_dir.rename(parked)
        tokens.mark_removed(serial)
        await tokens.refresh()
        parked.rename(contract_dir)
        await tokens.rescan(serial)
        assert tokens.state("contract").unlisted_until_locked == ("official",)

        contract_dir.rename(parked)  # out again before anyone locked
        tokens.mark_removed(serial)
        gone = tokens.state("contract")
        assert gone.unlisted_until_locked == ()
        assert "not inserted" in gone.not_ready_reason
        await tokens.lock("official")  # nothing waits any more: still absent, not listed
        assert not tokens.state("contract").present
        await tokens.close()

    asyncio.run(run())
