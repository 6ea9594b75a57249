"""A PDF sealed in GB/T 38540 format with the SM2 key on the SKF test token.

Checks: seald verifies both layers and the ByteRange hash; OpenSSL verifies the token's
SM2 signature over TBS_Sign; qpdf --check accepts the file; pdfsig sees the signature and
does not claim it is a valid CMS one; a changed byte or an appended update is caught.
"""

from __future__ import annotations

import datetime as dt
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from make_pdfs import valid_pdf
from skf_fixture import ADMIN_PIN, INITIAL_USER_PIN, SkfTestToken

from seald.gm import certs, ses, sm2
from seald.signing import gbt38540_pdf
from seald.tokens import skf
from seald_testing.sm2_pki import maker_and_holder

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
SPAN = dt.timedelta(days=365)


@pytest.fixture
def sealed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, object]]:
    monkeypatch.setenv("SKF_TEST_TOKEN_DIR", "")
    token = SkfTestToken(tmp_path / "skf")
    token.create_device("SKF-TEST-01")
    lib = skf.SkfLibrary(str(token.library))
    app = lib.connect("SKF-TEST-01").create_application(
        "SEAL_APP", admin_pin=ADMIN_PIN, user_pin=INITIAL_USER_PIN
    )
    app.verify_pin(INITIAL_USER_PIN)
    con = app.create_container("contract")
    point = con.generate_sm2()
    maker = sm2.Sm2PrivateKey.generate()
    maker_cert = bytes(
        certs.build_certificate(
            subject=certs.name("电子印章制作系统"),
            issuer=certs.name("电子印章制作系统"),
            public_key=maker.public_key,
            sign=maker.sign,
            not_before=T0,
            not_after=T0 + SPAN,
            ca=True,
        ).dump()
    )
    holder_cert = bytes(
        certs.build_certificate(
            subject=certs.name("合同专用章"),
            issuer=certs.name("电子印章制作系统"),
            public_key=sm2.Sm2PublicKey(point),
            sign=maker.sign,
            not_before=T0,
            not_after=T0 + SPAN,
        ).dump()
    )
    con.import_certificate(holder_cert)
    seal = ses.build_seal(
        ses.SealSpec(
            es_id="SEAL-CONTRACT-1",
            name="合同专用章",
            holder_certs=[holder_cert],
            created=T0,
            valid_start=T0,
            valid_end=T0 + SPAN,
            picture=b"\x89PNG\r\n\x1a\n" + b"\x01" * 300,
        ),
        maker_cert=maker_cert,
        maker_sign=maker.sign,
    )
    pdf = valid_pdf()
    out = gbt38540_pdf.seal_pdf_gbt38540(
        pdf,
        seal=seal,
        signer_cert=con.export_certificate(),
        sign=con.sign,
        time_info=T0 + dt.timedelta(days=40),
    )
    path = tmp_path / "sealed.pdf"
    path.write_bytes(out)
    yield {"pdf": out, "path": path, "point": point, "maker_cert": maker_cert, "tmp": tmp_path}


