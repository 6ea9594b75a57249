"""`sealctl seal ...` as an admin runs it: a real subprocess against the REAL seald.

The whole life of a seal through the CLI (R02): a new token, key created on it, CSR
out, certificate in, renamed, suspended, resumed by two admins, reported lost,
destroyed by two admins; with exit codes and --json as docs/sealctl.md states.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from seald_testing.certs import SECOND_ADMIN, issue_client_cert
from seald_testing.clients import SEALCTL, sealctl
from seald_testing.config import chain
from seald_testing.daemon import CHANGED_PIN, SealDaemon
from seald_testing.plugin import DaemonFactory
from seald_testing.seals import NEW_PIN, NEW_SEAL, NEW_TOKEN, IssuingCA, make_token, with_new_seal


@pytest.fixture
def cli_daemon(daemon_factory: DaemonFactory, tmp_path: Path) -> tuple[SealDaemon, Path]:
    fx = daemon_factory.fixtures()
    serial = make_token(fx, NEW_TOKEN, NEW_PIN)
    cert, key, fp = issue_client_cert(fx, SECOND_ADMIN, tmp_path)
    second_config = tmp_path / f"{SECOND_ADMIN}.toml"
    second_config.write_text(f'server = "x"\nca = "{fx.tls_ca}"\ncert = "{cert}"\nkey = "{key}"\n')
    second_admin = lambda c: c.add_principal(  # noqa: E731
        SECOND_ADMIN, roles=["admin"], seals=["official", "contract", NEW_SEAL], certificates=[fp]
    )
    return daemon_factory(chain(with_new_seal(serial), second_admin)), second_config


def as_second_admin(d: SealDaemon, config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert SEALCTL is not None
    return subprocess.run(
        [SEALCTL, "--config", str(config), "--server", d.target, *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def status_of(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, done.stderr
    return str(json.loads(done.stdout)["status"])


def test_r02_sealctl_seal_lifecycle_from_new_token_to_destroyed(
    cli_daemon: tuple[SealDaemon, Path], tmp_path: Path
) -> None:
    d, second = cli_daemon
    listed = sealctl(d, "chen.jie", "--json", "seal", "list")
    assert listed.returncode == 0, listed.stderr
    statuses = {s["seal_id"]: s["status"] for s in json.loads(listed.stdout)["seals"]}
    assert statuses == {
        "official": "SEAL_STATUS_ACTIVE",
        "contract": "SEAL_STATUS_ACTIVE",
        NEW_SEAL: "SEAL_STATUS_PENDING",
    }
    custodians = {s["seal_id"]: s.get("custodian") for s in json.loads(listed.stdout)["seals"]}
    assert custodians[NEW_SEAL] == "liu.yang"  # R07: the custodian who holds the token
    shown = sealctl(d, "chen.jie", "seal", "show", NEW_SEAL)
    assert shown.returncode == 0 and "none yet" in shown.stdout and "PENDING" in shown.stdout

    # Token locked: the key cannot be made yet (exit 5, reason named on stderr).
    locked = sealctl(d, "chen.jie", "seal", "create-key", NEW_SEAL)
    assert locked.returncode == 5 and "(token_locked)" in locked.stderr
    with d.client("liu.yang") as custodian:
        custodian.change_pin(NEW_SEAL, NEW_PIN, CHANGED_PIN)
        custodian.unlock(NEW_SEAL, CHANGED_PIN)
    # R04: only an admin creates keys.
    assert sealctl(d, "zhang.wei", "seal", "create-key", NEW_SEAL).returncode == 3

    csr_file = tmp_path / "contract2.csr.pem"
    created = sealctl(d, "chen.jie", "seal", "create-key", NEW_SEAL, "-o", str(csr_file), "--json")
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["csr_file"] == str(csr_file)
    csr = x509.load_pem_x509_csr(csr_file.read_bytes())
    assert csr.is_signature_valid

    cert_file = tmp_path / "contract2.pem"
    issued = IssuingCA(d.fixtures).issue_for_csr(csr.public_bytes(serialization.Encoding.DER))
    cert_file.write_bytes(x509.load_der_x509_certificate(issued).public_bytes(serialization.Encoding.PEM))
    wrong = sealctl(
        d, "chen.jie", "seal", "import-cert", NEW_SEAL, str(d.fixtures.seals["contract"].certificate)
    )
    assert wrong.returncode == 6 and "(certificate_key_mismatch)" in wrong.stderr
    missing = sealctl(d, "chen.jie", "seal", "import-cert", NEW_SEAL, str(tmp_path / "nope.pem"))
    assert missing.returncode == 6 and "(unreadable_file)" in missing.stderr
    imported = sealctl(d, "chen.jie", "--json", "seal", "import-cert", NEW_SEAL, str(cert_file))
    assert status_of(imported) == "SEAL_STATUS_ACTIVE"
    assert sealctl(d, "chen.jie", "seal", "import-cert", NEW_SEAL, str(cert_file)).returncode == 7

    renamed = sealctl(d, "chen.jie", "--json", "seal", "change", NEW_SEAL, "--name", "合同专用章(新)")
    assert renamed.returncode == 0 and json.loads(renamed.stdout)["display_name"] == "合同专用章(新)"
    assert sealctl(d, "chen.jie", "seal", "change", NEW_SEAL).returncode == 6  # nothing to change

    assert status_of(sealctl(d, "chen.jie", "--json", "seal", "suspend", NEW_SEAL, "--comment", "审计")) == (
        "SEAL_STATUS_SUSPENDED"
    )
    assert sealctl(d, "chen.jie", "seal", "suspend", NEW_SEAL).returncode == 7
    assert sealctl(d, "chen.jie", "seal", "resume", NEW_SEAL).returncode == 2  # --proposal is required
    proposed = sealctl(d, "chen.jie", "--json", "seal", "resume", NEW_SEAL, "--proposal", "resume-0001")
    assert status_of(proposed) == "SEAL_STATUS_SUSPENDED"
    assert "second administrator" in json.loads(proposed.stdout)["status_reason"]
    same = sealctl(d, "chen.jie", "seal", "resume", NEW_SEAL, "--proposal", "resume-0001")
    assert same.returncode == 3 and "(same_admin)" in same.stderr
    resumed = as_second_admin(d, second, "--json", "seal", "resume", NEW_SEAL, "--proposal", "resume-0001")
    assert status_of(resumed) == "SEAL_STATUS_ACTIVE"

    assert status_of(sealctl(d, "chen.jie", "--json", "seal", "report-lost", NEW_SEAL)) == "SEAL_STATUS_LOST"
    lost_resume = sealctl(d, "chen.jie", "seal", "resume", NEW_SEAL, "--proposal", "resume-0002")
    assert lost_resume.returncode == 5 and "(seal_lost)" in lost_resume.stderr
    sealctl(d, "chen.jie", "seal", "destroy", NEW_SEAL, "--proposal", "destroy-0001")
    destroyed = as_second_admin(
        d, second, "--json", "seal", "destroy", NEW_SEAL, "--proposal", "destroy-0001"
    )
    assert status_of(destroyed) == "SEAL_STATUS_DESTROYED"
    final = sealctl(d, "zhao.min", "seal", "show", NEW_SEAL)
    assert final.returncode == 0 and "DESTROYED" in final.stdout
