#!/usr/bin/env python3
"""Build the test tokens, keys, PKI and configs for seald into one directory.

    python softhsm-fixtures/build_fixtures.py OUTDIR [--listen 127.0.0.1:50443]
                                             [--user-pin PIN] [--force] [--with-legal-rep]

--with-legal-rep adds a third seal, the legal representative's (法人章, `legal_rep`, square,
on its own token): the demo's three-seal contract uses it. The test suite's shared tree is
built without it (tests that need it make it on a new token, tests/seald_testing/jobs.py).

Idempotent: if OUTDIR/fixtures.json exists and is complete (and matches the
options), nothing is done. With --force, or when OUTDIR is incomplete, OUTDIR is
wiped and rebuilt. fixtures.json is written last, so it marks a finished build.

Every PIN and key made here is for tests only. See README.md beside this file.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import ipaddress
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pkcs11
from asn1crypto.core import Integer as Asn1Integer
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pkcs11 import Attribute, CertificateType, KeyType, MechanismFlag, ObjectClass

SOFTHSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so"
DEFAULT_LISTEN = "127.0.0.1:50443"
DEFAULT_USER_PIN = "11223344"
SO_PIN = "87654321"
HOST_NAME = "seal-host-01"
ORGANISATION = "华夏示例科技有限公司"
SEAL_CA_NAME = "华夏示例 电子印章测试CA"
TLS_CA_NAME = "华夏示例 印章服务 TLS 测试CA"
FOREIGN_CA_NAME = "Foreign Test CA (not trusted by seald)"
FORMAT_VERSION = 1
EMAIL_DOMAIN = "huaxia.example"  # reserved TLD: never a real mailbox

CERT_VALIDITY = dt.timedelta(days=3 * 365)
CA_VALIDITY = dt.timedelta(days=10 * 365)
# Back-date certificates a little so a slightly slow clock elsewhere still accepts them.
CLOCK_SKEW = dt.timedelta(hours=1)


class FixtureBuildError(Exception):
    """The fixtures could not be built; the message says what failed and what to do."""


@dataclass(frozen=True)
class SealSpec:
    seal_id: str
    seal_type: str
    display_name: str
    token_label: str
    key_label: str
    categories: tuple[str, ...]
    size_mm: float
    # Square (people's) seals carry the person's name; their approval path is given
    # explicitly where the seal type's default authority (R05) is nobody in the fixtures.
    holder_name: str = ""
    approver_groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class ClientSpec:
    """A client certificate. `principal` is empty for certificates not on the allow-list."""

    name: str
    principal: str
    display_name: str
    roles: tuple[str, ...]
    seals: tuple[str, ...]


SEALS = (
    SealSpec(
        "official",
        "official",
        "公章",
        "seal-official",
        "official-seal-key",
        ("general", "contract", "certificate", "letter"),
        42.0,
    ),
    SealSpec(
        "contract",
        "contract",
        "合同专用章",
        "seal-contract",
        "contract-seal-key",
        ("contract",),
        40.0,
    ),
)

# The legal representative's seal (法人章, --with-legal-rep). Same names as the job tests'
# seal (tests/seald_testing/jobs.py). R05's default authority for it is a department
# manager, whom the fixtures do not have: the general managers approve it, as they approve
# the contract seal, so one approval round covers a contract's three seals.
LEGAL_REP = SealSpec(
    "legal_rep",
    "legal_representative",
    "法定代表人章",
    "seal-legal-rep",
    "legal-rep-seal-key",
    ("contract",),
    20.0,
    holder_name="王建国",
    approver_groups=("general_manager",),
)

_BOTH = ("official", "contract")
PRINCIPALS = (
    ClientSpec("zhang.wei", "zhang.wei", "张伟", ("requester",), _BOTH),
    ClientSpec("li.na", "li.na", "李娜", ("approver",), _BOTH),
    # Same person, second device: R05 must still count li.na once.
    ClientSpec("li.na-laptop", "li.na", "李娜", ("approver",), _BOTH),
    ClientSpec("wang.fang", "wang.fang", "王芳", ("approver",), _BOTH),
    ClientSpec("liu.yang", "liu.yang", "刘洋", ("custodian",), _BOTH),
    ClientSpec("chen.jie", "chen.jie", "陈杰", ("admin",), _BOTH),
    ClientSpec("zhao.min", "zhao.min", "赵敏", ("auditor",), _BOTH),
)
UNLISTED = ClientSpec("stranger", "", "陌生人", (), ())
FOREIGN = ClientSpec("mallory", "", "Mallory", (), ())


# ---------------------------------------------------------------- small pure helpers


def toml_str(value: str) -> str:
    """A TOML basic string. JSON string escapes are a subset of TOML's, CJK stays readable."""
    return json.dumps(value, ensure_ascii=False)