def test_gbt38540_pdf_sealed_on_skf_token_verifies(sealed: dict[str, object]) -> None:
    out, path, tmp = sealed["pdf"], sealed["path"], sealed["tmp"]
    assert isinstance(out, bytes) and isinstance(path, Path) and isinstance(tmp, Path)
    checks = gbt38540_pdf.verify_gbt38540_pdf(out, trusted_makers=[sealed["maker_cert"]])  # type: ignore[list-item]
    assert len(checks) == 1 and checks[0].covers_whole_document
    assert "data_hash" in checks[0].report.checks and checks[0].report.seal.name == "合同专用章"
    assert b"/SubFilter /GBT38540.SES" in out
    # OpenSSL verifies the token's SM2 signature over TBS_Sign, taken from the PDF
    reader_checks = checks[0]
    assert reader_checks.field_name == "Seal1"
    start = out.index(b"/Contents <") + len(b"/Contents <")
    hexdata = out[start : out.index(b">", start)]
    der = bytes.fromhex(hexdata.decode())
    der = der[: gbt38540_pdf._der_length(der)]
    parsed = ses.parse_signature(der)
    point = sealed["point"]
    assert isinstance(point, bytes)
    (tmp / "pub.der").write_bytes(sm2.Sm2PublicKey(point).spki_der())
    (tmp / "tbs.der").write_bytes(parsed["to_sign"].dump())
    (tmp / "sig.der").write_bytes(bytes(parsed["signature"].native))
    res = subprocess.run(
        [
            "openssl",
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
        cwd=tmp,
        capture_output=True,
        text=True,
        check=False,
    )
    assert res.returncode == 0 and "Verified Successfully" in res.stdout, res.stdout + res.stderr
    # ByteRange hash recomputed here, independently of seald's reader
    br = [int(x) for x in re.search(rb"/ByteRange \[\s*(\d+) (\d+) (\d+) (\d+)\s*\]", out).groups()]  # type: ignore[union-attr]
    assert bytes(parsed["to_sign"]["data_hash"].native) == sm2.sm3(out[: br[1]] + out[br[2] : br[2] + br[3]])
    qpdf = subprocess.run(["qpdf", "--check", str(path)], capture_output=True, text=True, check=False)
    assert qpdf.returncode == 0, qpdf.stdout + qpdf.stderr
    pdfsig = subprocess.run(["pdfsig", str(path)], capture_output=True, text=True, check=False)
    # pdfsig sees one signature over the whole file, of a type it does not validate (not "invalid")
    assert "Signature #1" in pdfsig.stdout and "Total document signed" in pdfsig.stdout
    assert "Signature Type: unknown" in pdfsig.stdout and "Signature is Valid" not in pdfsig.stdout


def test_gbt38540_pdf_changed_after_sealing_is_caught(sealed: dict[str, object]) -> None:
    out = sealed["pdf"]
    assert isinstance(out, bytes)
    i = out.index(b"/MediaBox")
    tampered = out[:i] + b"/MediaBoy" + out[i + 9 :]
    with pytest.raises(ses.GbtError, match="dataHash is not the hash of this document") as exc:
        gbt38540_pdf.verify_gbt38540_pdf(tampered)
    assert exc.value.reason == "gbt38540_data_hash_mismatch"


def test_gbt38540_pdf_appended_update_is_reported(sealed: dict[str, object]) -> None:
    out = sealed["pdf"]
    assert isinstance(out, bytes)
    appended = out + b"\n% an incremental update appended after sealing\n"
    checks = gbt38540_pdf.verify_gbt38540_pdf(appended)
    assert checks[0].covers_whole_document is False


def test_gbt38540_pdf_untrusted_maker_and_plain_pdf_refused(sealed: dict[str, object]) -> None:
    out = sealed["pdf"]
    assert isinstance(out, bytes)
    other = sm2.Sm2PrivateKey.generate()
    other_cert = bytes(
        certs.build_certificate(
            subject=certs.name("x"),
            issuer=certs.name("x"),
            public_key=other.public_key,
            sign=other.sign,
            not_before=T0,
            not_after=T0 + SPAN,
        ).dump()
    )
    with pytest.raises(ses.GbtError, match="not a configured seal maker"):
        gbt38540_pdf.verify_gbt38540_pdf(out, trusted_makers=[other_cert])
    with pytest.raises(ses.GbtError) as exc:
        gbt38540_pdf.verify_gbt38540_pdf(valid_pdf())
    assert exc.value.reason == "gbt38540_not_found"


def test_gbt38540_sealctl_verify_offline(
    sealed: dict[str, object], capsys: pytest.CaptureFixture[str]
) -> None:
    """`sealctl verify --offline FILE [--seal-maker CERT]`: no daemon, exit codes and reasons."""
    from sealclient.cli import main  # noqa: PLC0415

    path, tmp, maker = sealed["path"], sealed["tmp"], sealed["maker_cert"]
    assert isinstance(path, Path) and isinstance(tmp, Path) and isinstance(maker, bytes)
    (tmp / "maker.der").write_bytes(maker)
    assert main(["verify", "--offline", str(path), "--seal-maker", str(tmp / "maker.der")]) == 0
    out = capsys.readouterr().out
    assert "Seal1: valid GB/T 38540 seal signature" in out and "合同专用章" in out and "note:" not in out
    assert main(["--json", "verify", "--offline", str(path)]) == 0
    assert '"valid": true' in capsys.readouterr().out
    data = path.read_bytes()
    i = data.index(b"/MediaBox")
    (tmp / "tampered.pdf").write_bytes(data[:i] + b"/MediaBoy" + data[i + 9 :])
    assert main(["verify", "--offline", str(tmp / "tampered.pdf")]) == 10
    assert "gbt38540_data_hash_mismatch" in capsys.readouterr().out


def test_gbt38540_visible_seal_drawn_from_the_seal_picture(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """R13 for the GB/T 38540 format: the SES_Seal's own PNG is drawn at the requested place."""
    from PIL import Image  # noqa: PLC0415

    from seald.signing.placement import PlacementSpec  # noqa: PLC0415
    from seald.signing.seal_image import SealImageSpec, render_seal_png  # noqa: PLC0415

    pki = maker_and_holder(T0, T0 + SPAN)
    maker, maker_cert, holder, holder_cert = pki.maker, pki.maker_cert, pki.holder, pki.holder_cert
    png = render_seal_png(SealImageSpec("contract", "华夏示例科技有限公司", "合同专用章"), 40)
    seal = ses.build_seal(
        ses.SealSpec(
            es_id="S1",
            name="合同专用章",
            holder_certs=[holder_cert],
            created=T0,
            valid_start=T0,
            valid_end=T0 + SPAN,
            picture=png,
        ),
        maker_cert=maker_cert,
        maker_sign=maker.sign,
    )
    spec = PlacementSpec(0, 150, 200, 40)
    out = gbt38540_pdf.seal_pdf_gbt38540(
        valid_pdf(chinese=False),
        seal=seal,
        signer_cert=holder_cert,
        sign=holder.sign,
        time_info=T0 + dt.timedelta(days=1),
        placement=spec,
    )
    (tmp_path / "v.pdf").write_bytes(out)
    assert gbt38540_pdf.verify_gbt38540_pdf(out)[0].covers_whole_document
    subprocess.run(
        ["pdftoppm", "-r", "72", "-png", "-singlefile", str(tmp_path / "v.pdf"), str(tmp_path / "r")],
        check=True,
    )
    image = Image.open(tmp_path / "r.png").convert("RGB")
    xs, ys = [], []
    raw = image.tobytes()
    for i in range(0, len(raw), 3):
        if raw[i] > 180 and raw[i + 1] < 90 and raw[i + 2] < 90:
            xs.append((i // 3) % image.width)
            ys.append((i // 3) // image.width)
    assert xs, "no red seal pixels on the rendered page"
    mm = 25.4 / 72
    assert (min(xs) + max(xs) + 1) / 2 * mm == pytest.approx(spec.x_mm, abs=1.5)
    assert (min(ys) + max(ys) + 1) / 2 * mm == pytest.approx(spec.y_mm, abs=1.5)
    assert (max(xs) + 1 - min(xs)) * mm == pytest.approx(spec.size_mm, abs=2.0)
