"""The evidence package and the usage report of a sealing job (issue 16; SEAL-RULES R10,
R11, R14): every seal of the job, not only the first.

Real seald with three seals on real SoftHSM tokens (the fixtures' contract and official
seals and a legal representative's seal made in the test), one three-seal contract
sealed through gRPC/mTLS, its package fetched with sealctl, the daemon stopped, and the
package verified offline on copies (no daemon, no database). Every tampering is then
made on that package and must fail naming the check that catches it.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sealapi.v1 import requests_pb2
from sealclient.evidence import CHECKS, JOB_CHECKS, load_trust, verify_package
from seald_testing.jobs import (
    CONTRACT_MARKS,
    LEGAL,
    activate_legal_seal,
    approve_round,
    contract_file,
    legal_seal_edit,
    pdfsig_signatures,
    prepare_legal_token,
    submit_job,
    unlock_all,
)
from seald_testing.plugin import DaemonFactory

# Certificates and statements dated from now (scripts/test.sh runs clock tests under faketime).
pytestmark = pytest.mark.clock

SEALCTL = shutil.which("sealctl", path=str(Path(sys.executable).parent))
SEALS = ["contract", "official", LEGAL]


@dataclass(frozen=True)
class SealedJob:
    package: Path
    pdf: Path
    trust: list[Path]
    request_id: str
    report: dict[str, Any]  # the daemon's usage report (JSON) over the job's time
    official_report: dict[str, Any]  # the same, for the official seal only


@pytest.fixture(scope="module")
def sealed_job(
    tmp_path_factory: pytest.TempPathFactory, module_daemon_factory: DaemonFactory
) -> Iterator[SealedJob]:
    work = tmp_path_factory.mktemp("job-evidence")
    fx = module_daemon_factory.fixtures()
    d = module_daemon_factory(legal_seal_edit(prepare_legal_token(fx)), fixtures=fx)
    try:
        activate_legal_seal(d)
        unlock_all(d)
        started = datetime.now(UTC) - timedelta(minutes=1)
        submitted = submit_job(d, [contract_file(work / "采购合同.pdf", pages=3)], CONTRACT_MARKS)
        approve_round(d, submitted.request_id)
        pdf = work / "sealed.pdf"
        with d.client("zhang.wei") as z:
            d.wait_state(z, submitted.request_id, requests_pb2.REQUEST_STATE_SIGNED, timeout=180)
            z.download(submitted.request_id, 0, pdf)
        assert len(pdfsig_signatures(pdf)) == 3
        package = work / "evidence.json"
        assert SEALCTL is not None
        fetched = subprocess.run(
            [
                SEALCTL,
                "--config",
                str(fx.principals["zhao.min"].config),
                "--server",
                d.target,
                "evidence",
                submitted.request_id,
                "--out",
                str(package),
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        assert fetched.returncode == 0, fetched.stderr
        until = datetime.now(UTC) + timedelta(minutes=1)
        with d.client("zhao.min") as auditor:
            report = json.loads(auditor.usage_report(started, until))
            official = json.loads(auditor.usage_report(started, until, seal_id="official"))
    finally:
        d.stop()
    offline = work / "offline"
    offline.mkdir()
    for source in (package, pdf, fx.tls_ca, fx.seal_ca):
        shutil.copy(source, offline / source.name)
    shutil.copy(fx.state_dir / "audit" / "audit-cert.pem", offline / "audit-cert.pem")
    trust = [offline / fx.tls_ca.name, offline / fx.seal_ca.name, offline / "audit-cert.pem"]
    yield SealedJob(offline / package.name, offline / pdf.name, trust, submitted.request_id, report, official)


def _package(job: SealedJob) -> dict[str, Any]:
    return json.loads(job.package.read_text(encoding="utf-8"))


def _failed(job: SealedJob, package: dict[str, Any]) -> dict[str, str]:
    """Failed checks -> their detail, for a (tampered) package."""
    data = json.dumps(package, ensure_ascii=False).encode()
    verdict = verify_package(data, [job.pdf], load_trust(job.trust))
    return {c.name: c.detail for c in verdict.checks if not c.ok}


def test_job_evidence_names_every_seal_and_verifies_offline(sealed_job: SealedJob) -> None:
    assert SEALCTL is not None
    done = subprocess.run(
        [
            SEALCTL,
            "evidence",
            "verify",
            str(sealed_job.package),
            str(sealed_job.pdf),
            *[a for p in sealed_job.trust for a in ("--ca", str(p))],
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[-1] == "evidence VERIFIED"
    for name in (*CHECKS, *JOB_CHECKS):
        assert any(line.startswith(f"PASS  {name}:") for line in lines), (name, done.stdout)
    policy_line = next(line for line in lines if line.startswith("PASS  approval_policy:"))
    assert all(f"seal {s}:" in policy_line for s in SEALS), policy_line
    package = _package(sealed_job)
    request = package["request"]
    # Every seal: its certificate chain, the job's seals and marks, every signature recorded.
    assert [s["seal_id"] for s in package["seals"]] == SEALS
    assert [s["seal_id"] for s in request["job_seals"]] == SEALS
    assert [m["seal_id"] for m in request["marks"]] == SEALS
    assert package["seal"]["seal_id"] == "contract"  # the first seal, as a single request's
    (document,) = request["job_documents"]
    assert [s["seal_id"] for s in document["steps"]] == SEALS
    assert document["steps"][-1]["sha256"] == request["documents"][0]["sealed_sha256"]
    records = [
        r
        for r in package["ledger"]["records"]
        if r["request_id"] == request["request_id"] and r["event"] == "seal.job_signature"
    ]
    assert [r["seal_id"] for r in records] == SEALS
    assert set(package["policy"]["seals"]) == set(SEALS)


def _remove_step(package: dict[str, Any]) -> None:
    del package["request"]["job_documents"][0]["steps"][1]


def _remove_ledger_record(package: dict[str, Any]) -> None:
    ledger = package["ledger"]
    record = next(
        r for r in ledger["records"] if r["event"] == "seal.job_signature" and r["seal_id"] == "official"
    )
    ledger["records"].remove(record)
    ledger["request_sequences"].remove(record["sequence"])


def _swap_certificate(package: dict[str, Any]) -> None:
    seals = package["seals"]
    seals[1]["certificate_chain_pem"] = list(seals[2]["certificate_chain_pem"])


def _swap_certificate_and_binding(package: dict[str, Any]) -> None:
    """The legal seal's certificate for the official seal's, its hash in the request too."""
    _swap_certificate(package)
    job_seals = package["request"]["job_seals"]
    job_seals[1]["certificate_sha256"] = job_seals[2]["certificate_sha256"]


def _change_intermediate(package: dict[str, Any]) -> None:
    step = package["request"]["job_documents"][0]["steps"][0]
    step["sha256"] = "0" * 64


def _reorder_seals(package: dict[str, Any]) -> None:
    package["seals"][0], package["seals"][1] = package["seals"][1], package["seals"][0]


def _garble_seals(package: dict[str, Any]) -> None:
    package["seals"] = ["not a seal"]


def _drop_approval(package: dict[str, Any]) -> None:
    package["approvals"] = package["approvals"][:1]


@pytest.mark.parametrize(
    ("tamper", "must_fail", "named"),
    [
        (_remove_step, {"job_signature_records", "job_pdf_signatures"}, "not the ones the ledger recorded"),
        (_remove_ledger_record, {"ledger_chain", "job_signature_records"}, "not one per seal"),
        (_swap_certificate, {"job_seal_certificates"}, "seal official: the certificate is not the one"),
        (_swap_certificate_and_binding, {"ledger_request", "job_pdf_signatures"}, "is not by seal official"),
        (_change_intermediate, {"job_signature_records", "job_hash_chain"}, "recorded intermediate"),
        (_reorder_seals, {"job_seal_certificates"}, "in signing order"),
        (_drop_approval, {"approvals_recorded", "approval_policy"}, f"seal {LEGAL}: only 1"),
        (_garble_seals, {"job_seal_certificates"}, "malformed package content"),
    ],
    ids=lambda v: v.__name__.lstrip("_") if callable(v) else None,
)
def test_job_evidence_tampered_package_fails_naming_the_check(
    sealed_job: SealedJob, tamper: Any, must_fail: set[str], named: str
) -> None:
    assert not _failed(sealed_job, _package(sealed_job))  # the untampered package is good
    package = copy.deepcopy(_package(sealed_job))
    tamper(package)
    failed = _failed(sealed_job, package)
    assert must_fail <= set(failed), failed
    assert any(named in detail for detail in failed.values()), failed


def test_job_evidence_pdf_of_an_intermediate_is_not_the_sealed_document(
    sealed_job: SealedJob, tmp_path: Path
) -> None:
    """The file after the second seal's signature (a prefix of the sealed file) is recorded
    only as an intermediate: presented as the job's sealed PDF it fails."""
    package = _package(sealed_job)
    step = package["request"]["job_documents"][0]["steps"][1]
    partial = tmp_path / "partial.pdf"
    partial.write_bytes(sealed_job.pdf.read_bytes()[: int(step["size"])])
    data = json.dumps(package, ensure_ascii=False).encode()
    verdict = verify_package(data, [partial], load_trust(sealed_job.trust))
    failed = set(verdict.failed())
    assert {"pdf_hash", "job_hash_chain", "job_pdf_signatures"} <= failed, verdict.as_dict()


def test_r11_job_is_one_use_of_each_of_its_seals_linked_by_request_id(sealed_job: SealedJob) -> None:
    rows = [u for u in sealed_job.report["uses"] if u["request_id"] == sealed_job.request_id]
    assert [r["seal_id"] for r in rows] == SEALS
    assert len({(r["document_sha256"], r["sealed_sha256"], r["sequence"]) for r in rows}) == 1
    applied = {s["seal_id"]: s["seals_applied"] for s in sealed_job.report["seals"]}
    assert all(applied.get(s, 0) >= 1 for s in SEALS), applied
    # The official seal's own report: the job's use of it, once.
    official_rows = [
        u for u in sealed_job.official_report["uses"] if u["request_id"] == sealed_job.request_id
    ]
    assert [r["seal_id"] for r in official_rows] == ["official"]
    assert [s["seal_id"] for s in sealed_job.official_report["seals"]] == ["official"]
