# mypy: disable-error-code="no-untyped-call"
# (pyHanko's PDF writer API has no annotations.)
"""The fixture tree (softhsm-fixtures/build_fixtures.py) is what it claims to be.

Checked with independent means: python-pkcs11 against real SoftHSM tokens,
cryptography's X.509 path validator, and real TLS handshakes via the ssl module.
"""

from __future__ import annotations

import hashlib
import io
import ipaddress
import json
import os
import ssl
import subprocess
import time
import tomllib
from pathlib import Path

import pkcs11
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError
from fixture_layout import SealFixtures, load_fixtures
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pyhanko.config.pkcs11 import TokenCriteria
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.writer import PdfFileWriter
from pyhanko.sign import fields, signers
from pyhanko.sign.pkcs11 import PKCS11Signer, open_pkcs11_session

from seald.config import load_config
from seald_testing.softhsm import point_softhsm_at, previous_conf, run_build_script

SEAL_IDS = ("official", "contract")


def load_cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def tree_digest(root: Path) -> dict[str, tuple[str, int]]:
    """Content hash and mtime of every file under root."""
    return {
        str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


# ---------------------------------------------------------------- tokens and keys


@pytest.mark.parametrize("seal_id", SEAL_IDS)
def test_r15_token_holds_one_sensitive_non_extractable_key_generated_on_token(
    seal_fixtures: SealFixtures, seal_id: str
) -> None:
    seal = seal_fixtures.seals[seal_id]
    lib = pkcs11.lib(str(seal_fixtures.module))
    token = lib.get_token(token_label=seal.token_label)
    assert bytes(token.serial).decode().strip() == seal.token_serial
    with token.open(user_pin=seal.user_pin) as session:
        private_keys = list(session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY}))
        assert len(private_keys) == 1
        key = private_keys[0]
        assert key[Attribute.LABEL] == seal.key_label
        assert key[Attribute.ID] == bytes.fromhex(seal.key_id_hex)
        assert key[Attribute.KEY_TYPE] == KeyType.RSA
        assert key[Attribute.SENSITIVE] is True
        assert key[Attribute.EXTRACTABLE] is False
        # ALWAYS_SENSITIVE/NEVER_EXTRACTABLE/LOCAL: generated on the token, never imported.
        assert key[Attribute.ALWAYS_SENSITIVE] is True
        assert key[Attribute.NEVER_EXTRACTABLE] is True
        assert key[Attribute.LOCAL] is True
        assert key[Attribute.SIGN] is True
        with pytest.raises(pkcs11.PKCS11Error):
            key[Attribute.PRIVATE_EXPONENT]


@pytest.mark.parametrize("seal_id", SEAL_IDS)
def test_r01_seal_key_matches_certificate_on_token_and_pem(
    seal_fixtures: SealFixtures, seal_id: str
) -> None:
    seal = seal_fixtures.seals[seal_id]
    pem_cert = load_cert(seal.certificate)
    lib = pkcs11.lib(str(seal_fixtures.module))
    token = lib.get_token(token_label=seal.token_label)
    with token.open(user_pin=seal.user_pin) as session:
        certs = list(session.get_objects({Attribute.CLASS: ObjectClass.CERTIFICATE}))
        assert len(certs) == 1
        assert certs[0][Attribute.LABEL] == seal.key_label
        assert certs[0][Attribute.ID] == bytes.fromhex(seal.key_id_hex)
        token_cert = x509.load_der_x509_certificate(certs[0][Attribute.VALUE])
        assert token_cert == pem_cert

        public = session.get_key(object_class=ObjectClass.PUBLIC_KEY, label=seal.key_label)
        cert_key = pem_cert.public_key()
        assert isinstance(cert_key, rsa.RSAPublicKey)
        assert int.from_bytes(public[Attribute.MODULUS], "big") == cert_key.public_numbers().n
        assert cert_key.key_size == 2048

        # The decisive check: a signature made on the token verifies with the certificate.
        private = session.get_key(object_class=ObjectClass.PRIVATE_KEY, label=seal.key_label)
        assert isinstance(private, pkcs11.SignMixin)
        message = b"fixture self-test " + seal_id.encode()
        signature = private.sign(message, mechanism=Mechanism.SHA256_RSA_PKCS)
    cert_key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())


