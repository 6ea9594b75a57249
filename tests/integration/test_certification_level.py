"""DocMDP certification level shown where seals and signatures are shown (SEAL-RULES
R13, R14): a seal configured with certify = "form_filling" says so in `sealctl seals`,
and after it sealed a document first and the official seal sealed it again,
`sealctl verify` reports signature #1 as a P=2 certification and #2 as an approval
signature; the document's own /Perms /DocMDP entry says P=2 independently."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from pyhanko.pdf_utils.reader import PdfFileReader

from seald_testing.clients import PLACEMENT, approve_twice_and_unlock, sealctl, wait_signed
from seald_testing.daemon import SealDaemon, make_pdf
from seald_testing.plugin import DaemonFactory


@pytest.fixture
def daemon(daemon_factory: DaemonFactory) -> SealDaemon:
    """The contract seal certifies its documents (form filling allowed after it)."""
    return daemon_factory(lambda c: c.set_seal("contract", certify="form_filling"))


def _seal(daemon: SealDaemon, source: Path, seal_id: str, out: Path) -> None:
    with daemon.client("zhang.wei") as requester:
        request = requester.submit(
            [source], seal_id=seal_id, reason="合同盖章", category="contract", placement=PLACEMENT
        )
    approve_twice_and_unlock(daemon, request.request_id, seal_id)
    wait_signed(daemon, request.request_id)
    with daemon.client("zhang.wei") as requester:
        requester.download(request.request_id, 0, out)


def test_r14_certified_first_seal_reports_its_docmdp_level(daemon: SealDaemon, tmp_path: Path) -> None:
    listed = sealctl(daemon, "zhang.wei", "--json", "seals")
    assert listed.returncode == 0, listed.stderr
    seals = {s["seal_id"]: s for s in json.loads(listed.stdout)["seals"]}
    assert seals["contract"]["certify"] == "form_filling"
    assert seals["contract"]["certification_level"] == 2
    assert seals["contract"]["signature_level"] == "B-B"
    assert seals["official"]["certify"] == "none" and "certification_level" not in seals["official"]
    table = sealctl(daemon, "zhang.wei", "seals").stdout
    assert "P=2 form_filling" in next(line for line in table.splitlines() if line.startswith("contract"))

    once, twice = tmp_path / "once.pdf", tmp_path / "twice.pdf"
    _seal(daemon, make_pdf(tmp_path / "contract.pdf", pages=2), "contract", once)
    _seal(daemon, once, "official", twice)  # the later seal keeps #1 valid (P=2)

    human = sealctl(daemon, "zhao.min", "verify", str(twice))
    assert human.returncode == 0, human.stdout + human.stderr
    first, second = human.stdout.split("\n\n")[:2]
    assert "seal:        contract" in first
    assert "certified:   yes, DocMDP P=2: form filling and further signatures allowed" in first
    assert "seal:        official" in second
    assert "certified:   no (approval signature)" in second

    as_json = sealctl(daemon, "zhao.min", "--json", "verify", str(twice))
    report = json.loads(as_json.stdout)
    assert report["all_valid"] is True
    signatures = report["signatures"]
    assert [s.get("certification_level", 0) for s in signatures] == [2, 0]
    assert signatures[0]["certification"] == "form_filling"

    # Independently of seald's verifier: the catalogue's /Perms /DocMDP signature says P=2,
    # and it is the first seal's signature.
    reader = PdfFileReader(io.BytesIO(twice.read_bytes()))
    docmdp = reader.root["/Perms"]["/DocMDP"]
    (reference,) = docmdp["/Reference"]
    assert int(reference["/TransformParams"]["/P"]) == 2
    first_field = reader.embedded_signatures[0]
    assert first_field.sig_object.get_container_ref() == docmdp.get_container_ref()  # type: ignore[attr-defined]
