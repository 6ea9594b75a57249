"""An in-process fake seald for testing applications built on sealclient.

NOT a seal appliance: it keeps requests in memory, "seals" by appending bytes and
has knobs to misbehave (serve other bytes, lie about hashes, echo a PIN in an
error) so that a client's own checks can be proven. It speaks the real
sealapi.v1 protocol over real mutual TLS on a loopback port.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import threading
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass, field
from typing import NoReturn

import grpc

from sealapi.v1 import (
    common_pb2,
    requests_pb2,
    requests_pb2_grpc,
    seals_pb2,
    seals_pb2_grpc,
    tokens_pb2,
    tokens_pb2_grpc,
    verify_pb2,
    verify_pb2_grpc,
)
from sealclient.approval import digest_placement
from sealclient.client import ClientIdentity
from sealclient.errors import REASON_METADATA_KEY
from seald.domain.digest import (
    DigestDocument,
    canonical_approval_subject,
    digest_of,
)

SEALED_SUFFIX = b"\n%fake-seal\n"
FAKE_PIN = "246810"
SERVE_CHUNK = 64 * 1024


@dataclass(frozen=True)
class FakePki:
    ca_pem: bytes
    server_cert_pem: bytes
    server_key_pem: bytes
    client_cert_pem: bytes
    client_key_pem: bytes


def make_test_pki(client_name: str = "test-client") -> FakePki:
    """A throwaway CA, a server certificate for localhost and one client certificate."""
    from cryptography import x509  # noqa: PLC0415 - only tests need it
    from cryptography.hazmat.primitives import hashes, serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415
    from cryptography.x509.oid import NameOID  # noqa: PLC0415

    now = datetime.datetime.now(datetime.UTC)

    def name(common_name: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])

    def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
        return key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(name("sealclient test CA"))
        .issuer_name(name("sealclient test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )

    def leaf(common_name: str, server: bool) -> tuple[bytes, bytes]:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(name(common_name))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.DNSName("localhost"),
                        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    ]
                ),
                critical=False,
            )
        cert = builder.sign(ca_key, hashes.SHA256())
        return cert.public_bytes(serialization.Encoding.PEM), key_pem(key)

    server_cert, server_key = leaf("localhost", server=True)
    client_cert, client_key = leaf(client_name, server=False)
    return FakePki(
        ca_pem=ca_cert.public_bytes(serialization.Encoding.PEM),
        server_cert_pem=server_cert,
        server_key_pem=server_key,
        client_cert_pem=client_cert,
        client_key_pem=client_key,
    )


def _abort(context: grpc.ServicerContext, code: grpc.StatusCode, reason: str, msg: str) -> NoReturn:
    context.set_trailing_metadata(((REASON_METADATA_KEY, reason),))
    context.abort(code, msg)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


TERMINAL = frozenset(
    {
        requests_pb2.REQUEST_STATE_SIGNED,
        requests_pb2.REQUEST_STATE_REJECTED,
        requests_pb2.REQUEST_STATE_CANCELLED,
        requests_pb2.REQUEST_STATE_EXPIRED,
        requests_pb2.REQUEST_STATE_FAILED,
    }
)


@dataclass
class FakeState:
    """Everything the fake knows, plus knobs; guarded by `lock`."""

    lock: threading.Condition = field(default_factory=threading.Condition)
    requests: dict[str, requests_pb2.SealRequest] = field(default_factory=dict)
    originals: dict[tuple[str, int], bytes] = field(default_factory=dict)
    events: list[requests_pb2.RequestEvent] = field(default_factory=list)
    approvals_received: list[requests_pb2.ApproveRequestRequest] = field(default_factory=list)
    submit_chunk_sizes: list[int] = field(default_factory=list)
    pins_received: list[str] = field(default_factory=list)
    # Knobs.
    required_approvals: int = 2
    requester: str = "zhang.wei"
    serve_instead: dict[tuple[str, int], bytes] = field(default_factory=dict)
    honest_download_info: bool = True
    echo_pin_in_errors: bool = False
    after_watch_snapshot: Callable[[FakeState], None] | None = None
    list_page_size: int = 2
    next_id: int = 1

    def publish(self, request: requests_pb2.SealRequest, event: str) -> None:
        with self.lock:
            self.events.append(requests_pb2.RequestEvent(request=request, event=event))
            self.lock.notify_all()

    def digest(self, request: requests_pb2.SealRequest) -> str:
        subject = canonical_approval_subject(
            request_id=request.request_id,
            seal_id=request.seal_id,
            seal_certificate_sha256=request.seal_certificate_sha256,
            requester=request.requester,
            reason=request.reason,
            category=request.category,
            placement=digest_placement(request.placement),
            documents=[DigestDocument(d.name, d.sha256, d.size) for d in request.documents],
        )
        return digest_of(subject)

    def sign(self, request: requests_pb2.SealRequest) -> None:
        """Fake sealing: append bytes, record sealed hashes, publish."""
        for doc in request.documents:
            sealed = self.originals[(request.request_id, doc.index)] + SEALED_SUFFIX
            doc.sealed_sha256 = _sha(sealed)
            doc.sealed_size = len(sealed)
        request.state = requests_pb2.REQUEST_STATE_SIGNED
        request.state_reason = "sealed"
        self.publish(request, "signed")


class FakeRequests(requests_pb2_grpc.SealRequestServiceServicer):
    def __init__(self, state: FakeState) -> None:
        self.s = state

    def _find(self, request_id: str, context: grpc.ServicerContext) -> requests_pb2.SealRequest:
        found = self.s.requests.get(request_id)
        if found is None:
            _abort(context, grpc.StatusCode.NOT_FOUND, "request_not_found",
                   f"no request {request_id}; check the id with `sealctl list`")
        return found

    def SubmitRequest(
        self,
        request_iterator: Iterator[requests_pb2.SubmitRequestMessage],
        context: grpc.ServicerContext,
    ) -> requests_pb2.SealRequest:
        messages = iter(request_iterator)
        first = next(messages, None)
        if first is None or first.WhichOneof("payload") != "header":
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, "header_missing",
                   "the first message must carry the header")
        header = first.header
        starts: list[requests_pb2.DocumentStart] = []
        bodies: list[bytearray] = []
        for message in messages:
            kind = message.WhichOneof("payload")
            if kind == "document_start":
                starts.append(message.document_start)
                bodies.append(bytearray())
            elif kind == "chunk" and bodies:
                self.s.submit_chunk_sizes.append(len(message.chunk))
                bodies[-1].extend(message.chunk)
            else:
                _abort(context, grpc.StatusCode.INVALID_ARGUMENT, "stream_malformed",
                       "chunks must follow a document_start")
        with self.s.lock:
            request_id = f"R-{self.s.next_id:04d}"
            self.s.next_id += 1
        request = requests_pb2.SealRequest(
            request_id=request_id,
            seal_id=header.seal_id,
            requester=self.s.requester,
            reason=header.reason,
            category=header.category,
            placement=header.placement,
            state=requests_pb2.REQUEST_STATE_PENDING,
            state_reason="waiting for approvals",
            required_approvals=self.s.required_approvals,
            seal_certificate_sha256="ab" * 32,
        )
        for index, (start, body) in enumerate(zip(starts, bodies, strict=True)):
            data = bytes(body)
            if len(data) != start.size or (start.sha256 and start.sha256 != _sha(data)):
                _abort(context, grpc.StatusCode.INVALID_ARGUMENT, "digest_mismatch",
                       f"document {start.name!r} arrived damaged; submit it again")
            self.s.originals[(request_id, index)] = data
            request.documents.append(
                requests_pb2.DocumentInfo(
                    index=index, name=start.name, size=len(data), sha256=_sha(data)
                )
            )
        request.approval_digest = self.s.digest(request)
        self.s.requests[request_id] = request
        self.s.publish(request, "submitted")
        return request

    def GetRequest(
        self, request: requests_pb2.GetRequestRequest, context: grpc.ServicerContext
    ) -> requests_pb2.SealRequest:
        return self._find(request.request_id, context)

    def ListRequests(
        self, request: requests_pb2.ListRequestsRequest, context: grpc.ServicerContext
    ) -> requests_pb2.ListRequestsResponse:
        matching = [
            r for r in self.s.requests.values()
            if (not request.states or r.state in request.states)
            and (not request.seal_id or r.seal_id == request.seal_id)
        ]
        start = int(request.page_token or "0")
        end = start + self.s.list_page_size
        return requests_pb2.ListRequestsResponse(
            requests=matching[start:end],
            next_page_token=str(end) if end < len(matching) else "",
        )

    def WatchRequests(
        self, request: requests_pb2.WatchRequestsRequest, context: grpc.ServicerContext
    ) -> Iterator[requests_pb2.RequestEvent]:
        def wanted(r: requests_pb2.SealRequest) -> bool:
            return (not request.request_id or r.request_id == request.request_id) and (
                not request.seal_id or r.seal_id == request.seal_id
            )

        with self.s.lock:
            seen = len(self.s.events)
            snapshot = [r for r in self.s.requests.values() if wanted(r)]
        if request.request_id and not snapshot:
            self._find(request.request_id, context)
        for r in snapshot:
            yield requests_pb2.RequestEvent(request=r, event="snapshot")
        if self.s.after_watch_snapshot is not None:
            self.s.after_watch_snapshot(self.s)
        while context.is_active():
            with self.s.lock:
                if len(self.s.events) == seen:
                    self.s.lock.wait(timeout=0.2)
                fresh = self.s.events[seen:]
                seen = len(self.s.events)
            for event in fresh:
                if wanted(event.request):
                    yield event

    def ApproveRequest(
        self, request: requests_pb2.ApproveRequestRequest, context: grpc.ServicerContext
    ) -> requests_pb2.SealRequest:
        self.s.approvals_received.append(request)
        found = self._find(request.request_id, context)
        if list(request.document_sha256) != [d.sha256 for d in found.documents]:
            _abort(context, grpc.StatusCode.FAILED_PRECONDITION, "document_changed",
                   "the documents differ from what you approved; review them again")
        if request.approval_digest != self.s.digest(found):
            _abort(context, grpc.StatusCode.FAILED_PRECONDITION, "digest_mismatch",
                   "the approval digest differs; review the request again")
        approver = f"approver-{len(found.approvals) + 1}"
        found.approvals.append(
            requests_pb2.Approval(
                approver=approver, approval_digest=request.approval_digest,
                comment=request.comment,
            )
        )
        self.s.publish(found, "approved")
        if len(found.approvals) >= found.required_approvals:
            self.s.sign(found)
        return found

    def WithdrawApproval(
        self, request: requests_pb2.WithdrawApprovalRequest, context: grpc.ServicerContext
    ) -> requests_pb2.SealRequest:
        found = self._find(request.request_id, context)
        if not found.approvals:
            _abort(context, grpc.StatusCode.FAILED_PRECONDITION, "no_approval",
                   "you have not approved this request")
        del found.approvals[-1]
        return found

    def _end(
        self, request_id: str, state: requests_pb2.RequestState, why: str,
        context: grpc.ServicerContext,
    ) -> requests_pb2.SealRequest:
        found = self._find(request_id, context)
        if found.state in TERMINAL:
            _abort(context, grpc.StatusCode.FAILED_PRECONDITION, "wrong_state",
                   f"request {request_id} has already ended; nothing to do")
        found.state = state
        found.state_reason = why
        self.s.publish(found, "ended")
        return found

    def RejectRequest(
        self, request: requests_pb2.RejectRequestRequest, context: grpc.ServicerContext
    ) -> requests_pb2.SealRequest:
        return self._end(request.request_id, requests_pb2.REQUEST_STATE_REJECTED,
                         f"rejected: {request.comment}", context)

    def CancelRequest(
        self, request: requests_pb2.CancelRequestRequest, context: grpc.ServicerContext
    ) -> requests_pb2.SealRequest:
        return self._end(request.request_id, requests_pb2.REQUEST_STATE_CANCELLED,
                         "cancelled by requester", context)

    def DownloadDocument(
        self, request: requests_pb2.DownloadDocumentRequest, context: grpc.ServicerContext
    ) -> Iterator[requests_pb2.DocumentChunk]:
        found = self._find(request.request_id, context)
        key = (request.request_id, request.document_index)
        if key not in self.s.originals:
            _abort(context, grpc.StatusCode.NOT_FOUND, "document_not_found",
                   f"request {request.request_id} has no document {request.document_index}")
        info = requests_pb2.DocumentInfo()
        info.CopyFrom(found.documents[request.document_index])
        data = self.s.originals[key]
        if request.variant != requests_pb2.DOCUMENT_VARIANT_ORIGINAL:
            if found.state != requests_pb2.REQUEST_STATE_SIGNED:
                _abort(context, grpc.StatusCode.FAILED_PRECONDITION, "not_signed",
                       "the request is not sealed yet; wait for it with `sealctl watch`")
            data = data + SEALED_SUFFIX
        if key in self.s.serve_instead:
            data = self.s.serve_instead[key]
            if self.s.honest_download_info:  # a consistent lie: info matches served bytes
                info.sha256 = info.sealed_sha256 = _sha(data)
                info.size = info.sealed_size = len(data)
        for offset in range(0, max(len(data), 1), SERVE_CHUNK):
            chunk = requests_pb2.DocumentChunk(data=data[offset : offset + SERVE_CHUNK])
            if offset == 0:
                chunk.info.CopyFrom(info)
            yield chunk


class FakeTokens(tokens_pb2_grpc.TokenServiceServicer):
    def __init__(self, state: FakeState) -> None:
        self.s = state
        self.tokens = {
            "contract-01": tokens_pb2.TokenStatus(
                seal_id="contract-01", presence=tokens_pb2.TOKEN_PRESENCE_PRESENT,
                token_label="合同专用章",  # noqa: S106 - a label, not a secret
                initial_pin_changed=True,
                not_ready_reason="token locked",
            )
        }

    def _token(self, seal_id: str, context: grpc.ServicerContext) -> tokens_pb2.TokenStatus:
        if seal_id not in self.tokens:
            _abort(context, grpc.StatusCode.FAILED_PRECONDITION, "token_absent",
                   f"the token of seal {seal_id} is not inserted; insert it and retry")
        return self.tokens[seal_id]

    def GetTokenStatus(
        self, request: tokens_pb2.GetTokenStatusRequest, context: grpc.ServicerContext
    ) -> tokens_pb2.GetTokenStatusResponse:
        chosen = [t for k, t in self.tokens.items() if not request.seal_id or k == request.seal_id]
        return tokens_pb2.GetTokenStatusResponse(tokens=chosen)

    def WatchTokens(
        self, request: tokens_pb2.WatchTokensRequest, context: grpc.ServicerContext
    ) -> Iterator[tokens_pb2.TokenStatus]:
        yield from self.tokens.values()

    def _check_pin(self, pin: str, context: grpc.ServicerContext) -> None:
        self.s.pins_received.append(pin)
        if pin != FAKE_PIN:
            echoed = f" (you typed {pin})" if self.s.echo_pin_in_errors else ""
            _abort(context, grpc.StatusCode.PERMISSION_DENIED, "pin_incorrect",
                   f"wrong PIN{echoed}; the token locks after 3 more failures")

    def UnlockToken(
        self, request: tokens_pb2.UnlockTokenRequest, context: grpc.ServicerContext
    ) -> tokens_pb2.TokenStatus:
        token = self._token(request.seal_id, context)
        self._check_pin(request.pin, context)
        token.unlocked, token.ready, token.not_ready_reason = True, True, ""
        return token

    def LockToken(
        self, request: tokens_pb2.LockTokenRequest, context: grpc.ServicerContext
    ) -> tokens_pb2.TokenStatus:
        token = self._token(request.seal_id, context)
        token.unlocked, token.ready, token.not_ready_reason = False, False, "token locked"
        return token

    def ChangePin(
        self, request: tokens_pb2.ChangePinRequest, context: grpc.ServicerContext
    ) -> tokens_pb2.TokenStatus:
        token = self._token(request.seal_id, context)
        self._check_pin(request.old_pin, context)
        self.s.pins_received.append(request.new_pin)
        return token


class FakeSeals(seals_pb2_grpc.SealRegistryServiceServicer):
    def ListSeals(
        self, request: seals_pb2.ListSealsRequest, context: grpc.ServicerContext
    ) -> seals_pb2.ListSealsResponse:
        return seals_pb2.ListSealsResponse(
            seals=[
                seals_pb2.Seal(
                    seal_id="contract-01", type=common_pb2.SEAL_TYPE_CONTRACT,
                    display_name="示例科技有限公司合同专用章", status=common_pb2.SEAL_STATUS_ACTIVE,
                    custodian="wang.fang", categories=["contract"], required_approvals=2,
                )
            ]
        )


class FakeVerify(verify_pb2_grpc.VerifyServiceServicer):
    def VerifyDocument(
        self,
        request_iterator: Iterator[verify_pb2.VerifyDocumentChunk],
        context: grpc.ServicerContext,
    ) -> verify_pb2.VerifyReport:
        data = b"".join(chunk.data for chunk in request_iterator)
        sealed = data.endswith(SEALED_SUFFIX)
        report = verify_pb2.VerifyReport(document_sha256=_sha(data), all_valid=sealed)
        if data.startswith(b"%PDF"):
            report.signatures.append(
                verify_pb2.SignatureReport(
                    field_name="Seal1", seal_id="contract-01", intact=sealed, valid=sealed,
                    trusted=sealed, covers_whole_document=sealed,
                    summary="fake seal" if sealed else "changed after sealing",
                )
            )
        return report


class FakeSeald:
    """A running fake daemon; use as a context manager."""

    def __init__(self, pki: FakePki | None = None) -> None:
        self.pki = pki or make_test_pki()
        self.state = FakeState()
        self.tokens = FakeTokens(self.state)
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        requests_pb2_grpc.add_SealRequestServiceServicer_to_server(
            # Unserved methods keep the generated base: UNIMPLEMENTED.
            FakeRequests(self.state), self._server  # type: ignore[abstract]
        )
        tokens_pb2_grpc.add_TokenServiceServicer_to_server(self.tokens, self._server)
        seals_pb2_grpc.add_SealRegistryServiceServicer_to_server(
            FakeSeals(), self._server  # type: ignore[abstract]
        )
        verify_pb2_grpc.add_VerifyServiceServicer_to_server(FakeVerify(), self._server)
        credentials = grpc.ssl_server_credentials(
            [(self.pki.server_key_pem, self.pki.server_cert_pem)],
            root_certificates=self.pki.ca_pem,
            require_client_auth=True,
        )
        self.port = self._server.add_secure_port("localhost:0", credentials)
        self.target = f"localhost:{self.port}"

    def identity(self) -> ClientIdentity:
        return ClientIdentity(
            target=self.target,
            ca_pem=self.pki.ca_pem,
            cert_pem=self.pki.client_cert_pem,
            key_pem=self.pki.client_key_pem,
        )

    def __enter__(self) -> FakeSeald:
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop(grace=None)
