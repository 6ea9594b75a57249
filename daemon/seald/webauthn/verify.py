"""WebAuthn registration and assertion checks: an adapter around the ``webauthn`` package
(py_webauthn 3.0.1; issue 18).

Kept outside ``seald.domain`` on purpose: the rules (who may enrol, who approves a
credential, the sign-count rule, the statement) are pure domain code; the parsing of CBOR
attestation objects, COSE keys and the signature check are a well-kept library's job, and
this module is the one place that calls it. It does no I/O, so the offline evidence
verifier (``sealclient.evidence``) uses the same function as the daemon.

User verification is always required (PIN or biometric on the key). The sign counter is
not checked here (the library is given 0): ``domain.webauthn.next_sign_count`` decides
about it, after the signature verified, so a counter that goes backwards is told apart
from a bad signature and raises the clone alarm.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Final

from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers.exceptions import (
    InvalidAuthenticationResponse,
    InvalidCBORData,
    InvalidJSONStructure,
    InvalidRegistrationResponse,
)
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from seald.domain.errors import InvalidInput, PermissionDenied
from seald.domain.webauthn import b64url, b64url_decode

_LIBRARY_ERRORS: Final = (
    InvalidAuthenticationResponse,
    InvalidRegistrationResponse,
    InvalidCBORData,
    InvalidJSONStructure,
    ValueError,
    KeyError,
    TypeError,
)


@dataclass(frozen=True)
class RegisteredKey:
    credential_id: str  # base64url
    public_key: bytes  # COSE_Key
    sign_count: int
    attestation_format: str
    aaguid: str


@dataclass(frozen=True)
class Assertion:
    """What the browser's navigator.credentials.get() returned, relayed unchanged."""

    credential_id: str  # base64url rawId
    authenticator_data: bytes
    client_data_json: bytes
    signature: bytes
    user_handle: bytes = b""

    def as_json_dict(self) -> dict[str, object]:
        response: dict[str, object] = {
            "authenticatorData": b64url(self.authenticator_data),
            "clientDataJSON": b64url(self.client_data_json),
            "signature": b64url(self.signature),
        }
        if self.user_handle:
            response["userHandle"] = b64url(self.user_handle)
        return {
            "id": self.credential_id,
            "rawId": self.credential_id,
            "type": "public-key",
            "response": response,
        }


def registration_options(
    *, rp_id: str, rp_name: str, principal: str, display_name: str, challenge: bytes, exclude: list[str]
) -> str:
    """The PublicKeyCredentialCreationOptions (JSON) for the browser: user verification
    required, a discoverable credential preferred (sign-in without typing a name)."""
    options = generate_registration_options(
        rp_id=rp_id,
        rp_name=rp_name,
        user_name=principal,
        user_id=principal.encode("utf-8"),
        user_display_name=display_name or principal,
        challenge=challenge,
        timeout=120_000,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.PREFERRED,
            user_verification=UserVerificationRequirement.REQUIRED,
        ),
        exclude_credentials=[PublicKeyCredentialDescriptor(id=b64url_decode(c)) for c in exclude],
    )
    return options_to_json(options)


def authentication_options(*, rp_id: str, challenge: bytes, allow: list[str]) -> str:
    """PublicKeyCredentialRequestOptions (JSON) for navigator.credentials.get()."""
    options = generate_authentication_options(
        rp_id=rp_id,
        challenge=challenge,
        timeout=120_000,
        allow_credentials=[PublicKeyCredentialDescriptor(id=b64url_decode(c)) for c in allow],
        user_verification=UserVerificationRequirement.REQUIRED,
    )
    return options_to_json(options)


def verify_registration(credential_json: str, *, challenge: bytes, rp_id: str, origin: str) -> RegisteredKey:
    """A new credential's attestation: our challenge, our origin and RP id, UV set."""
    try:
        verified = verify_registration_response(
            credential=credential_json,
            expected_challenge=challenge,
            expected_rp_id=rp_id,
            expected_origin=origin,
            require_user_verification=True,
        )
    except _LIBRARY_ERRORS as ex:
        raise InvalidInput(
            f"the security key's registration does not verify: {ex}; register again with this "
            "appliance's console",
            reason="webauthn_registration_invalid",
        ) from ex
    return RegisteredKey(
        credential_id=b64url(verified.credential_id),
        public_key=verified.credential_public_key,
        sign_count=verified.sign_count,
        attestation_format=str(getattr(verified.fmt, "value", verified.fmt)),
        aaguid=verified.aaguid,
    )


def verify_assertion(
    assertion: Assertion, *, challenge: bytes, rp_id: str, origin: str, public_key: bytes
) -> int:
    """The assertion's signature by ``public_key`` over authenticator data and client data,
    which name ``challenge``, ``origin`` and ``rp_id``, with user verification. Returns the
    authenticator's sign counter (not judged here)."""
    try:
        verified = verify_authentication_response(
            credential=json.dumps(assertion.as_json_dict()),
            expected_challenge=challenge,
            expected_rp_id=rp_id,
            expected_origin=origin,
            credential_public_key=public_key,
            credential_current_sign_count=0,
            require_user_verification=True,
        )
    except _LIBRARY_ERRORS as ex:
        raise PermissionDenied(
            f"the WebAuthn assertion does not verify: {ex}", reason="webauthn_assertion_invalid"
        ) from ex
    return int(verified.new_sign_count)
