"""Helpers shared by the fault tests (test_audit_faults, test_r02_stop_while_signing): an
approved request on the contract seal, the token unlocked after its first use (R07), and
the sealed files of a request as they appear on disk."""

from __future__ import annotations

import time
from pathlib import Path

import grpc

from sealapi.v1 import common_pb2, requests_pb2
from sealclient.errors import SealClientError
from seald_testing.daemon import SealDaemon, make_pdf, user_pin

PLACEMENT = common_pb2.Placement(page=0, x_mm=150, y_mm=240)
APPROVED = requests_pb2.REQUEST_STATE_APPROVED


def approved_request(d: SealDaemon, tmp_path: Path) -> str:
    pdf = make_pdf(tmp_path / "合同.pdf", pages=1)
    with d.client("zhang.wei") as requester:
        request = requester.submit(
            [pdf],
            seal_id="contract",
            reason="采购合同 canary-reason",
            category="contract",
            placement=PLACEMENT,
        )
    with d.client("li.na") as li, d.client("wang.fang") as wang:
        li.approve(request.request_id)
        assert wang.approve(request.request_id).state == APPROVED
    return request.request_id


CHANGED_PIN = "20261129"
current_pins: dict[Path, str] = {}


def first_use(d: SealDaemon) -> None:
    """R07: a new token's initial PIN must be changed before it may sign (if the daemon asks)."""
    initial = user_pin(d.fixtures, "contract")
    with d.client("liu.yang") as custodian:
        try:
            custodian.change_pin("contract", initial, CHANGED_PIN)
            current_pins[d.fixtures.root] = CHANGED_PIN
        except SealClientError as ex:
            if ex.code != grpc.StatusCode.UNIMPLEMENTED:
                raise
            current_pins[d.fixtures.root] = initial


def unlock(d: SealDaemon) -> None:
    if d.fixtures.root not in current_pins:
        first_use(d)
    with d.client("liu.yang") as custodian:
        custodian.unlock("contract", current_pins[d.fixtures.root])


def sealed_files(state_dir: Path, request_id: str) -> list[Path]:
    return sorted((state_dir / "documents" / request_id).glob("*.sealed.pdf"))


def wait_sealed_file(state_dir: Path, request_id: str) -> None:
    deadline = time.monotonic() + 20
    while not sealed_files(state_dir, request_id):
        assert time.monotonic() < deadline, "the sealed file never appeared"
        time.sleep(0.02)


