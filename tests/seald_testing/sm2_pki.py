"""A seal maker and one seal holder with SM2 keys (GB/T 38540 tests): the maker's
self-signed CA certificate and the holder's certificate issued by it, both valid
``not_before``..``not_after`` (fixed times, so the tests never read the wall clock)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from seald.gm import certs, sm2


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
