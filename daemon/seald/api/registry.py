"""SealRegistryService: the seals, their lifecycle (R01-R03), seal images and custody (R07)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Any

import grpc

from sealapi.v1 import seals_pb2, seals_pb2_grpc
from seald.api import convert, custody_convert
from seald.api.call import CallInfo, Gate, Servicer, rpc
from seald.domain import access
from seald.domain.errors import InvalidInput
from seald.domain.model import Principal
from seald.domain.seals import SealAction, SealState, effective_state, require_admin
from seald.domain.text_policy import MAX_LABEL
from seald.notify.deliverer import Deliverer
from seald.registry.admin import SealAdmin
from seald.registry.impressions import ImpressionRegistry
from seald.service.catalog import SealCatalog
from seald.signing.errors import SigningError
from seald.tokens.custody_guard import CustodyGuard
from seald.tokens.manager import TokenManager
from seald.workflow import Workflow

SEAL_IMAGE_DPI, SEAL_IMAGE_MIN_DPI, SEAL_IMAGE_MAX_DPI = 300, 72, 1200


class SealRegistryServicer(Servicer, seals_pb2_grpc.SealRegistryServiceServicer):
    def __init__(
        self,
        gate: Gate,
        *,
        catalog: SealCatalog,
        tokens: TokenManager,
        custody: CustodyGuard,
        admin: SealAdmin,
        seal_image: Callable[[str, int], bytes],
        workflow: Workflow,
        impressions: ImpressionRegistry,
        deliverer: Deliverer | None = None,
        clock: Callable[[], datetime],
    ) -> None:
        super().__init__(gate)
        self.impressions = impressions  # issue 16: the registered impression (印模)
        self.workflow = workflow  # issue 17: delegations and the notification outbox
        self.deliverer = deliverer
        self.clock = clock
        self.catalog = catalog
        self.tokens = tokens
        self.custody = custody
        self.admin = admin
        self.seal_image = seal_image

    def _require_role_on_seal(self, principal: Principal, seal_id: str) -> None:
        """NOT_FOUND for an unknown seal, PERMISSION_DENIED without a role on it."""
        self.catalog.seal(seal_id)
        access.require_role_on_seal(principal, seal_id)

    def _seal_pb(self, seal_id: str) -> seals_pb2.Seal:
        tokens = self.tokens
        der = tokens.certificate_der(seal_id)
        state = self.catalog.states.get(seal_id) or SealState(seal_id)
        pb = convert.seal_to_pb(
            self.gate.live.current.seals[seal_id],
            der,
            tokens.certificate_sha256(seal_id),
            effective_state(state, bool(der)),  # PENDING until a certificate is imported
        )
        pb.custodian = self.custody.custody(seal_id).custodian  # R07: who holds it
        pb.impression_sha256 = self.catalog.impression_sha256(seal_id)
        return pb

    async def _lifecycle(
        self,
        principal: Principal,
        info: CallInfo,
        request: seals_pb2.SealLifecycleRequest,
        action: SealAction,
    ) -> seals_pb2.Seal:
        info.seal_id = request.seal_id
        # The comment meets the text policy in domain.seals.decide, after the admin check.
        outcome = await self.admin.act(
            principal,
            request.seal_id,
            action,
            comment=request.comment,
            proposal_id=request.proposal_id,
        )
        pb = self._seal_pb(request.seal_id)
        if not outcome.executed:
            pb.status_reason = (
                f"{action.value} proposed as {request.proposal_id} by {principal.name}; a "
                "second administrator must confirm it with the same proposal id"
            )
        return pb

    @rpc
    async def ListSeals(
        self,
        principal: Principal,
        info: CallInfo,
        request: seals_pb2.ListSealsRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> seals_pb2.ListSealsResponse:
        return seals_pb2.ListSealsResponse(
            seals=[self._seal_pb(s) for s in sorted(self.gate.live.current.seals) if s in principal.seal_ids]
        )

    @rpc
    async def GetSeal(
        self,
        principal: Principal,
        info: CallInfo,
        request: seals_pb2.GetSealRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> seals_pb2.Seal:
        info.seal_id = request.seal_id
        self._require_role_on_seal(principal, request.seal_id)
        return self._seal_pb(request.seal_id)

    @rpc
    async def RenderSealImage(
        self,
        principal: Principal,
        info: CallInfo,
        request: seals_pb2.RenderSealImageRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> seals_pb2.RenderSealImageResponse:
        info.seal_id = request.seal_id
        self._require_role_on_seal(principal, request.seal_id)
        dpi = request.dpi or SEAL_IMAGE_DPI
        if not SEAL_IMAGE_MIN_DPI <= dpi <= SEAL_IMAGE_MAX_DPI:
            raise InvalidInput(
                f"seal image resolution {dpi} dpi is outside {SEAL_IMAGE_MIN_DPI}.."
                f"{SEAL_IMAGE_MAX_DPI}; ask for one in that range or 0 for {SEAL_IMAGE_DPI}",
                reason="bad_dpi",
            )
        loop = asyncio.get_running_loop()
        try:
            png = await loop.run_in_executor(None, self.seal_image, request.seal_id, dpi)
        except SigningError as ex:
            raise InvalidInput(str(ex), reason=ex.reason) from ex
        return seals_pb2.RenderSealImageResponse(png=png)

    @rpc
    async def ImportSealImpression(
        self,
        principal: Principal,
        info: CallInfo,
        request: seals_pb2.ImportSealImpressionRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> seals_pb2.SealImpression:
        info.seal_id = request.seal_id
        # The comment and code meet their checks in domain.impressions, after the admin check.
        proposal = await self.impressions.propose(
            principal, request.seal_id, request.image, seal_code=request.seal_code, comment=request.comment
        )
        return convert.impression_to_pb(proposal)

    @rpc
    async def ApproveSealImpression(
        self,
        principal: Principal,
        info: CallInfo,
        request: seals_pb2.ApproveSealImpressionRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> seals_pb2.ApproveSealImpressionResponse:
        info.seal_id = request.seal_id
        convert.text_in("comment", request.comment)
        approved, voided = await self.impressions.approve(
            principal, request.seal_id, request.impression_id, request.sha256, comment=request.comment
        )
        return seals_pb2.ApproveSealImpressionResponse(
            impression=convert.impression_to_pb(approved), voided_requests=voided
        )

    @rpc
    async def GetSealImpression(
        self,
        principal: Principal,
        info: CallInfo,
        request: seals_pb2.GetSealImpressionRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> seals_pb2.SealImpressionView:
        info.seal_id = request.seal_id
        self._require_role_on_seal(principal, request.seal_id)
        view = await self.impressions.view(request.seal_id, proposal_id=request.proposal_id)
        pb = seals_pb2.SealImpressionView(
            image=view.current_data,
            proposals=[convert.impression_to_pb(p) for p in view.proposals],
            history=[convert.impression_to_pb(h) for h in view.history],
            proposal_image=view.proposal_data,
        )
        if view.current is not None:
            pb.current.CopyFrom(convert.impression_to_pb(view.current))
        return pb

    @rpc
    async def CreateSealKey(
        self,
        principal: Principal,
        info: CallInfo,
        request: seals_pb2.CreateSealKeyRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> seals_pb2.CreateSealKeyResponse:
        info.seal_id = request.seal_id
        created = await self.admin.create_key(principal, request.seal_id)
        return seals_pb2.CreateSealKeyResponse(seal_id=request.seal_id, csr_der=created.csr_der)

    @rpc
    async def ImportSealCertificate(
        self,
        principal: Principal,
        info: CallInfo,
        request: seals_pb2.ImportSealCertificateRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> seals_pb2.Seal:
        info.seal_id = request.seal_id
        await self.admin.import_certificate(
            principal, request.seal_id, request.certificate_der, renew=False
        )
        return self._seal_pb(request.seal_id)

    @rpc
    async def ChangeSeal(
        self,
        principal: Principal,
        info: CallInfo,
        request: seals_pb2.ChangeSealRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> seals_pb2.Seal:
        info.seal_id = request.seal_id
        self.catalog.seal(request.seal_id)
        require_admin(principal, request.seal_id)  # R04 before any check of the input
        convert.text_in("comment", request.comment)
        convert.text_in("display_name", request.display_name, limit=MAX_LABEL)
        admin = self.admin
        if request.certificate_der:
            # Renewed certificate for the same key (and optionally a new name), history kept.
            await admin.import_certificate(
                principal,
                request.seal_id,
                request.certificate_der,
                renew=True,
                comment=request.comment,
                display_name=request.display_name.strip(),
            )
            return self._seal_pb(request.seal_id)
        if not request.display_name.strip():
            raise InvalidInput(
                "ChangeSeal needs a new display_name or a renewed certificate_der",
                reason="missing_display_name",
            )
        await admin.act(
            principal,
            request.seal_id,
            SealAction.CHANGE,
            comment=request.comment,
            display_name=request.display_name.strip(),
        )
        return self._seal_pb(request.seal_id)

    @rpc
    async def SuspendSeal(
        self,
        principal: Principal,
        info: CallInfo,
        request: seals_pb2.SealLifecycleRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> seals_pb2.Seal:
        return await self._lifecycle(principal, info, request, SealAction.SUSPEND)

    @rpc
    async def ResumeSeal(
        self,
        principal: Principal,
        info: CallInfo,
        request: seals_pb2.SealLifecycleRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> seals_pb2.Seal:
        return await self._lifecycle(principal, info, request, SealAction.RESUME)

    @rpc
    async def ReportSealLost(
        self,
        principal: Principal,
        info: CallInfo,
        request: seals_pb2.SealLifecycleRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> seals_pb2.Seal:
        return await self._lifecycle(principal, info, request, SealAction.REPORT_LOST)

    @rpc
    async def DestroySeal(
        self,
        principal: Principal,
        info: CallInfo,
        request: seals_pb2.SealLifecycleRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> seals_pb2.Seal:
        return await self._lifecycle(principal, info, request, SealAction.DESTROY)

    @rpc
    async def GetCustody(
        self,
        principal: Principal,
        info: CallInfo,
        request: seals_pb2.GetCustodyRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> seals_pb2.Custody:
        info.seal_id = request.seal_id
        self._require_role_on_seal(principal, request.seal_id)
        guard = self.custody
        return custody_convert.custody_to_pb(guard.custody(request.seal_id), guard.clock())

    @rpc
    async def ProposeCustodyChange(
        self,
        principal: Principal,
        info: CallInfo,
        request: seals_pb2.ProposeCustodyChangeRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> seals_pb2.CustodyChange:
        info.seal_id = request.seal_id
        self.catalog.seal(request.seal_id)
        start, end = custody_convert.window_from_pb(request.window)
        # to_principal and comment meet the text policy in domain.custody.propose_change.
        change = await self.custody.propose(
            principal,
            request.seal_id,
            custody_convert.kind_from_pb(request.kind),
            request.to_principal,
            comment=request.comment,
            window_start=start,
            window_end=end,
        )
        return custody_convert.change_to_pb(change)

    @rpc
    async def ApproveCustodyChange(
        self,
        principal: Principal,
        info: CallInfo,
        request: seals_pb2.ApproveCustodyChangeRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> seals_pb2.CustodyChange:
        change = await self.custody.approve(principal, request.change_id)
        info.seal_id = change.seal_id
        return custody_convert.change_to_pb(change)

    # -- issue 17: approver delegation and the notification outbox ---------------------------

    @rpc
    async def ProposeDelegation(
        self,
        principal: Principal,
        info: CallInfo,
        request: seals_pb2.ProposeDelegationRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> seals_pb2.Delegation:
        info.seal_id = request.seal_id
        start, end = custody_convert.window_from_pb(request.window)
        d = await self.workflow.propose(
            principal,
            delegate=request.delegate,
            delegator=request.delegator,
            seal_id=request.seal_id,
            categories=list(request.categories),
            valid_from=start,
            valid_until=end,
            comment=request.comment,
        )
        return convert.delegation_to_pb(d)

    @rpc
    async def ApproveDelegation(
        self,
        principal: Principal,
        info: CallInfo,
        request: seals_pb2.DelegationIdRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> seals_pb2.Delegation:
        d = await self.workflow.approve(principal, request.delegation_id)
        info.seal_id = d.seal_id
        return convert.delegation_to_pb(d)

    @rpc
    async def EndDelegation(
        self,
        principal: Principal,
        info: CallInfo,
        request: seals_pb2.DelegationIdRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> seals_pb2.Delegation:
        d = await self.workflow.end(principal, request.delegation_id, request.comment)
        info.seal_id = d.seal_id
        return convert.delegation_to_pb(d)

    @rpc
    async def ListDelegations(
        self,
        principal: Principal,
        info: CallInfo,
        request: seals_pb2.ListDelegationsRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> seals_pb2.ListDelegationsResponse:
        found = await self.workflow.delegations(principal, live_only=request.live_only)
        return seals_pb2.ListDelegationsResponse(delegations=[convert.delegation_to_pb(d) for d in found])

    @rpc
    async def GetNotificationQueue(
        self,
        principal: Principal,
        info: CallInfo,
        request: seals_pb2.GetNotificationQueueRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> seals_pb2.NotificationQueue:
        if request.state not in ("", "pending", "delivered", "dead"):
            raise InvalidInput(
                f"state {request.state!r}: use pending, delivered, dead or nothing",
                reason="bad_state",
            )
        stats, rows = await self.workflow.queue(principal, request.state)
        now = self.clock()
        return seals_pb2.NotificationQueue(
            pending=stats.pending,
            delivered=stats.delivered,
            dead=stats.dead,
            oldest_pending_age_seconds=(
                (now - stats.oldest_pending).total_seconds() if stats.oldest_pending else 0.0
            ),
            deliveries=[
                seals_pb2.NotificationDelivery(
                    event_id=e, webhook=w, state=s, attempts=a, last_error=err
                )
                for e, w, s, a, err in rows
            ],
        )

    @rpc
    async def ReplayNotifications(
        self,
        principal: Principal,
        info: CallInfo,
        request: seals_pb2.ReplayNotificationsRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> seals_pb2.ReplayNotificationsResponse:
        count = await self.workflow.replay(principal, list(request.event_ids), request.webhook)
        if self.deliverer is not None:
            self.deliverer.wake()
        return seals_pb2.ReplayNotificationsResponse(replayed=count)
