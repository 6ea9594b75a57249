"""A removal is recorded as a removal (R07, R10): the reason of a refused key operation.

Found by the soak (issue 8): a signature queued on the token's thread when the token
was pulled out was refused as "token_locked", so the ledger's `seal.sign_interrupted`
record named a lock that never happened; and a signature running when it was pulled
failed inside SoftHSM (ObjectHandleInvalid) and was counted as a token fault
("token_error", the request FAILED after three). Real SoftHSM token through the
daemon's TokenManager; removal = `mark_removed` (what the udev watcher calls on a
`remove` uevent) + the token's directory moved away, as in test_token_hotplug.py.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pkcs11
import pytest
from fixture_layout import SealFixtures
from pkcs11 import Mechanism, ObjectClass

from seald.domain.errors import PreconditionFailed
from seald_testing.tokens import token_dir, unlocked_tokens


@pytest.mark.parametrize("how", ["removed", "locked"])
def test_r07_r10_queued_key_operation_refused_with_the_real_reason(
    fresh_seal_fixtures: SealFixtures, how: str
) -> None:
    fx = fresh_seal_fixtures
    running, release = threading.Event(), threading.Event()
    queued_ran: list[bool] = []

    def slow_sign(session: object) -> str:
        running.set()
        assert release.wait(10)
        return "signature"

    def queued_sign(session: object) -> str:
        queued_ran.append(True)
        return "signature"

    async def run() -> tuple[BaseException | str, BaseException | str]:
        tokens = await unlocked_tokens(fx)
        try:
            first = asyncio.create_task(tokens.with_session("contract", slow_sign))
            while not running.is_set():
                await asyncio.sleep(0.002)
            second = asyncio.create_task(tokens.with_session("contract", queued_sign))
            await asyncio.sleep(0.05)  # the second waits behind the first on the token thread
            if how == "removed":
                assert tokens.mark_removed(fx.seals["contract"].token_serial) == ["contract"]
            else:
                lock = asyncio.create_task(tokens.lock("contract"))
                await asyncio.sleep(0.05)
            release.set()
            outcomes = await asyncio.gather(first, second, return_exceptions=True)
            if how == "locked":
                await lock
            return outcomes[0], outcomes[1]
        finally:
            release.set()
            await tokens.close()

    outcomes = asyncio.run(run())
    expected = "token_absent" if how == "removed" else "token_locked"
    for outcome in outcomes:
        assert isinstance(outcome, PreconditionFailed), outcome
        assert outcome.reason == expected, (outcome.reason, str(outcome))
    assert not queued_ran  # the queued operation never touched the token
    if how == "removed":
        serial = fx.seals["contract"].token_serial
        assert all("not inserted" in str(o) and serial in str(o) for o in outcomes), outcomes


@pytest.mark.parametrize("removed", [True, False], ids=["removed", "token-fault"])
def test_r07_signature_failing_because_token_was_pulled_is_a_removal_not_a_token_fault(
    fresh_seal_fixtures: SealFixtures, removed: bool
) -> None:
    fx = fresh_seal_fixtures
    seal = fx.seals["contract"]
    running, release = threading.Event(), threading.Event()

    def sign(session: Any) -> bytes:
        key = session.get_key(object_class=ObjectClass.PRIVATE_KEY, label=seal.key_label)
        running.set()
        assert release.wait(10)
        if not removed:
            raise pkcs11.exceptions.DeviceError()  # the token itself failed; it is still here
        return bytes(key.sign(b"digest" * 8, mechanism=Mechanism.SHA256_RSA_PKCS))

    async def run() -> BaseException | bytes:
        tokens = await unlocked_tokens(fx)
        folder = token_dir(fx, "contract")
        try:
            signing = asyncio.create_task(tokens.with_session("contract", sign))
            while not running.is_set():
                await asyncio.sleep(0.002)
            if removed:
                assert tokens.mark_removed(seal.token_serial) == ["contract"]
                folder.rename(fx.root / "pulled-out")  # SoftHSM now fails the C_Sign
            release.set()
            (outcome,) = await asyncio.gather(signing, return_exceptions=True)
            return outcome
        finally:
            release.set()
            await tokens.close()

    outcome = asyncio.run(run())
    if removed:
        assert isinstance(outcome, PreconditionFailed), outcome
        assert outcome.reason == "token_absent", outcome.reason
        assert "not inserted" in str(outcome) and seal.token_serial in str(outcome)
        assert isinstance(outcome.__cause__, pkcs11.exceptions.PKCS11Error), outcome.__cause__
    else:
        assert isinstance(outcome, pkcs11.exceptions.DeviceError), outcome
