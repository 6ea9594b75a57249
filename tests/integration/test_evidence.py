"""Evidence packages (issue 9; SEAL-RULES R05, R06, R10, R14) from a real sealed request.

One daemon seals one request; its package is fetched with sealctl, the daemon is
stopped, and the package is verified offline on a copy (no daemon, no database).
Then every tampering is made on that package and must be caught and named.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import hashlib
import io
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fixture_layout import SealFixtures
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import signers

from sealapi.v1 import common_pb2, requests_pb2
from sealclient.approval import ApprovalSigner, LocalDocument, build_approval
from sealclient.errors import SealClientError
from sealclient.evidence import load_trust, pdf_problems, verify_package
from seald.domain.audit import RECORD_COLUMNS, canonical_details_json, canonical_row_bytes, format_time
from seald.store.checkpoints import checkpoint_payload
from seald_testing.daemon import make_pdf, unlock_first_use
from seald_testing.plugin import DaemonFactory

# Issue 14: certificates and statements dated from now; scripts/test.sh runs these again
# under faketime at 03:10 and 23:50 UTC.
pytestmark = pytest.mark.clock

SEALCTL = shutil.which("sealctl", path=str(Path(sys.executable).parent))
PLACEMENT = common_pb2.Placement(page=0, x_mm=150, y_mm=240)


@dataclass(frozen=True)
class Sealed:
    fixtures: SealFixtures
    package: Path
    pdf: Path
    original: Path
    annex_pdf: Path  # the request's second sealed document
    trust: list[Path]
    request: requests_pb2.SealRequest


def _sealctl(fixtures: SealFixtures, target: str, who: str, *args: str) -> subprocess.CompletedProcess[str]:
    assert SEALCTL is not None
    command = [SEALCTL, "--config", str(fixtures.principals[who].config), "--server", target, *args]
    return subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)


def _offline(*args: str) -> subprocess.CompletedProcess[str]:
    assert SEALCTL is not None
    return subprocess.run([SEALCTL, *args], capture_output=True, text=True, check=False, timeout=120)


@pytest.fixture(scope="module")
def sealed(
    tmp_path_factory: pytest.TempPathFactory, module_daemon_factory: DaemonFactory
) -> Iterator[Sealed]:
    work = tmp_path_factory.mktemp("evidence")
    daemon = module_daemon_factory()
    fixtures = daemon.fixtures
    try:
        original = make_pdf(work / "contract.pdf", pages=2)
        annex = make_pdf(work / "annex.pdf", pages=3)
        with daemon.client("zhang.wei") as requester:
            request = requester.submit(
                [original, annex],
                seal_id="contract",
                reason="采购合同",
                category="contract",
                placement=PLACEMENT,
            )
            with pytest.raises(SealClientError) as not_yet:
                requester.evidence(request.request_id)
            assert not_yet.value.code == grpc.StatusCode.FAILED_PRECONDITION
        with daemon.client("li.na") as li, daemon.client("wang.fang") as wang:
            li.approve(request.request_id, "同意")
            wang.approve(request.request_id)
            with pytest.raises(SealClientError) as approver:
                wang.evidence(request.request_id)
            assert approver.value.code == grpc.StatusCode.PERMISSION_DENIED
        with daemon.client("liu.yang") as custodian:
            unlock_first_use(custodian, fixtures, "contract")
        pdf, annex_pdf = work / "contract.sealed.pdf", work / "annex.sealed.pdf"
        with daemon.client("zhang.wei") as requester:
            done = daemon.wait_state(requester, request.request_id, requests_pb2.REQUEST_STATE_SIGNED)
            requester.download(request.request_id, 0, pdf)
            requester.download(request.request_id, 1, annex_pdf)
        package = work / "evidence.json"
        fetched = _sealctl(
            fixtures, daemon.target, "zhao.min", "evidence", request.request_id, "--out", str(package)
        )
        assert fetched.returncode == 0, fetched.stderr
        by_requester = work / "by-requester.json"
        again = _sealctl(
            fixtures, daemon.target, "zhang.wei", "evidence", request.request_id, "--out", str(by_requester)
        )
        assert again.returncode == 0, again.stderr
        # The first export signed a checkpoint covering the request; the second reuses it.
        first, second = (json.loads(p.read_text(encoding="utf-8")) for p in (package, by_requester))
        assert first["ledger"]["checkpoint"] == second["ledger"]["checkpoint"]
    finally:
        daemon.stop()
    # A copy elsewhere, the daemon stopped: nothing but these files is used from here on.
    offline = work / "offline"
    offline.mkdir()
    for source in (package, pdf, annex_pdf, original, fixtures.tls_ca, fixtures.seal_ca):
        shutil.copy(source, offline / source.name)
    shutil.copy(fixtures.state_dir / "audit" / "audit-cert.pem", offline / "audit-cert.pem")
    trust = [offline / fixtures.tls_ca.name, offline / fixtures.seal_ca.name, offline / "audit-cert.pem"]
    yield Sealed(
        fixtures,
        offline / package.name,
        offline / pdf.name,
        offline / original.name,
        offline / annex_pdf.name,
        trust,
        done,
    )


def _verify(sealed: Sealed, package: dict[str, Any], pdf: Path | None = None) -> dict[str, str]:
    """Failed checks -> their detail, for a (tampered) package."""
    data = json.dumps(package, ensure_ascii=False).encode()
    verdict = verify_package(data, [pdf or sealed.pdf], load_trust(sealed.trust))
    assert [c.name for c in verdict.checks][:1] == ["package_format"]
    return {c.name: c.detail for c in verdict.checks if not c.ok}


def _package(sealed: Sealed) -> dict[str, Any]:
    return json.loads(sealed.package.read_text(encoding="utf-8"))


def test_r10_r14_package_of_a_real_sealed_request_verifies_offline_with_the_daemon_stopped(
    sealed: Sealed,
) -> None:
    done = _offline(
        "evidence",
        "verify",
        str(sealed.package),
        str(sealed.pdf),
        str(sealed.annex_pdf),
        *[a for p in sealed.trust for a in ("--ca", str(p))],
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "PASS  pdf_hash: 2 PDF(s) are the recorded sealed documents" in done.stdout
    lines = done.stdout.splitlines()
    assert lines[-1] == "evidence VERIFIED"
    for name in (
        "checkpoint_signature",
        "checkpoint_certificate_trusted",
        "ledger_chain",
        "ledger_request",
        "approval_signatures",
        "approver_certificates_trusted",
        "approval_statements",
        "approvals_recorded",
        "approvals_not_replayed",
        "approval_policy",
        "seal_certificate",
        "pdf_hash",
        "pdf_signature",
        "pdf_coverage",
    ):
        assert any(line.startswith(f"PASS  {name}:") for line in lines), (name, done.stdout)
    package = _package(sealed)
    assert package["format"] == "seald.evidence/1"
    assert [a["approver"] for a in package["approvals"]] == ["li.na", "wang.fang"]
    assert package["policy"]["required"] == 2
    assert package["request"]["documents"][0]["sealed_sha256"] == sealed.request.documents[0].sealed_sha256
    as_json = _offline(
        "--json",
        "evidence",
        "verify",
        str(sealed.package),
        str(sealed.pdf),
        *[a for p in sealed.trust for a in ("--ca", str(p))],
    )
    assert json.loads(as_json.stdout)["ok"] is True


def test_r06_edited_approval_statement_is_caught(sealed: Sealed) -> None:
    package = _package(sealed)
    statement = package["approvals"][0]["statement"]
    package["approvals"][0]["statement"] = statement.replace('"comment":"同意"', '"comment":"同意（附条件）"')
    assert package["approvals"][0]["statement"] != statement
    failed = _verify(sealed, package)
    assert "approval_signatures" in failed and "li.na" in failed["approval_signatures"]


def test_r04_swapped_approver_certificate_is_caught(sealed: Sealed) -> None:
    package = _package(sealed)
    laptop = sealed.fixtures.principals["li.na-laptop"].cert.read_text(encoding="ascii")
    package["approvals"][0]["certificate_pem"] = laptop  # same person, same CA, another key
    failed = _verify(sealed, package)
    assert "approval_signatures" in failed
    assert "certificate swapped" in failed["approval_signatures"]


def test_r05_removed_approval_is_caught(sealed: Sealed) -> None:
    package = _package(sealed)
    del package["approvals"][1]
    failed = _verify(sealed, package)
    assert "only 1 valid distinct approvals of the 2 required" in failed["approval_policy"]
    assert "wang.fang" in failed["approvals_recorded"]


def test_r05_injected_approval_by_the_requester_is_caught(sealed: Sealed) -> None:
    package = _package(sealed)
    who = sealed.fixtures.principals["zhang.wei"]
    local = [LocalDocument(d.sha256, d.size) for d in sealed.request.documents]
    message = build_approval(
        sealed.request,
        local,
        signer=ApprovalSigner(who.key.read_bytes(), who.cert.read_bytes()),
        now=dt.datetime.now(dt.UTC),
    )
    package["approvals"][1] = {
        "approver": "zhang.wei",
        "approved_at": dt.datetime.now(dt.UTC).isoformat(),
        "certificate_sha256": who.fingerprint_sha256,
        "certificate_pem": who.cert.read_text(encoding="ascii"),
        "statement": message.statement.decode(),
        "signature": base64.b64encode(message.statement_signature).decode(),
    }
    failed = _verify(sealed, package)
    # The requester's statement is genuinely signed; what makes it worthless is who signed it.
    assert "approval_signatures" not in failed
    assert "zhang.wei is the requester" in failed["approval_policy"]
    assert "zhang.wei" in failed["approvals_recorded"]


def test_r10_changed_ledger_record_is_caught(sealed: Sealed) -> None:
    package = _package(sealed)
    records = package["ledger"]["records"]
    approved = next(r for r in records if r["event"] == "request.approved" and r["principal"] == "wang.fang")
    approved["principal"] = "chen.jie"
    failed = _verify(sealed, package)
    assert f"record {approved['sequence']} was modified" in failed["ledger_chain"]


def test_r10_checkpoint_resigned_by_another_key_is_caught(sealed: Sealed) -> None:
    package = _package(sealed)
    checkpoint = package["ledger"]["checkpoint"]
    key = ec.generate_private_key(ec.SECP256R1())
    payload = checkpoint_payload(
        checkpoint["sequence"], checkpoint["head_hash"], checkpoint["created_at"], checkpoint["host"]
    )
    signature = base64.b64encode(key.sign(payload, ec.ECDSA(hashes.SHA256()))).decode()
    # Only the signature replaced: it no longer verifies with the audit certificate.
    only_signature = copy.deepcopy(package)
    only_signature["ledger"]["checkpoint"]["signature"] = signature
    assert "re-signed checkpoint" in _verify(sealed, only_signature)["checkpoint_signature"]
    # Signature and certificate replaced together: consistent, but the key is not trusted.
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "seald audit key (forged)")])
    now = dt.datetime.now(dt.UTC)
    forged_cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    both = copy.deepcopy(only_signature)
    both["ledger"]["checkpoint"]["certificate_pem"] = forged_cert.public_bytes(
        serialization.Encoding.PEM
    ).decode()
    failed = _verify(sealed, both)
    assert "checkpoint_signature" not in failed
    assert "does not chain to a trusted certificate" in failed["checkpoint_certificate_trusted"]


def test_r14_a_different_pdf_is_caught(sealed: Sealed, tmp_path: Path) -> None:
    failed = _verify(sealed, _package(sealed), pdf=sealed.original)
    assert "is not a sealed document of request" in failed["pdf_hash"]
    other = make_pdf(tmp_path / "other.pdf", pages=1)
    assert "pdf_hash" in _verify(sealed, _package(sealed), pdf=other)
    done = _offline(
        "evidence",
        "verify",
        str(sealed.package),
        str(other),
        *[a for p in sealed.trust for a in ("--ca", str(p))],
    )
    assert done.returncode == 10, done.stdout + done.stderr
    assert "FAIL  pdf_hash:" in done.stdout
    assert (
        done.stdout.splitlines()[-1] == "evidence NOT verified: pdf_hash, pdf_signature, pdf_coverage failed"
    )


def _self_signed(tmp_path: Path) -> tuple[Path, Path, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test seal")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    key_path, cert_path = tmp_path / "seal.key", tmp_path / "seal.pem"
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path, cert


def _sign(data: bytes, key_path: Path, cert_path: Path) -> bytes:
    signer = signers.SimpleSigner.load(str(key_path), str(cert_path))  # type: ignore[no-untyped-call]
    assert signer is not None
    meta = signers.PdfSignatureMetadata(field_name="Seal", md_algorithm="sha256")
    return bytes(signers.sign_pdf(IncrementalPdfFileWriter(io.BytesIO(data)), meta, signer=signer).getvalue())


def test_r14_pdf_coverage_names_a_revision_slipped_in_between_approval_and_signature(
    sealed: Sealed, tmp_path: Path
) -> None:
    """The signature must sit on the approved bytes themselves, not on a later edit of them."""
    original = sealed.original.read_bytes()
    document = {"name": "contract.pdf", "size": len(original), "sha256": hashlib.sha256(original).hexdigest()}
    key_path, cert_path, cert = _self_signed(tmp_path)
    honest = tmp_path / "honest.pdf"
    honest.write_bytes(_sign(original, key_path, cert_path))
    assert pdf_problems(honest, document, cert, [cert], [cert]) == ([], [])
    edit = IncrementalPdfFileWriter(io.BytesIO(original))
    edit.root["/PageMode"] = generic.NameObject("/FullScreen")
    edit.update_root()
    edited = io.BytesIO()
    edit.write(edited)
    slipped = tmp_path / "slipped.pdf"
    slipped.write_bytes(_sign(edited.getvalue(), key_path, cert_path))
    assert slipped.read_bytes().startswith(original)  # the approved bytes are still a prefix
    signature_problems, coverage = pdf_problems(slipped, document, cert, [cert], [cert])
    assert signature_problems == []
    assert len(coverage) == 1 and "something else was added before the signature" in coverage[0]


def _leaves(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, (*path, key))
    elif isinstance(value, list) and value and path[-1:] != ("certificate_chain_pem",):
        for index, item in enumerate(value):
            yield from _leaves(item, (*path, index))
    else:
        yield path


def test_r10_r14_any_damaged_field_is_a_failed_check_never_a_crash(sealed: Sealed) -> None:
    """A bounded sample (seeded) of fields, each replaced by values of the wrong kind."""
    import random  # noqa: PLC0415

    package = _package(sealed)
    paths = sorted(_leaves(package), key=repr)
    chosen = random.Random(9).sample(paths, 36)
    anchors = load_trust(sealed.trust)
    for path, replacement in zip(chosen, [None, "x", 7, [], {"a": 1}, "0" * 64] * 6, strict=False):
        damaged = copy.deepcopy(package)
        target = damaged
        for key in path[:-1]:
            target = target[key]
        if target[path[-1]] == replacement:
            continue
        target[path[-1]] = replacement
        data = json.dumps(damaged, ensure_ascii=False).encode()
        verdict = verify_package(data, [sealed.pdf], anchors)
        # Fields a reader is told but no check depends on (the ledger and signatures carry them).
        informational = {
            "created_at",
            "host",
            "approved_at",
            "state",
            "request_sequences",
            "columns",
            "required_approvals",
            "signed_at",
        }
        if not set(map(str, path)) & informational:
            assert not verdict.ok, path


# -- issue 14 item 1: a withdrawn approval that comes back by replay ----------------------


def _latest_time(package: dict[str, Any]) -> dt.datetime:
    """After the last ledger record and after every statement in the package: the
    approvers' clocks may run ahead of the daemon's (by up to the allowed skew)."""
    signed = [json.loads(a["statement"])["signed_at"] for a in package["approvals"]]
    times = [package["ledger"]["records"][-1]["time"], *signed]
    return max(dt.datetime.fromisoformat(t.replace("Z", "+00:00")) for t in times)


def _append_and_resign(sealed: Sealed, package: dict[str, Any], events: list[dict[str, Any]]) -> None:
    """Append ledger records of the request after the checkpointed head, chain them, and
    re-sign the checkpoint with the appliance's OWN audit key: the package a daemon that
    accepted the replay (as seald did before issue 14) would export. Nothing else is
    touched, so every other check still passes and only the replay can fail it."""
    ledger = package["ledger"]
    records = ledger["records"]
    template = next(r for r in records if r["event"] == "request.approved")
    head = records[-1]
    moment = _latest_time(package)
    for extra in events:
        moment += dt.timedelta(seconds=1)
        record = {**template, "reason": template["reason"], **extra}
        record["sequence"] = head["sequence"] + 1
        record["time"] = format_time(moment)
        record["previous_hash"] = head["record_hash"]
        record["record_hash"] = hashlib.sha256(
            canonical_row_bytes(tuple(record[c] for c in RECORD_COLUMNS))
        ).hexdigest()
        records.append(record)
        ledger["request_sequences"].append(record["sequence"])
        head = record
    checkpoint = ledger["checkpoint"]
    checkpoint["sequence"], checkpoint["head_hash"] = head["sequence"], head["record_hash"]
    checkpoint["created_at"] = format_time(moment + dt.timedelta(seconds=1))
    key = serialization.load_pem_private_key(
        (sealed.fixtures.state_dir / "audit" / "audit-key.pem").read_bytes(), password=None
    )
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    payload = checkpoint_payload(
        checkpoint["sequence"], checkpoint["head_hash"], checkpoint["created_at"], checkpoint["host"]
    )
    checkpoint["signature"] = base64.b64encode(key.sign(payload, ec.ECDSA(hashes.SHA256()))).decode()


def evidence_replayed_withdrawn_approval(sealed: Sealed) -> dict[str, Any]:
    """li.na approved, withdrew, and the very statement she signed before the withdrawal
    was sent again and counted (the audit's attack): the ledger shows her approval, her
    withdrawal, then a second `request.approved` with the same statement hash."""
    package = _package(sealed)
    approved = next(
        r for r in package["ledger"]["records"]
        if r["event"] == "request.approved" and r["principal"] == "li.na"
    )
    _append_and_resign(
        sealed,
        package,
        [
            {"event": "request.approval_withdrawn", "outcome": "withdrawn", "details_json": "{}"},
            {"event": "request.approved", "details_json": approved["details_json"]},
        ],
    )
    return package


def test_r06_evidence_replayed_withdrawn_approval_fails_offline(sealed: Sealed, tmp_path: Path) -> None:
    package = evidence_replayed_withdrawn_approval(sealed)
    failed = _verify(sealed, package)
    # Chain, checkpoint and every signature are genuine: only the replay is wrong.
    for good in ("ledger_chain", "checkpoint_signature", "approval_signatures", "approvals_recorded"):
        assert good not in failed, (good, failed)
    replay = failed["approvals_not_replayed"]
    assert "li.na: the counted statement was already recorded at record" in replay
    assert "before li.na withdrew at record" in replay and "a withdrawn approval replayed" in replay
    assert "wang.fang" not in replay
    assert "only 1 valid distinct approvals of the 2 required" in failed["approval_policy"]

    # The same through `sealctl evidence verify`: exit 10 and the named verdict.
    path = tmp_path / "evidence-replayed-withdrawn-approval.json"
    path.write_text(json.dumps(package, ensure_ascii=False), encoding="utf-8")
    done = _offline(
        "evidence", "verify", str(path), str(sealed.pdf), *[a for p in sealed.trust for a in ("--ca", str(p))]
    )
    assert done.returncode == 10, done.stdout + done.stderr
    assert any(line.startswith("FAIL  approvals_not_replayed: li.na") for line in done.stdout.splitlines())
    assert "approvals_not_replayed" in done.stdout.splitlines()[-1]


def test_r06_approval_signed_after_the_withdrawal_still_counts(sealed: Sealed) -> None:
    """The control: a NEW statement li.na signs after withdrawing is a fresh approval."""
    package = _package(sealed)
    who = sealed.fixtures.principals["li.na"]
    approved = next(
        r for r in package["ledger"]["records"]
        if r["event"] == "request.approved" and r["principal"] == "li.na"
    )
    head_time = _latest_time(package)  # the withdrawal is appended 1 s after this
    local = [LocalDocument(d.sha256, d.size) for d in sealed.request.documents]
    message = build_approval(
        sealed.request,
        local,
        signer=ApprovalSigner(who.key.read_bytes(), who.cert.read_bytes()),
        now=head_time + dt.timedelta(seconds=2),  # after the withdrawal
    )
    details = json.loads(approved["details_json"])
    details["statement_sha256"] = hashlib.sha256(message.statement).hexdigest()
    details["signature_sha256"] = hashlib.sha256(message.statement_signature).hexdigest()
    _append_and_resign(
        sealed,
        package,
        [
            {"event": "request.approval_withdrawn", "outcome": "withdrawn", "details_json": "{}"},
            {
                "event": "request.approved",
                "details_json": canonical_details_json(details),
            },
        ],
    )
    entry = next(a for a in package["approvals"] if a["approver"] == "li.na")
    entry["statement"] = message.statement.decode()
    entry["signature"] = base64.b64encode(message.statement_signature).decode()
    assert _verify(sealed, package) == {}
