"""B-LT and B-LTA through a real seald (issues 6 and 8; SEAL-RULES R14, R15).

The seal's key stays on its SoftHSM token; its certificate is re-issued by certomancer's
live PKI on loopback (tests/integration/ltv_pki.py: CA, TSA, OCSP, CRL) for the same key
and written to the token and the config, and [trust] points seald at that TSA and root.
A request goes the whole way over mTLS: submit, two approvals, unlock, sealed in the
daemon's pipeline (worker processes; only the raw signature on the token thread),
downloaded, then checked independently: signing/verify.py offline from the DSS, pdfsig,
qpdf --check. With the TSA or the revocation responders down, the request fails closed:
FAILED with the named reason, no sealed file, audit records consistent.
"""

from __future__ import annotations

import io
import signal
import sqlite3
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from asn1crypto import ocsp
from cryptography import x509
from fixture_layout import SealFixtures
from pyhanko.pdf_utils.reader import PdfFileReader

from sealapi.v1 import common_pb2, requests_pb2
from sealclient.errors import SealClientError
from seald.signing.verify import verify_pdf
from seald_testing.config import ConfigEdit, DaemonConfig
from seald_testing.daemon import CHANGED_PIN, SealDaemon, make_pdf, unlock_first_use
from seald_testing.ltv_pki import LivePki, install_seal_certificate, live_pki
from seald_testing.plugin import DaemonFactory
from seald_testing.state_checks import check_state

KILL_AT = "SEALD_TEST_KILL_AT"


@dataclass(frozen=True)
class LtvSetup:
    fixtures: SealFixtures
    pki: LivePki
    root_file: Path


@pytest.fixture
def ltv(fresh_seal_fixtures: SealFixtures, tmp_path: Path) -> Iterator[LtvSetup]:
    seal = fresh_seal_fixtures.seals["contract"]
    with live_pki(seal.certificate.read_bytes(), tmp_path / "certomancer") as pki:
        install_seal_certificate(fresh_seal_fixtures, pki.seal_cert_der)
        root_file = tmp_path / "ltv-root.pem"
        root_file.write_bytes(pki.root_pem)
        yield LtvSetup(fresh_seal_fixtures, pki, root_file)


def _config(setup: LtvSetup, level: str) -> ConfigEdit:
    def edit(config: DaemonConfig) -> None:
        config.set("trust", tsa_url=setup.pki.tsa_url, signing_roots=[str(setup.root_file)])
        config.set_seal("contract", level=level)

    return edit


def _request(d: SealDaemon, tmp_path: Path, name: str, documents: int = 1) -> str:
    pdfs = [make_pdf(tmp_path / f"{name}-{i}.pdf", pages=2) for i in range(documents)]
    with d.client("zhang.wei") as c:
        request = c.submit(
            pdfs,
            seal_id="contract",
            reason="长期验证合同",
            category="contract",
            placement=common_pb2.Placement(page=0, x_mm=150, y_mm=240, size_mm=40),
        )
    with d.client("li.na") as li, d.client("wang.fang") as wang:
        li.approve(request.request_id)
        wang.approve(request.request_id)
    return str(request.request_id)


def _ocsp_serials(pdf: Path) -> list[int]:
    reader = PdfFileReader(io.BytesIO(pdf.read_bytes()))
    return [
        ocsp.OCSPResponse.load(ref.get_object().data).basic_ocsp_response["tbs_response_data"][
            "responses"
        ][0]["cert_id"]["serial_number"].native
        for ref in reader.root["/DSS"].get("/OCSPs", [])
    ]


def _audit(state_dir: Path, request_id: str) -> list[tuple[str, str]]:
    conn = sqlite3.connect((state_dir / "seald.sqlite3").resolve().as_uri() + "?mode=ro", uri=True)
    try:
        rows = conn.execute(
            "SELECT event, reason FROM audit_log WHERE request_id = ? AND event LIKE 'seal.%' "
            "ORDER BY sequence",
            (request_id,),
        ).fetchall()
    finally:
        conn.close()
    return [(str(event), str(reason)) for event, reason in rows]