@pytest.mark.parametrize("seal_id", SEAL_IDS)
def test_r01_seal_certificate_issued_by_seal_ca_for_non_repudiation(
    seal_fixtures: SealFixtures, seal_id: str
) -> None:
    seal = seal_fixtures.seals[seal_id]
    cert = load_cert(seal.certificate)
    ca = load_cert(seal_fixtures.seal_ca)
    cert.verify_directly_issued_by(ca)
    assert ca.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == (
        "华夏示例 电子印章测试CA"
    )
    common_name = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
    assert common_name == f"华夏示例科技有限公司 {seal.display_name}"
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and usage.content_commitment
    assert not usage.key_cert_sign
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert 3 * 365 <= lifetime.days <= 3 * 366
    # A seal certificate does not chain to the TLS CA: the two trust roots are separate.
    with pytest.raises((ValueError, TypeError)):
        cert.verify_directly_issued_by(load_cert(seal_fixtures.tls_ca))


# ---------------------------------------------------------------- configs


def test_r04_allow_list_in_seald_toml_matches_client_certificates(
    seal_fixtures: SealFixtures,
) -> None:
    config = tomllib.loads(seal_fixtures.config.read_text(encoding="utf-8"))
    allow_list = {p["name"]: p["certificates"] for p in config["principal"]}
    assert set(allow_list) == {
        "zhang.wei", "li.na", "wang.fang", "liu.yang", "chen.jie", "zhao.min",
    }  # fmt: skip
    for name, client in seal_fixtures.principals.items():
        actual = load_cert(client.cert).fingerprint(hashes.SHA256()).hex()
        assert actual == client.fingerprint_sha256, name
        assert actual in allow_list[client.principal], name
    assert len(allow_list["li.na"]) == 2  # li.na and li.na-laptop, one person
    listed = {fp for fps in allow_list.values() for fp in fps}
    assert seal_fixtures.unlisted.fingerprint_sha256 not in listed
    assert seal_fixtures.foreign.fingerprint_sha256 not in listed
    roles = {p["name"]: p["roles"] for p in config["principal"]}
    assert roles["li.na"] == ["approver"] and roles["zhang.wei"] == ["requester"]


def test_seald_toml_is_complete_and_points_at_existing_files(
    seal_fixtures: SealFixtures,
) -> None:
    config = tomllib.loads(seal_fixtures.config.read_text(encoding="utf-8"))
    for key in ("tls_cert", "tls_key", "client_ca"):
        assert Path(config["server"][key]).is_absolute()
        assert Path(config["server"][key]).is_file()
    assert config["server"]["listen"] == seal_fixtures.listen == "127.0.0.1:50443"
    assert Path(config["trust"]["seal_ca"]) == seal_fixtures.seal_ca
    assert Path(config["store"]["state_dir"]).is_dir()
    assert config["pkcs11"]["module"] == str(seal_fixtures.module)
    assert config["requests"] == {"required_approvals": 2, "approval_ttl_hours": 72}
    seals = {s["id"]: s for s in config["seal"]}
    assert set(seals) == set(SEAL_IDS)
    for seal_id, seal in seal_fixtures.seals.items():
        assert seals[seal_id]["token_serial"] == seal.token_serial
        assert seals[seal_id]["token_label"] == seal.token_label
        assert seals[seal_id]["key_label"] == seal.key_label
        assert seals[seal_id]["organisation"] == "华夏示例科技有限公司"
    assert seals["contract"]["categories"] == ["contract"]
    assert seals["official"]["size_mm"] == 42.0
    softhsm = seal_fixtures.softhsm2_conf.read_text()
    assert f"directories.tokendir = {seal_fixtures.root / 'tokens'}" in softhsm


