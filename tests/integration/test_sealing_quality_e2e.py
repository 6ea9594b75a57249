"""Issue 6 through the real seald process (mTLS, SoftHSM): a seal configured with
level = "B-T" and certify = "form_filling" seals at an anchor text; the timestamp
comes from a live certomancer TSA on loopback (SEAL-RULES R13, R14)."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

from cryptography import x509
from fixture_layout import SealFixtures
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import read_certification_data

from sealapi.v1 import common_pb2, requests_pb2
from sealclient.evidence import load_trust, verify_package
from sealclient.output import verify_text
from seald.signing.verify import verify_pdf
from seald_testing.config import ConfigEdit, DaemonConfig
from seald_testing.daemon import make_pdf, unlock_first_use
from seald_testing.ltv_pki import LivePki
from seald_testing.plugin import DaemonFactory

MM = 72 / 25.4


def _b_t_config(tsa_url: str) -> ConfigEdit:
    def edit(config: DaemonConfig) -> None:
        config.set("trust", tsa_url=tsa_url)
        config.set_seal("contract", level="B-T", certify="form_filling")

    return edit


def test_r13_r14_daemon_seals_b_t_certified_at_the_anchor(
    daemon_factory: DaemonFactory, fresh_seal_fixtures: SealFixtures, pki: LivePki, tmp_path: Path
) -> None:
    d = daemon_factory(_b_t_config(pki.tsa_url))
    pdf = make_pdf(tmp_path / "contract.pdf", pages=2)
    placement = common_pb2.Placement(page=0, size_mm=30, anchor_text="（盖章）")
    with d.client("zhang.wei") as c:
        request = c.submit(
            [pdf], seal_id="contract", reason="采购合同", category="contract", placement=placement
        )
    with d.client("li.na") as li, d.client("wang.fang") as wang:
        li.approve(request.request_id)
        wang.approve(request.request_id)
    with d.client("liu.yang") as custodian:
        unlock_first_use(custodian, d.fixtures, "contract")
    out = tmp_path / "sealed.pdf"
    with d.client("zhang.wei") as requester:
        d.wait_state(requester, request.request_id, requests_pb2.REQUEST_STATE_SIGNED)
        requester.download(request.request_id, 0, out)
    with d.client("zhao.min") as auditor:
        report = auditor.verify(out)
        evidence = auditor.evidence(request.request_id)  # issue 9
    d.stop()

    # Issue 9: the evidence package verifies offline for a B-T, certified, anchored seal too.
    audit_cert = fresh_seal_fixtures.state_dir / "audit" / "audit-cert.pem"
    trust = load_trust([fresh_seal_fixtures.tls_ca, fresh_seal_fixtures.seal_ca, audit_cert])
    # The seal's RFC 3161 timestamp counts only if its TSA is trusted as well.
    without_tsa = verify_package(evidence, [out], trust)
    assert without_tsa.failed() == ["pdf_signature"], without_tsa.as_dict()
    verdict = verify_package(evidence, [out], [*trust, x509.load_pem_x509_certificate(pki.root_pem)])
    assert verdict.ok, verdict.as_dict()

    checks = verify_pdf(out, [fresh_seal_fixtures.seal_ca.read_bytes()])
    assert len(checks) == 1 and checks[0].valid and checks[0].trusted
    assert checks[0].covers_whole_document
    reader = PdfFileReader(io.BytesIO(out.read_bytes()))
    sig = reader.embedded_regular_signatures[0]
    unsigned = sig.signer_info["unsigned_attrs"]
    assert any(a["type"].native == "signature_time_stamp_token" for a in unsigned)  # B-T
    docmdp = read_certification_data(reader)
    assert docmdp is not None and docmdp.permission.value == 2  # certified, form filling
    # The widget sits on the last page, centred on "（盖章）" (pdftotext: 82..138 x 118..136 pt
    # from the top-left; the line is drawn at the same place on every page).
    rect = [float(v) for v in sig.sig_field["/Rect"]]
    page_h = 841.89
    cx, cy = (rect[0] + rect[2]) / 2, page_h - (rect[1] + rect[3]) / 2
    assert abs(cx - 110.0) <= MM and abs(cy - 127.1) <= MM, rect
    assert abs((rect[2] - rect[0]) - 30 * MM) <= 0.5
    # VerifyDocument over the API: the timestamp and the human rendering of it.
    assert report.all_valid and report.signatures[0].seal_id == "contract"
    assert report.signatures[0].HasField("timestamp_time")
    text = verify_text(report)
    assert "seal:        contract" in text and "timestamp:   20" in text, text
    assert "after it:    nothing" in text, text
    pdfsig = subprocess.run(["pdfsig", str(out)], capture_output=True, text=True, check=False)
    assert "Signature is Valid" in pdfsig.stdout and "Total document signed" in pdfsig.stdout