@pytest.mark.parametrize("level", ["B-LT", "B-LTA"])
def test_r14_daemon_seals_b_lt_and_b_lta_verifiable_offline(
    daemon_factory: DaemonFactory, ltv: LtvSetup, tmp_path: Path, level: str
) -> None:
    d = daemon_factory(_config(ltv, level), fixtures=ltv.fixtures)
    request_id = _request(d, tmp_path, "contract", documents=2)
    with d.client("liu.yang") as custodian:
        unlock_first_use(custodian, ltv.fixtures, "contract")
    outs = [tmp_path / f"sealed-{i}.pdf" for i in range(2)]
    with d.client("zhang.wei") as requester:
        d.wait_state(requester, request_id, requests_pb2.REQUEST_STATE_SIGNED, timeout=120)
        for i, out in enumerate(outs):
            requester.download(request_id, i, out)
    with d.client("zhao.min") as auditor:
        report = auditor.verify(outs[0])
        assert auditor.verify_audit_chain().ok
    d.stop()

    assert report.all_valid, report
    seal_serial = x509.load_der_x509_certificate(ltv.pki.seal_cert_der).serial_number
    field = f"Seal-contract-{request_id[:12]}"
    for out in outs:
        checks = verify_pdf(out, [ltv.pki.root_pem])
        kinds = ["signature", "document_timestamp"] if level == "B-LTA" else ["signature"]
        assert [c.kind for c in checks] == kinds
        sig = checks[0]
        assert sig.field_name == field and sig.intact and sig.valid and sig.trusted
        assert sig.timestamp_time is not None and sig.timestamp_valid  # B-T part
        # B-LT: the seal certificate is proved good from the document's DSS alone.
        assert sig.revocation == "good"
        assert sig.changed_after == "validation data and timestamps only (long-term validation)"
        assert seal_serial in _ocsp_serials(out)
        if level == "B-LTA":
            doc_ts = checks[1]
            assert doc_ts.field_name == f"{field}-DocTS"
            assert doc_ts.valid and doc_ts.trusted and doc_ts.timestamp_time is not None
        pdfsig = subprocess.run(["pdfsig", "-nocert", str(out)], capture_output=True, text=True, check=False)
        assert pdfsig.stdout.count("Signature is Valid") == 1, pdfsig.stdout
        assert (f"{field}-DocTS" in pdfsig.stdout) is (level == "B-LTA"), pdfsig.stdout
        qpdf = subprocess.run(["qpdf", "--check", str(out)], capture_output=True, text=True, check=False)
        assert qpdf.returncode == 0, qpdf.stdout + qpdf.stderr
    counts = check_state(ltv.fixtures.state_dir, after_restart=False)
    assert counts, counts
    assert [e for e, _ in _audit(ltv.fixtures.state_dir, request_id)].count("seal.signed") == 2