def test_client_configs_point_at_their_own_certificate(seal_fixtures: SealFixtures) -> None:
    for client in (*seal_fixtures.principals.values(), seal_fixtures.unlisted):
        config = tomllib.loads(client.config.read_text(encoding="utf-8"))
        assert config == {
            "server": seal_fixtures.listen,
            "ca": str(seal_fixtures.tls_ca),
            "cert": str(client.cert),
            "key": str(client.key),
        }
        key = serialization.load_pem_private_key(client.key.read_bytes(), password=None)
        assert key.public_key() == load_cert(client.cert).public_key()
        assert client.key.stat().st_mode & 0o077 == 0


# ---------------------------------------------------------------- TLS trust


def test_r15_server_cert_verifies_against_tls_ca(seal_fixtures: SealFixtures) -> None:
    store = Store([load_cert(seal_fixtures.tls_ca)])
    server = load_cert(seal_fixtures.server_cert)
    for name in (x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("::1"))):
        chain = PolicyBuilder().store(store).build_server_verifier(name).verify(server, [])
        assert chain[-1] == load_cert(seal_fixtures.tls_ca)


def test_r04_listed_client_certs_verify_and_foreign_does_not(seal_fixtures: SealFixtures) -> None:
    verifier = (
        PolicyBuilder().store(Store([load_cert(seal_fixtures.tls_ca)])).build_client_verifier()
    )
    for client in (*seal_fixtures.principals.values(), seal_fixtures.unlisted):
        verifier.verify(load_cert(client.cert), [])
    with pytest.raises(VerificationError):
        verifier.verify(load_cert(seal_fixtures.foreign.cert), [])


def _mutual_tls_handshake(fx: SealFixtures, client_cert: Path, client_key: Path) -> None:
    """A real TLS 1.3 handshake in memory, the server demanding a tls-ca client cert."""
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(fx.server_cert, fx.server_key)
    server_ctx.load_verify_locations(fx.tls_ca)
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.load_verify_locations(fx.tls_ca)
    client_ctx.load_cert_chain(client_cert, client_key)
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname="localhost")
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    done = {"client": False, "server": False}
    for _ in range(20):
        for name, end in (("client", client), ("server", server)):
            if not done[name]:
                try:
                    end.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if all(done.values()):
            # TLS 1.3: the server judges the client cert after the client finished;
            # a round of application data surfaces a rejection on the client side.
            client.write(b"ping")
            s_in.write(c_out.read())
            assert server.read(4) == b"ping"
            return
    raise AssertionError("handshake did not complete")


def test_r15_mutual_tls_handshake_with_listed_client(seal_fixtures: SealFixtures) -> None:
    client = seal_fixtures.principals["li.na"]
    _mutual_tls_handshake(seal_fixtures, client.cert, client.key)


def test_r15_mutual_tls_handshake_refuses_foreign_client(seal_fixtures: SealFixtures) -> None:
    foreign = seal_fixtures.foreign
    with pytest.raises(ssl.SSLError):
        _mutual_tls_handshake(seal_fixtures, foreign.cert, foreign.key)


# ---------------------------------------------------------------- the script itself


def test_build_script_is_idempotent_and_rebuilds_when_forced_or_incomplete(tmp_path: Path) -> None:
    outdir = tmp_path / "fx"
    first = run_build_script(outdir, "--listen", "127.0.0.1:50999")
    assert first.returncode == 0, first.stderr
    before = tree_digest(outdir)
    old = json.loads((outdir / "fixtures.json").read_text())

    started = time.monotonic()
    second = run_build_script(outdir, "--listen", "127.0.0.1:50999")
    elapsed = time.monotonic() - started
    assert second.returncode == 0, second.stderr
    assert "already complete" in second.stdout
    assert tree_digest(outdir) == before
    assert elapsed < 5.0

    forced = run_build_script(outdir, "--listen", "127.0.0.1:50999", "--force")
    assert forced.returncode == 0, forced.stderr
    rebuilt = json.loads((outdir / "fixtures.json").read_text())
    # New tokens and new certificates: --force really rebuilt.
    assert rebuilt["seals"]["official"]["token_serial"] != old["seals"]["official"]["token_serial"]
    assert (
        rebuilt["principals"]["li.na"]["fingerprint_sha256"]
        != (old["principals"]["li.na"]["fingerprint_sha256"])
    )
    assert rebuilt["listen"] == "127.0.0.1:50999"

    # An incomplete tree (a file lost) is rebuilt rather than trusted.
    (outdir / "clients" / "zhang.wei.key").unlink()
    again = run_build_script(outdir, "--listen", "127.0.0.1:50999")
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("built")
    assert (outdir / "clients" / "zhang.wei.key").is_file()
    assert len(list((outdir / "tokens").iterdir())) == 2


