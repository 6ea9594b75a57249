"""R14, second half (issue 14 item 16): a converted copy of a sealed PDF is not a valid seal.

A document sealed by the REAL seald is rewritten the two ways people convert PDFs: a full
rewrite by qpdf (`qpdf in.pdf out.pdf`: same pages, every object renumbered and moved)
and print-to-PDF with poppler's `pdftocairo -pdf` (the pages redrawn). On each copy
`sealctl verify` (VerifyDocument on the daemon) must report no intact, valid seal (exit
10), pdfsig must agree, and the offline evidence check must fail the PDF checks, while
the sealed original passes all three.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from seald_testing.clients import (
    approve_twice_and_unlock,
    sealctl,
    submit,
    wait_signed,
)
from seald_testing.daemon import SealDaemon
from seald_testing.plugin import DaemonFactory

VERIFICATION_FAILED = 10


@pytest.fixture(scope="module")
def sealed(
    module_daemon_factory: DaemonFactory, tmp_path_factory: pytest.TempPathFactory
) -> tuple[SealDaemon, Path, Path, list[Path]]:
    work = tmp_path_factory.mktemp("r14-converted")
    d = module_daemon_factory()
    request = submit(d, work, name="合同.pdf")
    approve_twice_and_unlock(d, request.request_id)
    wait_signed(d, request.request_id)
    pdf = work / "sealed.pdf"
    with d.client("zhang.wei") as requester:
        requester.download(request.request_id, 0, pdf)
    package = work / "evidence.json"
    fetched = sealctl(d, "zhao.min", "evidence", request.request_id, "--out", str(package))
    assert fetched.returncode == 0, fetched.stderr
    trust = [d.fixtures.tls_ca, d.fixtures.seal_ca, d.fixtures.state_dir / "audit" / "audit-cert.pem"]
    return d, pdf, package, trust


def convert(kind: str, source: Path, out: Path) -> Path:
    command = {
        "qpdf-rewrite": ["qpdf", str(source), str(out)],
        "pdftocairo-print": ["pdftocairo", "-pdf", str(source), str(out)],
    }[kind]
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)
    # qpdf exits 3 for warnings; the copy is still written
    assert done.returncode in (0, 3) and out.exists(), (command, done.stderr)
    assert out.read_bytes() != source.read_bytes()
    return out


def verify_over_daemon(d: SealDaemon, pdf: Path) -> tuple[int, dict[str, object]]:
    done = sealctl(d, "zhang.wei", "--json", "verify", str(pdf))
    return done.returncode, json.loads(done.stdout) if done.stdout.strip() else {}


def evidence_failures(package: Path, pdf: Path, trust: list[Path]) -> tuple[int, set[str]]:
    cas = [a for p in trust for a in ("--ca", str(p))]
    done = sealctl_offline("evidence", "verify", str(package), str(pdf), *cas)
    lines = done.stdout.splitlines()
    failed = {line.split(":")[0].removeprefix("FAIL  ") for line in lines if line.startswith("FAIL")}
    return done.returncode, failed


def sealctl_offline(*args: str) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).parent / "sealctl"
    return subprocess.run([str(exe), *args], capture_output=True, text=True, check=False, timeout=120)


def pdfsig_valid(pdf: Path) -> bool:
    done = subprocess.run(["pdfsig", str(pdf)], capture_output=True, text=True, check=False, timeout=60)
    return "Signature is Valid." in done.stdout and "Total document signed" in done.stdout


def test_r14_sealed_original_is_valid(sealed: tuple[SealDaemon, Path, Path, list[Path]]) -> None:
    """The control: the same checks pass on the sealed file itself."""
    d, pdf, package, trust = sealed
    code, report = verify_over_daemon(d, pdf)
    assert code == 0 and report["all_valid"] is True, report
    assert pdfsig_valid(pdf)
    assert evidence_failures(package, pdf, trust) == (0, set())


@pytest.mark.parametrize("kind", ["qpdf-rewrite", "pdftocairo-print"])
def test_r14_converted_copy_is_not_a_valid_seal(
    sealed: tuple[SealDaemon, Path, Path, list[Path]], tmp_path: Path, kind: str
) -> None:
    d, pdf, package, trust = sealed
    copy = convert(kind, pdf, tmp_path / f"{kind}.pdf")

    code, report = verify_over_daemon(d, copy)
    assert code == VERIFICATION_FAILED, report
    assert report.get("all_valid") is not True
    signatures = report.get("signatures", [])
    assert isinstance(signatures, list)
    # Whatever survived the conversion, nothing in it is an intact, valid signature that
    # covers the whole document.
    assert not any(
        s.get("intact") and s.get("valid") and s.get("covers_whole_document") for s in signatures
    ), signatures
    assert not pdfsig_valid(copy)

    code, failed = evidence_failures(package, copy, trust)
    assert code == VERIFICATION_FAILED
    assert "pdf_hash" in failed, failed  # not the document the ledger recorded as sealed
