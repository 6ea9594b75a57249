"""An SM2 seal made through seald (issue 19): the seal's SKF test token (empty: CreateSealKey
makes the key), the seal maker's own SKF test token (its key made inside, its certificate
self-signed by that key), an SM2 seal CA run with OpenSSL's command line, and OpenSSL checks
(asn1parse, pkeyutl with the standard's SM2 id) of what seald stores and writes.

TEST ONLY: the PINs below are published here.
"""

from __future__ import annotations

import datetime as dt
import re
import sqlite3
import subprocess
from dataclasses import dataclass
from pathlib import Path

from asn1crypto import pem
from skf_fixture import ADMIN_PIN, INITIAL_USER_PIN, SkfTestToken

from seald.gm import certs, sm2
from seald.tokens import skf

DISTID = "distid:1234567812345678"  # GM/T 0009's default id: Debian's OpenSSL CLI uses "" otherwise
SEAL_DEV, SEAL_SERIAL, SEAL_APP, SEAL_CON = "SKF-SEAL-02", "SKF0002", "SEAL", "sm2-seal"
MAKER_DEV, MAKER_SERIAL, MAKER_APP, MAKER_CON = "SKF-MAKER-01", "MAKER01", "MAKER", "maker"
MAKER_PIN = "13572468"


def make_seal_device(token: SkfTestToken) -> None:
    """A new seal token out of its box: an application with the issuer's initial PIN, no key."""
    token.create_device(SEAL_DEV, serial=SEAL_SERIAL)
    lib = skf.SkfLibrary(str(token.library))
    dev = lib.connect(SEAL_DEV)
    try:
        dev.create_application(SEAL_APP, admin_pin=ADMIN_PIN, user_pin=INITIAL_USER_PIN, user_retries=5)
    finally:
        dev.close()


@dataclass(frozen=True)
class Maker:
    cert_der: bytes
    cert_pem: Path
    pin_file: Path


def make_maker_token(token: SkfTestToken, out: Path) -> Maker:
    """The seal maker's token: SM2 key generated inside, certificate self-signed by it."""
    token.create_device(MAKER_DEV, serial=MAKER_SERIAL)
    lib = skf.SkfLibrary(str(token.library))
    dev = lib.connect(MAKER_DEV)
    try:
        app = dev.create_application(
            MAKER_APP, admin_pin=ADMIN_PIN, user_pin=INITIAL_USER_PIN, user_retries=5
        )
        app.change_pin(INITIAL_USER_PIN, MAKER_PIN)
        app.verify_pin(MAKER_PIN)
        con = app.create_container(MAKER_CON)
        key = sm2.Sm2PublicKey(con.generate_sm2())
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        cert = certs.build_certificate(
            subject=certs.name("电子印章制作系统(测试)"),
            issuer=certs.name("电子印章制作系统(测试)"),
            public_key=key,
            sign=con.sign,
            not_before=now - dt.timedelta(days=1),
            not_after=now + dt.timedelta(days=3650),
            ca=True,
        )
        der = bytes(cert.dump())
        con.import_certificate(der)
        con.close()
        app.logout()
        app.close()
    finally:
        dev.close()
    cert_pem = out / "maker.pem"
    cert_pem.write_bytes(pem.armor("CERTIFICATE", der))
    pin_file = out / "maker.pin"
    pin_file.write_text(MAKER_PIN + "\n")
    pin_file.chmod(0o600)
    return Maker(der, cert_pem, pin_file)


class Sm2Ca:
    """An SM2 seal CA on OpenSSL's command line (the independent issuer of the tests)."""

    def __init__(self, out: Path) -> None:
        self.dir = out
        self.key = out / "sm2ca.key"
        self.cert = out / "sm2ca.pem"
        self._run("genpkey", "-algorithm", "SM2", "-out", str(self.key))
        self._run(
            "req", "-x509", "-new", "-key", str(self.key), "-sm3", "-sigopt", DISTID,
            "-subj", "/C=CN/CN=Test SM2 Seal CA", "-days", "3650", "-out", str(self.cert),
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        )  # fmt: skip

    def _run(self, *args: str) -> str:
        res = subprocess.run(["openssl", *args], cwd=self.dir, capture_output=True, text=True, check=False)
        assert res.returncode == 0, res.stdout + res.stderr
        return res.stdout + res.stderr

    def verify_csr(self, csr_der: bytes) -> str:
        """``openssl req -verify`` with the standard's SM2 id; returns OpenSSL's text."""
        (self.dir / "req.der").write_bytes(csr_der)
        return self._run("req", "-verify", "-inform", "DER", "-in", "req.der", "-noout", "-vfyopt", DISTID)

    def issue(self, csr_der: bytes, *, days: int = 365) -> bytes:
        """The CA signs the CSR (SM2-with-SM3) with OpenSSL; returns the certificate DER."""
        (self.dir / "req.der").write_bytes(csr_der)
        (self.dir / "ext.cnf").write_text("keyUsage=critical,digitalSignature,nonRepudiation\n")
        self._run(
            "x509", "-req", "-inform", "DER", "-in", "req.der",
            "-CA", str(self.cert), "-CAkey", str(self.key),
            "-CAcreateserial", "-sm3", "-sigopt", DISTID, "-vfyopt", DISTID, "-days", str(days),
            "-extfile", "ext.cnf", "-outform", "DER", "-out", "issued.der",
        )  # fmt: skip
        return (self.dir / "issued.der").read_bytes()

    def issue_for_key(self, public_spki_der: bytes) -> bytes:
        """A certificate from this CA for an arbitrary public key (no CSR: a wrong-key test)."""
        ca_key = sm2.Sm2PrivateKey.from_pem(self.key.read_bytes())
        ca_cert = certs.load_certificate(pem.unarmor(self.cert.read_bytes())[2])
        from asn1crypto import keys, x509  # noqa: PLC0415

        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        tbs = x509.TbsCertificate(
            {
                "version": "v3",
                "serial_number": 4242,
                "signature": {"algorithm": sm2.SM2_WITH_SM3_OID},
                "issuer": ca_cert.subject,
                "validity": {
                    "not_before": x509.Time(name="utc_time", value=now - dt.timedelta(days=1)),
                    "not_after": x509.Time(name="utc_time", value=now + dt.timedelta(days=30)),
                },
                "subject": certs.name("wrong key"),
                "subject_public_key_info": keys.PublicKeyInfo.load(public_spki_der),
            }
        )
        return bytes(
            x509.Certificate(
                {
                    "tbs_certificate": tbs,
                    "signature_algorithm": {"algorithm": sm2.SM2_WITH_SM3_OID},
                    "signature_value": ca_key.sign(tbs.dump()),
                }
            ).dump()
        )


