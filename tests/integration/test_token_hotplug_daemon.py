"""Issue 3 end to end: the REAL seald process sees USB tokens come and go (R07, R15).

Runs under umockdev-wrapper: this process owns the UMockdev testbed and emits the
uevents; the seald child process inherits the preload library and the testbed
directory (UMOCKDEV_DIR, set by the testbed at C level, so passed explicitly) and its
pyudev monitor receives them. Insertion = the SoftHSM token directory moved in + `add`;
removal = `remove` + directory moved out. Clients talk real mutual TLS.
Run: umockdev-wrapper .venv/bin/pytest -q -m umockdev -p no:cacheprovider <this file>.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import grpc
import pytest
from fixture_layout import SealFixtures

from sealapi.v1 import tokens_pb2
from sealclient.errors import SealClientError
from seald_testing.custody import APPROVED, SIGNED, audit_rows, submit_approved, wait_token
from seald_testing.daemon import CHANGED_PIN, SealDaemon, log_events, user_pin
from seald_testing.hotplug import MODEL, Usb
from seald_testing.plugin import DaemonFactory

pytestmark = pytest.mark.umockdev

PAUSE_AFTER_INTENT_S = 1.5  # the window in which the token is pulled during a signature


@pytest.fixture
def daemon_and_token(daemon_factory: DaemonFactory, bed: Any) -> tuple[SealDaemon, Usb]:
    contract = Usb(bed, daemon_factory.fixtures(), "contract")
    contract.dir.rename(contract.parked)  # the token is in the safe when seald starts
    d = daemon_factory(
        lambda c: c.set("tokens", models=[f"{MODEL[0]}:{MODEL[1]}"]),
        env={
            "UMOCKDEV_DIR": bed.get_root_dir(),
            "SEALD_TEST_PAUSE_AFTER_INTENT": str(PAUSE_AFTER_INTENT_S),
        },
    )
    return d, contract


def present(status: tokens_pb2.TokenStatus) -> bool:
    return status.presence == tokens_pb2.TOKEN_PRESENCE_PRESENT


def assert_names_absent_token(message: str, fx: SealFixtures) -> None:
    serial = fx.seals["contract"].token_serial
    assert "not inserted" in message, message
    assert "seal-contract" in message and serial in message, message


def wait_event(d: SealDaemon, event: str, request_id: str, timeout: float = 15.0) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while True:
        rows = [r for r in audit_rows(d, event) if r["request_id"] == request_id]
        if rows:
            return rows[-1]
        if time.monotonic() > deadline:
            raise AssertionError(f"no {event} record for {request_id}")
        time.sleep(0.02)


def test_r07_r15_daemon_insert_unlock_sign_remove_refused_reinsert_works(
    daemon_and_token: tuple[SealDaemon, Usb], tmp_path: Path
) -> None:
    d, contract = daemon_and_token
    fx = d.fixtures
    with d.client("liu.yang") as custodian, pytest.raises(SealClientError) as absent:
        custodian.unlock("contract", user_pin(fx, "contract"))
    assert absent.value.code is grpc.StatusCode.FAILED_PRECONDITION
    assert absent.value.reason == "token_absent"
    assert_names_absent_token(absent.value.message, fx)

    # Insert -> unlock -> sign.
    contract.insert()
    wait_token(d, present)
    with d.client("liu.yang") as custodian:
        custodian.change_pin("contract", user_pin(fx, "contract"), CHANGED_PIN)
        assert custodian.unlock("contract", CHANGED_PIN).ready
    first = submit_approved(d, tmp_path, "first.pdf")
    with d.client("zhang.wei") as requester:
        assert d.wait_state(requester, first, SIGNED).state == SIGNED

    # Remove in the middle of the next signature: that signature is refused, nothing released.
    second = submit_approved(d, tmp_path, "second.pdf")
    wait_event(d, "seal.sign_intent", second)  # committed; the key operation comes next
    contract.remove()
    interrupted = wait_event(d, "seal.sign_interrupted", second)
    assert (interrupted["reason"], interrupted["outcome"]) == ("token_absent", "approved")
    with d.client("zhang.wei") as requester:
        back = d.wait_state(requester, second, APPROVED)
    assert_names_absent_token(back.state_reason, fx)
    assert not list((fx.state_dir / "documents" / second).glob("*.sealed.pdf"))
    status = wait_token(d, lambda s: not present(s))
    assert not status.unlocked and not status.ready
    assert_names_absent_token(status.not_ready_reason, fx)
    with d.client("liu.yang") as custodian, pytest.raises(SealClientError) as refused:
        custodian.unlock("contract", CHANGED_PIN)
    assert refused.value.code is grpc.StatusCode.FAILED_PRECONDITION
    assert refused.value.reason == "token_absent"
    assert_names_absent_token(refused.value.message, fx)
    time.sleep(PAUSE_AFTER_INTENT_S)  # the signer had its chance: still waiting, not signed
    with d.client("zhang.wei") as requester:
        assert requester.get(second).state == APPROVED
    assert len([r for r in audit_rows(d, "seal.sign_intent") if r["request_id"] == second]) == 1

    # Re-insert: present but locked until the custodian unlocks again; then it signs.
    contract.insert()
    status = wait_token(d, present)
    assert not status.unlocked
    with d.client("liu.yang") as custodian:
        assert custodian.unlock("contract", CHANGED_PIN).ready
    with d.client("zhang.wei") as requester:
        assert d.wait_state(requester, second, SIGNED).state == SIGNED
    # The daemon's own pyudev monitor saw every uevent (presence did not come from polling).
    added = [e for e in log_events(d, "token.usb_added") if e["seal_id"] == "contract"]
    removed = [e for e in log_events(d, "token.usb_removed") if e["seal_id"] == "contract"]
    assert (len(added), len(removed)) == (2, 1)
    assert removed[0]["locked"] == ["contract"]
