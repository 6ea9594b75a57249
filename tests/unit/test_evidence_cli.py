"""`sealctl evidence` argument handling and offline exit codes (no daemon needed)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from sealclient.cli import main

# Issue 14: certificates and statements dated from now; scripts/test.sh runs these again
# under faketime at 03:10 and 23:50 UTC.
pytestmark = pytest.mark.clock


def _ca(tmp_path: Path) -> Path:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    path = tmp_path / "ca.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


@pytest.mark.parametrize(
    "argv",
    [
        ["evidence", "verify", "package.json"],  # no PDF
        ["evidence", "verify", "package.json", "sealed.pdf"],  # no --ca
        ["evidence", "R-1"],  # no --out
        ["evidence", "R-1", "R-2", "--out", "x.json"],
    ],
)
def test_evidence_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert "evidence" in capsys.readouterr().err


def test_evidence_verify_unreadable_file_exits_6(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ca = _ca(tmp_path)
    code = main(
        ["evidence", "verify", str(tmp_path / "missing.json"), str(tmp_path / "x.pdf"), "--ca", str(ca)]
    )
    assert code == 6
    assert "missing.json" in capsys.readouterr().err


def test_evidence_verify_empty_trust_file_exits_6(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty.pem"
    empty.write_text("")
    code = main(["evidence", "verify", str(tmp_path / "p.json"), str(tmp_path / "x.pdf"), "--ca", str(empty)])
    assert code == 6
    assert "bad_trust" in capsys.readouterr().err


def test_evidence_verify_not_a_package_fails_verification_offline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    package = tmp_path / "package.json"
    package.write_text(json.dumps({"format": "something/else"}))
    ca = _ca(tmp_path)
    code = main(["--json", "evidence", "verify", str(package), str(tmp_path / "x.pdf"), "--ca", str(ca)])
    assert code == 10
    verdict = json.loads(capsys.readouterr().out)
    assert verdict["ok"] is False
    assert verdict["checks"][0]["name"] == "package_format"


def test_offline_verifier_module_imports_no_grpc_and_no_database() -> None:
    """sealclient/evidence.py runs without a daemon: no gRPC, no sqlite3 of its own."""
    import ast  # noqa: PLC0415
    import importlib.util  # noqa: PLC0415

    spec = importlib.util.find_spec("sealclient.evidence")
    assert spec is not None and spec.origin is not None
    imported = set()
    for node in ast.walk(ast.parse(Path(spec.origin).read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            imported |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
    assert not {m for m in imported if m.split(".")[0] in {"grpc", "sqlite3", "sealapi"}}
    assert not {m for m in imported if m.startswith("sealclient.client")}
