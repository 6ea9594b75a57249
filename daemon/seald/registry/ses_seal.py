"""The GB/T 38540 ``SES_Seal`` of each ``gbt38540`` seal, made by the seal maker and kept in
the registry (issue 19; R02 刻制/变更/销毁).

A seal's ``SES_Seal`` (name, type, holder certificate, validity, the seal face) is signed by
the seal maker's key (``[seal_maker]``, tokens/seal_maker.py) when the seal gets its
certificate, and again - a new version - whenever its face or validity changes: a renewed
certificate, a new display name, a new impression, a changed validity window in the
config. Suspend and resume leave it; destroy marks it destroyed. Each version is stored
(store/ses_seals.py) with a ``ses_seal_made`` history row and a ``seal.ses_seal_made``
audit record carrying its SHA-256; the signer embeds the stored version and never asks the
maker per document.

``remake_ses_seal(seal_id, reason)`` is THE entry point for "the face or validity of this
seal changed": it builds, stores and records a new version and voids the approvals of
the seal's open requests (they approved a seal that no longer looks like this).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

from seald.domain import lifecycle
from seald.domain.audit import AuditEvent
from seald.domain.errors import PreconditionFailed
from seald.domain.model import SealStatus
from seald.gm import ses
from seald.gm.certs import load_certificate, pem_or_der
from seald.runtime.logs import get_logger
from seald.service.catalog import SealCatalog
from seald.service.ses_seal_check import Face, stored_face
from seald.service.settings import LiveConfig
from seald.store import seals as seal_tables
from seald.store import ses_seals as ses_seal_tables
from seald.store.database import Store, Transaction
from seald.tokens.manager import TokenManager
from seald.tokens.seal_maker import maker_key

from .voiding import void_open_requests

log = get_logger("seald.ses_seal")

SYSTEM = "seald"  # the principal of changes the daemon makes itself (config change at start)
HISTORY_ACTION = "ses_seal_made"


@dataclass(frozen=True)
class NewSesSeal:
    """A freshly made (not yet stored) SES_Seal and the facts recorded with it."""

    seal_id: str
    der: bytes
    sha256: str
    valid_start: datetime
    valid_end: datetime


class SesSeals:
    def __init__(
        self,
        live: LiveConfig,
        store: Store,
        tokens: TokenManager,
        catalog: SealCatalog,
        *,
        seal_image: Callable[[str], bytes],
        clock: Callable[[], datetime],
    ) -> None:
        self._live = live
        self._store = store
        self._tokens = tokens
        self._catalog = catalog
        self._seal_image = seal_image
        self._clock = clock
        # One maker signature at a time (its token, like a seal token, takes one caller).
        self._maker_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="seal-maker")

    def applies_to(self, seal_id: str) -> bool:
        return self._live.current.seals[seal_id].format == "gbt38540"

    def _face(self, seal_id: str, holder_der: bytes, display_name: str, picture: bytes) -> Face:
        sc = self._live.current.seals[seal_id]
        validity = load_certificate(holder_der, what=f"seal {seal_id} certificate")["tbs_certificate"][
            "validity"
        ]
        return Face(
            name=display_name or self._catalog.seal(seal_id).display_name,
            holder_der=holder_der,
            valid_start=sc.valid_from or validity["not_before"].native,
            valid_end=sc.valid_until or validity["not_after"].native,
            picture_sha256=hashlib.sha256(picture).hexdigest(),
        )

    async def build(self, seal_id: str, *, holder_der: bytes, display_name: str = "") -> NewSesSeal:
        """Make (sign) a new SES_Seal for the seal's face now; nothing is stored.

        ``holder_der``: the seal certificate it is for (the one being registered, or the
        registered one); ``display_name``: a new name being set ("" = the current one).
        Raises when the maker cannot sign (token away, wrong PIN: reason
        ``seal_maker_unavailable``) - the caller then changes nothing.
        """
        config = self._live.current
        if config.seal_maker is None:
            raise PreconditionFailed(
                f"seal {seal_id} is a GB/T 38540 seal but [seal_maker] is not configured",
                reason="seal_maker_unavailable",
            )
        maker = config.seal_maker
        loop = asyncio.get_running_loop()
        picture = await loop.run_in_executor(None, self._seal_image, seal_id)
        face = self._face(seal_id, holder_der, display_name, picture)
        sc = config.seals[seal_id]
        personal = sc.seal_type.value in ("personal", "legal_representative")
        spec = ses.SealSpec(
            es_id=f"{config.server.host_name}-{seal_id}"[:64].encode("ascii", "replace").decode(),
            name=face.name,
            holder_certs=[holder_der],
            created=self._clock(),
            valid_start=face.valid_start,
            valid_end=face.valid_end,
            picture=picture,
            width_mm=round(sc.size_mm),
            height_mm=round(sc.size_mm),
            seal_type=ses.SEAL_TYPE_PERSONAL if personal else ses.SEAL_TYPE_ORGANISATION,
        )
        maker_cert = pem_or_der(await loop.run_in_executor(None, maker.certificate.read_bytes))

        def _make() -> bytes:
            key = maker_key(maker, self._tokens.skf.library if self._tokens.skf is not None else None)
            return ses.build_seal(spec, maker_cert=maker_cert, maker_sign=key.sign)

        der = await loop.run_in_executor(self._maker_thread, _make)
        return NewSesSeal(seal_id, der, hashlib.sha256(der).hexdigest(), face.valid_start, face.valid_end)

    def record(
        self,
        tx: Transaction,
        new: NewSesSeal,
        *,
        reason: str,
        principal: str,
        now: datetime,
        status: SealStatus,
    ) -> int:
        """Store ``new`` as the seal's next version, with its history row and audit record,
        inside the caller's transaction (beside the change that needed it)."""
        previous = ses_seal_tables.current(tx.conn, new.seal_id)
        version = ses_seal_tables.add(
            tx.conn,
            seal_id=new.seal_id,
            time=now,
            reason=reason,
            sha256=new.sha256,
            valid_start=new.valid_start,
            valid_end=new.valid_end,
            der=new.der,
        )
        details: dict[str, str | int] = {
            "ses_seal_sha256": new.sha256,
            "ses_seal_version": version,
            "previous_ses_seal_sha256": previous.sha256 if previous else "",
            "valid_start": new.valid_start.isoformat(),
            "valid_end": new.valid_end.isoformat(),
            "why": reason,
        }
        seal_tables.add_history(
            tx.conn,
            seal_id=new.seal_id,
            time=now,
            action=HISTORY_ACTION,
            principal=principal,
            from_status=status,
            to_status=status,
            comment=reason,
            details=details,
        )
        tx.audit(
            AuditEvent(
                event="seal.ses_seal_made",
                principal=principal,
                role="admin" if principal != SYSTEM else "system",
                seal_id=new.seal_id,
                reason=reason,
                outcome=status.value,
                details=details,
            )
        )
        return version

    def void_open_approvals(
        self, tx: Transaction, seal_id: str, *, principal: str, now: datetime
    ) -> list[str]:
        """The seal's face changed: approvals given for the old one are void (R06); returns
        the requests whose approvals were voided."""
        why = f"seal {seal_id} got a new SES_Seal (its face or validity changed)"
        return void_open_requests(
            tx,
            seal_id,
            change=lambda r: lifecycle.void_approvals(r, why=why, now=now),
            reason="seal_face_changed",
            principal=principal,
            role="admin" if principal != SYSTEM else "system",
            only_with_approvals=True,
        )

    async def remake_ses_seal(self, seal_id: str, reason: str, *, principal: str = SYSTEM) -> int:
        """THE call when a gbt38540 seal's face or validity changed (new impression, new
        validity, new name): a new SES_Seal version is made, stored and recorded, and the
        approvals of the seal's open requests are void, in one transaction. Returns the
        new version number. Refused while the seal has no registered certificate or is
        destroyed (nothing changes)."""
        holder = self._tokens.certificate_der(seal_id)
        if not holder:
            raise PreconditionFailed(
                f"seal {seal_id} has no registered certificate yet; its SES_Seal is made when the "
                "certificate is imported",
                reason="seal_pending",
            )
        if self._catalog.seal(seal_id).status is SealStatus.DESTROYED:
            raise PreconditionFailed(f"seal {seal_id} is destroyed", reason="seal_destroyed")
        new = await self.build(seal_id, holder_der=holder)
        now = self._clock()

        def _tx(tx: Transaction) -> tuple[int, list[str]]:
            status = self._catalog.seal(seal_id, tx).status
            if status is SealStatus.DESTROYED:
                raise PreconditionFailed(f"seal {seal_id} is destroyed", reason="seal_destroyed")
            version = self.record(tx, new, reason=reason, principal=principal, now=now, status=status)
            return version, self.void_open_approvals(tx, seal_id, principal=principal, now=now)

        (version, voided), _ = await self._store.write(_tx)
        log.info(
            "seal.ses_seal_made",
            seal_id=seal_id,
            version=version,
            sha256=new.sha256,
            reason=reason,
            voided=len(voided),
        )
        return version

    async def current(self, seal_id: str) -> ses_seal_tables.StoredSesSeal | None:
        return await self._store.read(lambda db: ses_seal_tables.current(db.conn, seal_id))

    async def bring_up_to_date(self) -> None:
        """At start: every gbt38540 seal with a registered certificate gets an SES_Seal if it
        has none (a certificate configured by file is registered here), and a new version if
        its face or validity differs from the stored one (e.g. a changed validity window in
        the config). A maker that cannot sign now is logged; such a seal cannot seal until
        it can (``ses_seal_missing``)."""
        for seal_id in self._live.current.seals:
            if not self.applies_to(seal_id) or not self._tokens.certificate_der(seal_id):
                continue
            if self._catalog.seal(seal_id).status is SealStatus.DESTROYED:
                continue
            try:
                why = await self._outdated(seal_id)
                if why:
                    await self.remake_ses_seal(seal_id, why)
            except Exception as ex:
                log.error(
                    "seal.ses_seal_not_made", seal_id=seal_id, reason=getattr(ex, "reason", type(ex).__name__)
                )

    async def _outdated(self, seal_id: str) -> str:
        stored = await self.current(seal_id)
        if stored is None:
            return "registered certificate has no SES_Seal yet"
        holder = self._tokens.certificate_der(seal_id)
        loop = asyncio.get_running_loop()
        picture = await loop.run_in_executor(None, self._seal_image, seal_id)
        wanted = self._face(seal_id, holder, "", picture)
        have = stored_face(stored.der)
        changed = [
            field
            for field, a, b in (
                ("property.name", wanted.name, have.name),
                ("property.certList", wanted.holder_der, have.holder_der),
                ("property.validStart", wanted.valid_start, have.valid_start),
                ("property.validEnd", wanted.valid_end, have.valid_end),
                ("picture", wanted.picture_sha256, have.picture_sha256),
            )
            if a != b
        ]
        return f"changed: {', '.join(changed)}" if changed else ""

    def close(self) -> None:
        self._maker_thread.shutdown(wait=False)