def toml_str_list(values: Sequence[str]) -> str:
    return "[" + ", ".join(toml_str(v) for v in values) + "]"


def sha256_fingerprint(cert: x509.Certificate) -> str:
    """Lower-case hex SHA-256 of the DER certificate: what seald's allow-list holds."""
    return cert.fingerprint(hashes.SHA256()).hex()


def key_id_for(key_label: str) -> bytes:
    """A stable CKA_ID shared by the key pair and its certificate on the token."""
    return hashlib.sha1(key_label.encode("utf-8")).digest()


def der_integer(value: int) -> bytes:
    """CKA_SERIAL_NUMBER holds the DER encoding of the serial INTEGER, not the bare number."""
    return bytes(Asn1Integer(value).dump())


def seal_subject(seal: SealSpec) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANISATION),
            x509.NameAttribute(NameOID.COMMON_NAME, f"{ORGANISATION} {seal.display_name}"),
        ]
    )


def simple_name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANISATION),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def softhsm_conf_text(tokendir: Path) -> str:
    return (
        "# Test-only SoftHSM configuration written by build_fixtures.py\n"
        f"directories.tokendir = {tokendir}\n"
        "objectstore.backend = file\n"
        "log.level = ERROR\n"
    )


def client_toml_text(listen: str, tls_ca: Path, cert: Path, key: Path) -> str:
    return (
        f"server = {toml_str(listen)}\n"
        f"ca = {toml_str(str(tls_ca))}\n"
        f"cert = {toml_str(str(cert))}\n"
        f"key = {toml_str(str(key))}\n"
    )


def seald_toml_text(
    *,
    listen: str,
    pki: Path,
    state_dir: Path,
    serials: dict[str, str],
    fingerprints: dict[str, list[str]],
    seals: Sequence[SealSpec] = SEALS,
) -> str:
    lines = [
        "# seald configuration for tests, written by softhsm-fixtures/build_fixtures.py",
        "[server]",
        f"listen = {toml_str(listen)}",
        f"host_name = {toml_str(HOST_NAME)}",
        f"tls_cert = {toml_str(str(pki / 'server.pem'))}",
        f"tls_key = {toml_str(str(pki / 'server.key'))}",
        f"client_ca = {toml_str(str(pki / 'tls-ca.pem'))}",
        "",
        "[store]",
        f"state_dir = {toml_str(str(state_dir))}",
        "",
        "[pkcs11]",
        f"module = {toml_str(SOFTHSM_MODULE)}",
        "",
        "[trust]",
        f"seal_ca = {toml_str(str(pki / 'seal-ca.pem'))}",
        "",
        "[requests]",
        "required_approvals = 2",
        "approval_ttl_hours = 72",
    ]
    for seal in seals:
        lines += [
            "",
            "[[seal]]",
            f"id = {toml_str(seal.seal_id)}",
            f"type = {toml_str(seal.seal_type)}",
            f"organisation = {toml_str(ORGANISATION)}",
            f"display_name = {toml_str(seal.display_name)}",
            f"token_label = {toml_str(seal.token_label)}",
            f"token_serial = {toml_str(serials[seal.seal_id])}",
            f"key_label = {toml_str(seal.key_label)}",
            # Not in the original schema sketch, but seald.config requires it.
            f"certificate = {toml_str(str(pki / 'seals' / f'{seal.seal_id}.pem'))}",
            f"categories = {toml_str_list(seal.categories)}",
            f"size_mm = {seal.size_mm!r}",
        ]
        if seal.holder_name:
            lines.append(f"holder_name = {toml_str(seal.holder_name)}")
        if seal.approver_groups:
            lines.append(f"approver_groups = {toml_str_list(seal.approver_groups)}")
    for principal in _distinct_principals():
        lines += [
            "",
            "[[principal]]",
            f"name = {toml_str(principal.principal)}",
            f"display_name = {toml_str(principal.display_name)}",
            f"roles = {toml_str_list(principal.roles)}",
            f"seals = {toml_str_list(seal_ids_of(principal, seals))}",
            f"certificates = {toml_str_list(fingerprints[principal.principal])}",
        ]
        if "approver" in principal.roles:
            # R05 default authority of official and contract seals: the general manager
            # (李娜) or her deputy (王芳).
            lines.append('groups = ["general_manager"]')
    return "\n".join(lines) + "\n"


