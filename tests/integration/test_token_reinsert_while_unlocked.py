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
from collections.abc import Awaitable, Callable
from pathlib import Path

from fixture_layout import SealFixtures

from seald.config import load_config
from seald.runtime.daemon import load_seal_certificates
from seald.tokens.manager import TokenManager
from seald_testing.tokens import token_dir


class ContractToken:
    """The contract seal's token, pulled out and put back the way udev reports it."""

    def __init__(self, fx: SealFixtures, tokens: TokenManager) -> None:
        self.dir: Path = token_dir(fx, "contract")
        self.parked = fx.root / "parked-contract"
        self.serial = fx.seals["contract"].token_serial
        self.tokens = tokens

    async def pull_out(self) -> None:
        self.dir.rename(self.parked)
        self.tokens.mark_removed(self.serial)
        await self.tokens.refresh()  # the handler's slot-list read, with the token out

    async def put_back(self) -> None:
        self.parked.rename(self.dir)
        await self.tokens.rescan(self.serial)


async def official_unlocked(fx: SealFixtures) -> TokenManager:
    config = load_config(fx.config)
    tokens = TokenManager(fx.module, config.seals, load_seal_certificates(config))
    await tokens.rescan(None)
    await tokens.unlock("official", fx.seals["official"].user_pin, "liu.yang")
    return tokens


def has_session(session: object) -> bool:
    return session is not None


def run(fx: SealFixtures, scenario: Callable[[TokenManager, ContractToken], Awaitable[None]]) -> None:
    async def main() -> None:
        tokens = await official_unlocked(fx)
        try:
            await scenario(tokens, ContractToken(fx, tokens))
        finally:
            await tokens.close()

    asyncio.run(main())


def test_r07_token_reinserted_while_another_seal_is_unlocked_waits_for_its_lock_and_says_why(
    fresh_seal_fixtures: SealFixtures,
) -> None:
    fx = fresh_seal_fixtures

    async def scenario(tokens: TokenManager, contract: ContractToken) -> None:
        await contract.pull_out()
        assert not tokens.state("contract").present
        await contract.put_back()

        waiting = tokens.state("contract")
        assert not waiting.present
        assert waiting.unlisted_until_locked == ("official",)
        assert "plugged in" in waiting.not_ready_reason
        assert "official" in waiting.not_ready_reason
        assert "sealctl token lock" in waiting.not_ready_reason
        # The other seal was not logged out behind its custodian's back.
        assert tokens.state("official").unlocked
        assert await tokens.with_session("official", has_session)

        await tokens.refresh()  # an ordinary status read changes nothing while it is held
        assert not tokens.state("contract").present

        await tokens.lock("official")
        ready = tokens.state("contract")
        assert ready.present and not ready.unlocked
        assert ready.unlisted_until_locked == ()
        assert "plugged in" not in ready.not_ready_reason
        await tokens.unlock("contract", fx.seals["contract"].user_pin, "liu.yang")
        assert await tokens.with_session("contract", has_session)

    run(fx, scenario)


def test_r15_token_pulled_again_while_waiting_to_be_read_is_simply_absent(
    fresh_seal_fixtures: SealFixtures,
) -> None:
    async def scenario(tokens: TokenManager, contract: ContractToken) -> None:
        await contract.pull_out()
        await contract.put_back()
        assert tokens.state("contract").unlisted_until_locked == ("official",)

        await contract.pull_out()  # out again before anyone locked
        gone = tokens.state("contract")
        assert gone.unlisted_until_locked == ()
        assert "not inserted" in gone.not_ready_reason
        await tokens.lock("official")  # nothing waits any more: still absent
        assert not tokens.state("contract").present

    run(fresh_seal_fixtures, scenario)
