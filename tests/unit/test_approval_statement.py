"""The approval statement's canonical form and signatures (issue 9), pure."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import NameOID

from seald.domain.approval_statement import (
    ApprovalStatement,
    StatementError,
    parse_statement,
    sign_statement,
    signature_algorithm,
    signature_verifies,
    statement_problems,
)
from seald.domain.digest import DigestDocument, DigestPlacement

# Issue 14: certificates and statements dated from now; scripts/test.sh runs these again
# under faketime at 03:10 and 23:50 UTC.
pytestmark = pytest.mark.clock


def _statement(**changes: object) -> ApprovalStatement:
    base = ApprovalStatement(
        request_id="R-1",
        approval_digest="",
        seal_id="contract",
        seal_certificate_sha256="a" * 64,
        requester="zhang.wei",
        reason='采购合同 "quoted"\n',
        category="contract",
        placement=DigestPlacement(0, 150.25, 240.0, 42.0, "", False),
        documents=(DigestDocument("合同.pdf", "b" * 64, 1234),),
        signer_certificate_sha256="c" * 64,
        signed_at="2026-11-29T08:00:00Z",
        comment="同意",
    )
    fields = {**base.__dict__, **changes}
    statement = ApprovalStatement(**fields)  # type: ignore[arg-type]
    if not changes.get("approval_digest"):
        statement = ApprovalStatement(**{**fields, "approval_digest": statement.recomputed_digest()})  # type: ignore[arg-type]
    return statement


def test_statement_round_trips_and_is_canonical() -> None:
    statement = _statement()
    data = statement.canonical_bytes()
    assert parse_statement(data) == statement
    assert b" " not in data.replace("采购合同 ".encode(), b"")  # no insignificant white space
    assert data.startswith(b'{"approval_digest":')  # keys sorted
    with pytest.raises(StatementError):
        parse_statement(data.replace(b'{"approval_digest"', b'{ "approval_digest"'))
    with pytest.raises(StatementError):
        parse_statement(data[:-1] + b',"extra":1}')


def test_edited_statement_no_longer_hashes_to_its_digest() -> None:
    statement = _statement()
    assert (
        statement_problems(
            statement, request_id="R-1", approval_digest=statement.approval_digest, document_sha256=["b" * 64]
        )
        == []
    )
    edited = _statement(reason="借款合同", approval_digest=statement.approval_digest)
    problems = statement_problems(
        edited, request_id="R-1", approval_digest=statement.approval_digest, document_sha256=["b" * 64]
    )
    assert any("edited statement" in p for p in problems)


def _certificate(key: CertificateIssuerPrivateKeyTypes) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "li.na")])
    now = dt.datetime.now(dt.UTC)
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, algorithm)
    )


@pytest.mark.parametrize(
    ("key", "algorithm"),
    [
        (ec.generate_private_key(ec.SECP256R1()), "ecdsa-sha256"),
        (rsa.generate_private_key(public_exponent=65537, key_size=2048), "rsa-pss-sha256"),
        (ed25519.Ed25519PrivateKey.generate(), "ed25519"),
    ],
)
def test_signature_by_key_type_verifies_only_for_that_key_and_bytes(
    key: CertificateIssuerPrivateKeyTypes, algorithm: str
) -> None:
    certificate = _certificate(key)
    other = _certificate(ec.generate_private_key(ec.SECP256R1()))
    data = _statement().canonical_bytes()
    signature = sign_statement(key, data)
    assert signature_algorithm(certificate) == algorithm
    assert signature_verifies(certificate, data, signature)
    assert not signature_verifies(certificate, data + b" ", signature)
    assert not signature_verifies(other, data, signature)


def test_delegation_statement_names_on_behalf_of_and_amount_and_old_bytes_are_unchanged() -> None:
    plain = _statement()
    assert b"on_behalf_of" not in plain.canonical_bytes() and b"amount" not in plain.canonical_bytes()
    delegated = _statement(on_behalf_of="li.na", amount=("250000", "CNY"))
    data = delegated.canonical_bytes()
    assert b'"on_behalf_of":"li.na"' in data and b'"amount":{"currency":"CNY","value":"250000"}' in data
    assert parse_statement(data) == delegated
    assert delegated.approval_digest != plain.approval_digest  # the amount is in the digest
    ok = dict(request_id="R-1", approval_digest=delegated.approval_digest, document_sha256=["b" * 64])
    assert statement_problems(delegated, **ok, on_behalf_of="li.na") == []  # type: ignore[arg-type]
    # A statement signed for someone else (or for nobody) does not count for li.na.
    assert any("on behalf of" in p for p in statement_problems(delegated, **ok, on_behalf_of="wang.fang"))  # type: ignore[arg-type]
    assert any("on behalf of" in p for p in statement_problems(delegated, **ok))  # type: ignore[arg-type]
    edited = _statement(
        on_behalf_of="li.na", amount=("2500", "CNY"), approval_digest=delegated.approval_digest
    )
    problems = statement_problems(edited, **ok, on_behalf_of="li.na")  # type: ignore[arg-type]
    assert any("edited statement" in p for p in problems)
