"""A software WebAuthn authenticator (ES256, ``none`` attestation) for PURE unit tests only.

It produces the same bytes a security key would (authenticator data, client data JSON,
an ECDSA P-256 signature over ``authData || SHA-256(clientDataJSON)``), with knobs to
misbehave (UV unset, another origin, a counter that goes backwards). Browser tests use
Chromium's virtual authenticator instead.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from dataclasses import dataclass, field

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from seald.domain.webauthn import b64url
from seald.webauthn.verify import Assertion

UP, UV, AT = 0x01, 0x04, 0x40


@dataclass
class SoftAuthenticator:
    rp_id: str
    origin: str
    key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    credential_raw_id: bytes = field(default_factory=lambda: os.urandom(32))
    counter: int = 0

    @property
    def credential_id(self) -> str:
        return b64url(self.credential_raw_id)

    def cose_key(self) -> bytes:
        numbers = self.key.public_key().public_numbers()
        return cbor2.dumps(
            {1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"), -3: numbers.y.to_bytes(32, "big")}
        )

    def _client_data(self, kind: str, challenge: bytes, origin: str | None) -> bytes:
        return json.dumps(
            {
                "type": kind,
                "challenge": b64url(challenge),
                "origin": origin or self.origin,
                "crossOrigin": False,
            },
            separators=(",", ":"),
        ).encode()

    def register(self, challenge: bytes, *, uv: bool = True, origin: str | None = None) -> str:
        """navigator.credentials.create()'s result as the JSON a browser would send."""
        flags = UP | AT | (UV if uv else 0)
        auth_data = (
            hashlib.sha256(self.rp_id.encode()).digest()
            + bytes([flags])
            + struct.pack(">I", self.counter)
            + bytes(16)
            + struct.pack(">H", len(self.credential_raw_id))
            + self.credential_raw_id
            + self.cose_key()
        )
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        return json.dumps(
            {
                "id": self.credential_id,
                "rawId": self.credential_id,
                "type": "public-key",
                "response": {
                    "clientDataJSON": b64url(self._client_data("webauthn.create", challenge, origin)),
                    "attestationObject": b64url(attestation),
                },
            }
        )

    def assert_(
        self,
        challenge: bytes,
        *,
        uv: bool = True,
        origin: str | None = None,
        rp_id: str | None = None,
        counter: int | None = None,
    ) -> Assertion:
        """navigator.credentials.get()'s result."""
        self.counter = self.counter + 1 if counter is None else counter
        auth_data = (
            hashlib.sha256((rp_id or self.rp_id).encode()).digest()
            + bytes([UP | (UV if uv else 0)])
            + struct.pack(">I", self.counter)
        )
        client_data = self._client_data("webauthn.get", challenge, origin)
        signature = self.key.sign(auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256()))
        return Assertion(
            credential_id=self.credential_id,
            authenticator_data=auth_data,
            client_data_json=client_data,
            signature=signature,
        )
