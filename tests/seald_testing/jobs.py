"""Sealing jobs through a real seald (issue 16): a third seal, the legal representative's
(法人章), on a new SoftHSM token with its key made on the token and its certificate from
the fixtures' seal CA, beside the fixture's contract and official seals; the three-seal
contract's marks; and what the job tests check on every output (pdfsig, qpdf, the
ledger's signatures per seal).
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
from collections import Counter
from pathlib import Path

from contract_pdf import ANCHOR, contract_pdf
from fixture_layout import SealFixtures

from sealapi.v1 import common_pb2, requests_pb2
from seald_testing.config import ConfigEdit, DaemonConfig
from seald_testing.daemon import CHANGED_PIN, SealDaemon, user_pin
from seald_testing.seals import IssuingCA, make_token
from seald_testing.softhsm import point_softhsm_at, previous_conf

LEGAL = "legal_rep"
LEGAL_TOKEN = "seal-legal-rep"
LEGAL_KEY = "legal-rep-seal-key"
LEGAL_PIN = "66778899"  # test-only initial user PIN of the new token
SEAL_IDS = ("contract", "official", LEGAL)

# The README's contract: the contract seal on "（盖章）" on the signature page, the
# official seal as 骑缝章 across every page, the legal representative's seal beside it.
CONTRACT_MARKS = [
    common_pb2.Mark(seal_id="contract", pages="last", anchor_text=ANCHOR),
    common_pb2.Mark(seal_id="official", y_mm=120, cross_page=common_pb2.CrossPage(pages="all")),
    common_pb2.Mark(seal_id=LEGAL, pages="last", anchor_text=ANCHOR, x_mm=35),
]


def legal_seal_edit(serial: str) -> ConfigEdit:
    """The config edit adding the legal representative's seal (pending until its
    certificate is imported); every principal holding both fixture seals gets it too.
    Its approval path is the general managers, like the contract seal's."""

    def edit(config: DaemonConfig) -> None:
        for principal in config.data["principal"]:
            if principal["seals"] == ["official", "contract"]:
                principal["seals"] = ["official", "contract", LEGAL]
        config.add_seal(
            LEGAL,
            type="legal_representative",
            organisation="华夏示例科技有限公司",
            display_name="法定代表人章",
            holder_name="王建国",
            categories=["contract"],
            token_label=LEGAL_TOKEN,
            token_serial=serial,
            key_label=LEGAL_KEY,
            size_mm=20.0,
            approver_groups=["general_manager"],
        )

    return edit


def prepare_legal_token(fixtures: SealFixtures) -> str:
    """A new token for the legal representative's seal; returns its serial. (The test
    process's PKCS#11 library reads this fixture tree's SoftHSM config meanwhile.)"""
    previous = previous_conf()
    point_softhsm_at(fixtures.softhsm2_conf, fixtures.module)
    try:
        return make_token(fixtures, LEGAL_TOKEN, LEGAL_PIN)
    finally:
        point_softhsm_at(previous, fixtures.module)


def activate_legal_seal(d: SealDaemon) -> None:
    """R02 刻制: key on the token, certificate from the seal CA, imported (ACTIVE)."""
    with d.client("liu.yang") as custodian:
        custodian.change_pin(LEGAL, LEGAL_PIN, CHANGED_PIN)
        custodian.unlock(LEGAL, CHANGED_PIN)
    with d.client("chen.jie") as admin:
        csr = admin.create_seal_key(LEGAL).csr_der
        seal = admin.import_seal_certificate(LEGAL, IssuingCA(d.fixtures).issue_for_csr(csr))
    assert seal.status == common_pb2.SEAL_STATUS_ACTIVE


def unlock_all(d: SealDaemon, seals: tuple[str, ...] = SEAL_IDS) -> None:
    """Every seal's token unlocked by its custodian (changing the initial PIN once)."""
    with d.client("liu.yang") as custodian:
        for seal_id in seals:
            (status,) = custodian.token_status(seal_id).tokens
            if status.unlocked:
                continue
            if not status.initial_pin_changed:
                custodian.change_pin(seal_id, user_pin(d.fixtures, seal_id), CHANGED_PIN)
            custodian.unlock(seal_id, CHANGED_PIN)


def contract_file(path: Path, pages: int = 4) -> Path:
    path.write_bytes(contract_pdf(pages, anchors={pages: [(200.0, 200.0)]}))
    return path


def submit_job(
    d: SealDaemon, paths: list[Path], marks: list[common_pb2.Mark], **kwargs: object
) -> requests_pb2.SealRequest:
    with d.client("zhang.wei") as z:
        return z.submit(
            paths,
            seal_id="",
            reason="签署采购合同",
            category="contract",
            placement=common_pb2.Placement(),
            marks=marks,
            **kwargs,  # type: ignore[arg-type]
        )


def approve_round(d: SealDaemon, request_id: str) -> None:
    """One approval round: the two general managers, each once."""
    with d.client("li.na") as li, d.client("wang.fang") as wang:
        li.approve(request_id)
        wang.approve(request_id)


def pdfsig_signatures(path: Path) -> list[str]:
    """pdfsig's report: every signature valid, the document wholly signed by the last,
    qpdf --check clean; returns the signature field names in order."""
    report = subprocess.run(["pdfsig", str(path)], capture_output=True, text=True, check=False).stdout
    assert "Total document signed" in report, report
    fields = [
        line.split("Signature Field Name:")[1].strip()
        for line in report.splitlines()
        if "Signature Field Name:" in line
    ]
    assert report.count("Signature is Valid") == len(fields), report
    qpdf = subprocess.run(["qpdf", "--check", str(path)], capture_output=True, text=True, check=False)
    assert qpdf.returncode == 0, qpdf.stdout + qpdf.stderr
    return fields


def job_signatures_in_ledger(d: SealDaemon, request_id: str) -> Counter[tuple[int, str]]:
    """(document index, seal) -> how many ``seal.job_signature`` records the ledger has."""
    db = sqlite3.connect(d.fixtures.state_dir / "seald.sqlite3", timeout=10)
    try:
        rows = db.execute(
            "SELECT seal_id, details_json FROM audit_log"
            " WHERE event = 'seal.job_signature' AND request_id = ?",
            (request_id,),
        ).fetchall()
    finally:
        db.close()
    return Counter((int(json.loads(details)["document_index"]), seal) for seal, details in rows)
