"""The registered seal impression (印模, issue 16 item 4) over a real seald, real mutual TLS
and SoftHSM tokens: every bad image refused at import with its reason and nothing stored;
two admins; an impression change voids open approvals (R02, R06); a sealed PDF carries the
imported impression (pixel compare on poppler's pdftoppm rendering; pdfsig, qpdf --check);
`sealctl seal impression import|approve|show` as admins run it."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import sqlite3
import subprocess
from pathlib import Path

import grpc
import pytest
from PIL import Image, ImageChops, ImageStat

from sealapi.v1 import common_pb2, requests_pb2, requests_pb2_grpc
from sealclient.approval import ApprovalSigner, LocalDocument, build_approval
from sealclient.client import ClientIdentity, SealClient
from sealclient.errors import SealClientError
from seald_testing import impressions as imp
from seald_testing.certs import SECOND_ADMIN, issue_client_cert
from seald_testing.clients import SEALCTL, sealctl
from seald_testing.config import DaemonConfig
from seald_testing.daemon import SealDaemon, make_pdf, unlock_first_use
from seald_testing.images import contract_seal_png
from seald_testing.plugin import DaemonFactory
from seald_testing.seals import ledger, pdfsig_valid

PLACEMENT = common_pb2.Placement(page=0, x_mm=150, y_mm=240, size_mm=40)
PENDING = requests_pb2.REQUEST_STATE_PENDING
APPROVED = requests_pb2.REQUEST_STATE_APPROVED
SIGNED = requests_pb2.REQUEST_STATE_SIGNED
CODE = "4401060012345"
RENDER_DPI = 150


class Impressions:
    """A daemon with a second admin (周强) and [impression] max_bytes of the bad-image set."""

    def __init__(self, d: SealDaemon, cert: Path, key: Path, config: Path) -> None:
        self.d, self.cert, self.key, self.config = d, cert, key, config

    def second_admin(self) -> SealClient:
        fx = self.d.fixtures
        identity = ClientIdentity(
            target=self.d.target,
            ca_pem=fx.tls_ca.read_bytes(),
            cert_pem=self.cert.read_bytes(),
            key_pem=self.key.read_bytes(),
        )
        return SealClient(identity, timeout_s=30)

    def register(self, data: bytes) -> str:
        """chen.jie imports, 周强 approves; returns the impression's SHA-256."""
        with self.d.client("chen.jie") as admin:
            proposal = admin.import_seal_impression("contract", data, seal_code=CODE, comment="备案印模")
        with self.second_admin() as second:
            second.approve_seal_impression("contract", proposal.impression_id, proposal.sha256)
        return proposal.sha256


@pytest.fixture
def impressions_daemon(daemon_factory: DaemonFactory, tmp_path: Path) -> Impressions:
    return start_impressions_daemon(daemon_factory, tmp_path)


def start_impressions_daemon(
    daemon_factory: DaemonFactory, tmp_path: Path, env: dict[str, str] | None = None
) -> Impressions:
    cert, key, fp = issue_client_cert(daemon_factory.fixtures(), SECOND_ADMIN, tmp_path)
    config = tmp_path / f"{SECOND_ADMIN}.toml"
    config.write_text(
        f'server = "x"\nca = "{daemon_factory.fixtures().tls_ca}"\ncert = "{cert}"\nkey = "{key}"\n'
    )

    def edit(c: DaemonConfig) -> None:
        c.add_principal(
            SECOND_ADMIN,
            display_name="周强",
            roles=["admin"],
            seals=["official", "contract"],
            certificates=[fp],
        )
        c.set("impression", max_bytes=imp.IMPRESSION_MAX_BYTES, min_dpi=300)

    return Impressions(daemon_factory(edit, env=env or {}), cert, key, config)


def submit(d: SealDaemon, tmp_path: Path, name: str = "contract.pdf") -> requests_pb2.SealRequest:
    pdf = make_pdf(tmp_path / name)
    with d.client("zhang.wei") as c:
        return c.submit(
            [pdf], seal_id="contract", reason="采购合同", category="contract", placement=PLACEMENT
        )


