"""Issue 16: a sealing job's third token pulled out between its 2nd and 3rd signature:
nothing is released; put back and unlocked, the job completes from the recorded 2nd
intermediate with exactly three signatures, no seal signed twice (R07, R14). With the
other two seals still unlocked, SoftHSM cannot list the re-inserted token without logging
them out: the status says so, their custodian locks them, and it is read.

Real seald under umockdev-wrapper (as test_volume_token_removal.py): removal = USB
`remove` uevent + the SoftHSM token directory moved out; insertion = moved back + `add`.
Run: umockdev-wrapper .venv/bin/pytest -q -m umockdev -p no:cacheprovider <this file>.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fixture_layout import SealFixtures

from sealapi.v1 import requests_pb2, tokens_pb2
from seald_testing.config import DaemonConfig, chain
from seald_testing.custody import wait_audit_rows
from seald_testing.daemon import SealDaemon
from seald_testing.hotplug import MODEL, Usb, make_testbed
from seald_testing.jobs import (
    CONTRACT_MARKS,
    LEGAL,
    LEGAL_TOKEN,
    activate_legal_seal,
    approve_round,
    contract_file,
    job_signatures_in_ledger,
    legal_seal_edit,
    pdfsig_signatures,
    prepare_legal_token,
    submit_job,
    unlock_all,
)

pytestmark = pytest.mark.umockdev
PB = requests_pb2


@pytest.fixture(scope="module")
def bed() -> Any:
    return make_testbed()


def legal_usb(bed: Any, fx: SealFixtures, serial: str) -> Usb:
    """The legal representative's new token as a USB device (not one of the fixtures')."""
    usb = Usb.__new__(Usb)
    usb.bed, usb.serial, usb.path = bed, serial, ""
    usb.dir = next(
        d for d in (fx.root / "tokens").iterdir() if LEGAL_TOKEN.encode() in (d / "token.object").read_bytes()
    )
    usb.parked = fx.root / f"parked-{usb.dir.name}"
    return usb


def present(d: SealDaemon, seal_id: str, want: bool = True, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with d.client("liu.yang") as custodian:
            (status,) = custodian.token_status(seal_id).tokens
        if (status.presence == tokens_pb2.TOKEN_PRESENCE_PRESENT) == want:
            return
        assert time.monotonic() < deadline, status
        time.sleep(0.05)


def unlisted(d: SealDaemon, seal_id: str, timeout: float = 30.0) -> tokens_pb2.TokenStatus:
    """The seal's status once it says its plugged-in token waits for other seals' lock."""
    deadline = time.monotonic() + timeout
    while True:
        with d.client("liu.yang") as custodian:
            (status,) = custodian.token_status(seal_id).tokens
        if "plugged in" in status.not_ready_reason:
            assert status.presence != tokens_pb2.TOKEN_PRESENCE_PRESENT, status
            return status
        assert time.monotonic() < deadline, status
        time.sleep(0.05)


@pytest.fixture
def job_daemon(fresh_seal_fixtures: SealFixtures, bed: Any) -> Iterator[tuple[SealDaemon, Usb]]:
    fx = fresh_seal_fixtures
    serial = prepare_legal_token(fx)
    tokens = [Usb(bed, fx, "contract"), Usb(bed, fx, "official"), legal_usb(bed, fx, serial)]

    def models(c: DaemonConfig) -> None:
        c.set("tokens", models=[f"{MODEL[0]}:{MODEL[1]}"])

    d = SealDaemon(
        fx,
        chain(legal_seal_edit(serial), models),
        env={"UMOCKDEV_DIR": bed.get_root_dir(), "SEALD_TEST_PAUSE_BETWEEN_SIGNATURES": "4"},
    )
    d.start()
    for usb in tokens:
        usb.insert()
    for seal_id in ("contract", "official", LEGAL):
        present(d, seal_id)
    activate_legal_seal(d)
    unlock_all(d)
    yield d, tokens[2]
    if d.proc is not None:
        d.stop()


def test_job_token_removed_between_second_and_third_signature_completes_with_exactly_three(
    job_daemon: tuple[SealDaemon, Usb], tmp_path: Path
) -> None:
    d, legal = job_daemon
    request = submit_job(d, [contract_file(tmp_path / "c.pdf")], CONTRACT_MARKS)
    approve_round(d, request.request_id)
    wait_audit_rows(d, "seal.job_signature", 2, timeout=120)
    legal.remove()  # the legal representative's token leaves before its signature
    with d.client("zhang.wei") as z:
        waiting = d.wait_state(z, request.request_id, PB.REQUEST_STATE_APPROVED, timeout=60)
    assert list(waiting.documents[0].signed_seals) == ["contract", "official"]
    assert not waiting.documents[0].sealed_sha256
    assert not list((d.fixtures.state_dir / "documents" / request.request_id).glob("*.sealed.pdf"))
    assert job_signatures_in_ledger(d, request.request_id)[(0, LEGAL)] == 0

    present(d, LEGAL, want=False)  # the status read lists the slots with the token out

    legal.insert()
    # SoftHSM lists a token whose directory vanished only after re-initialising the
    # library, which would log out the two unlocked seals: the status says so and names
    # them, and the job keeps waiting. Their custodian locks them; the token is read.
    waiting = unlisted(d, LEGAL)
    assert "contract" in waiting.not_ready_reason and "official" in waiting.not_ready_reason
    with d.client("liu.yang") as custodian:
        for seal_id in ("contract", "official"):
            custodian.lock(seal_id)
    present(d, LEGAL)
    unlock_all(d)  # re-insertion never unlocks by itself (R07)
    with d.client("zhang.wei") as z:
        done = d.wait_state(z, request.request_id, PB.REQUEST_STATE_SIGNED, timeout=120)
        z.download(request.request_id, 0, tmp_path / "s.pdf")
    assert list(done.documents[0].signed_seals) == ["contract", "official", LEGAL]
    assert len(pdfsig_signatures(tmp_path / "s.pdf")) == 3
    assert sorted(job_signatures_in_ledger(d, request.request_id).values()) == [1, 1, 1]
