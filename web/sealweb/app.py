"""sealweb: HTTPS pages for approvers, requesters and custodians (issue 18).

aiohttp serves server-rendered pages (Jinja2, every value escaped) and one local script;
the browser talks WebAuthn with the security key, sealweb relays the bytes to seald, and
seald decides. Web security: a session cookie ``Secure; HttpOnly; SameSite=Strict`` with
an idle timeout, a per-session CSRF token on every POST plus an Origin check, a strict
Content-Security-Policy (no inline script or style, nothing from other origins), a
sign-in rate limit per client address, security headers on every answer, and error
pages that name no internals.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import logging
import secrets
import ssl
import sys
import time
import urllib.parse
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import grpc
import jinja2
from aiohttp import web

from sealapi.v1 import common_pb2, requests_pb2, webauthn_pb2
from sealweb.config import WebConfig, WebConfigError, load_web_config
from sealweb.i18n import LANGUAGES, STATE_NAMES, texts
from sealweb.link import SealdError, SealdLink

log = logging.getLogger("sealweb")

HERE: Final = Path(__file__).resolve().parent
COOKIE: Final = "__Host-sealweb"
MAX_SESSIONS: Final = 10_000
MAX_JSON: Final = 64 * 1024
CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # same-origin, not no-referrer: with no-referrer Chromium sends "Origin: null" on form posts
    "Referrer-Policy": "same-origin",
    "Strict-Transport-Security": "max-age=31536000",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "publickey-credentials-get=(self), publickey-credentials-create=(self), "
    "camera=(), microphone=(), geolocation=()",
}
HTTP_FOR: Final = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
}
PREVIEW_DPI: Final = 100
# Pages per PreviewRequest call: a screenful, so the first pictures come quickly and a
# long document is rendered only as far as the approver scrolls.
PREVIEW_CHUNK: Final = 4


@dataclass
class Session:
    sid: str
    csrf: str
    lang: str
    last_seen: float
    token: str = ""  # seald's web-session token: never leaves this process
    principal: str = ""
    display_name: str = ""
    roles: tuple[str, ...] = ()
    seal_ids: tuple[str, ...] = ()
    credential_id: str = ""

    @property
    def signed_in(self) -> bool:
        return bool(self.token)


@dataclass
class PreviewJob:
    """One PreviewRequest call for a range of PREVIEW_CHUNK pages, served as they arrive."""

    pages: dict[int, bytes] = field(default_factory=dict)
    total: int | None = None  # the document's page count, from the first page
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    done: bool = False
    error: SealdError | None = None
    started: float = field(default_factory=time.monotonic)


class WebApp:
    def __init__(self, config: WebConfig, link: SealdLink) -> None:
        self.config = config
        self.link = link
        self.sessions: dict[str, Session] = {}
        self.attempts: dict[str, deque[float]] = {}
        self.previews: dict[tuple[str, str, int, int], PreviewJob] = {}
        self.jinja = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"),
            autoescape=True,  # names and reasons come from other people
            undefined=jinja2.StrictUndefined,
        )

    # -- sessions ---------------------------------------------------------------------------
    def _new_session(self, lang: str = "zh") -> Session:
        if len(self.sessions) >= MAX_SESSIONS:
            oldest = min(self.sessions.values(), key=lambda s: s.last_seen)
            del self.sessions[oldest.sid]
        session = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), lang, time.monotonic())
        self.sessions[session.sid] = session
        return session

    def session_for(self, request: web.Request) -> tuple[Session, bool]:
        """The caller's session (touched), and whether its sign-in just expired."""
        now = time.monotonic()
        session = self.sessions.get(request.cookies.get(COOKIE, ""))
        expired = False
        if session is not None and now - session.last_seen > self.config.idle_minutes * 60:
            del self.sessions[session.sid]
            expired = session.signed_in
            session = None
        if session is None:
            session = self._new_session()
        session.last_seen = now
        lang = request.query.get("lang")
        if lang in LANGUAGES:
            session.lang = lang
        return session, expired

    def signed_in(self, session: Session) -> Session:
        """A fresh session id and CSRF token at sign-in (no fixation); the old one is dropped."""
        self.sessions.pop(session.sid, None)
        return self._new_session(session.lang)

    # -- rendering --------------------------------------------------------------------------
    def render(self, request: web.Request, template: str, status: int = 200, **values: Any) -> web.Response:
        session: Session = request["session"]
        t = texts(session.lang)
        names = STATE_NAMES[session.lang if session.lang in STATE_NAMES else "zh"]

        def state_label(state: int) -> str:
            return names.get(requests_pb2.RequestState.Name(state).removeprefix("REQUEST_STATE_"), "?")

        html = self.jinja.get_template(template).render(
            t=t,
            session=session,
            state_label=state_label,
            other_lang="en" if session.lang == "zh" else "zh",
            path=request.path,
            **values,
        )
        return web.Response(text=html, status=status, content_type="text/html", charset="utf-8")

    def error_page(self, request: web.Request, status: int, message: str) -> web.Response:
        if request.path.startswith("/api/"):
            return web.json_response({"error": message}, status=status)
        return self.render(request, "error.html", status=status, message=message)

    # -- middlewares -------------------------------------------------------------------------
    @web.middleware
    async def headers(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        response = await handler(request)
        response.headers.update(SECURITY_HEADERS)
        if not request.path.startswith("/static/"):
            response.headers["Cache-Control"] = "no-store"
        return response

    @web.middleware
    async def errors(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        session, expired = self.session_for(request)
        request["session"] = session
        t = texts(session.lang)
        try:
            if expired and not request.path.startswith(("/static/", "/signin", "/api/signin")):
                raise web.HTTPSeeOther("/signin?expired=1")
            response = await handler(request)
        except web.HTTPException as ex:
            if ex.status in (301, 302, 303, 307, 308):
                response = ex
            elif ex.status == 404:
                response = self.error_page(request, 404, t["not_found"])
            else:
                response = self.error_page(request, ex.status, ex.text or t["error"])
        except SealdError as ex:
            if ex.reason in ("web_session_unknown", "web_session_expired"):
                self.sessions.pop(session.sid, None)
                response = (
                    self.error_page(request, 401, t["session_expired"])
                    if request.path.startswith("/api/")
                    else web.HTTPSeeOther("/signin?expired=1")
                )
            elif ex.code in HTTP_FOR:
                # seald's messages are written for the person and carry no internals.
                response = self.error_page(request, HTTP_FOR[ex.code], ex.message)
            else:
                log.error("seald call failed: %s %s", ex.code, ex.reason)
                response = self.error_page(request, 502, t["internal"])
        except Exception:
            log.exception("sealweb internal error on %s", request.path)
            response = self.error_page(request, 500, t["internal"])
        if isinstance(response, web.StreamResponse) and not response.prepared:
            response.set_cookie(
                COOKIE,
                request["session"].sid,
                secure=True,
                httponly=True,
                samesite="Strict",
                path="/",
            )
        return response

    @web.middleware
    async def csrf(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.method not in ("GET", "HEAD"):
            t = texts(request["session"].lang)
            origin = request.headers.get("Origin")
            if origin is not None and origin != self.config.origin:
                raise web.HTTPForbidden(text=t["csrf"])
            sent = request.headers.get("X-CSRF-Token", "")
            if not sent and request.content_type == "application/x-www-form-urlencoded":
                sent = str((await request.post()).get("csrf", ""))
            if not sent or not hmac.compare_digest(sent, request["session"].csrf):
                raise web.HTTPForbidden(text=t["csrf"])
        return await handler(request)

    def rate_limited(self, request: web.Request) -> None:
        """Sign-in and enrolment attempts per client address and minute."""
        peer = request.remote or "?"
        now = time.monotonic()
        window = self.attempts.setdefault(peer, deque())
        while window and window[0] < now - 60:
            window.popleft()
        if len(window) >= self.config.signin_per_minute:
            raise web.HTTPTooManyRequests(text=texts(request["session"].lang)["too_many"])
        window.append(now)
        if len(self.attempts) > 50_000:
            self.attempts.clear()

    # -- helpers ---------------------------------------------------------------------------
    @staticmethod
    def require_login(request: web.Request) -> Session:
        session: Session = request["session"]
        if not session.signed_in:
            raise web.HTTPSeeOther("/signin")
        return session

    @staticmethod
    async def json_body(request: web.Request) -> dict[str, Any]:
        if request.content_length is not None and request.content_length > MAX_JSON:
            raise web.HTTPRequestEntityTooLarge(max_size=MAX_JSON, actual_size=request.content_length)
        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError):
            raise web.HTTPBadRequest(text="not JSON") from None
        if not isinstance(body, dict):
            raise web.HTTPBadRequest(text="not a JSON object")
        return body

    @staticmethod
    def assertion_fields(body: dict[str, Any]) -> dict[str, Any]:
        try:
            credential = body["credential"]
            response = credential["response"]
            return {
                "credential_id": str(credential["rawId"]),
                "authenticator_data": _b64url(response["authenticatorData"]),
                "client_data_json": _b64url(response["clientDataJSON"]),
                "signature": _b64url(response["signature"]),
                "user_handle": _b64url(response.get("userHandle") or ""),
            }
        except (KeyError, TypeError, ValueError):
            raise web.HTTPBadRequest(text="not a WebAuthn assertion") from None

    # -- sign-in and enrolment ------------------------------------------------------------------
    async def signin_page(self, request: web.Request) -> web.StreamResponse:
        return self.render(request, "signin.html", expired=request.query.get("expired") == "1")

    async def signin_begin(self, request: web.Request) -> web.StreamResponse:
        self.rate_limited(request)
        return web.json_response({"options": json.loads(await self.link.begin_sign_in())})

    async def signin_finish(self, request: web.Request) -> web.StreamResponse:
        self.rate_limited(request)
        fields = self.assertion_fields(await self.json_body(request))
        reply: webauthn_pb2.WebSession = await self.link.call(
            self.link.webauthn.FinishSignIn, webauthn_pb2.FinishSignInRequest(**fields)
        )
        fresh = self.signed_in(request["session"])
        fresh.token = reply.token
        fresh.principal = reply.principal
        fresh.display_name = reply.display_name
        fresh.roles = tuple(reply.roles)
        fresh.seal_ids = tuple(reply.seal_ids)
        fresh.credential_id = fields["credential_id"]
        request["session"] = fresh
        return web.json_response({"ok": True, "next": "/"})

    async def signout(self, request: web.Request) -> web.StreamResponse:
        session: Session = request["session"]
        if session.token:
            with contextlib.suppress(SealdError):  # already gone at seald
                await self.link.call(self.link.webauthn.SignOut, webauthn_pb2.SignOutRequest(), session.token)
        self.sessions.pop(session.sid, None)
        request["session"] = self._new_session(session.lang)
        raise web.HTTPSeeOther("/signin")

    async def enrol_page(self, request: web.Request) -> web.StreamResponse:
        return self.render(request, "enrol.html")

    async def enrol_begin(self, request: web.Request) -> web.StreamResponse:
        self.rate_limited(request)
        body = await self.json_body(request)
        reply = await self.link.call(
            self.link.webauthn.BeginRegistration,
            webauthn_pb2.BeginRegistrationRequest(
                enrolment_id=str(body.get("enrolment_id", "")).strip(), code=str(body.get("code", "")).strip()
            ),
        )
        return web.json_response({"options": json.loads(reply.options_json), "principal": reply.principal})

    async def enrol_finish(self, request: web.Request) -> web.StreamResponse:
        self.rate_limited(request)
        body = await self.json_body(request)
        credential = body.get("credential")
        if not isinstance(credential, dict):
            raise web.HTTPBadRequest(text="not a WebAuthn registration")
        reply = await self.link.call(
            self.link.webauthn.FinishRegistration,
            webauthn_pb2.FinishRegistrationRequest(
                enrolment_id=str(body.get("enrolment_id", "")).strip(),
                code=str(body.get("code", "")).strip(),
                credential_json=json.dumps(credential),
                name=str(body.get("name", ""))[:64],
            ),
        )
        return web.json_response({"ok": True, "credential_id": reply.credential_id})

    # -- lists -------------------------------------------------------------------------------
    def _waiting_for(self, session: Session, r: requests_pb2.SealRequest) -> bool:
        return (
            r.state == requests_pb2.REQUEST_STATE_PENDING
            and "approver" in session.roles
            and r.seal_id in session.seal_ids
            and r.requester != session.principal
            and session.principal not in {a.approver for a in r.approvals}
        )

    async def inbox(self, request: web.Request) -> web.StreamResponse:
        session = self.require_login(request)
        found = await self.link.requests_list(session.token, states=[requests_pb2.REQUEST_STATE_PENDING])
        rows = [r for r in found if self._waiting_for(session, r)]
        template = "list_rows.html" if request.query.get("rows") == "1" else "list.html"
        return self.render(request, template, rows=rows, heading="inbox", live=True)

    async def mine(self, request: web.Request) -> web.StreamResponse:
        session = self.require_login(request)
        rows = await self.link.requests_list(session.token, requester=session.principal)
        template = "list_rows.html" if request.query.get("rows") == "1" else "list.html"
        return self.render(request, template, rows=rows, heading="mine", live=True)

    async def tokens(self, request: web.Request) -> web.StreamResponse:
        session = self.require_login(request)
        return self.render(request, "tokens.html", tokens=await self.link.token_status(session.token))

    async def events(self, request: web.Request) -> web.StreamResponse:
        """Server-sent events from seald's watch stream: the page reloads its rows."""
        session = self.require_login(request)
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"}
        )
        response.headers.update(SECURITY_HEADERS)
        await response.prepare(request)
        try:
            async for event in self.link.stream(
                self.link.requests.WatchRequests, requests_pb2.WatchRequestsRequest(), session.token
            ):
                if event.event == "snapshot":
                    continue
                data = json.dumps({"request_id": event.request.request_id, "event": event.event})
                await response.write(f"event: change\ndata: {data}\n\n".encode())
        except (SealdError, ConnectionResetError):
            pass  # seald or the browser went away: the stream just ends
        return response

    # -- one request -------------------------------------------------------------------------
    async def request_page(self, request: web.Request) -> web.StreamResponse:
        session = self.require_login(request)
        r = await self.link.get(session.token, request.match_info["request_id"])
        approved_by_me = session.principal in {a.approver for a in r.approvals}
        return self.render(
            request,
            "request.html",
            r=r,
            may_approve=self._waiting_for(session, r),
            may_withdraw=approved_by_me and r.state == requests_pb2.REQUEST_STATE_PENDING,
            may_reject=r.state == requests_pb2.REQUEST_STATE_PENDING
            and "approver" in session.roles
            and r.seal_id in session.seal_ids
            and r.requester != session.principal,
            may_cancel=r.requester == session.principal
            and r.state in (requests_pb2.REQUEST_STATE_PENDING, requests_pb2.REQUEST_STATE_APPROVED),
            placement=_placement_text(r.placement),
        )

    async def preview(self, request: web.Request) -> web.StreamResponse:
        """One page's preview PNG. Pages are fetched from seald PREVIEW_CHUNK at a time (the
        chunk holding the page, on its first request) and served as they arrive, so the
        browser's lazy images pull in only the pages scrolled into view."""
        session = self.require_login(request)
        request_id = request.match_info["request_id"]
        try:
            doc, page = int(request.match_info["doc"]), int(request.match_info["page"])
        except ValueError:
            raise web.HTTPNotFound() from None
        if page < 1:
            raise web.HTTPNotFound()
        job = self._preview_job(session, request_id, doc, page)
        while page not in job.pages and not job.done:
            job.changed.clear()
            await job.changed.wait()
        if job.error is not None and page not in job.pages:
            raise job.error
        if page not in job.pages:
            raise web.HTTPNotFound()
        return web.Response(body=job.pages[page], content_type="image/png")

    async def preview_pages(self, request: web.Request) -> web.StreamResponse:
        """How many pages a document has (JSON), read from the first chunk's first page:
        the page script then lays out one lazy image per page."""
        session = self.require_login(request)
        try:
            doc = int(request.match_info["doc"])
        except ValueError:
            raise web.HTTPNotFound() from None
        job = self._preview_job(session, request.match_info["request_id"], doc, 1)
        while job.total is None and not job.done:
            job.changed.clear()
            await job.changed.wait()
        if job.total is None:
            if job.error is not None:
                raise job.error
            raise web.HTTPNotFound()
        return web.json_response({"pages": job.total})

    def _preview_job(self, session: Session, request_id: str, doc: int, page: int) -> PreviewJob:
        now = time.monotonic()
        for key, old in list(self.previews.items()):
            if now - old.started > 120:
                del self.previews[key]
        first = (page - 1) // PREVIEW_CHUNK * PREVIEW_CHUNK + 1
        key = (session.principal, request_id, doc, first)
        job = self.previews.get(key)
        if job is None:
            job = self.previews[key] = PreviewJob()
            asyncio.get_running_loop().create_task(
                self._run_preview(job, session.token, request_id, doc, first)
            )
        return job

    async def _run_preview(self, job: PreviewJob, token: str, request_id: str, doc: int, first: int) -> None:
        try:
            async for item in self.link.stream(
                self.link.requests.PreviewRequest,
                requests_pb2.PreviewRequestRequest(
                    request_id=request_id,
                    document_index=doc,
                    dpi=PREVIEW_DPI,
                    first_page=first,
                    page_count=PREVIEW_CHUNK,
                ),
                token,
                timeout=120,
            ):
                job.total = item.page_total
                job.pages[item.page] = item.png
                job.changed.set()
        except SealdError as ex:
            job.error = ex
        finally:
            job.done = True
            job.changed.set()

    async def download(self, request: web.Request) -> web.StreamResponse:
        session = self.require_login(request)
        try:
            doc = int(request.match_info["doc"])
        except ValueError:
            raise web.HTTPNotFound() from None
        chunks = self.link.stream(
            self.link.requests.DownloadDocument,
            requests_pb2.DownloadDocumentRequest(
                request_id=request.match_info["request_id"],
                document_index=doc,
                variant=requests_pb2.DOCUMENT_VARIANT_ORIGINAL,
            ),
            session.token,
            timeout=300,
        )
        first = await anext(chunks)
        name = first.info.name or "document.pdf"
        response = web.StreamResponse(
            headers={
                "Content-Type": "application/pdf",
                "Content-Disposition": "attachment; filename*=UTF-8''" + urllib.parse.quote(name),
            }
        )
        response.headers.update(SECURITY_HEADERS)
        await response.prepare(request)
        if first.data:
            await response.write(first.data)
        async for chunk in chunks:
            await response.write(chunk.data)
        await response.write_eof()
        return response

    async def approve_begin(self, request: web.Request) -> web.StreamResponse:
        session = self.require_login(request)
        body = await self.json_body(request)
        reply = await self.link.call(
            self.link.webauthn.BeginApproval,
            webauthn_pb2.BeginApprovalRequest(
                request_id=request.match_info["request_id"],
                credential_id=session.credential_id,
                comment=str(body.get("comment", "")),
            ),
            session.token,
        )
        return web.json_response(
            {
                "options": json.loads(reply.options_json),
                "challenge_sha256": hashlib.sha256(reply.statement).hexdigest(),
                "statement": reply.statement.decode("utf-8"),
            }
        )

    async def approve_finish(self, request: web.Request) -> web.StreamResponse:
        session = self.require_login(request)
        fields = self.assertion_fields(await self.json_body(request))
        result: requests_pb2.SealRequest = await self.link.call(
            self.link.webauthn.FinishApproval,
            webauthn_pb2.FinishApprovalRequest(request_id=request.match_info["request_id"], **fields),
            session.token,
        )
        state = requests_pb2.RequestState.Name(result.state).removeprefix("REQUEST_STATE_")
        label = STATE_NAMES[session.lang if session.lang in STATE_NAMES else "zh"].get(state, state)
        return web.json_response({"ok": True, "state": state, "state_label": label})

    async def decide(self, request: web.Request) -> web.StreamResponse:
        session = self.require_login(request)
        request_id = request.match_info["request_id"]
        action = request.match_info["action"]
        comment = str((await request.post()).get("comment", ""))[:500]
        calls: dict[str, tuple[Any, Any]] = {
            "reject": (self.link.requests.RejectRequest, requests_pb2.RejectRequestRequest),
            "withdraw": (self.link.requests.WithdrawApproval, requests_pb2.WithdrawApprovalRequest),
            "cancel": (self.link.requests.CancelRequest, requests_pb2.CancelRequestRequest),
        }
        if action not in calls:
            raise web.HTTPNotFound()
        method, message = calls[action]
        await self.link.call(method, message(request_id=request_id, comment=comment), session.token)
        raise web.HTTPSeeOther(f"/r/{urllib.parse.quote(request_id)}")

    # -- wiring ------------------------------------------------------------------------------
    def application(self) -> web.Application:
        app = web.Application(middlewares=[self.headers, self.errors, self.csrf], client_max_size=MAX_JSON)
        app.router.add_get("/", self.inbox)
        app.router.add_get("/mine", self.mine)
        app.router.add_get("/tokens", self.tokens)
        app.router.add_get("/events", self.events)
        app.router.add_get("/signin", self.signin_page)
        app.router.add_post("/api/signin/begin", self.signin_begin)
        app.router.add_post("/api/signin/finish", self.signin_finish)
        app.router.add_post("/signout", self.signout)
        app.router.add_get("/enrol", self.enrol_page)
        app.router.add_post("/api/enrol/begin", self.enrol_begin)
        app.router.add_post("/api/enrol/finish", self.enrol_finish)
        app.router.add_get("/r/{request_id}", self.request_page)
        app.router.add_get("/r/{request_id}/preview/{doc}/pages.json", self.preview_pages)
        app.router.add_get("/r/{request_id}/preview/{doc}/{page}.png", self.preview)
        app.router.add_get("/r/{request_id}/download/{doc}", self.download)
        app.router.add_post("/api/r/{request_id}/approve/begin", self.approve_begin)
        app.router.add_post("/api/r/{request_id}/approve/finish", self.approve_finish)
        app.router.add_post("/r/{request_id}/{action}", self.decide)
        app.router.add_static("/static/", HERE / "static", show_index=False, follow_symlinks=False)
        return app


def _b64url(text: Any) -> bytes:
    if not isinstance(text, str):
        raise ValueError("not base64url text")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _placement_text(p: common_pb2.Placement) -> str:
    if p.cross_page:
        return "骑缝章 / cross-page"
    where = f"“{p.anchor_text}”" if p.anchor_text else f"x={p.x_mm:g} mm, y={p.y_mm:g} mm"
    page = "last" if p.page == 0 else str(p.page)
    return f"page {page}, {where}"


async def serve(config: WebConfig) -> None:
    link = SealdLink(config)
    app = WebApp(config, link).application()
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.minimum_version = ssl.TLSVersion.TLSv1_2
    tls.load_cert_chain(config.tls_cert, config.tls_key)
    host, _, port = config.listen.rpartition(":")
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=5.0)
    await runner.setup()
    site = web.TCPSite(runner, host.strip("[]") or None, int(port), ssl_context=tls)
    await site.start()
    bound = runner.addresses[0][1] if runner.addresses else int(port)
    print(json.dumps({"event": "sealweb.started", "port": bound, "origin": config.origin}), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    import signal  # noqa: PLC0415

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    # The channel first: open event streams (SSE) end with it instead of holding the exit.
    await link.close()
    await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sealweb", description="the approvers' web console for seald")
    parser.add_argument("--config", type=Path, default=Path("/etc/sealweb/sealweb.toml"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        config = load_web_config(args.config)
    except WebConfigError as ex:
        print(f"sealweb: configuration error: {ex}", file=sys.stderr)
        return 78
    asyncio.run(serve(config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