def test_build_script_refuses_to_wipe_a_directory_that_is_not_fixtures(tmp_path: Path) -> None:
    outdir = tmp_path / "precious"
    outdir.mkdir()
    (outdir / "thesis.txt").write_text("do not delete")
    refused = run_build_script(outdir, "--force")
    assert refused.returncode == 1
    assert "refusing to wipe" in refused.stderr
    assert (outdir / "thesis.txt").read_text() == "do not delete"


def test_fresh_seal_fixtures_is_an_independent_relocated_copy(
    seal_fixtures: SealFixtures, fresh_seal_fixtures: SealFixtures
) -> None:
    fresh = fresh_seal_fixtures
    assert fresh.root != seal_fixtures.root
    assert os.environ["SOFTHSM2_CONF"] == str(fresh.softhsm2_conf)
    texts = [fresh.softhsm2_conf, fresh.config, fresh.root / "fixtures.json"]
    texts += list((fresh.root / "clients").glob("*.toml"))
    for path in texts:
        assert str(seal_fixtures.root) not in path.read_text(encoding="utf-8"), path
    assert fresh.principals["li.na"].cert.is_file()
    assert str(fresh.principals["li.na"].cert).startswith(str(fresh.root))
    config = tomllib.loads(fresh.config.read_text(encoding="utf-8"))
    assert Path(config["server"]["tls_cert"]).parent == fresh.root / "pki"

    # Destroy the key in the copy (R02 销毁); the session tokens must keep theirs.
    seal = fresh.seals["contract"]
    lib = pkcs11.lib(str(fresh.module))
    with lib.get_token(token_label=seal.token_label).open(rw=True, user_pin=seal.user_pin) as s:
        s.get_key(object_class=ObjectClass.PRIVATE_KEY, label=seal.key_label).destroy()
        assert list(s.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY})) == []

    os.environ["SOFTHSM2_CONF"] = str(seal_fixtures.softhsm2_conf)
    lib.reinitialize()
    with lib.get_token(token_label=seal.token_label).open(user_pin=seal.user_pin) as s:
        assert len(list(s.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY}))) == 1


def _blank_pdf() -> bytes:
    writer = PdfFileWriter()
    page = generic.DictionaryObject(
        {
            generic.NameObject("/Type"): generic.NameObject("/Page"),
            generic.NameObject("/MediaBox"): generic.ArrayObject(
                [generic.NumberObject(v) for v in (0, 0, 595, 842)]
            ),
        }
    )
    writer.insert_page(page)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_r14_pyhanko_finds_seal_by_label_and_pdfsig_accepts_signature(
    seal_fixtures: SealFixtures, tmp_path: Path
) -> None:
    """The labels in seald.toml are enough for pyHanko to seal with the token."""
    seal = seal_fixtures.seals["contract"]
    criteria = TokenCriteria(label=seal.token_label)
    with open_pkcs11_session(
        str(seal_fixtures.module), token_criteria=criteria, user_pin=seal.user_pin
    ) as session:
        signer = PKCS11Signer(session, cert_label=seal.key_label, key_label=seal.key_label)
        meta = signers.PdfSignatureMetadata(
            field_name="Seal", subfilter=fields.SigSeedSubFilter.PADES
        )
        sealed = signers.sign_pdf(
            IncrementalPdfFileWriter(io.BytesIO(_blank_pdf())), meta, signer=signer
        )
    pdf = tmp_path / "sealed.pdf"
    pdf.write_bytes(sealed.getvalue())
    report = subprocess.run(["pdfsig", str(pdf)], capture_output=True, text=True, check=False)
    assert "Signature is Valid." in report.stdout, report.stdout + report.stderr
    assert "华夏示例科技有限公司 合同专用章" in report.stdout
    assert "Total document signed" in report.stdout


