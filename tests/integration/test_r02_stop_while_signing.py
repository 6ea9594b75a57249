"""R02 over a real seald (issue 14 item 13): a seal suspended or reported lost while one of
its signatures is in flight releases nothing.

The crash matrix's pause points hold the signature in the two windows where a stop can
land: after the intent record (before the token signs) and after the sealed file was
written (before the result record). An admin suspends or reports the seal lost there.
Then: no sealed file on disk and none downloadable, the request back to PENDING with every
approval void, and the ledger says why (`seal.sign_voided`, reason `seal_suspended` /
`seal_lost`, no `seal.signed`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from fixture_layout import SealFixtures

from sealapi.v1 import requests_pb2
from sealclient.errors import SealClientError
from seald_testing.daemon import SealDaemon
from seald_testing.faults import approved_request, sealed_files, unlock, wait_sealed_file

PENDING = requests_pb2.REQUEST_STATE_PENDING
SIGNING = requests_pb2.REQUEST_STATE_SIGNING
PAUSE_S = "6"


@pytest.fixture(
    params=[
        ("SEALD_TEST_PAUSE_AFTER_INTENT", "suspend"),
        ("SEALD_TEST_PAUSE_BEFORE_RESULT", "suspend"),
        ("SEALD_TEST_PAUSE_AFTER_INTENT", "report-lost"),
        ("SEALD_TEST_PAUSE_BEFORE_RESULT", "report-lost"),
    ],
    ids=["after-intent-suspend", "before-result-suspend", "after-intent-lost", "before-result-lost"],
)
def paused(
    request: pytest.FixtureRequest, fresh_seal_fixtures: SealFixtures
) -> Iterator[tuple[SealDaemon, str, str]]:
    window, action = request.param
    d = SealDaemon(fresh_seal_fixtures, env={window: PAUSE_S})
    d.start()
    yield d, window, action
    if d.proc is not None:
        d.stop()


def test_r02_suspend_or_report_lost_while_signing_releases_nothing(
    paused: tuple[SealDaemon, str, str], tmp_path: Path
) -> None:
    d, window, action = paused
    state = d.fixtures.state_dir
    request_id = approved_request(d, tmp_path)
    unlock(d)
    with d.client("zhang.wei") as requester:
        d.wait_state(requester, request_id, SIGNING)
    if window == "SEALD_TEST_PAUSE_BEFORE_RESULT":
        wait_sealed_file(state, request_id)  # signed by the token, not yet recorded
    with d.client("chen.jie") as admin:
        admin.seal_lifecycle(action, "contract", comment="停用测试")
    with d.client("zhang.wei") as requester:
        back = d.wait_state(requester, request_id, PENDING, timeout=60)
        assert list(back.approvals) == [], "the approvals given before the stop must be void"
        with pytest.raises(SealClientError) as refused:
            requester.download(request_id, 0, tmp_path / "sealed.pdf")
        assert refused.value.code is grpc.StatusCode.FAILED_PRECONDITION
    assert sealed_files(state, request_id) == []
    assert not (tmp_path / "sealed.pdf").exists()

    reason = "seal_suspended" if action == "suspend" else "seal_lost"
    conn = sqlite3.connect(state / "seald.sqlite3")
    try:
        events = conn.execute(
            "SELECT event, outcome, reason FROM audit_log WHERE request_id = ? ORDER BY sequence",
            (request_id,),
        ).fetchall()
    finally:
        conn.close()
    names = [e[0] for e in events]
    assert "seal.signed" not in names
    assert ("seal.sign_voided", "pending", reason) in events, events
    assert names.index("seal.sign_intent") < names.index("seal.sign_voided")
