"""The registered seal impression (印模) shell (issue 16 item 4, R02).

Import = check the image (signing/impression.py, off the loop), then one transaction:
the proposal row with its bytes, a history row and ``seal.impression_proposed``.
Approval by a second admin = one transaction: the proposal approved, the seal's
history, every open request re-bound to the new impression (approvals void, new
digest: ``lifecycle.rebind_impression``) with ``request.approvals_voided`` each, and
``seal.impression_registered``; then the catalog and the signer's face cache change.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from seald.domain import impressions, lifecycle
from seald.domain.audit import AuditEvent
from seald.domain.errors import SealError
from seald.domain.impressions import Impression
from seald.domain.model import Principal
from seald.domain.seals import require_admin
from seald.registry.admin import _one_at_a_time
from seald.registry.ses_seal import SesSeals
from seald.registry.voiding import void_open_requests
from seald.runtime.logs import get_logger
from seald.service.catalog import SealCatalog
from seald.service.settings import LiveConfig
from seald.signing.impression import ImpressionLimits, check_impression
from seald.store import seals as seal_tables
from seald.store.database import Reader, Store, Transaction

log = get_logger("seald.seals")


@dataclass(frozen=True)
class ImpressionView:
    """What ``show`` answers: the registered impression, open proposals, the history."""

    current: Impression | None
    current_data: bytes
    proposals: tuple[Impression, ...]
    history: tuple[Impression, ...]  # every approved impression, oldest first
    proposal_data: bytes = b""  # the bytes of the proposal asked for, if any


class ImpressionRegistry:
    """Import (one admin) and approval (a second admin) of a seal's impression."""

    def __init__(
        self,
        live: LiveConfig,
        store: Store,
        catalog: SealCatalog,
        *,
        clock: Callable[[], datetime],
        changed: Callable[[str], None],
        wake_signer: Callable[[], None],
        ses_seals: SesSeals | None = None,
    ) -> None:
        self._live = live
        self._ses_seals = ses_seals
        self._store = store
        self._catalog = catalog
        self._clock = clock
        self._changed = changed
        self._wake_signer = wake_signer

    async def propose(
        self, principal: Principal, seal_id: str, data: bytes, *, seal_code: str, comment: str = ""
    ) -> Impression:
        """The first admin's import; every image check runs before anything is stored."""
        self._catalog.seal(seal_id)
        require_admin(principal, seal_id)  # R04 before any look at the image
        config = self._live.current
        sc = config.seals[seal_id]
        limits = ImpressionLimits(max_bytes=config.impression.max_bytes, min_dpi=config.impression.min_dpi)
        loop = asyncio.get_running_loop()
        checked = await loop.run_in_executor(
            None, lambda: check_impression(data, size_mm=sc.size_mm, limits=limits)
        )
        now = self._clock()
        impression_id = "imp-" + secrets.token_hex(8)

        def _tx(tx: Transaction) -> Impression:
            seal = self._catalog.seal(seal_id, tx)
            proposal = impressions.propose(
                impression_id=impression_id,
                seal_id=seal_id,
                status=seal.status,
                admin=principal,
                sha256=checked.sha256,
                media_type=checked.media_type,
                seal_code=seal_code,
                configured_code=sc.code_number,
                width_mm=checked.width_mm,
                height_mm=checked.height_mm,
                dpi=checked.dpi,
                current_sha256=seal.impression_sha256,
                comment=comment,
                now=now,
            )
            seal_tables.add_impression(tx.conn, proposal, data)
            details: dict[str, str | int] = {
                "impression_id": impression_id,
                "impression_sha256": checked.sha256,
                "media_type": checked.media_type,
                "seal_code": proposal.seal_code,
                "bytes": len(data),
            }
            seal_tables.add_history(
                tx.conn,
                seal_id=seal_id,
                time=now,
                action="impression_proposed",
                principal=principal.name,
                from_status=seal.status,
                to_status=seal.status,
                comment=comment,
                details=details,
            )
            tx.audit(
                AuditEvent(
                    event="seal.impression_proposed",
                    principal=principal.name,
                    role="admin",
                    seal_id=seal_id,
                    reason=comment,
                    outcome="proposed",
                    details=dict(details),
                )
            )
            return proposal

        async with _one_at_a_time(seal_id):
            proposal, _ = await self._store.write(_tx)
        log.info(
            "seal.impression_proposed",
            seal_id=seal_id,
            principal=principal.name,
            impression_id=impression_id,
            impression_sha256=checked.sha256,
        )
        return proposal

    async def approve(
        self, principal: Principal, seal_id: str, impression_id: str, sha256: str, *, comment: str = ""
    ) -> tuple[Impression, int]:
        """The second admin's approval: the impression becomes the seal's face (R02) and
        every open approval of the seal is void (its digest covered the old face)."""
        self._catalog.seal(seal_id)
        require_admin(principal, seal_id)
        now = self._clock()
        voided: list[str] = []

        def _tx(tx: Transaction) -> tuple[Impression, bytes]:
            seal = self._catalog.seal(seal_id, tx)
            approved = impressions.approve(
                seal_tables.get_impression(tx.conn, impression_id),
                impression_id=impression_id,
                seal_id=seal_id,
                status=seal.status,
                admin=principal,
                sha256=sha256.strip().lower(),
                current_sha256=seal.impression_sha256,
                now=now,
            )
            seal_tables.approve_impression(tx.conn, approved)
            details: dict[str, str | int] = {
                "impression_id": impression_id,
                "impression_sha256": approved.sha256,
                "previous_impression_sha256": seal.impression_sha256,
                "seal_code": approved.seal_code,
                "proposed_by": approved.proposed_by,
            }
            seal_tables.add_history(
                tx.conn,
                seal_id=seal_id,
                time=now,
                action="impression_registered",
                principal=principal.name,
                from_status=seal.status,
                to_status=seal.status,
                comment=comment,
                details=details,
            )
            # R02/R06: the approval digest covers the impression.
            voided.extend(void_open_requests(
                tx,
                seal_id,
                change=lambda r: lifecycle.rebind_impression(
                    r, impression_sha256=approved.sha256, now=now, seal_id=seal_id
                ),
                reason="seal_impression_registered",
                principal=principal.name,
            ))
            tx.audit(
                AuditEvent(
                    event="seal.impression_registered",
                    principal=principal.name,
                    role="admin",
                    seal_id=seal_id,
                    reason=comment,
                    outcome=seal.status.value,
                    details={**details, "voided_requests": len(voided)},
                )
            )
            return approved, seal_tables.impression_data(tx.conn, impression_id)

        async with _one_at_a_time(seal_id):
            (approved, data), _ = await self._store.write(_tx)
            self._catalog.impressions[seal_id] = (approved, data)
            self._changed(seal_id)
            await self._remake_ses_seal(seal_id, principal.name)
        log.info(
            "seal.impression_registered",
            seal_id=seal_id,
            principal=principal.name,
            impression_id=impression_id,
            impression_sha256=approved.sha256,
            voided_requests=len(voided),
        )
        self._wake_signer()
        return approved, len(voided)

    async def _remake_ses_seal(self, seal_id: str, principal: str) -> None:
        """A GB/T 38540 seal's SES_Seal carries the picture: a new impression makes a new
        SES_Seal (issue 19 item 4). If the maker cannot sign now, the seal cannot seal
        (the signer refuses an SES_Seal whose picture is not the seal's face,
        ``ses_seal_stale``) until the next start or reload remakes it."""
        if self._ses_seals is None or not self._ses_seals.applies_to(seal_id):
            return
        try:
            await self._ses_seals.remake_ses_seal(seal_id, "impression registered", principal=principal)
        except SealError as ex:
            log.error("seal.ses_seal_remake_failed", seal_id=seal_id, reason=ex.reason)

    async def view(self, seal_id: str, *, proposal_id: str = "") -> ImpressionView:
        """The registered impression (bytes included), open proposals and the history."""
        self._catalog.seal(seal_id)

        def _read(db: Reader) -> ImpressionView:
            c = db.conn
            current = seal_tables.current_impression(c, seal_id)
            proposal_data = b""
            if proposal_id:
                found = seal_tables.get_impression(c, proposal_id)
                if found is not None and found.seal_id == seal_id:
                    proposal_data = seal_tables.impression_data(c, proposal_id)
            return ImpressionView(
                current=current,
                current_data=seal_tables.impression_data(c, current.impression_id) if current else b"",
                proposals=tuple(seal_tables.open_impression_proposals(c, seal_id)),
                history=tuple(seal_tables.approved_impressions(c, seal_id)),
                proposal_data=proposal_data,
            )

        return await self._store.read(_read)