def seal_ids_of(spec: ClientSpec, seals: Sequence[SealSpec]) -> list[str]:
    """The seals a principal may use: its own list, plus every seal beyond the two shared
    ones (the legal representative's) for each principal holding those two."""
    extra = [s.seal_id for s in seals if s not in SEALS]
    return [*spec.seals, *extra] if spec.seals else []


def _distinct_principals() -> list[ClientSpec]:
    """One entry per person, in file order (li.na-laptop folds into li.na)."""
    seen: dict[str, ClientSpec] = {}
    for spec in PRINCIPALS:
        seen.setdefault(spec.principal, spec)
    return list(seen.values())


# ---------------------------------------------------------------- files


def write_private(path: Path, data: bytes) -> None:
    """Write a private key readable by the owner only."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def pem_cert(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def pem_key(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


# ---------------------------------------------------------------- certificates


@dataclass(frozen=True)
class Issuer:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def make_ca(common_name: str, now: dt.datetime, *, use_rsa: bool) -> Issuer:
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
    key = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if use_rsa
        else ec.generate_private_key(ec.SECP256R1())
    )
    name = simple_name(common_name)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    return Issuer(cert, key)


def _leaf_builder(
    issuer: Issuer, subject: x509.Name, public_key: Any, now: dt.datetime
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + CERT_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
            critical=False,
        )
    )


def _key_usage(*, digital_signature: bool, non_repudiation: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=non_repudiation,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def issue_seal_cert(
    issuer: Issuer, seal: SealSpec, public_key: rsa.RSAPublicKey, now: dt.datetime
) -> x509.Certificate:
    return (
        _leaf_builder(issuer, seal_subject(seal), public_key, now)
        .add_extension(_key_usage(digital_signature=True, non_repudiation=True), critical=True)
        .sign(issuer.key, hashes.SHA256())
    )


def issue_tls_cert(
    issuer: Issuer,
    common_name: str,
    public_key: ec.EllipticCurvePublicKey,
    now: dt.datetime,
    *,
    server: bool,
) -> x509.Certificate:
    builder = _leaf_builder(issuer, simple_name(common_name), public_key, now).add_extension(
        _key_usage(digital_signature=True, non_repudiation=False), critical=True
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.IPAddress(ipaddress.ip_address("::1")),
                ]
            ),
            critical=False,
        ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    else:
        # A SAN is required by RFC 5280 path validators (e.g. cryptography's
        # client verifier) even for client certificates; seald itself maps by fingerprint.
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.RFC822Name(f"{common_name}@{EMAIL_DOMAIN}")]),
            critical=False,
        ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    return builder.sign(issuer.key, hashes.SHA256())


# ---------------------------------------------------------------- tokens


@contextmanager
def softhsm_env(conf: Path) -> Iterator[None]:
    """Point SoftHSM at our config for the duration, then restore the caller's setting."""
    previous = os.environ.get("SOFTHSM2_CONF")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("SOFTHSM2_CONF", None)
        else:
            os.environ["SOFTHSM2_CONF"] = previous


def init_token(label: str, user_pin: str) -> None:
    """Create a token in the first free slot (SOFTHSM2_CONF must already point at ours)."""
    argv = [
        "softhsm2-util",
        "--init-token",
        "--free",
        "--label",
        label,
        "--so-pin",
        SO_PIN,
        "--pin",
        user_pin,
    ]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)
    except FileNotFoundError as ex:
        raise FixtureBuildError(
            "softhsm2-util not found: install the Debian package softhsm2"
        ) from ex
    if done.returncode != 0:
        # softhsm2-util's output names no PIN, so it is safe to show.
        raise FixtureBuildError(
            f"softhsm2-util could not create token {label!r}: {done.stderr.strip()}"
            " (check SOFTHSM2_CONF and that the token directory is writable)"
        )


