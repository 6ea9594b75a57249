"""TokenService: token status and its watch, unlock/lock by the custodian, PIN change."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc

from sealapi.v1 import tokens_pb2, tokens_pb2_grpc
from seald.api import convert
from seald.api.call import CallInfo, Gate, Servicer, rpc, stream_rpc
from seald.domain import access
from seald.domain.model import Principal
from seald.service.catalog import SealCatalog
from seald.service.tokens import Readiness, TokenService
from seald.tokens.custody_guard import CustodyGuard
from seald.tokens.manager import TokenManager, TokenState


class TokenServicer(Servicer, tokens_pb2_grpc.TokenServiceServicer):
    def __init__(
        self,
        gate: Gate,
        *,
        catalog: SealCatalog,
        tokens: TokenManager,
        token_service: TokenService,
        custody: CustodyGuard,
        readiness: Readiness,
    ) -> None:
        super().__init__(gate)
        self.catalog = catalog
        self.tokens = tokens
        self.token_service = token_service
        self.custody = custody
        self.readiness = readiness

    def _status(self, state: TokenState) -> tokens_pb2.TokenStatus:
        ready, why = self.readiness(state.seal_id)
        status = convert.token_to_pb(state, ready, why)
        status.initial_pin_changed = self.custody.initial_pin_changed(state.seal_id)
        return status

    def _visible(self, principal: Principal, seal_filter: str) -> list[str]:
        if seal_filter:
            self.catalog.seal(seal_filter)
        return access.visible_seals(principal, self.gate.live.current.seals, seal_filter)

    @rpc
    async def GetTokenStatus(
        self,
        principal: Principal,
        info: CallInfo,
        request: tokens_pb2.GetTokenStatusRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> tokens_pb2.GetTokenStatusResponse:
        seal_ids = self._visible(principal, request.seal_id)
        await self.tokens.refresh()
        return tokens_pb2.GetTokenStatusResponse(
            tokens=[self._status(self.tokens.state(s)) for s in seal_ids]
        )

    @stream_rpc
    async def WatchTokens(
        self,
        principal: Principal,
        info: CallInfo,
        request: tokens_pb2.WatchTokensRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[tokens_pb2.TokenStatus]:
        seal_ids = set(self._visible(principal, request.seal_id))
        async with self.token_service.token_events.subscribe() as queue:
            for seal_id in sorted(seal_ids):
                yield self._status(self.tokens.state(seal_id))
            while True:
                state = await queue.get()
                if state.seal_id in seal_ids:
                    yield self._status(state)

    @rpc
    async def UnlockToken(
        self,
        principal: Principal,
        info: CallInfo,
        request: tokens_pb2.UnlockTokenRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> tokens_pb2.TokenStatus:
        info.seal_id = request.seal_id
        state = await self.token_service.unlock(principal, request.seal_id, request.pin)
        return self._status(state)

    @rpc
    async def LockToken(
        self,
        principal: Principal,
        info: CallInfo,
        request: tokens_pb2.LockTokenRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> tokens_pb2.TokenStatus:
        info.seal_id = request.seal_id
        return self._status(await self.token_service.lock(principal, request.seal_id))

    @rpc
    async def ChangePin(
        self,
        principal: Principal,
        info: CallInfo,
        request: tokens_pb2.ChangePinRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> tokens_pb2.TokenStatus:
        info.seal_id = request.seal_id
        self.catalog.seal(request.seal_id)
        await self.custody.change_pin(principal, request.seal_id, request.old_pin, request.new_pin)
        return self._status(self.tokens.state(request.seal_id))
