"""Batch requests (issue 4 §4, R06): one request carries several documents, approvers
approve the manifest digest, the daemon seals all of them, each is downloadable and
valid; one document more than [requests].max_documents_per_request is refused naming
the limit, and nothing of it is kept. Real seald, real mutual TLS, SoftHSM.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import grpc
import pytest

from sealapi.v1 import common_pb2, requests_pb2
from sealclient.errors import SealClientError
from seald_testing.config import DaemonConfig
from seald_testing.daemon import make_pdf, unlock_first_use
from seald_testing.plugin import DaemonFactory

PLACEMENT = common_pb2.Placement(page=0, x_mm=150, y_mm=240)
MAX_DOCUMENTS = 5


def with_batch_limit(config: DaemonConfig) -> None:
    config.set("requests", max_documents_per_request=MAX_DOCUMENTS)


def test_batch_of_five_is_sealed_and_each_document_downloads_valid_and_six_are_refused(
    daemon_factory: DaemonFactory, tmp_path: Path
) -> None:
    d = daemon_factory(with_batch_limit)
    pdfs = [make_pdf(tmp_path / f"合同-{i}.pdf", pages=i + 1) for i in range(MAX_DOCUMENTS)]
    with d.client("zhang.wei") as z:
        request = z.submit(
            pdfs, seal_id="contract", reason="批量采购合同", category="contract", placement=PLACEMENT
        )
    assert [doc.name for doc in request.documents] == [p.name for p in pdfs]
    # One approval covers the manifest: every document's hash is in the digest.
    with d.client("li.na") as li, d.client("wang.fang") as wang:
        li.approve(request.request_id)
        wang.approve(request.request_id)
    with d.client("liu.yang") as custodian:
        unlock_first_use(custodian, d.fixtures, "contract")
    with d.client("zhang.wei") as z:
        signed = d.wait_state(z, request.request_id, requests_pb2.REQUEST_STATE_SIGNED, timeout=90)
        for index, doc in enumerate(signed.documents):
            out = tmp_path / f"sealed-{index}.pdf"
            z.download(request.request_id, index, out)
            assert hashlib.sha256(out.read_bytes()).hexdigest() == doc.sealed_sha256
            # The original is a prefix: sealing appended a revision, changed nothing.
            assert out.read_bytes().startswith(pdfs[index].read_bytes())
            report = subprocess.run(
                ["pdfsig", str(out)], capture_output=True, text=True, check=False
            ).stdout
            assert "Signature is Valid" in report and "Total document signed" in report, report
            check = subprocess.run(
                ["qpdf", "--check", str(out)], capture_output=True, text=True, check=False
            )
            assert check.returncode == 0, check.stdout + check.stderr

    before = {p.name for p in (d.fixtures.state_dir / "documents").iterdir()}
    six = [*pdfs, make_pdf(tmp_path / "合同-6.pdf")]
    with d.client("zhang.wei") as z, pytest.raises(SealClientError) as refused:
        z.submit(six, seal_id="contract", reason="太多", category="contract", placement=PLACEMENT)
    assert refused.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert refused.value.reason == "too_many_documents"
    assert "max_documents_per_request" in str(refused.value) and str(MAX_DOCUMENTS) in str(refused.value)
    # Nothing half-written: no new request, no leftover upload.
    assert {p.name for p in (d.fixtures.state_dir / "documents").iterdir()} == before
    assert list((d.fixtures.state_dir / "incoming").iterdir()) == []
    with d.client("zhang.wei") as z:
        assert [r.request_id for r in z.list()] == [request.request_id]
