"""What `archive_facts` reads from a PDF's document timestamps (issue 16 item 5): the
newest one's time and the earliest end date along its TSA certificate's chain. Real
RFC 3161 tokens from pyHanko's in-process TSA, under a root -> intermediate -> TSA chain
made with `cryptography`, at fixed dates."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign.signers.pdf_signer import PdfTimeStamper
from pyhanko.sign.timestamps.dummy_client import DummyTimeStamper

from seald.signing.archive import archive_facts
from seald_testing.daemon import make_pdf

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
INTERMEDIATE_END = dt.datetime(2029, 6, 30, tzinfo=dt.UTC)


def _cert(
    cn: str,
    key: rsa.RSAPrivateKey,
    issuer: tuple[rsa.RSAPrivateKey, x509.Certificate] | None,
    end: dt.datetime,
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer[1].subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(T0 - dt.timedelta(days=1))
        .not_valid_after(end)
    )
    if issuer is None or cn.startswith("Intermediate"):
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    else:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True
        )
    return builder.sign(issuer[0] if issuer else key, hashes.SHA256())


def _asn1(cert: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))


def _tsa(cn: str, tsa_end: dt.datetime, at: dt.datetime) -> tuple[DummyTimeStamper, bytes]:
    """A TSA under root -> intermediate (ends INTERMEDIATE_END); returns it and the root PEM."""
    root_key, inter_key, tsa_key = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in "abc"
    )
    root = _cert(f"Root {cn}", root_key, None, T0 + dt.timedelta(days=36500))
    inter = _cert(f"Intermediate {cn}", inter_key, (root_key, root), INTERMEDIATE_END)
    tsa = _cert(cn, tsa_key, (inter_key, inter), tsa_end)
    key_info = asn1_keys.PrivateKeyInfo.load(
        tsa_key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    stamper = DummyTimeStamper(_asn1(tsa), key_info, certs_to_embed=[_asn1(inter)], fixed_dt=at)
    return stamper, root.public_bytes(serialization.Encoding.PEM)


def _stamp(data: bytes, stamper: DummyTimeStamper) -> bytes:
    out = io.BytesIO(data)
    PdfTimeStamper(stamper).timestamp_pdf(IncrementalPdfFileWriter(out), "sha256", in_place=True)
    return out.getvalue()


def test_archive_facts_of_a_pdf_without_document_timestamp(tmp_path: Path) -> None:
    pdf = make_pdf(tmp_path / "plain.pdf", pages=1)
    facts = archive_facts(pdf)
    assert (facts.timestamp_time, facts.expires_at) == (None, None)


def test_archive_facts_take_the_newest_timestamp_and_the_earliest_end_of_its_chain(tmp_path: Path) -> None:
    pdf = make_pdf(tmp_path / "doc.pdf", pages=1)
    first_at, later_at = T0 + dt.timedelta(days=3), T0 + dt.timedelta(days=200)
    # TSA 1: its own certificate ends before the intermediate: that is the end.
    first, _ = _tsa("TSA one", dt.datetime(2027, 3, 1, tzinfo=dt.UTC), first_at)
    once = tmp_path / "once.pdf"
    once.write_bytes(_stamp(pdf.read_bytes(), first))
    facts = archive_facts(once)
    assert facts.timestamp_time == first_at
    assert facts.expires_at == dt.datetime(2027, 3, 1, tzinfo=dt.UTC)
    assert "TSA one" in facts.tsa_subject
    # TSA 2 (added later): its certificate runs to 2040, but the intermediate above it
    # ends in 2029; the archive must be renewed before the intermediate ends.
    later, root_pem = _tsa("TSA two", dt.datetime(2040, 1, 1, tzinfo=dt.UTC), later_at)
    twice = tmp_path / "twice.pdf"
    twice.write_bytes(_stamp(once.read_bytes(), later))
    facts = archive_facts(twice, [root_pem])
    assert facts.timestamp_time == later_at
    assert facts.expires_at == INTERMEDIATE_END
    assert "TSA two" in facts.tsa_subject
