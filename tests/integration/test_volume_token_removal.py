"""Issue 20: a token pulled in the middle of a volume request pauses it; re-inserted and
unlocked, it resumes where it stopped and never signs a recorded document again (R07).

Real seald under umockdev-wrapper (as test_token_hotplug_daemon.py): removal = USB
`remove` uevent + the SoftHSM token directory moved out; insertion = moved back + `add`.
Run: umockdev-wrapper .venv/bin/pytest -q -m umockdev -p no:cacheprovider <this file>.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fixture_layout import SealFixtures

from sealapi.v1 import requests_pb2, tokens_pb2
from seald.service.signer import SEAL_CHUNK
from seald_testing.config import DaemonConfig
from seald_testing.custody import wait_audit_rows, wait_token
from seald_testing.daemon import CHANGED_PIN, SealDaemon, user_pin
from seald_testing.hotplug import MODEL, Usb, make_testbed
from seald_testing.volume_flow import (
    ledger_counts,
    sealed_hashes,
    submit_and_approve,
    tiny_pdfs,
    volume_config,
    wait_sealed_at_least,
)

pytestmark = pytest.mark.umockdev

DOCUMENTS = 3 * SEAL_CHUNK + 50  # four chunks: the removal lands after the first


@pytest.fixture(scope="module")
def bed() -> Any:
    return make_testbed()


@pytest.fixture
def daemon_and_token(fresh_seal_fixtures: SealFixtures, bed: Any) -> Iterator[tuple[SealDaemon, Usb]]:
    fx = fresh_seal_fixtures
    contract = Usb(bed, fx, "contract")
    contract.dir.rename(contract.parked)
    edit = volume_config(DOCUMENTS)

    def config(c: DaemonConfig) -> None:
        edit(c)
        c.set("tokens", models=[f"{MODEL[0]}:{MODEL[1]}"])

    d = SealDaemon(fx, config, env={"UMOCKDEV_DIR": bed.get_root_dir()})
    d.start()
    yield d, contract
    if d.proc is not None:
        d.stop()


def present(status: tokens_pb2.TokenStatus) -> bool:
    return status.presence == tokens_pb2.TOKEN_PRESENCE_PRESENT


def test_volume_token_removal_pauses_and_resumes_without_resigning(
    daemon_and_token: tuple[SealDaemon, Usb], tmp_path: Path
) -> None:
    d, contract = daemon_and_token
    fx = d.fixtures
    contract.insert()
    wait_token(d, present)
    with d.client("liu.yang") as custodian:
        custodian.change_pin("contract", user_pin(fx, "contract"), CHANGED_PIN)
        custodian.unlock("contract", CHANGED_PIN)
    paths = tiny_pdfs(tmp_path / "in", DOCUMENTS)
    request_id = submit_and_approve(d, paths)

    wait_sealed_at_least(d, request_id, SEAL_CHUNK)
    contract.remove()
    wait_audit_rows(d, "seal.sign_interrupted", 1, timeout=60)
    with d.client("zhang.wei") as requester:
        paused = d.wait_state(requester, request_id, requests_pb2.REQUEST_STATE_APPROVED, timeout=60)
    kept = sealed_hashes(paused)
    assert SEAL_CHUNK <= len(kept) < DOCUMENTS, paused.state_reason
    assert not paused.outcome_unknown  # an orderly pause, not a crash

    contract.insert()
    wait_token(d, present)
    with d.client("liu.yang") as custodian:
        assert custodian.unlock("contract", CHANGED_PIN).ready
    with d.client("zhang.wei") as requester:
        final = d.wait_state(requester, request_id, requests_pb2.REQUEST_STATE_SIGNED, timeout=240)
    done = sealed_hashes(final)
    assert len(done) == DOCUMENTS
    assert {i: done[i] for i in kept} == kept  # the recorded ones were not signed again
    signed = ledger_counts(d, "seal.signed", request_id)
    assert len(signed) == DOCUMENTS and set(signed.values()) == {1}
    intents = ledger_counts(d, "seal.sign_intent", request_id)
    assert all(intents[paths[i].name] == 1 for i in kept)
