"""Issue 20: a volume request through a real seald (R05, R10, R15).

2,000 one-page PDFs submitted as one request (one SubmitRequest stream), approved once
by two approvers over the manifest digest, sealed in recorded chunks. The daemon is
SIGKILLed in the middle and started again: it resumes after the last recorded chunk and
never signs a recorded document again (their sealed bytes are unchanged, the ledger has
one intent and one `seal.signed` record for each), every document is sealed exactly once
in the ledger, all of them pass the daemon's own verification (pyHanko), a sample of 50
passes pdfsig, each file of the one-stream download (DownloadAllDocuments) matches
its recorded hash, and seald with its workers stays under 512 MiB of RSS from /proc
throughout (approvals, sealing and the download). Real SoftHSM token, real mutual TLS.
"""

from __future__ import annotations

import concurrent.futures
import os
import random
from pathlib import Path

import pytest
from fixture_layout import SealFixtures

from sealapi.v1 import requests_pb2
from seald.service.signer import SEAL_CHUNK
from seald.signing.verify import verify_pdf
from seald_testing.daemon import CHANGED_PIN, SealDaemon, user_pin
from seald_testing.large_flow import pdfsig
from seald_testing.volume_flow import (
    TreeMemory,
    ledger_counts,
    sealed_hashes,
    submit_and_approve,
    tiny_pdfs,
    volume_config,
    wait_sealed_at_least,
)

DOCUMENTS = 2000
MEMORY_BOUND_KIB = 512 * 1024


def _verified(path: Path, root_pem: bytes) -> bool:
    (check,) = verify_pdf(path, [root_pem])
    return check.intact and check.valid and check.trusted and check.covers_whole_document


# Submit, two approvals (each approver's client downloads and hashes 2,000 originals),
# sealing with a kill and a restart, 2,000 downloads and verifications: minutes on 2 cores.
@pytest.mark.timeout(900)
def test_volume_2000_documents_sigkill_resumes_without_resigning(
    fresh_seal_fixtures: SealFixtures, tmp_path: Path
) -> None:
    fx = fresh_seal_fixtures
    paths = tiny_pdfs(tmp_path / "in", DOCUMENTS)
    d = SealDaemon(fx, volume_config(DOCUMENTS))
    d.start()
    try:
        with TreeMemory(d) as memory:
            with d.client("liu.yang") as custodian:
                custodian.change_pin("contract", user_pin(fx, "contract"), CHANGED_PIN)
                custodian.unlock("contract", CHANGED_PIN)
            request_id = submit_and_approve(d, paths)

            # Kill -9 once at least one chunk is recorded and the run is under way.
            before_kill = wait_sealed_at_least(d, request_id, SEAL_CHUNK)
            d.kill()
            d.start()
            with d.client("zhang.wei") as requester:
                resumed = requester.get(request_id)
            assert resumed.state == requests_pb2.REQUEST_STATE_APPROVED, resumed.state_reason
            assert resumed.outcome_unknown
            kept = sealed_hashes(resumed)
            # What was recorded before the kill is still there, unchanged.
            assert {i: kept[i] for i in before_kill} == before_kill
            with d.client("liu.yang") as custodian:
                custodian.unlock("contract", CHANGED_PIN)  # a new process: unlock again
            with d.client("zhang.wei") as requester:
                final = d.wait_state(requester, request_id, requests_pb2.REQUEST_STATE_SIGNED, timeout=240)
            # The download (one stream) is inside the measured span too.
            out = tmp_path / "sealed"
            out.mkdir()
            with d.client("zhang.wei") as requester:
                # One DownloadAllDocuments stream; each file checked against its recorded hash.
                requester.download_all(
                    request_id,
                    {doc.index: out / f"{doc.index:05d}.pdf" for doc in final.documents},
                    requests_pb2.DOCUMENT_VARIANT_SEALED,
                    DOCUMENTS,
                )
        assert memory.peak_kib <= MEMORY_BOUND_KIB, f"seald + workers peaked at {memory.peak_kib} KiB"

        # Never re-signed: the recorded documents keep their sealed bytes (a new signature
        # would have a new signing time, so a new hash).
        done = sealed_hashes(final)
        assert len(done) == DOCUMENTS
        assert {i: done[i] for i in kept} == kept
        # The ledger names every document once as sealed; a recorded one has one intent.
        signed = ledger_counts(d, "seal.signed", request_id)
        assert len(signed) == DOCUMENTS and set(signed.values()) == {1}
        intents = ledger_counts(d, "seal.sign_intent", request_id)
        assert all(intents[paths[i].name] == 1 for i in kept)
        assert all(1 <= intents[p.name] <= 2 for p in paths)
        assert ledger_counts(d, "seal.chunk_sealed", request_id)  # progress was recorded
    finally:
        if d.proc is not None:
            d.stop()

    # The daemon's own verification (pyHanko), every document, on every core.
    root_pem = fx.seal_ca.read_bytes()
    files = [out / f"{i:05d}.pdf" for i in range(DOCUMENTS)]
    with concurrent.futures.ProcessPoolExecutor(os.cpu_count() or 1) as pool:
        checks = list(pool.map(_verified, files, [root_pem] * DOCUMENTS, chunksize=50))
    assert [i for i, ok in enumerate(checks) if not ok] == []
    for i in random.Random(2000).sample(range(DOCUMENTS), 50):
        signed_ok = pdfsig(out / f"{i:05d}.pdf")
        assert signed_ok.valid and signed_ok.total_document_signed, signed_ok.text