def test_impression_import_refused_for_each_bad_image_over_the_wire(impressions_daemon: Impressions) -> None:
    d = impressions_daemon.d
    with d.client("chen.jie") as admin:
        for name, (make, reason) in sorted(imp.BAD_IMPRESSIONS.items()):
            with pytest.raises(SealClientError) as refused:
                admin.import_seal_impression("contract", make(), seal_code=CODE)
            assert (refused.value.code, refused.value.reason) == (grpc.StatusCode.INVALID_ARGUMENT, reason), (
                name,
                refused.value.message,
            )
        # The seal code is checked too; R04: only an admin imports.
        with pytest.raises(SealClientError) as no_code:
            admin.import_seal_impression("contract", imp.good_png(), seal_code="")
        assert no_code.value.reason == "bad_seal_code"
        view = admin.seal_impression("contract")
    with d.client("li.na") as approver, pytest.raises(SealClientError) as not_admin:
        approver.import_seal_impression("contract", imp.good_png(), seal_code=CODE)
    assert (not_admin.value.code, not_admin.value.reason) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "not_an_admin",
    )
    # Nothing was stored or recorded for any refusal; the daemon is still serving.
    assert not view.HasField("current") and len(view.proposals) == 0 and len(view.history) == 0
    history, events = ledger(d, "contract")
    assert "impression_proposed" not in history and "seal.impression_proposed" not in events
    with d.client("zhao.min") as auditor:
        assert auditor.get_seal("contract").impression_sha256 == ""


def test_impression_change_voids_approvals(impressions_daemon: Impressions, tmp_path: Path) -> None:
    d, fx = impressions_daemon.d, impressions_daemon.d.fixtures
    request = submit(d, tmp_path)
    assert request.seal_impression_sha256 == ""  # the generated image: not in the digest
    with d.client("li.na") as li, d.client("wang.fang") as wang:
        li.approve(request.request_id)
        assert wang.approve(request.request_id).state == APPROVED  # the token is locked: it waits
    old_digest = request.approval_digest
    fp = fx.principals["wang.fang"]
    stale_approval = build_approval(
        request,
        [LocalDocument(sha256=doc.sha256, size=doc.size) for doc in request.documents],
        signer=ApprovalSigner(fp.key.read_bytes(), fp.cert.read_bytes()),
    )

    # One admin proposes: nothing changes yet; the same admin cannot approve his own proposal.
    with d.client("chen.jie") as admin:
        proposal = admin.import_seal_impression("contract", imp.good_png(), seal_code=CODE)
        with pytest.raises(SealClientError) as same:
            admin.approve_seal_impression("contract", proposal.impression_id, proposal.sha256)
        assert same.value.reason == "same_admin"
    assert len(proposal.sha256) == 64 and proposal.approved_by == ""
    with d.client("zhang.wei") as z:
        assert z.get(request.request_id).state == APPROVED
    with impressions_daemon.second_admin() as second:
        with pytest.raises(SealClientError) as wrong_sha:
            second.approve_seal_impression("contract", proposal.impression_id, "0" * 64)
        assert wrong_sha.value.reason == "impression_sha256_mismatch"
        done = second.approve_seal_impression("contract", proposal.impression_id, proposal.sha256)
    assert done.voided_requests == 1 and done.impression.approved_by == SECOND_ADMIN

    # R02/R06: the approvals covered the old face: void, the digest now names the impression.
    with d.client("zhang.wei") as z:
        rebound = z.get(request.request_id)
    assert rebound.state == PENDING and len(rebound.approvals) == 0
    assert rebound.seal_impression_sha256 == proposal.sha256
    assert rebound.approval_digest != old_digest
    assert "impression" in rebound.state_reason
    with d.client("zhao.min") as auditor:
        assert auditor.get_seal("contract").impression_sha256 == proposal.sha256
    creds = grpc.ssl_channel_credentials(fx.tls_ca.read_bytes(), fp.key.read_bytes(), fp.cert.read_bytes())
    with grpc.secure_channel(d.target, creds) as channel:
        stub = requests_pb2_grpc.SealRequestServiceStub(channel)
        with pytest.raises(grpc.RpcError) as stale:
            stub.ApproveRequest(stale_approval, timeout=30)
    assert stale.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
    assert dict(stale.value.trailing_metadata())["seal-error-reason"] == "digest_mismatch"  # type: ignore[attr-defined]

    # New requests carry the impression; approvers' clients recompute the digest with it.
    fresh = submit(d, tmp_path, "second.pdf")
    assert fresh.seal_impression_sha256 == proposal.sha256
    with d.client("li.na") as li, d.client("wang.fang") as wang:
        li.approve(rebound.request_id)
        assert wang.approve(rebound.request_id).state == APPROVED
        li.approve(fresh.request_id)
    # Statements of the new approvals name the impression (in the digest's shape).
    with d.client("zhang.wei") as z:
        statement = json.loads(z.get(rebound.request_id).approvals[0].statement)
    assert statement["seal_impression_sha256"] == proposal.sha256

    # Registry history and ledger: proposal and registration with the impression's SHA-256.
    history, events = ledger(d, "contract")
    assert history[-2:] == ["impression_proposed", "impression_registered"]
    assert "seal.impression_proposed" in events and "seal.impression_registered" in events
    assert "request.approvals_voided" in events
    db = sqlite3.connect(fx.state_dir / "seald.sqlite3")
    try:
        details = db.execute(
            "SELECT details_json FROM seal_history WHERE seal_id = 'contract'"
            " AND action = 'impression_registered'"
        ).fetchone()[0]
    finally:
        db.close()
    assert proposal.sha256 in details and CODE in details

    # The registered impression survives a restart.
    d.stop()
    d.start()
    with d.client("zhao.min") as auditor:
        assert auditor.get_seal("contract").impression_sha256 == proposal.sha256
        view = auditor.seal_impression("contract")
    assert hashlib.sha256(view.image).hexdigest() == proposal.sha256
    assert [h.sha256 for h in view.history] == [proposal.sha256]


