"""A new seal on a new, empty SoftHSM token, a CA that issues seal certificates, and what
the seal tests check after signing (pdfsig, the seal's history and audit events).

Used by the seal creation and renewal tests (R02 刻制/变更): `make_token` is a new USB key
out of its box, `with_new_seal` registers seal `contract2` on it (no certificate yet) and
lets every principal holding both fixture seals use it too.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import subprocess
from pathlib import Path

import pkcs11
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPublicKeyTypes
from fixture_layout import SealFixtures

from sealapi.v1 import common_pb2, requests_pb2
from seald_testing.config import ConfigEdit, DaemonConfig
from seald_testing.daemon import SealDaemon, make_pdf

NEW_SEAL = "contract2"
NEW_TOKEN = "seal-contract2"
NEW_KEY = "contract2-seal-key"
NEW_PIN = "55667788"  # test-only initial user PIN of the new token
PLACEMENT = common_pb2.Placement(page=0, x_mm=150, y_mm=240)


def make_token(fx: SealFixtures, label: str, pin: str) -> str:
    """A new, empty SoftHSM token (as a new USB key out of its box); returns its serial."""
    env = {"SOFTHSM2_CONF": str(fx.softhsm2_conf), "PATH": "/usr/bin:/bin"}
    subprocess.run(
        ["softhsm2-util", "--init-token", "--free", "--label", label, "--so-pin", "12345678", "--pin", pin],
        check=True,
        capture_output=True,
        env=env,
        timeout=60,
    )
    lib = pkcs11.lib(str(fx.module))
    lib.reinitialize()
    return str(lib.get_token(token_label=label).serial.decode("ascii").strip())


def add_contract_seal(config: DaemonConfig, seal_id: str, **values: object) -> None:
    """A further contract seal of the fixtures' organisation, usable by every principal
    who holds both fixture seals."""
    for principal in config.data["principal"]:
        if principal["seals"] == ["official", "contract"]:
            principal["seals"] = ["official", "contract", seal_id]
    config.add_seal(
        seal_id, type="contract", organisation="华夏示例科技有限公司", categories=["contract"], **values
    )


def with_new_seal(serial: str) -> ConfigEdit:
    def edit(config: DaemonConfig) -> None:
        add_contract_seal(
            config,
            NEW_SEAL,
            display_name="合同专用章(二)",
            token_label=NEW_TOKEN,
            token_serial=serial,
            key_label=NEW_KEY,
        )

    return edit


class IssuingCA:
    """Issues seal certificates with the fixtures' seal-CA key (trusted by seald's [trust])."""

    def __init__(self, fx: SealFixtures) -> None:
        self.key = serialization.load_pem_private_key(fx.seal_ca_key.read_bytes(), password=None)
        self.cert = x509.load_pem_x509_certificate(fx.seal_ca.read_bytes())

    def issue(
        self, subject: x509.Name, public_key: CertificateIssuerPublicKeyTypes, days: int = 365
    ) -> bytes:
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.cert.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=True,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self.key, hashes.SHA256())  # type: ignore[arg-type]
        )
        return cert.public_bytes(serialization.Encoding.DER)

    def issue_for_csr(self, csr_der: bytes) -> bytes:
        csr = x509.load_der_x509_csr(csr_der)
        assert csr.is_signature_valid  # the token's key signed it: proof of possession
        return self.issue(csr.subject, csr.public_key())  # type: ignore[arg-type]


def approve_and_sign(d: SealDaemon, tmp_path: Path, seal_id: str, name: str) -> requests_pb2.SealRequest:
    pdf = make_pdf(tmp_path / name)
    with d.client("zhang.wei") as z:
        request = z.submit(
            [pdf], seal_id=seal_id, reason="采购合同", category="contract", placement=PLACEMENT
        )
    with d.client("li.na") as li, d.client("wang.fang") as wang:
        li.approve(request.request_id)
        wang.approve(request.request_id)
    with d.client("zhang.wei") as z:
        return d.wait_state(z, request.request_id, requests_pb2.REQUEST_STATE_SIGNED)


def pdfsig_valid(path: Path) -> str:
    report = subprocess.run(["pdfsig", str(path)], capture_output=True, text=True, check=False).stdout
    assert "Signature is Valid" in report, report
    assert "Total document signed" in report, report
    return report


def ledger(d: SealDaemon, seal_id: str) -> tuple[list[str], list[str]]:
    """A seal's history actions and its audit events, in order, from the daemon's SQLite file."""
    db = sqlite3.connect(d.fixtures.state_dir / "seald.sqlite3")
    try:
        history = [
            r[0]
            for r in db.execute("SELECT action FROM seal_history WHERE seal_id = ? ORDER BY id", (seal_id,))
        ]
        events = [
            r[0]
            for r in db.execute("SELECT event FROM audit_log WHERE seal_id = ? ORDER BY sequence", (seal_id,))
        ]
    finally:
        db.close()
    return history, events
