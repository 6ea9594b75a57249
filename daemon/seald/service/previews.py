"""PreviewRequest (issue 6): who may preview, and rendering off the event loop.

The picture is always made from the stored ORIGINAL (what the approvers approve), with
the request's placement and the seal's own image. Rendering runs in a worker thread,
at most ``MAX_CONCURRENT`` at a time (poppler is CPU-heavy and the seal host is small).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from seald.domain import access
from seald.domain.audit import AuditEvent
from seald.domain.errors import InvalidInput, PreconditionFailed
from seald.domain.model import Principal, Role, SealRequest
from seald.signing.errors import SigningError
from seald.signing.placement import PlacementSpec
from seald.signing.preview import PreviewImage, check_dpi, render_preview
from seald.store.requests import Store

MAX_CONCURRENT = 2
# Not the document's fault: the seal host lacks poppler or a CJK font.
HOST_PROBLEMS = frozenset({"tool_missing", "no_cjk_font"})


class Previews:
    def __init__(
        self,
        get_request: Callable[[Principal, str], Awaitable[SealRequest]],
        store: Store,
        seal_image: Callable[[str], bytes],
        audit: Callable[[AuditEvent], Awaitable[None]],
    ) -> None:
        self._get_request = get_request
        self._store = store
        self._seal_image = seal_image
        self._audit = audit  # Recorder.audit: previews are in the ledger (R10)
        self._slots = asyncio.Semaphore(MAX_CONCURRENT)

    async def render(
        self, principal: Principal, request_id: str, document_index: int, dpi: int
    ) -> tuple[SealRequest, list[PreviewImage]]:
        request = await self._get_request(principal, request_id)
        access.require_may_preview(principal, request)
        if not 0 <= document_index < len(request.documents):
            raise InvalidInput(
                f"request {request_id} has {len(request.documents)} document(s); index "
                f"{document_index} does not exist",
                reason="bad_document_index",
            )
        try:
            dpi = check_dpi(dpi)
        except SigningError as ex:
            raise InvalidInput(str(ex), reason=ex.reason) from ex
        original = self._store.original_path(request_id, document_index)
        p = request.placement
        placement = PlacementSpec(
            page=p.page,
            x_mm=p.x_mm,
            y_mm=p.y_mm,
            size_mm=p.size_mm,
            anchor_text=p.anchor_text,
            cross_page=p.cross_page,
        )
        loop = asyncio.get_running_loop()
        async with self._slots:
            try:
                seal_png = await loop.run_in_executor(None, self._seal_image, request.seal_id)
                pages = await loop.run_in_executor(
                    None, lambda: render_preview(original, seal_png, placement, dpi=dpi)
                )
            except SigningError as ex:
                if ex.reason in HOST_PROBLEMS:
                    raise PreconditionFailed(str(ex), reason=ex.reason) from ex
                # The placement cannot be drawn (anchor missing, off the page, ...): the
                # same reason sealing would give, so the approver can reject it now.
                raise InvalidInput(str(ex), reason=ex.reason) from ex
        # R10: a preview shows the seal's appearance on a document: a use, so it is in the
        # ledger (who, which request and document) before any picture leaves (fail closed).
        document = request.documents[document_index]
        await self._audit(
            AuditEvent(
                event="request.previewed",
                principal=principal.name,
                role=_role_on(principal, request).value,
                seal_id=request.seal_id,
                request_id=request.request_id,
                document_name=document.name,
                document_sha256=document.sha256,
                outcome="previewed",
                details={"dpi": dpi, "pages": ",".join(str(p.page) for p in pages)},
            )
        )
        return request, pages


def _role_on(principal: Principal, request: SealRequest) -> Role:
    """The role a preview is given under (can_preview allowed it)."""
    if principal.name == request.requester:
        return Role.REQUESTER
    for role in (Role.APPROVER, Role.ADMIN, Role.AUDITOR):
        if role in principal.roles:
            return role
    return Role.REQUESTER  # unreachable: can_preview refused everyone else
