"""R05 over a real seald: a request cancelled after its approval, while the seal's queue
already holds it, is never signed, and the requests queued behind it still are.

Found by the soak: the intent refusal of such a request escaped the seal's queue task
("Task exception was never retrieved") and ended it, so the requests behind it waited
for the next event. The pause after each intent record holds the queue on the first
request while the second is cancelled.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from fixture_layout import SealFixtures

from sealapi.v1 import requests_pb2
from seald_testing.daemon import SealDaemon
from seald_testing.faults import approved_request, unlock

PB = requests_pb2


def test_r05_request_cancelled_while_queued_is_skipped_and_the_queue_goes_on(
    fresh_seal_fixtures: SealFixtures, tmp_path: Path
) -> None:
    d = SealDaemon(fresh_seal_fixtures, env={"SEALD_TEST_PAUSE_AFTER_INTENT": "3"})
    d.start()
    try:
        ids = []
        for n in range(3):  # approved while the token is locked: all three queue at unlock
            (tmp_path / str(n)).mkdir()
            ids.append(approved_request(d, tmp_path / str(n)))
        unlock(d)
        with d.client("zhang.wei") as requester:
            deadline = time.monotonic() + 30
            states: dict[str, int] = {}
            while not any(s == PB.REQUEST_STATE_SIGNING for s in states.values()):
                assert time.monotonic() < deadline, states
                states = {i: requester.get(i).state for i in ids}
            first = next(i for i, s in states.items() if s == PB.REQUEST_STATE_SIGNING)
            cancelled, behind = [i for i in ids if i != first]
            requester.cancel(cancelled, "superseded by a corrected version")
            for request_id in (first, behind):
                d.wait_state(requester, request_id, PB.REQUEST_STATE_SIGNED, timeout=60)
            assert requester.get(cancelled).state == PB.REQUEST_STATE_CANCELLED
        log = d.log()
        assert "Task exception was never retrieved" not in log
        assert "Traceback" not in log
        skipped = [
            entry
            for entry in map(json.loads, filter(lambda line: line.startswith("{"), log.splitlines()))
            if entry.get("event") == "signer.request_skipped"
        ]
        assert [(e["request_id"], e["reason"]) for e in skipped] == [(cancelled, "not_approved")]
    finally:
        d.stop()