def _pdftoppm(pdf: Path, out_prefix: Path) -> Image.Image:
    tool = shutil.which("pdftoppm")
    if tool is None:
        pytest.fail("pdftoppm is required (Debian poppler-utils) and is not installed")
    subprocess.run(
        [tool, "-r", str(RENDER_DPI), "-f", "1", "-l", "1", "-png", "-singlefile", str(pdf), str(out_prefix)],
        check=True,
        timeout=60,
    )
    return Image.open(f"{out_prefix}.png").convert("RGB")


def _on_white(png: bytes, side: int) -> Image.Image:
    picture = Image.open(io.BytesIO(png)).convert("RGBA").resize((side, side), Image.Resampling.LANCZOS)
    white = Image.new("RGBA", (side, side), (255, 255, 255, 255))
    return Image.alpha_composite(white, picture).convert("RGB")


def _mean_difference(a: Image.Image, b: Image.Image) -> float:
    return sum(ImageStat.Stat(ImageChops.difference(a, b)).mean) / 3


def test_impression_sealed_pdf_carries_the_imported_impression(
    impressions_daemon: Impressions, tmp_path: Path
) -> None:
    d = impressions_daemon.d
    imported = tmp_path / "contract-impression.png"
    imported.write_bytes(imp.good_png())
    # The admin procedure through sealctl: import, a second admin checks and approves.
    proposed = sealctl(
        d, "chen.jie", "--json", "seal", "impression", "import", "contract", str(imported), "--code", CODE
    )
    assert proposed.returncode == 0, proposed.stderr
    proposal = json.loads(proposed.stdout)
    human = sealctl(d, "chen.jie", "seal", "impression", "show", "contract")
    assert human.returncode == 0 and proposal["impression_id"] in human.stdout and "none" in human.stdout
    assert SEALCTL is not None
    second = [SEALCTL, "--config", str(impressions_daemon.config), "--server", d.target, "seal", "impression"]
    checked = tmp_path / "checked.png"
    looked = subprocess.run(
        [*second, "show", "contract", "--proposed", proposal["impression_id"], "--out", str(checked)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert looked.returncode == 0, looked.stderr
    assert checked.read_bytes() == imported.read_bytes()
    wrong = subprocess.run(
        [*second, "approve", "contract", proposal["impression_id"], "--sha256", "1" * 64],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert wrong.returncode == 6 and "(impression_sha256_mismatch)" in wrong.stderr
    approved = subprocess.run(
        [*second, "approve", "contract", proposal["impression_id"], "--sha256", proposal["sha256"]],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert approved.returncode == 0, approved.stderr
    assert "registered:" in approved.stdout
    again = subprocess.run(
        [*second, "approve", "contract", proposal["impression_id"], "--sha256", proposal["sha256"]],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert again.returncode == 7  # already done

    # RenderSealImage (the seal's face) is now the impression, at the seal's size.
    with d.client("zhao.min") as auditor:
        face_png = auditor.seal_image("contract", 300)
    assert Image.open(io.BytesIO(face_png)).size == (472, 472)
    assert _mean_difference(_on_white(face_png, 236), _on_white(imported.read_bytes(), 236)) < 3.0

    # Sealed with two approvals and the token: the page shows the imported impression.
    request = submit(d, tmp_path)
    assert request.seal_impression_sha256 == proposal["sha256"]
    with d.client("li.na") as li, d.client("wang.fang") as wang:
        li.approve(request.request_id)
        wang.approve(request.request_id)
    with d.client("liu.yang") as custodian:
        unlock_first_use(custodian, d.fixtures, "contract")
    sealed = tmp_path / "sealed.pdf"
    with d.client("zhang.wei") as z:
        d.wait_state(z, request.request_id, SIGNED)
        z.download(request.request_id, 0, sealed)
    pdfsig_valid(sealed)
    qpdf = subprocess.run(["qpdf", "--check", str(sealed)], capture_output=True, text=True, check=False)
    assert qpdf.returncode == 0, qpdf.stdout + qpdf.stderr

    page = _pdftoppm(sealed, tmp_path / "page")
    px = RENDER_DPI / 25.4
    side = round(40 * px)
    left, top = round(150 * px - side / 2), round(240 * px - side / 2)
    box = page.crop((left, top, left + side, top + side))
    to_imported = _mean_difference(box, _on_white(imported.read_bytes(), side))
    to_generated = _mean_difference(box, _on_white(contract_seal_png(40.0, 300), side))
    assert to_imported < 6.0, (to_imported, to_generated)
    assert to_generated > 3 * to_imported, (to_imported, to_generated)
    # The filled square in the middle is the impression's, in seal red.
    r, g, b = box.getpixel((side // 2 + side // 8, side // 2 - side // 8))  # type: ignore[misc]
    assert r > 180 and g < 80 and b < 80


def page_box(pdf: Path, tmp_path: Path) -> Image.Image:
    """The seal's 40 mm box at PLACEMENT on the sealed page, rendered by pdftoppm."""
    page = _pdftoppm(pdf, tmp_path / f"{pdf.stem}-page")
    px = RENDER_DPI / 25.4
    side = round(40 * px)
    left, top = round(150 * px - side / 2), round(240 * px - side / 2)
    return page.crop((left, top, left + side, top + side))


def test_impression_registered_while_signing_keeps_the_face_the_request_was_approved_with(
    daemon_factory: DaemonFactory, tmp_path: Path
) -> None:
    """R06: a request past its intent record is sealed with the face its digest names; the new
    impression is for the requests approved after it."""
    imps = start_impressions_daemon(daemon_factory, tmp_path, env={"SEALD_TEST_PAUSE_AFTER_INTENT": "6"})
    d = imps.d
    first = imps.register(imp.good_png())
    request = submit(d, tmp_path)
    assert request.seal_impression_sha256 == first
    with d.client("li.na") as li, d.client("wang.fang") as wang:
        li.approve(request.request_id)
        wang.approve(request.request_id)
    with d.client("liu.yang") as custodian:
        unlock_first_use(custodian, d.fixtures, "contract")
    with d.client("zhang.wei") as z:
        d.wait_state(z, request.request_id, requests_pb2.REQUEST_STATE_SIGNING)
    second = imps.register(imp.second_png())  # while the signer waits after the intent record
    sealed = tmp_path / "sealed.pdf"
    with d.client("zhang.wei") as z:
        done = d.wait_state(z, request.request_id, SIGNED)
        z.download(request.request_id, 0, sealed)
    assert done.seal_impression_sha256 == first and second != first
    pdfsig_valid(sealed)
    box = page_box(sealed, tmp_path)
    side = box.width
    to_first = _mean_difference(box, _on_white(imp.good_png(), side))
    to_second = _mean_difference(box, _on_white(imp.second_png(), side))
    assert to_first < 6.0 and to_second > 2 * to_first, (to_first, to_second)
    with d.client("zhao.min") as auditor:
        assert auditor.get_seal("contract").impression_sha256 == second
