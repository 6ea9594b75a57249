"""An SM2 seal made through seald (issue 19, R02 刻制/变更/销毁): CreateSealKey generates the SM2
key inside the seal's SKF test token and returns an SM2-with-SM3 CSR (``openssl req -verify``
checks it), an OpenSSL SM2 CA issues the certificate, ImportSealCertificate registers it and
the seal maker - an SM2 key on its own SKF test token - signs the seal's ``SES_Seal``, which
the registry stores. Sealing embeds the stored ``SES_Seal`` (the maker's token may be away);
a new name or validity makes a new version and voids open approvals; destroy marks it.
Every certificate that does not fit the seal is refused naming the field, nothing stored.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import signal
import time
from pathlib import Path

import pytest
from asn1crypto import csr as asn1_csr
from asn1crypto import keys
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from skf_fixture import INITIAL_USER_PIN, SkfTestToken

from sealapi.v1 import common_pb2, requests_pb2
from sealclient.client import ClientIdentity, SealClient
from sealclient.errors import SealClientError
from seald.gm import ses, sm2
from seald.service import ses_seal_check
from seald.signing import gbt38540_pdf
from seald_testing import impressions
from seald_testing.certs import SECOND_ADMIN, issue_client_cert
from seald_testing.config import DaemonConfig
from seald_testing.daemon import CHANGED_PIN, SealDaemon, make_pdf, user_pin
from seald_testing.plugin import DaemonFactory
from seald_testing.seals import IssuingCA, add_contract_seal, ledger
from seald_testing.sm2_seal import (
    MAKER_APP,
    MAKER_CON,
    MAKER_DEV,
    MAKER_SERIAL,
    SEAL_APP,
    SEAL_CON,
    SEAL_DEV,
    SEAL_SERIAL,
    Maker,
    Sm2Ca,
    asn1parse,
    bitstring_bytes,
    ledger_details,
    make_maker_token,
    make_seal_device,
    openssl_sm2_verifies,
    stored_ses_seals,
)

# Certificates are issued from the wall clock: run again under faketime (issue 14).
pytestmark = pytest.mark.clock

SEAL = "sm2new"
NAME = "合同专用章(SM2)"
PIN = "24681357"
PLACEMENT = common_pb2.Placement(page=0, x_mm=150, y_mm=240)
SIGNED = requests_pb2.REQUEST_STATE_SIGNED
PENDING = requests_pb2.REQUEST_STATE_PENDING


class Setup:
    def __init__(
        self, d: SealDaemon, token: SkfTestToken, maker: Maker, ca: Sm2Ca, second: tuple[Path, Path]
    ):
        self.d, self.token, self.maker, self.ca, self.second = d, token, maker, ca, second

    def second_admin(self) -> SealClient:
        cert, key = self.second
        return SealClient(
            ClientIdentity(
                target=self.d.target,
                ca_pem=self.d.fixtures.tls_ca.read_bytes(),
                cert_pem=cert.read_bytes(),
                key_pem=key.read_bytes(),
            ),
            timeout_s=30,
        )

    def unlock_and_create_key(self) -> bytes:
        with self.d.client("liu.yang") as custodian:
            custodian.change_pin(SEAL, INITIAL_USER_PIN, PIN)
            custodian.unlock(SEAL, PIN)
        with self.d.client("chen.jie") as admin:
            created = admin.create_seal_key(SEAL)
        assert created.csr_der
        return bytes(created.csr_der)


@pytest.fixture
def sm2_setup(daemon_factory: DaemonFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Setup:
    monkeypatch.setenv("SKF_TEST_TOKEN_DIR", "")  # restored after the test (SkfTestToken sets it)
    monkeypatch.delenv("SKF_TEST_TOKEN_SIGN_DELAY_MS", raising=False)
    token = SkfTestToken(tmp_path / "skf")
    make_seal_device(token)
    maker = make_maker_token(token, tmp_path)
    (tmp_path / "ca").mkdir()
    ca = Sm2Ca(tmp_path / "ca")
    cert, key, fp = issue_client_cert(daemon_factory.fixtures(), SECOND_ADMIN, tmp_path)

    def edit(config: DaemonConfig) -> None:
        add_contract_seal(
            config,
            SEAL,
            display_name=NAME,
            token_label=SEAL_DEV,
            token_serial=SEAL_SERIAL,
            key_label=SEAL_CON,
            algorithm="sm2",
            format="gbt38540",
            skf_application=SEAL_APP,
        )
        config.set("skf", library=str(token.library))
        config.set(
            "seal_maker",
            certificate=str(maker.cert_pem),
            token_serial=MAKER_SERIAL,
            application=MAKER_APP,
            container=MAKER_CON,
            pin_file=str(maker.pin_file),
        )
        config.set("trust", sm2_seal_ca=str(ca.cert))
        config.add_principal(
            SECOND_ADMIN,
            display_name="周强",
            roles=["admin"],
            seals=["official", "contract", SEAL],
            certificates=[fp],
        )

    return Setup(daemon_factory(edit), token, maker, ca, (cert, key))


def _submit(d: SealDaemon, tmp_path: Path, name: str, approvals: int) -> str:
    pdf = make_pdf(tmp_path / name)
    with d.client("zhang.wei") as z:
        request = z.submit([pdf], seal_id=SEAL, reason="采购合同", category="contract", placement=PLACEMENT)
    for who in ("li.na", "wang.fang")[:approvals]:
        with d.client(who) as approver:
            approver.approve(request.request_id)
    return str(request.request_id)


def _embedded_seal(pdf: bytes) -> bytes:
    start = pdf.index(b"/Contents <") + len(b"/Contents <")
    der = bytes.fromhex(pdf[start : pdf.index(b">", start)].decode())
    signature = ses.parse_signature(der[: gbt38540_pdf._der_length(der)])
    return bytes(signature["to_sign"]["eseal"].dump())


def _check_ses_seal_fields(der: bytes, maker: Maker, holder: bytes, picture: bytes, tmp: Path) -> list[str]:
    """openssl asn1parse decodes the stored SES_Seal; compared field by field. Returns the
    three GeneralizedTimes (createDate, validStart, validEnd)."""
    nodes = asn1parse(der, tmp)
    top = [n for n in nodes if n.depth == 1]
    assert [n.tag for n in top] == ["SEQUENCE", "OCTET STRING", "OBJECT", "BIT STRING"]
    assert top[1].content(der) == maker.cert_der and top[2].value == "SM2-with-SM3"
    info = [n for n in nodes if n.depth == 2]
    assert [n.tag for n in info] == ["SEQUENCE", "IA5STRING", "SEQUENCE", "SEQUENCE"]
    d3 = [n for n in nodes if n.depth == 3]
    assert [(n.tag, n.value) for n in d3[:3]] == [
        ("IA5STRING", "ES"),
        ("INTEGER", "04"),
        ("IA5STRING", "seald"),
    ]
    prop, pic = d3[3:10], d3[10:]
    assert [n.tag for n in prop] == ["INTEGER", "UTF8STRING", "INTEGER", "SEQUENCE"] + ["GENERALIZEDTIME"] * 3
    assert prop[0].value == "01" and prop[2].value == "01"  # organisation seal; certificates listed
    holders = [n for n in nodes if n.depth == 4]
    assert len(holders) == 1 and holders[0].content(der) == holder
    assert [n.tag for n in pic] == ["IA5STRING", "OCTET STRING", "INTEGER", "INTEGER"]
    assert pic[0].value == "PNG" and pic[1].content(der) == picture
    # The maker's signature (made on the maker's token), located by asn1parse, verifies with OpenSSL.
    assert openssl_sm2_verifies(tmp, maker.cert_der, top[0].tlv(der), bitstring_bytes(top[3], der))
    assert prop[1].content(der).decode() in (NAME, NAME + "二")
    return [n.value for n in prop[4:]]


def _csr_key(csr_der: bytes) -> bytes:
    return bytes(
        asn1_csr.CertificationRequest.load(csr_der)["certification_request_info"]["subject_pk_info"].dump()
    )


def _gtime(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y%m%d%H%M%SZ")


@pytest.mark.timeout(600)
def test_sm2_create_key_csr_import_seal_and_the_ses_seal_lifecycle_end_to_end(
    sm2_setup: Setup, tmp_path: Path
) -> None:
    s, d = sm2_setup, sm2_setup.d
    csr_der = s.unlock_and_create_key()
    # The CSR: SM2 key, SM2-with-SM3, and OpenSSL verifies it with the standard's id.
    assert "verify OK" in s.ca.verify_csr(csr_der)
    request = asn1_csr.CertificationRequest.load(csr_der)
    assert request["signature_algorithm"]["algorithm"].dotted == sm2.SM2_WITH_SM3_OID
    spki = request["certification_request_info"]["subject_pk_info"]
    assert spki["algorithm"]["parameters"].chosen.dotted == sm2.SM2_CURVE_OID
    with d.client("chen.jie") as admin:
        assert admin.get_seal(SEAL).status == common_pb2.SEAL_STATUS_PENDING
        assert stored_ses_seals(d.fixtures.state_dir, SEAL) == []  # no certificate, no SES_Seal yet
        issued = s.ca.issue(csr_der)
        assert admin.import_seal_certificate(SEAL, issued).status == common_pb2.SEAL_STATUS_ACTIVE

    # Made at registration, stored, with its SHA-256 in the history and the ledger.
    (v1,) = stored_ses_seals(d.fixtures.state_dir, SEAL)
    assert v1.version == 1 and v1.reason == "certificate imported" and not v1.destroyed_at
    assert v1.sha256 == hashlib.sha256(v1.der).hexdigest()
    (made,) = ledger_details(d.fixtures.state_dir, SEAL, "seal.ses_seal_made")
    assert json.loads(made)["ses_seal_sha256"] == v1.sha256
    history, events = ledger(d, SEAL)
    assert history[-2:] == ["import_certificate", "ses_seal_made"] and "seal.certificate_imported" in events
    with d.client("chen.jie") as admin:
        picture = admin.seal_image(SEAL)
    times = _check_ses_seal_fields(v1.der, s.maker, issued, picture, tmp_path)
    cert = x509.load_der_x509_certificate(issued)
    assert times[1:] == [_gtime(cert.not_valid_before_utc), _gtime(cert.not_valid_after_utc)]
    report = ses.verify_seal(v1.der, trusted_makers=[s.maker.cert_der])
    assert report.name == NAME and report.holders == 1

    # A tampered seal picture is caught: seald's verifier and OpenSSL both refuse it.
    i = v1.der.index(picture) + len(picture) // 2
    tampered = v1.der[:i] + bytes([v1.der[i] ^ 0x01]) + v1.der[i + 1 :]
    with pytest.raises(ses.GbtError) as caught:
        ses.verify_seal(tampered, trusted_makers=[s.maker.cert_der])
    assert caught.value.reason == "gbt38540_seal_signature_invalid"
    nodes = asn1parse(tampered, tmp_path)
    top = [n for n in nodes if n.depth == 1]
    assert not openssl_sm2_verifies(
        tmp_path, s.maker.cert_der, top[0].tlv(tampered), bitstring_bytes(top[3], tampered)
    )

    # Sealing uses the stored SES_Seal and never the maker: its token is away meanwhile.
    s.token.remove(MAKER_DEV)
    request_id = _submit(d, tmp_path, "a.pdf", approvals=2)
    with d.client("zhang.wei") as z:
        d.wait_state(z, request_id, SIGNED)
        z.download(request_id, 0, tmp_path / "a.sealed.pdf")
        verified = z.verify(tmp_path / "a.sealed.pdf")
    assert verified.all_valid and verified.signatures[0].trusted
    assert _embedded_seal((tmp_path / "a.sealed.pdf").read_bytes()) == v1.der  # byte for byte
    assert len(stored_ses_seals(d.fixtures.state_dir, SEAL)) == 1

    # Suspend and resume leave the SES_Seal as it is.
    with d.client("chen.jie") as admin:
        admin.seal_lifecycle("suspend", SEAL, comment="审计")
        admin.seal_lifecycle("resume", SEAL, proposal_id="resume-sm2-01")
    with s.second_admin() as second:
        assert (
            second.seal_lifecycle("resume", SEAL, proposal_id="resume-sm2-01").status
            == common_pb2.SEAL_STATUS_ACTIVE
        )
    assert len(stored_ses_seals(d.fixtures.state_dir, SEAL)) == 1

    # A new name is a new seal face: refused while the maker cannot sign, nothing changed ...
    waiting = _submit(d, tmp_path, "b.pdf", approvals=1)
    with d.client("chen.jie") as admin:
        with pytest.raises(SealClientError) as away:
            admin.change_seal(SEAL, display_name=NAME + "二")
        assert away.value.reason == "seal_maker_unavailable" and "not inserted" in str(away.value)
        assert admin.get_seal(SEAL).display_name == NAME
    assert len(stored_ses_seals(d.fixtures.state_dir, SEAL)) == 1
    # ... and with the maker's token back: version 2, and the open approval is void.
    s.token.insert(MAKER_DEV)
    with d.client("chen.jie") as admin:
        assert admin.change_seal(SEAL, display_name=NAME + "二").display_name == NAME + "二"
    v1_again, v2 = stored_ses_seals(d.fixtures.state_dir, SEAL)
    assert v1_again.der == v1.der and v2.version == 2 and v2.reason == "display name changed"
    assert ses.verify_seal(v2.der, trusted_makers=[s.maker.cert_der]).name == NAME + "二"
    with d.client("zhang.wei") as z:
        again = z.get(waiting)
    assert again.state == PENDING and len(again.approvals) == 0
    _, events = ledger(d, SEAL)
    assert events.count("seal.ses_seal_made") == 2 and "request.approvals_voided" in events

    # Destroy (two admins): the key container goes, every SES_Seal version is marked destroyed.
    with d.client("chen.jie") as admin:
        admin.seal_lifecycle("destroy", SEAL, proposal_id="destroy-sm2-01")
    with s.second_admin() as second:
        destroyed = second.seal_lifecycle("destroy", SEAL, proposal_id="destroy-sm2-01")
    assert destroyed.status == common_pb2.SEAL_STATUS_DESTROYED
    rows = stored_ses_seals(d.fixtures.state_dir, SEAL)
    assert len(rows) == 2 and all(r.destroyed_at for r in rows)
    (destroy,) = ledger_details(d.fixtures.state_dir, SEAL, "seal.destroy")
    assert json.loads(destroy)["objects_deleted"] == 1


def test_sm2_import_refuses_certificates_that_do_not_fit_the_seal(sm2_setup: Setup, tmp_path: Path) -> None:
    s, d = sm2_setup, sm2_setup.d
    csr_der = s.unlock_and_create_key()
    token_spki = _csr_key(csr_der)
    rsa_ca = IssuingCA(d.fixtures)
    subject = x509.Name.from_rfc4514_string("CN=wrong kind")
    p256 = ec.generate_private_key(ec.SECP256R1())
    # An SPKI that claims the SM2 curve but carries a P-256 point (the OID confusion).
    p256_point = keys.PublicKeyInfo.load(
        p256.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )["public_key"].native
    confused = keys.PublicKeyInfo(
        {
            "algorithm": {
                "algorithm": sm2.EC_PUBLIC_KEY_OID,
                "parameters": keys.ECDomainParameters(name="named", value=sm2.SM2_CURVE_OID),
            },
            "public_key": p256_point,
        }
    )
    other_ca_dir = tmp_path / "other-ca"
    other_ca_dir.mkdir()
    cases = [
        ("RSA certificate", rsa_ca.issue(subject, rsa.generate_private_key(65537, 2048).public_key()),
         "certificate_algorithm_mismatch", "subjectPublicKeyInfo.algorithm: the certificate's key is rsa"),
        ("P-256 certificate", rsa_ca.issue(subject, p256.public_key()),
         "certificate_algorithm_mismatch", "the certificate's key is ecdsa-p256"),
        ("SM2 OID over a P-256 point", s.ca.issue_for_key(bytes(confused.dump())),
         "sm2_wrong_key_type", "subjectPublicKeyInfo: SM2 public key point is not on the SM2 curve"),
        ("another SM2 key", s.ca.issue_for_key(sm2.Sm2PrivateKey.generate().public_key.spki_der()),
         "certificate_key_mismatch", "is not the SM2 key in the token of seal"),
        ("another SM2 CA", Sm2Ca(other_ca_dir).issue_for_key(token_spki),
         "certificate_untrusted_issuer", "not issued by the SM2 seal CA"),
        ("not a certificate", b"\x30\x03\x02\x01\x01", "bad_certificate", "not a DER X.509 certificate"),
    ]  # fmt: skip
    with d.client("chen.jie") as admin:
        for what, der, reason, text in cases:
            with pytest.raises(SealClientError) as refused:
                admin.import_seal_certificate(SEAL, der)
            assert (refused.value.reason, what) == (reason, what)
            assert text in str(refused.value), (what, str(refused.value))
        assert admin.get_seal(SEAL).status == common_pb2.SEAL_STATUS_PENDING
    # Nothing registered, nothing made by the maker.
    assert stored_ses_seals(d.fixtures.state_dir, SEAL) == []
    history, events = ledger(d, SEAL)
    assert "import_certificate" not in history and "seal.ses_seal_made" not in events

    # The reverse: an RSA seal (PKCS#11 token) refuses an SM2 certificate.
    with d.client("liu.yang") as custodian:
        custodian.change_pin("contract", user_pin(d.fixtures, "contract"), CHANGED_PIN)
        custodian.unlock("contract", CHANGED_PIN)
    with d.client("chen.jie") as admin, pytest.raises(SealClientError) as reverse:
        admin.change_seal("contract", certificate_der=s.ca.issue_for_key(token_spki))
    assert reverse.value.reason == "certificate_algorithm_mismatch"
    assert "the certificate's key is sm2, but seal contract is an rsa seal" in str(reverse.value)


def test_gbt38540_validity_change_makes_a_new_ses_seal_and_voids_approvals(
    sm2_setup: Setup, tmp_path: Path
) -> None:
    s, d = sm2_setup, sm2_setup.d
    csr_der = s.unlock_and_create_key()
    with d.client("chen.jie") as admin:
        admin.import_seal_certificate(SEAL, s.ca.issue(csr_der))
    (v1,) = stored_ses_seals(d.fixtures.state_dir, SEAL)
    waiting = _submit(d, tmp_path, "a.pdf", approvals=1)
    # A restart with nothing changed makes no new version (the face is the same).
    d.stop()
    d.start()
    assert len(stored_ses_seals(d.fixtures.state_dir, SEAL)) == 1
    # The validity window changes in the config: a new SES_Seal at start, old approvals void.
    until = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(days=90)
    start = until - dt.timedelta(days=200)
    d.stop()
    d.config.set_seal(SEAL, valid_from=start, valid_until=until)
    d.config_path.write_text(d.config.render(), encoding="utf-8")
    d.start()
    v1_again, v2 = stored_ses_seals(d.fixtures.state_dir, SEAL)
    assert v1_again.der == v1.der and v2.version == 2
    assert "property.validStart" in v2.reason and "property.validEnd" in v2.reason
    report = ses.verify_seal(v2.der, trusted_makers=[s.maker.cert_der])
    assert (report.valid_start, report.valid_end) == (start, until)
    with d.client("zhang.wei") as z:
        again = z.get(waiting)
    assert again.state == PENDING and len(again.approvals) == 0
    _, events = ledger(d, SEAL)
    assert events[-2:] == ["seal.ses_seal_made", "request.approvals_voided"]
    # A reload (SIGHUP) that moves the window again: version 3, without a restart.
    d.config.set_seal(SEAL, valid_until=until + dt.timedelta(days=10))
    d.config_path.write_text(d.config.render(), encoding="utf-8")
    assert d.proc is not None
    d.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 60
    while len(rows := stored_ses_seals(d.fixtures.state_dir, SEAL)) < 3 and time.monotonic() < deadline:
        time.sleep(0.2)
    v3 = rows[-1]
    assert v3.version == 3 and v3.reason == "changed: property.validEnd"
    # Sealing after new approvals embeds the current version.
    with d.client("liu.yang") as custodian:
        custodian.unlock(SEAL, PIN)
    for who in ("li.na", "wang.fang"):
        with d.client(who) as approver:
            approver.approve(waiting)
    with d.client("zhang.wei") as z:
        d.wait_state(z, waiting, SIGNED)
        z.download(waiting, 0, tmp_path / "a.sealed.pdf")
    assert _embedded_seal((tmp_path / "a.sealed.pdf").read_bytes()) == v3.der
    # A renewed certificate (same key: a new CSR from CreateSealKey) is a new holder: version 4.
    with d.client("chen.jie") as admin:
        renewal_csr = bytes(admin.create_seal_key(SEAL).csr_der)
        assert _csr_key(renewal_csr) == _csr_key(csr_der)  # the same key, never a new one
        renewed = s.ca.issue(renewal_csr, days=200)
        admin.change_seal(SEAL, certificate_der=renewed)
    v4 = stored_ses_seals(d.fixtures.state_dir, SEAL)[-1]
    assert (v4.version, v4.reason) == (4, "certificate renewed")
    (holder,) = ses.holder_certificates(ses.parse_seal(v4.der))
    assert holder == renewed


def test_gbt38540_impression_registered_makes_a_new_ses_seal_that_sealing_embeds(
    sm2_setup: Setup, tmp_path: Path
) -> None:
    """Issues 16 + 19: a registered impression is a new face of the seal, so the maker makes
    a new SES_Seal whose picture is that impression; while the maker cannot sign, the seal
    does not seal with the old SES_Seal under the new face (fail closed: ses_seal_stale)."""
    s, d = sm2_setup, sm2_setup.d
    csr_der = s.unlock_and_create_key()
    with d.client("chen.jie") as admin:
        admin.import_seal_certificate(SEAL, s.ca.issue(csr_der))
    size_mm = 42.0  # the config's default seal size (the fixture sets none)
    (v1,) = stored_ses_seals(d.fixtures.state_dir, SEAL)

    def register(image: bytes) -> None:
        with d.client("chen.jie") as admin:
            proposal = admin.import_seal_impression(SEAL, image, seal_code="4401060012345")
        with s.second_admin() as second:
            second.approve_seal_impression(SEAL, proposal.impression_id, proposal.sha256)

    # With the maker present: version 2, made for the impression, embedded by sealing.
    register(impressions.good_png(size_mm))
    v1_again, v2 = stored_ses_seals(d.fixtures.state_dir, SEAL)
    assert v1_again.der == v1.der and (v2.version, v2.reason) == (2, "impression registered")
    faces = [ses_seal_check.stored_face(v.der).picture_sha256 for v in (v1, v2)]
    assert faces[0] != faces[1]
    request_id = _submit(d, tmp_path, "a.pdf", approvals=2)
    with d.client("zhang.wei") as z:
        d.wait_state(z, request_id, SIGNED)
        z.download(request_id, 0, tmp_path / "a.sealed.pdf")
    assert _embedded_seal((tmp_path / "a.sealed.pdf").read_bytes()) == v2.der

    # With the maker away: the impression is registered, no SES_Seal can be made, and a
    # request approved under the new face fails naming the stale SES_Seal; nothing released.
    s.token.remove(MAKER_DEV)
    register(impressions.second_png(size_mm))
    assert len(stored_ses_seals(d.fixtures.state_dir, SEAL)) == 2
    refused = _submit(d, tmp_path, "b.pdf", approvals=2)
    with d.client("zhang.wei") as z:
        failed = d.wait_state(z, refused, requests_pb2.REQUEST_STATE_FAILED, timeout=120)
    assert "ses_seal_stale" in failed.state_reason or "picture" in failed.state_reason
    assert not any(doc.sealed_sha256 for doc in failed.documents)