def test_r04_seald_config_loader_accepts_generated_config_and_maps_certs(
    seal_fixtures: SealFixtures,
) -> None:
    """Contract between build_fixtures.py and seald.config: schema drift fails here."""
    config = load_config(seal_fixtures.config)
    assert set(config.seals) == set(SEAL_IDS)
    assert config.seals["contract"].certificate == seal_fixtures.seals["contract"].certificate
    laptop = seal_fixtures.principals["li.na-laptop"]
    mapped = config.principal_for_fingerprint(laptop.fingerprint_sha256)
    assert mapped is not None and mapped.name == "li.na"
    assert config.principal_for_fingerprint(seal_fixtures.unlisted.fingerprint_sha256) is None
    assert config.principal_for_fingerprint(seal_fixtures.foreign.fingerprint_sha256) is None


def test_r01_with_legal_rep_builds_the_legal_representatives_seal_on_its_own_token(
    tmp_path: Path,
) -> None:
    """--with-legal-rep (the demo's three-seal contract): a third token with its key made on
    it, a certificate from the same seal CA, a square legal-representative seal in the
    config that every principal of the two other seals may use and the general managers
    approve; a tree built without it is rebuilt, not reused."""
    outdir = tmp_path / "fx"
    plain = run_build_script(outdir, "--listen", "127.0.0.1:50998")
    assert plain.returncode == 0, plain.stderr
    built = run_build_script(outdir, "--listen", "127.0.0.1:50998", "--with-legal-rep")
    assert built.returncode == 0, built.stderr
    assert built.stdout.startswith("built"), "a two-seal tree was reused for --with-legal-rep"
    fx = load_fixtures(outdir)
    assert set(fx.seals) == {*SEAL_IDS, "legal_rep"}
    assert len(list((outdir / "tokens").iterdir())) == 3

    config = load_config(fx.config)
    legal = config.seals["legal_rep"]
    assert legal.seal_type.value == "legal_representative"
    assert (legal.shape, legal.holder_name, legal.token_label) == ("square", "王建国", "seal-legal-rep")
    assert config.policy_for("legal_rep").eligible == frozenset({"li.na", "wang.fang"})
    for entry in config.principals.values():
        assert "legal_rep" in entry.principal.seal_ids, entry.principal.name
    assert fx.principals["liu.yang"].seals == ("official", "contract", "legal_rep")

    seal = fx.seals["legal_rep"]
    cert = load_cert(seal.certificate)
    seal_ca = load_cert(fx.seal_ca)
    assert cert.issuer == seal_ca.subject
    seal_ca_key = seal_ca.public_key()
    assert isinstance(seal_ca_key, rsa.RSAPublicKey)
    seal_ca_key.verify(
        cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(), hashes.SHA256()
    )
    previous = previous_conf()
    point_softhsm_at(fx.softhsm2_conf, fx.module)
    try:
        token = pkcs11.lib(str(fx.module)).get_token(token_label=seal.token_label)
        assert bytes(token.serial).decode().strip() == seal.token_serial == legal.token_serial
        with token.open(user_pin=seal.user_pin) as session:
            (key,) = session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY})
            assert key[Attribute.LABEL] == "legal-rep-seal-key"
            assert key[Attribute.LOCAL] is True and key[Attribute.NEVER_EXTRACTABLE] is True
            signature = key.sign(b"legal rep", mechanism=Mechanism.SHA256_RSA_PKCS)
        public = cert.public_key()
        assert isinstance(public, rsa.RSAPublicKey)
        public.verify(signature, b"legal rep", padding.PKCS1v15(), hashes.SHA256())
    finally:
        point_softhsm_at(previous, fx.module)
