"""sealweb's gRPC connection to seald: its own mutual-TLS identity (role ``relay``).

Calls made for a signed-in person carry that person's web-session token in the metadata
``seal-web-session``; seald then acts as that person, with that person's permissions.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc

from sealapi.v1 import (
    requests_pb2,
    requests_pb2_grpc,
    tokens_pb2,
    tokens_pb2_grpc,
    webauthn_pb2,
    webauthn_pb2_grpc,
)
from sealweb.config import WebConfig

SESSION_METADATA = "seal-web-session"


@dataclass(frozen=True)
class SealdError(Exception):
    """A refusal by seald: its status, machine reason and message (written for people)."""

    code: grpc.StatusCode
    reason: str
    message: str


def _error(ex: grpc.aio.AioRpcError) -> SealdError:
    reason = ""
    metadata: Any = ex.trailing_metadata() or ()
    for key, value in metadata:
        if key == "seal-error-reason":
            reason = str(value)
    return SealdError(ex.code(), reason, ex.details() or "")


class SealdLink:
    def __init__(self, config: WebConfig) -> None:
        credentials = grpc.ssl_channel_credentials(
            config.seald_ca.read_bytes(), config.client_key.read_bytes(), config.client_cert.read_bytes()
        )
        options: list[tuple[str, Any]] = [("grpc.max_receive_message_length", 64 * 1024 * 1024)]
        if config.seald_server_name:
            options.append(("grpc.ssl_target_name_override", config.seald_server_name))
        self.channel = grpc.aio.secure_channel(config.seald_target, credentials, options=options)
        self.requests = requests_pb2_grpc.SealRequestServiceStub(self.channel)
        self.tokens = tokens_pb2_grpc.TokenServiceStub(self.channel)
        self.webauthn = webauthn_pb2_grpc.WebAuthnServiceStub(self.channel)

    async def close(self) -> None:
        await self.channel.close(None)

    @staticmethod
    def _md(token: str) -> tuple[tuple[str, str], ...]:
        return ((SESSION_METADATA, token),) if token else ()

    async def call(self, method: Any, message: Any, token: str = "", timeout: float = 30.0) -> Any:
        try:
            return await method(message, metadata=self._md(token), timeout=timeout)
        except grpc.aio.AioRpcError as ex:
            raise _error(ex) from None

    async def stream(
        self, method: Any, message: Any, token: str = "", timeout: float | None = None
    ) -> AsyncIterator[Any]:
        call = method(message, metadata=self._md(token), timeout=timeout)
        try:
            async for item in call:
                yield item
        except grpc.aio.AioRpcError as ex:
            raise _error(ex) from None
        finally:
            call.cancel()

    # -- typed helpers ---------------------------------------------------------------------------
    async def get(self, token: str, request_id: str) -> requests_pb2.SealRequest:
        message = requests_pb2.GetRequestRequest(request_id=request_id)
        reply: requests_pb2.SealRequest = await self.call(self.requests.GetRequest, message, token)
        return reply

    async def requests_list(self, token: str, **filters: Any) -> list[requests_pb2.SealRequest]:
        message = requests_pb2.ListRequestsRequest(**filters)
        reply = await self.call(self.requests.ListRequests, message, token)
        return list(reply.requests)

    async def token_status(self, token: str) -> list[tokens_pb2.TokenStatus]:
        reply = await self.call(self.tokens.GetTokenStatus, tokens_pb2.GetTokenStatusRequest(), token)
        return list(reply.tokens)

    async def begin_sign_in(self) -> str:
        reply = await self.call(self.webauthn.BeginSignIn, webauthn_pb2.BeginSignInRequest())
        return str(reply.options_json)
