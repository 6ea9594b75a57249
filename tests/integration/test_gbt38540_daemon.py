"""GB/T 38540 seals through seald (issue 19): level B-T, anchor text, cross-page, evidence.

One seald with an SM2 seal on the SKF test token (``format = "gbt38540"``, ``level = "B-T"``,
certomancer's TSA) seals two requests with two approvals each: one placed at an anchor text,
one as a cross-page seal (骑缝章). Checked by VerifyDocument, by OpenSSL (``pkeyutl`` for the
token's SM2 signature, ``ts -verify`` for the timestamp) and, with the daemon stopped, by
``sealctl evidence verify`` - every layer a named check, every tampering caught by name.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from skf_fixture import ADMIN_PIN, INITIAL_USER_PIN, SkfTestToken

from sealapi.v1 import common_pb2, requests_pb2, verify_pb2
from sealclient.evidence import GBT38540_CHECKS, gbt38540_problems, load_trust, verify_package
from seald.gm import ses, sm2
from seald.signing import gbt38540_pdf
from seald.tokens import skf
from seald_testing.config import DaemonConfig
from seald_testing.daemon import make_pdf
from seald_testing.ltv_pki import LivePki
from seald_testing.plugin import DaemonFactory
from seald_testing.seals import add_contract_seal
from seald_testing.sm2_pki import seal_pki

# Certificates dated from now (the seal's validity window follows them); scripts/test.sh runs
# these again under faketime at 03:10 and 23:50 UTC.
pytestmark = pytest.mark.clock

SEAL = "sm2seal"
DEV = "SKF-SEAL-01"
SERIAL = "SKF0001"
CONTAINER = "sm2-seal"
PIN = "24681357"
SIGNED = requests_pb2.REQUEST_STATE_SIGNED
SEALCTL = shutil.which("sealctl", path=str(Path(sys.executable).parent))
PT_MM = 25.4 / 72


@dataclass(frozen=True)
class Sealed:
    anchored: Path  # sealed at the anchor text
    cross: Path  # the cross-page seal
    package: Path  # evidence of the anchored request
    original: Path
    trust: list[Path]  # everything evidence verify needs with --ca
    maker_pem: Path
    sm2_ca_pem: Path
    tsa_root_pem: Path
    point: bytes  # the token key's public point
    reports: dict[str, verify_pb2.VerifyReport]


def _token_and_pki(work: Path) -> tuple[SkfTestToken, bytes, Path, Path, Path, Path]:
    """The SKF token with an SM2 key generated inside, its certificate from an SM2 CA, and a
    seal maker: (token, point, seal cert, SM2 CA cert, maker cert, maker key) files."""
    token = SkfTestToken(work / "skf")
    token.create_device(DEV, serial=SERIAL)
    dev = skf.SkfLibrary(str(token.library)).connect(DEV)
    app = dev.create_application("SEAL", admin_pin=ADMIN_PIN, user_pin=INITIAL_USER_PIN, user_retries=5)
    app.verify_pin(INITIAL_USER_PIN)
    con = app.create_container(CONTAINER)
    point = con.generate_sm2()
    pki = seal_pki(work, point, now=dt.datetime.now(dt.UTC).replace(microsecond=0))
    con.import_certificate(pki.seal_cert)
    app.logout()
    dev.close()
    return token, point, pki.seal_pem, pki.ca_pem, pki.maker_pem, pki.maker_key


@pytest.fixture(scope="module")
def sealed(
    tmp_path_factory: pytest.TempPathFactory, module_daemon_factory: DaemonFactory, pki: LivePki
) -> Iterator[Sealed]:
    work = tmp_path_factory.mktemp("gbt38540-daemon")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SKF_TEST_TOKEN_DIR", "")
        mp.delenv("SKF_TEST_TOKEN_SIGN_DELAY_MS", raising=False)
        token, point, seal_pem, ca_pem, maker_pem, maker_key = _token_and_pki(work)
        tsa_root = work / "tsa-root.pem"
        tsa_root.write_bytes(pki.root_pem)

        def edit(config: DaemonConfig) -> None:
            add_contract_seal(
                config,
                SEAL,
                display_name="合同专用章(SM2)",
                token_label=DEV,
                token_serial=SERIAL,
                key_label=CONTAINER,
                certificate=str(seal_pem),
                algorithm="sm2",
                format="gbt38540",
                skf_application="SEAL",
                level="B-T",
            )
            config.set("skf", library=str(token.library))
            config.set("seal_maker", certificate=str(maker_pem), key=str(maker_key))
            config.set("trust", tsa_url=pki.tsa_url, signing_roots=[str(tsa_root)])

        d = module_daemon_factory(edit)
        fixtures = d.fixtures
        try:
            with d.client("liu.yang") as custodian:
                custodian.change_pin(SEAL, INITIAL_USER_PIN, PIN)
                custodian.unlock(SEAL, PIN)
            original = make_pdf(work / "contract.pdf", pages=2)
            placements = {
                "anchored": common_pb2.Placement(page=0, size_mm=30, anchor_text="（盖章）"),
                "cross": common_pb2.Placement(y_mm=120.0, size_mm=40.0, cross_page=True),
            }
            outputs, reports, ids = {}, {}, {}
            for name, placement in placements.items():
                with d.client("zhang.wei") as z:
                    request = z.submit(
                        [original], seal_id=SEAL, reason="采购合同", category="contract", placement=placement
                    )
                with d.client("li.na") as li, d.client("wang.fang") as wang:
                    li.approve(request.request_id, "同意")
                    wang.approve(request.request_id)
                out = work / f"{name}.sealed.pdf"
                with d.client("zhang.wei") as z:
                    d.wait_state(z, request.request_id, SIGNED)
                    z.download(request.request_id, 0, out)
                    reports[name] = z.verify(out)
                outputs[name], ids[name] = out, request.request_id
            package = work / "evidence.json"
            with d.client("zhao.min") as auditor:
                package.write_bytes(auditor.evidence(ids["anchored"]))
        finally:
            d.stop()
    offline = work / "offline"
    offline.mkdir()
    for source in (
        package,
        outputs["anchored"],
        outputs["cross"],
        original,
        fixtures.tls_ca,
        fixtures.seal_ca,
    ):
        shutil.copy(source, offline / source.name)
    for source in (ca_pem, maker_pem, tsa_root):
        shutil.copy(source, offline / source.name)
    shutil.copy(fixtures.state_dir / "audit" / "audit-cert.pem", offline / "audit-cert.pem")
    trust = [
        offline / n
        for n in (
            fixtures.tls_ca.name,
            fixtures.seal_ca.name,
            "audit-cert.pem",
            ca_pem.name,
            maker_pem.name,
            tsa_root.name,
        )
    ]
    yield Sealed(
        anchored=offline / outputs["anchored"].name,
        cross=offline / outputs["cross"].name,
        package=offline / package.name,
        original=offline / original.name,
        trust=trust,
        maker_pem=offline / maker_pem.name,
        sm2_ca_pem=offline / ca_pem.name,
        tsa_root_pem=offline / tsa_root.name,
        point=point,
        reports=reports,
    )


def _openssl(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, check=False)


def test_gbt38540_daemon_seals_b_t_at_the_anchor_verified_by_seald_and_openssl(
    sealed: Sealed, tmp_path: Path
) -> None:
    report = sealed.reports["anchored"]
    assert report.all_valid and len(report.signatures) == 1, report
    (sig,) = report.signatures
    assert sig.seal_id == SEAL and sig.valid and sig.trusted and sig.covers_whole_document
    assert sig.HasField("timestamp_time"), sig  # B-T: the TSA's time, checked against signing_roots
    assert "timestamp_imprint" in sig.summary and "trusted" in sig.summary and "NOT" not in sig.summary
    data = sealed.anchored.read_bytes()
    der, data_hash = gbt38540_pdf.signature_and_hash(data, sig.field_name)
    parsed = ses.parse_signature(der)
    assert bytes(parsed["to_sign"]["data_hash"].native) == data_hash
    # OpenSSL: the token's SM2 signature over TBS_Sign (standard user id), and the timestamp
    (tmp_path / "pub.der").write_bytes(sm2.Sm2PublicKey(sealed.point).spki_der())
    (tmp_path / "tbs.der").write_bytes(parsed["to_sign"].dump())
    (tmp_path / "sig.der").write_bytes(bytes(parsed["signature"].native))
    res = _openssl(
        [
            "pkeyutl",
            "-verify",
            "-pubin",
            "-keyform",
            "DER",
            "-inkey",
            "pub.der",
            "-rawin",
            "-digest",
            "sm3",
            "-pkeyopt",
            "distid:1234567812345678",
            "-in",
            "tbs.der",
            "-sigfile",
            "sig.der",
        ],
        tmp_path,
    )
    assert res.returncode == 0 and "Verified Successfully" in res.stdout, res.stdout + res.stderr
    (tmp_path / "token.der").write_bytes(bytes(parsed["time_stamp"].native))
    digest = sm2.sm3(bytes(parsed["signature"].native)).hex()
    res = _openssl(
        [
            "ts",
            "-verify",
            "-digest",
            digest,
            "-in",
            "token.der",
            "-token_in",
            "-CAfile",
            str(sealed.tsa_root_pem),
        ],
        tmp_path,
    )
    assert res.returncode == 0 and "Verification: OK" in res.stdout, res.stdout + res.stderr
    # R13: the widget is centred on "（盖章）" (pdftotext: 82..138 x 118..136 pt from the top-left)
    rect_at = data.rindex(b"/Rect", 0, data.index(b"/SubFilter /GBT38540.SES"))
    rect = [float(v) for v in data[rect_at + 5 : data.index(b"]", rect_at)].strip(b" [").split()]
    cx, cy = (rect[0] + rect[2]) / 2, 841.89 - (rect[1] + rect[3]) / 2
    assert abs(cx - 110.0) <= 1 / PT_MM and abs(cy - 127.1) <= 1 / PT_MM, rect
    assert abs((rect[2] - rect[0]) * PT_MM - 30) <= 0.5


def test_gbt38540_daemon_cross_page_seal_has_a_slice_on_every_page(sealed: Sealed) -> None:
    report = sealed.reports["cross"]
    assert report.all_valid and len(report.signatures) == 1, report
    data = sealed.cross.read_bytes()
    assert b"/SealSlice1 Do" in data and b"/SealSlice2 Do" in data
    (check,) = gbt38540_pdf.verify_gbt38540_pdf(data)
    assert check.covers_whole_document and check.report.timestamp_time is not None
    # the slices are inside the signed bytes: swapping two breaks the signature
    at = data.find(b"/SealSlice1 Do")
    tampered = data[:at] + b"/SealSlice2 Do" + data[at + 14 :]
    with pytest.raises(ses.GbtError) as exc:
        gbt38540_pdf.verify_gbt38540_pdf(tampered)
    assert exc.value.reason == "gbt38540_data_hash_mismatch"


def test_gbt38540_evidence_package_verifies_offline_with_every_layer_named(sealed: Sealed) -> None:
    assert SEALCTL is not None
    done = subprocess.run(
        [
            SEALCTL,
            "evidence",
            "verify",
            str(sealed.package),
            str(sealed.anchored),
            *[a for p in sealed.trust for a in ("--ca", str(p))],
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr  # pyHanko's unknown-SubFilter notice is dropped
    lines = done.stdout.splitlines()
    assert lines[-1] == "evidence VERIFIED"
    for name in ("seal_certificate", "pdf_signature", "pdf_coverage", *GBT38540_CHECKS):
        assert any(line.startswith(f"PASS  {name}:") for line in lines), (name, done.stdout)
    assert any(line.startswith("PASS  gbt38540_timestamp:") for line in lines)


def _verdict_failures(sealed: Sealed, trust: list[Path], pdf: Path | None = None) -> list[str]:
    verdict = verify_package(sealed.package.read_bytes(), [pdf or sealed.anchored], load_trust(trust))
    return verdict.failed()


def test_gbt38540_evidence_untrusted_maker_ca_or_tsa_each_fail_their_check(sealed: Sealed) -> None:
    """Each trust anchor left out fails exactly the check that needs it."""
    assert _verdict_failures(sealed, sealed.trust) == []
    without = [p for p in sealed.trust if p != sealed.maker_pem]
    assert _verdict_failures(sealed, without) == ["gbt38540_seal_maker"]
    without = [p for p in sealed.trust if p != sealed.tsa_root_pem]
    assert _verdict_failures(sealed, without) == ["gbt38540_timestamp"]
    without = [p for p in sealed.trust if p != sealed.sm2_ca_pem]
    assert _verdict_failures(sealed, without) == ["seal_certificate"]


def _document(sealed: Sealed) -> dict[str, Any]:
    original = sealed.original.read_bytes()
    return {"name": "contract.pdf", "size": len(original), "sha256": hashlib.sha256(original).hexdigest()}


def _replace_contents(pdf: bytes, der: bytes) -> bytes:
    """The PDF with its GB/T 38540 /Contents replaced by ``der`` (zero-padded, same length):
    a forged signature in an otherwise unchanged file."""
    start = pdf.index(b"/Contents <") + len(b"/Contents <")
    end = pdf.index(b">", start)
    hexed = der.hex().encode()
    assert len(hexed) <= end - start
    return pdf[:start] + hexed + b"0" * (end - start - len(hexed)) + pdf[end:]


def _failing(problems: dict[str, list[str]] | None) -> dict[str, str]:
    assert problems is not None
    return {name: "; ".join(p) for name, p in problems.items() if p}


def test_gbt38540_evidence_tampered_signature_fails_the_named_layer(sealed: Sealed, tmp_path: Path) -> None:
    data = sealed.anchored.read_bytes()
    anchors = load_trust(sealed.trust)
    seal_cert = x509.load_pem_x509_certificate(
        json.loads(sealed.package.read_text())["seal"]["certificate_chain_pem"][0].encode()
    )
    document = _document(sealed)
    assert _failing(gbt38540_problems(sealed.anchored, document, seal_cert, anchors)) == {}
    (field,) = gbt38540_pdf.check_fields(data)
    der, _hash = gbt38540_pdf.signature_and_hash(data, field.field_name)
    parsed = ses.parse_signature(der)

    def write(name: str, forged: bytes) -> Path:
        path = tmp_path / name
        path.write_bytes(_replace_contents(data, forged))
        return path

    # 1. a byte of the seal picture changed: the maker's signature breaks (and the signer's,
    #    which covers the whole seal)
    picture = bytes(parsed["to_sign"]["eseal"]["e_seal_info"]["picture"]["data"].native)
    i = der.index(picture[100:140])
    changed = der[:i] + bytes([der[i] ^ 0x01]) + der[i + 1 :]
    failing = _failing(gbt38540_problems(write("picture.pdf", changed), document, seal_cert, anchors))
    assert set(failing) == {"gbt38540_seal_maker", "gbt38540_document_signature"}, failing
    assert "gbt38540_seal_signature_invalid" in failing["gbt38540_seal_maker"]
    # 2. the timestamp of another signature value: only the timestamp layer fails
    other = ses.parse_signature(der)
    token = bytes(other["time_stamp"].native)
    other_sig = ses.SesSignature(
        {
            "to_sign": other["to_sign"],
            "cert": other["cert"],
            "signature_algorithm": other["signature_algorithm"],
            "signature": sm2.Sm2PrivateKey.generate().sign(b"x"),
            "time_stamp": token,
        }
    ).dump()
    failing = _failing(gbt38540_problems(write("other-sig.pdf", other_sig), document, seal_cert, anchors))
    assert set(failing) == {"gbt38540_document_signature", "gbt38540_timestamp"}, failing
    assert "gbt38540_timestamp_mismatch" in failing["gbt38540_timestamp"]
    # 3. truncated ASN.1: nothing decodes, every layer says so
    failing = _failing(
        gbt38540_problems(write("truncated.pdf", der[: len(der) // 2]), document, seal_cert, anchors)
    )
    assert set(failing) == set(GBT38540_CHECKS) and "gbt38540_malformed" in failing["gbt38540_seal_maker"]


def test_gbt38540_evidence_tampered_pdf_fails_pdf_hash(sealed: Sealed, tmp_path: Path) -> None:
    data = sealed.anchored.read_bytes()
    i = data.index(b"/MediaBox")
    tampered = tmp_path / "tampered.pdf"
    tampered.write_bytes(data[:i] + b"/MediaBoy" + data[i + 9 :])
    failures = _verdict_failures(sealed, sealed.trust, tampered)
    assert "pdf_hash" in failures and "pdf_signature" in failures, failures