def rsa_public_key_of(pub: pkcs11.PublicKey) -> rsa.RSAPublicKey:
    modulus = int.from_bytes(pub[Attribute.MODULUS], "big")
    exponent = int.from_bytes(pub[Attribute.PUBLIC_EXPONENT], "big")
    return rsa.RSAPublicNumbers(exponent, modulus).public_key()


def generate_seal_on_token(
    lib: Any, seal: SealSpec, user_pin: str, seal_ca: Issuer, now: dt.datetime
) -> tuple[str, x509.Certificate]:
    """Generate the seal key ON the token and store its certificate beside it.

    Returns the token serial SoftHSM assigned and the certificate.
    """
    key_id = key_id_for(seal.key_label)
    token = lib.get_token(token_label=seal.token_label)
    with token.open(rw=True, user_pin=user_pin) as session:
        pub, _priv = session.generate_keypair(
            KeyType.RSA,
            2048,
            id=key_id,
            label=seal.key_label,
            store=True,
            capabilities=MechanismFlag.SIGN | MechanismFlag.VERIFY,
            public_template={
                Attribute.VERIFY: True,
                Attribute.ENCRYPT: False,
                Attribute.WRAP: False,
            },
            # R15: key material never leaves the token.
            private_template={
                Attribute.SENSITIVE: True,
                Attribute.EXTRACTABLE: False,
                Attribute.SIGN: True,
                Attribute.PRIVATE: True,
                Attribute.DECRYPT: False,
                Attribute.UNWRAP: False,
            },
        )
        cert = issue_seal_cert(seal_ca, seal, rsa_public_key_of(pub), now)
        session.create_object(
            {
                Attribute.CLASS: ObjectClass.CERTIFICATE,
                Attribute.CERTIFICATE_TYPE: CertificateType.X_509,
                Attribute.TOKEN: True,
                Attribute.PRIVATE: False,
                Attribute.LABEL: seal.key_label,
                Attribute.ID: key_id,
                Attribute.SUBJECT: cert.subject.public_bytes(),
                Attribute.ISSUER: cert.issuer.public_bytes(),
                Attribute.SERIAL_NUMBER: der_integer(cert.serial_number),
                Attribute.VALUE: cert.public_bytes(serialization.Encoding.DER),
            }
        )
    serial = bytes(token.serial).decode("ascii").strip()
    return serial, cert


def open_pkcs11(module: str) -> Any:
    """The python-pkcs11 library object, re-read against the current SOFTHSM2_CONF.

    python-pkcs11 caches one lib per module path per process and SoftHSM reads
    its config at C_Initialize, so re-initialise in case an earlier caller in
    this process loaded it with another config.
    """
    try:
        lib = pkcs11.lib(module)
        lib.reinitialize()
    except (OSError, pkcs11.PKCS11Error) as ex:
        raise FixtureBuildError(
            f"cannot load PKCS#11 module {module}: {ex} (install the Debian package softhsm2)"
        ) from ex
    return lib


# ---------------------------------------------------------------- the build


def expected_files(root: Path, seals: Sequence[SealSpec] = SEALS) -> list[Path]:
    pki = root / "pki"
    files = [root / "softhsm2.conf", root / "seald.toml"]
    files += [
        pki / n
        for n in (
            "seal-ca.pem",
            "seal-ca.key",
            "tls-ca.pem",
            "tls-ca.key",
            "server.pem",
            "server.key",
            "foreign-ca.pem",
        )
    ]
    files += [pki / "seals" / f"{s.seal_id}.pem" for s in seals]
    for spec in (*PRINCIPALS, UNLISTED, FOREIGN):
        files += [root / "clients" / f"{spec.name}.{ext}" for ext in ("pem", "key", "toml")]
    return files


