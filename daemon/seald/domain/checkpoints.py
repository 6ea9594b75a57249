"""The signed audit checkpoint as a format: its payload, its JSON file, its signature check.

Pure (no database, no files): the daemon (seald.store.checkpoints, seald.audit) and the
client (``sealctl audit verify``, ``sealctl evidence verify``) share it, so the client need
not import the daemon's store to read or check a checkpoint.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from seald.domain.errors import PreconditionFailed

CHECKPOINT_FORMAT: Final = "seald.checkpoint/1"


class CheckpointError(PreconditionFailed):
    """A checkpoint is missing its key, badly signed, or contradicts the ledger."""

    default_reason = "checkpoint_invalid"


def checkpoint_payload(sequence: int, head_hash: str, created_at: str, host: str) -> bytes:
    """The exact bytes that are signed: canonical JSON, sorted keys, no spaces."""
    document = {
        "format": CHECKPOINT_FORMAT,
        "sequence": sequence,
        "head_hash": head_hash,
        "created_at": created_at,
        "host": host,
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class SignedCheckpoint:
    sequence: int
    head_hash: str
    created_at: str
    host: str
    signature: bytes
    certificate_der: bytes
    timestamp_token: bytes = b""

    def payload(self) -> bytes:
        return checkpoint_payload(self.sequence, self.head_hash, self.created_at, self.host)

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": CHECKPOINT_FORMAT,
                "sequence": self.sequence,
                "head_hash": self.head_hash,
                "created_at": self.created_at,
                "host": self.host,
                "signature": self.signature.hex(),
                "certificate_der": self.certificate_der.hex(),
                "timestamp_token": self.timestamp_token.hex(),
            },
            sort_keys=True,
            indent=1,
        )

    @classmethod
    def from_json(cls, text: str) -> SignedCheckpoint:
        try:
            raw = json.loads(text)
            if raw.get("format") != CHECKPOINT_FORMAT:
                raise ValueError(f"format is {raw.get('format')!r}, expected {CHECKPOINT_FORMAT!r}")
            return cls(
                sequence=int(raw["sequence"]),
                head_hash=str(raw["head_hash"]),
                created_at=str(raw["created_at"]),
                host=str(raw["host"]),
                signature=bytes.fromhex(raw["signature"]),
                certificate_der=bytes.fromhex(raw["certificate_der"]),
                timestamp_token=bytes.fromhex(raw.get("timestamp_token", "")),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as ex:
            raise CheckpointError(
                f"the checkpoint file is not a seald checkpoint ({ex}); export it again with "
                "sealctl audit checkpoint"
            ) from ex


def signature_problem(checkpoint: SignedCheckpoint, certificate: x509.Certificate) -> str:
    """'' if the audit key in ``certificate`` signed this checkpoint, else what is wrong."""
    public_key = certificate.public_key()
    if not isinstance(public_key, ec.EllipticCurvePublicKey):
        return "the audit certificate does not hold an EC key"
    try:
        public_key.verify(checkpoint.signature, checkpoint.payload(), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return (
            f"checkpoint at record {checkpoint.sequence} is not signed by the audit key "
            "(forged or edited checkpoint)"
        )
    return ""
