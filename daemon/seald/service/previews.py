"""PreviewRequest (issue 6): who may preview, and rendering off the event loop.

The picture is always made from the stored ORIGINAL (what the approvers approve), with
the request's placement and the seal's own image. Rendering runs in a worker thread,
one page per slot, at most ``MAX_CONCURRENT`` at a time (poppler is CPU-heavy and the
seal host is small); each page is sent as soon as it is rendered.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from functools import partial

from seald.domain import access
from seald.domain.audit import AuditEvent
from seald.domain.errors import InvalidInput, PreconditionFailed
from seald.domain.model import Principal, Role, SealRequest
from seald.signing.errors import SigningError
from seald.signing.job import plan_job_preview
from seald.signing.placement import PlacementSpec
from seald.signing.preview import MAX_PAGES, PreviewImage, PreviewPlan, check_dpi, plan_preview
from seald.store.database import Store

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
        seal_size_mm: Callable[[str], float] | None = None,
    ) -> None:
        self._get_request = get_request
        self._store = store
        self._seal_image = seal_image
        self._audit = audit  # Recorder.audit: previews are in the ledger (R10)
        self._slots = asyncio.Semaphore(MAX_CONCURRENT)
        # A job's marks of size 0 take their seal's registered size (issue 16).
        self._seal_size_mm = seal_size_mm or (lambda seal_id: 0.0)

    async def render(
        self,
        principal: Principal,
        request_id: str,
        document_index: int,
        dpi: int,
        *,
        first_page: int = 0,
        page_count: int = 0,
    ) -> tuple[SealRequest, int, AsyncIterator[PreviewImage]]:
        """The request, the document's page count, and its pages rendered one at a time.

        ``first_page`` 0: the pages the seal goes on (as before). ``first_page`` N >= 1:
        pages N.. (``page_count`` of them, 0 = MAX_PAGES, never more than MAX_PAGES), the
        seal drawn on those it touches. Each page is yielded as soon as it is rendered, so
        the first picture does not wait for the last.
        """
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
            with _as_status():
                if request.is_job:
                    # Issue 16: every mark of the job, each with its own seal's image,
                    # laid out as sealing lays it out (signing/job.py).
                    plan = await self._job_plan(request, document_index, dpi)
                else:
                    seal_png = await loop.run_in_executor(None, self._seal_image, request.seal_id)
                    plan = await loop.run_in_executor(
                        None, lambda: plan_preview(original, seal_png, placement, dpi=dpi)
                    )
        if first_page == 0:
            wanted = list(plan.seal_pages)
        else:
            if first_page > plan.page_count:
                raise InvalidInput(
                    f"document {document_index} of request {request_id} has {plan.page_count} "
                    f"page(s); page {first_page} does not exist",
                    reason="bad_preview_page",
                )
            count = min(page_count or MAX_PAGES, MAX_PAGES)
            wanted = list(range(first_page - 1, min(first_page - 1 + count, plan.page_count)))
        # R10: a preview shows the seal's appearance on a document: a use, so it is in the
        # ledger (who, which request, document and pages) before any picture leaves (fail closed).
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
                details={"dpi": dpi, "pages": ",".join(str(ix + 1) for ix in wanted)},
            )
        )

        async def pages() -> AsyncIterator[PreviewImage]:
            for ix in wanted:
                # One slot per page: a long document does not starve other callers.
                async with self._slots:
                    with _as_status():
                        image = await loop.run_in_executor(None, plan.render, ix)
                yield image

        return request, plan.page_count, pages()


    async def _job_plan(self, request: SealRequest, document_index: int, dpi: int) -> PreviewPlan:
        loop = asyncio.get_running_loop()
        marks = request.marks_of(request.documents[document_index])
        images = {s: await loop.run_in_executor(None, self._seal_image, s) for s in request.seal_ids}
        sizes = {s: self._seal_size_mm(s) for s in request.seal_ids}
        original = self._store.original_path(request.request_id, document_index)
        return await loop.run_in_executor(
            None,
            partial(
                plan_job_preview,
                original,
                [(m, images[m.seal_id]) for m in marks],
                seal_sizes_mm=sizes,
                dpi=dpi,
            ),
        )


@contextmanager
def _as_status() -> Iterator[None]:
    try:
        yield
    except SigningError as ex:
        if ex.reason in HOST_PROBLEMS:
            raise PreconditionFailed(str(ex), reason=ex.reason) from ex
        # The placement cannot be drawn (anchor missing, off the page, ...): the
        # same reason sealing would give, so the approver can reject it now.
        raise InvalidInput(str(ex), reason=ex.reason) from ex


def _role_on(principal: Principal, request: SealRequest) -> Role:
    """The role a preview is given under (can_preview allowed it)."""
    if principal.name == request.requester:
        return Role.REQUESTER
    for role in (Role.APPROVER, Role.ADMIN, Role.AUDITOR):
        if role in principal.roles:
            return role
    return Role.REQUESTER  # unreachable: can_preview refused everyone else