def is_complete(
    root: Path, listen: str, user_pin: str, seals: Sequence[SealSpec] = SEALS
) -> bool:
    """True if a finished build with the same options is already in `root`."""
    try:
        summary = json.loads((root / "fixtures.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(summary, dict):
        return False
    same_options = (
        summary.get("format") == FORMAT_VERSION
        and summary.get("root") == str(root)
        and summary.get("listen") == listen
        and all(s.get("user_pin") == user_pin for s in summary.get("seals", {}).values())
        and set(summary.get("seals", {})) == {s.seal_id for s in seals}
    )
    tokens = root / "tokens"
    has_tokens = tokens.is_dir() and len(list(tokens.iterdir())) == len(seals)
    return same_options and has_tokens and all(p.is_file() for p in expected_files(root, seals))


def prepare_outdir(root: Path) -> None:
    """Wipe `root` for a rebuild, refusing to wipe a directory that is not ours."""
    if root.exists():
        if not root.is_dir():
            raise FixtureBuildError(f"{root} exists and is not a directory; choose another OUTDIR")
        ours = (root / "fixtures.json").exists() or (root / "softhsm2.conf").exists()
        if any(root.iterdir()) and not ours:
            raise FixtureBuildError(
                f"{root} is not empty and holds no fixtures; refusing to wipe it. "
                "Choose an empty or new OUTDIR."
            )
        shutil.rmtree(root)
    root.mkdir(parents=True)


def _client_entry(
    spec: ClientSpec, clients: Path, fingerprint: str, seals: Sequence[SealSpec]
) -> dict[str, Any]:
    return {
        "principal": spec.principal,
        "display_name": spec.display_name,
        "cert": str(clients / f"{spec.name}.pem"),
        "key": str(clients / f"{spec.name}.key"),
        "config": str(clients / f"{spec.name}.toml"),
        "fingerprint_sha256": fingerprint,
        "roles": list(spec.roles),
        "seals": seal_ids_of(spec, seals),
    }


def build(root: Path, listen: str, user_pin: str, seals: Sequence[SealSpec] = SEALS) -> None:
    """Build every fixture into `root` (which must be empty)."""
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    pki, clients, tokens = root / "pki", root / "clients", root / "tokens"
    state_dir = root / "state"
    for directory in (pki, pki / "seals", clients, tokens):
        directory.mkdir(parents=True)
    state_dir.mkdir(mode=0o700)
    conf = root / "softhsm2.conf"
    conf.write_text(softhsm_conf_text(tokens), encoding="utf-8")

    seal_ca = make_ca(SEAL_CA_NAME, now, use_rsa=True)
    (pki / "seal-ca.pem").write_bytes(pem_cert(seal_ca.cert))
    write_private(pki / "seal-ca.key", pem_key(seal_ca.key))

    serials: dict[str, str] = {}
    seals_summary: dict[str, Any] = {}
    with softhsm_env(conf):
        for seal in seals:
            init_token(seal.token_label, user_pin)
        lib = open_pkcs11(SOFTHSM_MODULE)
        for seal in seals:
            serial, cert = generate_seal_on_token(lib, seal, user_pin, seal_ca, now)
            serials[seal.seal_id] = serial
            cert_path = pki / "seals" / f"{seal.seal_id}.pem"
            cert_path.write_bytes(pem_cert(cert))
            seals_summary[seal.seal_id] = {
                "type": seal.seal_type,
                "display_name": seal.display_name,
                "token_label": seal.token_label,
                "token_serial": serial,
                "key_label": seal.key_label,
                "key_id_hex": key_id_for(seal.key_label).hex(),
                "user_pin": user_pin,
                "so_pin": SO_PIN,
                "certificate": str(cert_path),
            }

    tls_ca = make_ca(TLS_CA_NAME, now, use_rsa=False)
    (pki / "tls-ca.pem").write_bytes(pem_cert(tls_ca.cert))
    write_private(pki / "tls-ca.key", pem_key(tls_ca.key))
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = issue_tls_cert(tls_ca, "localhost", server_key.public_key(), now, server=True)
    (pki / "server.pem").write_bytes(pem_cert(server))
    write_private(pki / "server.key", pem_key(server_key))
    foreign_ca = make_ca(FOREIGN_CA_NAME, now, use_rsa=False)
    (pki / "foreign-ca.pem").write_bytes(pem_cert(foreign_ca.cert))

    entries: dict[str, dict[str, Any]] = {}
    fingerprints: dict[str, list[str]] = {}
    for spec in (*PRINCIPALS, UNLISTED, FOREIGN):
        issuer = foreign_ca if spec is FOREIGN else tls_ca
        key = ec.generate_private_key(ec.SECP256R1())
        # CN is the person; li.na's laptop certificate also says li.na.
        common_name = spec.principal or spec.name
        cert = issue_tls_cert(issuer, common_name, key.public_key(), now, server=False)
        (clients / f"{spec.name}.pem").write_bytes(pem_cert(cert))
        write_private(clients / f"{spec.name}.key", pem_key(key))
        (clients / f"{spec.name}.toml").write_text(
            client_toml_text(
                listen,
                pki / "tls-ca.pem",
                clients / f"{spec.name}.pem",
                clients / f"{spec.name}.key",
            ),
            encoding="utf-8",
        )
        fingerprint = sha256_fingerprint(cert)
        entries[spec.name] = _client_entry(spec, clients, fingerprint, seals)
        if spec.principal:
            fingerprints.setdefault(spec.principal, []).append(fingerprint)

    config = root / "seald.toml"
    config.write_text(
        seald_toml_text(
            listen=listen,
            pki=pki,
            state_dir=state_dir,
            serials=serials,
            fingerprints=fingerprints,
            seals=seals,
        ),
        encoding="utf-8",
    )

    summary = {
        "format": FORMAT_VERSION,
        "root": str(root),
        "listen": listen,
        "softhsm2_conf": str(conf),
        "module": SOFTHSM_MODULE,
        "config": str(config),
        "state_dir": str(state_dir),
        "seal_ca": str(pki / "seal-ca.pem"),
        "seal_ca_key": str(pki / "seal-ca.key"),
        "tls_ca": str(pki / "tls-ca.pem"),
        "tls_ca_key": str(pki / "tls-ca.key"),
        "server_cert": str(pki / "server.pem"),
        "server_key": str(pki / "server.key"),
        "foreign_ca": str(pki / "foreign-ca.pem"),
        "seals": seals_summary,
        "principals": {s.name: entries[s.name] for s in PRINCIPALS},
        "unlisted": {UNLISTED.name: entries[UNLISTED.name]},
        "foreign": {FOREIGN.name: entries[FOREIGN.name]},
    }
    # Written last and atomically: its presence means the build finished.
    partial = root / "fixtures.json.partial"
    partial.write_text(json.dumps(summary, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    partial.replace(root / "fixtures.json")


def build_fixtures(
    outdir: Path,
    *,
    listen: str = DEFAULT_LISTEN,
    user_pin: str = DEFAULT_USER_PIN,
    force: bool = False,
    with_legal_rep: bool = False,
) -> bool:
    """Make sure a complete fixture tree is in `outdir`. Returns True if it (re)built.

    Note: when run in-process this re-initialises python-pkcs11's library for
    the SoftHSM module, which closes every session the caller had open on it.
    """
    root = outdir.expanduser().resolve()
    seals = (*SEALS, LEGAL_REP) if with_legal_rep else SEALS
    if not force and is_complete(root, listen, user_pin, seals):
        return False
    prepare_outdir(root)
    build(root, listen, user_pin, seals)
    return True


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Build SoftHSM tokens, seal keys, PKI and configs for seald tests."
    )
    parser.add_argument("outdir", type=Path, help="directory to build into (wiped on rebuild)")
    parser.add_argument("--listen", default=DEFAULT_LISTEN, help="host:port seald listens on")
    parser.add_argument("--user-pin", default=DEFAULT_USER_PIN, help="user PIN of every token")
    parser.add_argument("--force", action="store_true", help="wipe and rebuild even if complete")
    parser.add_argument(
        "--with-legal-rep",
        action="store_true",
        help="also build the legal representative's seal (legal_rep, 法人章) on its own token",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        built = build_fixtures(
            args.outdir,
            listen=args.listen,
            user_pin=args.user_pin,
            force=args.force,
            with_legal_rep=args.with_legal_rep,
        )
    except FixtureBuildError as ex:
        print(f"build_fixtures: {ex}", file=sys.stderr)
        return 1
    root = args.outdir.expanduser().resolve()
    print(f"{'built' if built else 'already complete'}: {root / 'fixtures.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
