"""An ECDSA P-256 seal end to end through seald (R02 creation, R05 two approvals, R14).

A new seal configured with ``algorithm = "ecdsa-p256"`` on a fresh SoftHSM token: the key
is generated on the token by CreateSealKey (EC, P-256), the seal CA issues a certificate
for the CSR, ImportSealCertificate accepts it, two approvals seal a PDF, and pdfsig and
seald's VerifyDocument find the ECDSA/SHA-256 signature valid.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from sealapi.v1 import common_pb2
from seald_testing.config import ConfigEdit, DaemonConfig
from seald_testing.daemon import CHANGED_PIN, SealDaemon
from seald_testing.plugin import DaemonFactory
from seald_testing.seals import (
    NEW_PIN,
    NEW_SEAL,
    NEW_TOKEN,
    IssuingCA,
    approve_and_sign,
    make_token,
    pdfsig_valid,
    with_new_seal,
)


def with_new_ecdsa_seal(serial: str) -> ConfigEdit:
    def edit(config: DaemonConfig) -> None:
        with_new_seal(serial)(config)
        config.set_seal(NEW_SEAL, algorithm="ecdsa-p256")

    return edit


@pytest.fixture
def ecdsa_daemon(daemon_factory: DaemonFactory) -> SealDaemon:
    serial = make_token(daemon_factory.fixtures(), NEW_TOKEN, NEW_PIN)
    return daemon_factory(with_new_ecdsa_seal(serial))


def test_ecdsa_p256_seal_end_to_end_through_the_daemon_is_valid_in_pdfsig(
    ecdsa_daemon: SealDaemon, tmp_path: Path
) -> None:
    d = ecdsa_daemon
    with d.client("liu.yang") as custodian:
        custodian.change_pin(NEW_SEAL, NEW_PIN, CHANGED_PIN)
        custodian.unlock(NEW_SEAL, CHANGED_PIN)
    with d.client("chen.jie") as admin:
        created = admin.create_seal_key(NEW_SEAL)
        csr = x509.load_der_x509_csr(created.csr_der)
        assert csr.is_signature_valid
        public = csr.public_key()
        assert isinstance(public, ec.EllipticCurvePublicKey) and isinstance(public.curve, ec.SECP256R1)
        issued = IssuingCA(d.fixtures).issue_for_csr(created.csr_der)
        seal = admin.import_seal_certificate(NEW_SEAL, issued)
        assert seal.status == common_pb2.SEAL_STATUS_ACTIVE
    done = approve_and_sign(d, tmp_path, NEW_SEAL, "ecdsa.pdf")
    out = tmp_path / "sealed-ecdsa.pdf"
    with d.client("zhang.wei") as z:
        z.download(done.request_id, 0, out)
        report = z.verify(out)
    text = pdfsig_valid(out)
    assert "ECDSA" in text or "SHA-256" in text, text
    assert report.all_valid
    assert (
        report.signatures[0].signer_certificate_sha256
        == x509.load_der_x509_certificate(issued).fingerprint(hashes.SHA256()).hex()
    )
    # The daemon's unlock check proves the EC key after a restart as well.
    d.stop()
    d.start()
    with d.client("liu.yang") as custodian:
        custodian.unlock(NEW_SEAL, CHANGED_PIN)
