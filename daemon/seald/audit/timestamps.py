"""RFC 3161 timestamps on audit checkpoints (issue 5, optional: [audit] timestamp_checkpoints).

The audit key lives on the seal host, so a checkpoint alone cannot prove *when* the
head existed: whoever holds the host could sign a back-dated one. A timestamp from an
outside TSA can. The message imprint is SHA-256 of the checkpoint's signature value
(as a CAdES signature timestamp covers the signature), so the token binds the
signed head - sequence, hash, time and host - and nothing else.

Verification uses pyHanko's TST validation: the imprint must match, the token's CMS
signature must be intact and its certificate must chain to [audit] tsa_roots (offline:
no fetching; revocation soft-fail, the token is evidence of time, not a seal).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from asn1crypto import cms, pem
from asn1crypto import x509 as asn1_x509
from pyhanko.sign.timestamps import HTTPTimeStamper
from pyhanko.sign.validation.generic_cms import validate_tst_signed_data
from pyhanko.sign.validation.status import TimestampSignatureStatus
from pyhanko_certvalidator import ValidationContext

from seald.store.checkpoints import SignedCheckpoint

IMPRINT_ALGORITHM = "sha256"
TSA_TIMEOUT_S = 10


def checkpoint_imprint(checkpoint: SignedCheckpoint, algorithm: str = IMPRINT_ALGORITHM) -> bytes:
    """What the TSA timestamps: the digest of the checkpoint's signature value."""
    return hashlib.new(algorithm, checkpoint.signature).digest()


async def request_timestamp(checkpoint: SignedCheckpoint, tsa_url: str) -> bytes:
    """A DER timestamp token over the checkpoint. OSError/TimestampRequestError if the TSA fails."""
    stamper = HTTPTimeStamper(tsa_url, timeout=TSA_TIMEOUT_S)
    token = await stamper.async_timestamp(checkpoint_imprint(checkpoint), IMPRINT_ALGORITHM)
    return bytes(token.dump())


def load_roots(paths: tuple[Path, ...]) -> list[asn1_x509.Certificate]:
    roots = []
    for path in paths:
        data = path.read_bytes()
        if pem.detect(data):
            roots += [asn1_x509.Certificate.load(der) for _, _, der in pem.unarmor(data, multiple=True)]
        else:
            roots.append(asn1_x509.Certificate.load(data))
    return roots


async def timestamp_problem(checkpoint: SignedCheckpoint, roots: list[asn1_x509.Certificate]) -> str:
    """'' when the checkpoint's token is valid for it and chains to ``roots``, else what is wrong."""
    where = f"the timestamp of the checkpoint at record {checkpoint.sequence}"
    try:
        content: Any = cms.ContentInfo.load(checkpoint.timestamp_token)
        if content["content_type"].native != "signed_data":
            return f"{where} is not a CMS SignedData timestamp token (edited?)"
        signed_data = content["content"]
        context = ValidationContext(trust_roots=roots, allow_fetching=False, revocation_mode="soft-fail")
        status_kwargs = await validate_tst_signed_data(
            signed_data, context, lambda algorithm: checkpoint_imprint(checkpoint, algorithm)
        )
        status = TimestampSignatureStatus(**status_kwargs)
    except Exception as ex:  # a malformed token can fail anywhere in parsing
        return f"{where} cannot be read ({type(ex).__name__}); it was damaged or edited"
    if not status.intact:
        return f"{where} does not cover this checkpoint (its message imprint differs): forged or swapped"
    if not status.valid:
        return f"{where} has a broken signature"
    if not status.trusted:
        return f"{where} is not signed by a TSA chaining to [audit] tsa_roots"
    return ""


def timestamp_time(checkpoint: SignedCheckpoint) -> str:
    """The TSA's genTime of the checkpoint's token (ISO 8601), '' when there is none."""
    if not checkpoint.timestamp_token:
        return ""
    content: Any = cms.ContentInfo.load(checkpoint.timestamp_token)
    tst_info = content["content"]["encap_content_info"]["content"].parsed
    return str(tst_info["gen_time"].native.isoformat())
