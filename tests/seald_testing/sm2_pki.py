"""A seal maker and one seal holder with SM2 keys (GB/T 38540 tests): the maker's
self-signed CA certificate and the holder's certificate issued by it, both valid
``not_before``..``not_after`` (fixed times, so the tests never read the wall clock); and
the files a daemon's SM2 seal configuration names (``seal_pki``)."""

from __future__ import annotations

import base64
import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from seald.gm import certs, sm2

SEAL_CA = "Test SM2 seal CA"
MAKER = "电子印章制作系统"


@dataclass(frozen=True)
class MakerAndHolder:
    maker: sm2.Sm2PrivateKey
    maker_cert: bytes
    holder: sm2.Sm2PrivateKey
    holder_cert: bytes


def maker_and_holder(
    not_before: dt.datetime,
    not_after: dt.datetime,
    *,
    maker_cn: str = "maker",
    holder_cn: str = "合同专用章",
) -> MakerAndHolder:
    maker, holder = sm2.Sm2PrivateKey.generate(), sm2.Sm2PrivateKey.generate()
    maker_cert = certs.build_certificate(
        subject=certs.name(maker_cn),
        issuer=certs.name(maker_cn),
        public_key=maker.public_key,
        sign=maker.sign,
        not_before=not_before,
        not_after=not_after,
        ca=True,
    )
    holder_cert = certs.build_certificate(
        subject=certs.name(holder_cn),
        issuer=certs.name(maker_cn),
        public_key=holder.public_key,
        sign=maker.sign,
        not_before=not_before,
        not_after=not_after,
    )
    return MakerAndHolder(maker, bytes(maker_cert.dump()), holder, bytes(holder_cert.dump()))


def pem_certificate(der: bytes) -> str:
    return "-----BEGIN CERTIFICATE-----\n" + base64.encodebytes(der).decode() + "-----END CERTIFICATE-----\n"


@dataclass(frozen=True)
class SealPki:
    """What a daemon's SM2 seal configuration names, written as files: the seal's
    certificate, the SM2 seal CA that issued it, and a software seal maker."""

    seal_pem: Path
    ca_pem: Path
    maker_pem: Path
    maker_key: Path
    seal_cert: bytes
    maker_cert: bytes


def seal_pki(out: Path, point: bytes, *, now: dt.datetime, rogue: bool = False) -> SealPki:
    """The test SM2 seal CA certifies the token key ``point`` (valid from a day before
    ``now`` for a year); the maker self-signs (ten years). ``rogue``: the certificate is
    for another key than the token's. The caller decides ``now`` (wall-clock callers are
    marked ``clock``)."""
    ca, maker = sm2.Sm2PrivateKey.generate(), sm2.Sm2PrivateKey.generate()
    ca_cert = certs.build_certificate(
        subject=certs.name(SEAL_CA),
        issuer=certs.name(SEAL_CA),
        public_key=ca.public_key,
        sign=ca.sign,
        not_before=now - dt.timedelta(days=2),
        not_after=now + dt.timedelta(days=3650),
        ca=True,
    )
    seal_cert = certs.build_certificate(
        subject=certs.name("华夏示例科技有限公司 合同专用章(SM2)"),
        issuer=certs.name(SEAL_CA),
        public_key=sm2.Sm2PrivateKey.generate().public_key if rogue else sm2.Sm2PublicKey(point),
        sign=ca.sign,
        not_before=now - dt.timedelta(days=1),
        not_after=now + dt.timedelta(days=365),
    )
    maker_cert = certs.build_certificate(
        subject=certs.name(MAKER),
        issuer=certs.name(MAKER),
        public_key=maker.public_key,
        sign=maker.sign,
        not_before=now - dt.timedelta(days=1),
        not_after=now + dt.timedelta(days=3650),
        ca=True,
    )
    pki = SealPki(
        seal_pem=out / "seal.pem",
        ca_pem=out / "sm2-ca.pem",
        maker_pem=out / "maker.pem",
        maker_key=out / "maker.key",
        seal_cert=bytes(seal_cert.dump()),
        maker_cert=bytes(maker_cert.dump()),
    )
    pki.seal_pem.write_text(pem_certificate(pki.seal_cert))
    pki.ca_pem.write_text(pem_certificate(bytes(ca_cert.dump())))
    pki.maker_pem.write_text(pem_certificate(pki.maker_cert))
    pki.maker_key.write_bytes(maker.to_pem())
    return pki