# ---------------------------------------------------------------------------- OpenSSL checks


@dataclass(frozen=True)
class Node:
    offset: int
    depth: int
    hl: int
    length: int
    tag: str
    value: str

    def tlv(self, der: bytes) -> bytes:
        return der[self.offset : self.offset + self.hl + self.length]

    def content(self, der: bytes) -> bytes:
        return der[self.offset + self.hl : self.offset + self.hl + self.length]


_LINE = re.compile(r"^\s*(\d+):d=(\d+)\s+hl=(\d+)\s+l=\s*(\d+)\s+(?:prim|cons):\s+(.+?)\s*(?::(.*))?$")


def asn1parse(der: bytes, tmp: Path) -> list[Node]:
    """``openssl asn1parse`` of ``der``: every node with its offset, depth and tag."""
    (tmp / "in.der").write_bytes(der)
    out = subprocess.run(
        ["openssl", "asn1parse", "-inform", "DER", "-in", "in.der"],
        cwd=tmp,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    nodes = []
    for line in out.splitlines():
        m = _LINE.match(line)
        assert m, line
        tag = m[5].replace("[HEX DUMP]", "").strip()
        nodes.append(Node(int(m[1]), int(m[2]), int(m[3]), int(m[4]), tag, (m[6] or "").strip()))
    return nodes


def openssl_sm2_verifies(tmp: Path, cert_der: bytes, message: bytes, signature: bytes) -> bool:
    """``openssl pkeyutl -verify`` (SM3, the standard's id) of an SM2 signature by ``cert_der``'s key."""
    (tmp / "c.der").write_bytes(cert_der)
    pub = subprocess.run(
        ["openssl", "x509", "-inform", "DER", "-in", "c.der", "-noout", "-pubkey"],
        cwd=tmp,
        capture_output=True,
        check=True,
    ).stdout
    (tmp / "pub.pem").write_bytes(pub)
    (tmp / "m.bin").write_bytes(message)
    (tmp / "s.der").write_bytes(signature)
    res = subprocess.run(
        ["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", "pub.pem", "-rawin", "-digest", "sm3",
         "-pkeyopt", DISTID, "-in", "m.bin", "-sigfile", "s.der"],
        cwd=tmp, capture_output=True, text=True, check=False,
    )  # fmt: skip
    return res.returncode == 0 and "Verified Successfully" in res.stdout


def bitstring_bytes(node: Node, der: bytes) -> bytes:
    content = node.content(der)
    assert content[0] == 0, "BIT STRING with unused bits"
    return content[1:]


# ---------------------------------------------------------------------------- the registry


@dataclass(frozen=True)
class StoredRow:
    version: int
    reason: str
    sha256: str
    der: bytes
    destroyed_at: str


def stored_ses_seals(state_dir: Path, seal_id: str) -> list[StoredRow]:
    """Every SES_Seal version the registry holds for the seal, oldest first."""
    db = sqlite3.connect(state_dir / "seald.sqlite3")
    try:
        rows = db.execute(
            "SELECT version, reason, sha256, der, destroyed_at FROM ses_seal"
            " WHERE seal_id = ? ORDER BY version",
            (seal_id,),
        ).fetchall()
    finally:
        db.close()
    return [StoredRow(int(r[0]), str(r[1]), str(r[2]), bytes(r[3]), str(r[4])) for r in rows]


def ledger_details(state_dir: Path, seal_id: str, event: str) -> list[str]:
    """The details JSON of each audit record ``event`` of the seal, in order."""
    db = sqlite3.connect(state_dir / "seald.sqlite3")
    try:
        return [
            str(r[0])
            for r in db.execute(
                "SELECT details_json FROM audit_log WHERE seal_id = ? AND event = ? ORDER BY sequence",
                (seal_id, event),
            )
        ]
    finally:
        db.close()