def test_r15_daemon_ltv_fails_closed_when_tsa_or_revocation_responders_are_down(
    ltv: LtvSetup, tmp_path: Path
) -> None:
    d = SealDaemon(ltv.fixtures, _config(ltv, "B-LTA"))
    d.start()
    outcomes: dict[str, requests_pb2.SealRequest] = {}
    try:
        with d.client("liu.yang") as custodian:
            unlock_first_use(custodian, ltv.fixtures, "contract")
        # OCSP alone down: pyHanko falls back to the CRL (hard-fail needs one of them).
        for down in ("tsa", "ocsp+crls", "ocsp", ""):
            ltv.pki.outage.clear()
            ltv.pki.outage.update(part for part in down.split("+") if part)
            request_id = _request(d, tmp_path, down.replace("+", "-") or "up")
            fails = down in ("tsa", "ocsp+crls")
            wanted = requests_pb2.REQUEST_STATE_FAILED if fails else requests_pb2.REQUEST_STATE_SIGNED
            with d.client("zhang.wei") as requester:
                outcomes[down] = d.wait_state(requester, request_id, wanted, timeout=120)
                if down == "ocsp":
                    requester.download(request_id, 0, tmp_path / "via-crl.pdf")
        ltv.pki.outage.clear()
        with d.client("zhao.min") as auditor:
            assert auditor.verify_audit_chain().ok
    finally:
        ltv.pki.outage.clear()
        d.stop()

    state = ltv.fixtures.state_dir
    for down, reason, words in (
        ("tsa", "tsa_unavailable", "timestamp authority did not answer"),
        ("ocsp+crls", "seal_certificate_invalid", "OCSP/CRL responders are reachable"),
    ):
        failed = outcomes[down]
        assert words in failed.state_reason, failed.state_reason
        folder = state / "documents" / failed.request_id
        assert not list(folder.glob("*.sealed.pdf")) and not list(folder.glob(".*.part"))
        records = _audit(state, failed.request_id)
        assert [event for event, _ in records[-2:]] == ["seal.sign_intent", "seal.sign_failed"], records
        assert records[-1][1] == reason and "seal.signed" not in dict(records), records
    via_crl = tmp_path / "via-crl.pdf"
    checks = verify_pdf(via_crl, [ltv.pki.root_pem])
    assert checks[0].trusted and checks[0].revocation == "good", checks
    dss = PdfFileReader(io.BytesIO(via_crl.read_bytes())).root["/DSS"]
    assert len(dss.get("/CRLs", [])) >= 1, dict(dss)
    # The token and the configuration were fine all along: with the services back, it seals.
    sealed = outcomes[""]
    assert len(list((state / "documents" / sealed.request_id).glob("*.sealed.pdf"))) == 1
    check_state(state, after_restart=False)


def test_r10_r15_daemon_killed_mid_b_lta_signature_recovers_and_signs_once(
    ltv: LtvSetup, tmp_path: Path
) -> None:
    """SIGKILL on the token thread right before the raw signature (prepare, with its
    TSA/OCSP work, is done): after restart nothing is released, the prepared temp file is
    gone, the request is APPROVED again, and the next unlock seals it once, as B-LTA."""
    d = SealDaemon(ltv.fixtures, _config(ltv, "B-LTA"), env={KILL_AT: "sign.before_document"})
    d.start()
    request_id = _request(d, tmp_path, "crash")
    folder = ltv.fixtures.state_dir / "documents" / request_id
    try:
        with d.client("liu.yang") as custodian:
            unlock_first_use(custodian, ltv.fixtures, "contract")
    except SealClientError as ex:  # the daemon may die before it answers
        assert ex.code == grpc.StatusCode.UNAVAILABLE, ex
    assert d.proc is not None
    assert d.proc.wait(timeout=120) == -signal.SIGKILL, d.log()[-3000:]
    d.proc = None
    assert '"point": "sign.before_document"' in d.log()
    # The pipeline got as far as the prepared temp file: the crash leaves it behind.
    assert list(folder.glob(".*.part")), sorted(p.name for p in folder.iterdir())

    d.extra_env = {}
    d.start()
    try:
        check_state(ltv.fixtures.state_dir, after_restart=True)
        assert not list(folder.glob(".*.part")) and not list(folder.glob("*.sealed.pdf"))
        out = tmp_path / "recovered.pdf"
        with d.client("zhang.wei") as requester:
            assert requester.get(request_id).state == requests_pb2.REQUEST_STATE_APPROVED
            with d.client("liu.yang") as custodian:
                custodian.unlock("contract", CHANGED_PIN)
            d.wait_state(requester, request_id, requests_pb2.REQUEST_STATE_SIGNED, timeout=120)
            requester.download(request_id, 0, out)
    finally:
        d.stop()
    assert [c.kind for c in verify_pdf(out, [ltv.pki.root_pem])] == ["signature", "document_timestamp"]
    events = [event for event, _ in _audit(ltv.fixtures.state_dir, request_id)]
    assert events.count("seal.sign_intent") == 2 and events.count("seal.signed") == 1, events
    assert "seal.outcome_unknown" in events, events
    check_state(ltv.fixtures.state_dir, after_restart=True)
