"""WebAuthnService (issue 18): pb <-> seald.webauthn.registry.WebAuthnRegistry."""

from __future__ import annotations

from typing import Any

import grpc

from sealapi.v1 import requests_pb2, webauthn_pb2_grpc
from sealapi.v1 import webauthn_pb2 as wpb
from seald.api import convert
from seald.api.auth import web_session_token
from seald.api.call import CallInfo, Gate, Servicer, rpc
from seald.domain.model import Principal
from seald.domain.webauthn import WEB_SESSION_IDLE, CredentialStatus, WebAuthnCredential
from seald.webauthn.registry import WebAuthnRegistry
from seald.webauthn.verify import Assertion

STATUS_TO_PB = {
    CredentialStatus.PENDING: wpb.CREDENTIAL_STATUS_PENDING,
    CredentialStatus.ACTIVE: wpb.CREDENTIAL_STATUS_ACTIVE,
    CredentialStatus.REVOKED: wpb.CREDENTIAL_STATUS_REVOKED,
}


def credential_to_pb(c: WebAuthnCredential) -> wpb.WebAuthnCredential:
    return wpb.WebAuthnCredential(
        credential_id=c.credential_id,
        principal=c.principal,
        name=c.name,
        status=STATUS_TO_PB[c.status],
        sign_count=c.sign_count,
        attestation_format=c.attestation_format,
        aaguid=c.aaguid,
        public_key_sha256=c.public_key_sha256,
        enrolled_by=c.enrolled_by,
        approved_by=c.approved_by,
        revoked_by=c.revoked_by,
        registered_at=convert.timestamp(c.registered_at),
        last_used_at=convert.timestamp(c.last_used_at),
    )


Context = grpc.aio.ServicerContext[Any, Any]


class WebAuthnServicer(Servicer, webauthn_pb2_grpc.WebAuthnServiceServicer):
    def __init__(self, gate: Gate, *, registry: WebAuthnRegistry) -> None:
        super().__init__(gate)
        self.registry = registry

    @rpc
    async def StartEnrolment(
        self, principal: Principal, info: CallInfo, request: wpb.StartEnrolmentRequest, context: Context
    ) -> wpb.StartEnrolmentResponse:
        enrolment, code = await self.registry.start_enrolment(principal, request.principal)
        return wpb.StartEnrolmentResponse(
            enrolment_id=enrolment.enrolment_id, code=code, expires_at=convert.timestamp(enrolment.expires_at)
        )

    @rpc
    async def BeginRegistration(
        self,
        principal: Principal,
        info: CallInfo,
        request: wpb.BeginRegistrationRequest,
        context: Context,
    ) -> wpb.BeginRegistrationResponse:
        options, who = await self.registry.begin_registration(principal, request.enrolment_id, request.code)
        return wpb.BeginRegistrationResponse(options_json=options, principal=who)

    @rpc
    async def FinishRegistration(
        self,
        principal: Principal,
        info: CallInfo,
        request: wpb.FinishRegistrationRequest,
        context: Context,
    ) -> wpb.WebAuthnCredential:
        credential = await self.registry.finish_registration(
            principal, request.enrolment_id, request.code, request.credential_json, request.name
        )
        return credential_to_pb(credential)

    @rpc
    async def ApproveCredential(
        self, principal: Principal, info: CallInfo, request: wpb.CredentialRef, context: Context
    ) -> wpb.WebAuthnCredential:
        return credential_to_pb(await self.registry.approve_credential(principal, request.credential_id))

    @rpc
    async def ListCredentials(
        self, principal: Principal, info: CallInfo, request: wpb.ListCredentialsRequest, context: Context
    ) -> wpb.ListCredentialsResponse:
        found = await self.registry.list_credentials(principal, request.principal)
        return wpb.ListCredentialsResponse(credentials=[credential_to_pb(c) for c in found])

    @rpc
    async def NameCredential(
        self, principal: Principal, info: CallInfo, request: wpb.NameCredentialRequest, context: Context
    ) -> wpb.WebAuthnCredential:
        return credential_to_pb(
            await self.registry.name_credential(principal, request.credential_id, request.name)
        )

    @rpc
    async def RevokeCredential(
        self, principal: Principal, info: CallInfo, request: wpb.CredentialRef, context: Context
    ) -> wpb.WebAuthnCredential:
        return credential_to_pb(await self.registry.revoke_credential(principal, request.credential_id))

    @rpc
    async def BeginApproval(
        self, principal: Principal, info: CallInfo, request: wpb.BeginApprovalRequest, context: Context
    ) -> wpb.BeginApprovalResponse:
        info.request_id = request.request_id
        statement, options, expires = await self.registry.begin_approval(
            principal, request.request_id, request.credential_id, request.comment
        )
        return wpb.BeginApprovalResponse(
            statement=statement, options_json=options, expires_at=convert.timestamp(expires)
        )

    @rpc
    async def FinishApproval(
        self, principal: Principal, info: CallInfo, request: wpb.FinishApprovalRequest, context: Context
    ) -> requests_pb2.SealRequest:
        info.request_id = request.request_id
        result = await self.registry.finish_approval(
            principal,
            request.request_id,
            Assertion(
                credential_id=request.credential_id,
                authenticator_data=request.authenticator_data,
                client_data_json=request.client_data_json,
                signature=request.signature,
                user_handle=request.user_handle,
            ),
        )
        info.seal_id = result.seal_id
        return convert.request_to_pb(result)

    @rpc
    async def BeginSignIn(
        self, principal: Principal, info: CallInfo, request: wpb.BeginSignInRequest, context: Context
    ) -> wpb.BeginSignInResponse:
        return wpb.BeginSignInResponse(options_json=await self.registry.begin_sign_in(principal))

    @rpc
    async def FinishSignIn(
        self, principal: Principal, info: CallInfo, request: wpb.FinishSignInRequest, context: Context
    ) -> wpb.WebSession:
        token, who = await self.registry.finish_sign_in(
            principal,
            Assertion(
                credential_id=request.credential_id,
                authenticator_data=request.authenticator_data,
                client_data_json=request.client_data_json,
                signature=request.signature,
                user_handle=request.user_handle,
            ),
        )
        return wpb.WebSession(
            token=token,
            principal=who.name,
            display_name=who.display_name,
            roles=sorted(r.value for r in who.roles),
            idle_seconds=int(WEB_SESSION_IDLE.total_seconds()),
            seal_ids=sorted(who.seal_ids),
        )

    @rpc
    async def SignOut(
        self, principal: Principal, info: CallInfo, request: wpb.SignOutRequest, context: Context
    ) -> wpb.SignOutResponse:
        token = web_session_token(context)
        if token:
            self.registry.sign_out(token)
        return wpb.SignOutResponse()
