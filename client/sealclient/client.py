"""SealClient: a typed, synchronous client of seald over mutual TLS.

Every method returns the sealapi.v1 protobuf messages; every failure is a
`SealClientError`. `approve` is the heart of dual control (SEAL-RULES R06): it
downloads the originals, hashes them on THIS machine and recomputes the approval
digest before it approves anything.
"""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import IO, BinaryIO, TypeVar

import grpc

from sealapi.v1 import (
    audit_pb2,
    audit_pb2_grpc,
    common_pb2,
    requests_pb2,
    requests_pb2_grpc,
    seals_pb2,
    seals_pb2_grpc,
    tokens_pb2,
    tokens_pb2_grpc,
    verify_pb2,
    verify_pb2_grpc,
    webauthn_pb2,
    webauthn_pb2_grpc,
)
from sealclient.approval import ApprovalSigner, LocalDocument, build_approval, check_documents
from sealclient.config import ClientConfig
from sealclient.errors import (
    ConfigError,
    LocalInputError,
    LocalVerificationError,
    SealClientError,
    from_rpc_error,
)

CHUNK_SIZE = 256 * 1024
DEFAULT_TIMEOUT_S = 30.0

_T = TypeVar("_T")


@dataclass(frozen=True)
class ClientIdentity:
    """Where seald listens and the mutual-TLS material to reach it."""

    target: str
    ca_pem: bytes = field(repr=False)
    cert_pem: bytes = field(repr=False)
    key_pem: bytes = field(repr=False)
    # For test or lab hosts whose certificate names differ from the dialled address.
    server_name_override: str = ""

    @classmethod
    def from_config(cls, config: ClientConfig) -> ClientIdentity:
        return cls(
            target=config.server,
            ca_pem=_read_pem(config.ca, "ca"),
            cert_pem=_read_pem(config.cert, "cert"),
            key_pem=_read_pem(config.key, "key"),
        )


def _read_pem(path: Path, key: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as ex:
        raise ConfigError(
            f"cannot read {key} file {path}: {ex.strerror}; fix the {key!r} setting or --{key}"
        ) from ex


@dataclass(frozen=True)
class FileDigest:
    sha256: str
    size: int


def file_digest(path: Path) -> FileDigest:
    """SHA-256 and size of a file, read in chunks (never whole in memory)."""
    hasher = hashlib.sha256()
    size = 0
    try:
        with path.open("rb") as handle:
            for chunk in _chunks(handle):
                hasher.update(chunk)
                size += len(chunk)
    except OSError as ex:
        raise LocalInputError(
            "local_file_unreadable", f"cannot read {path}: {ex.strerror}; check the path"
        ) from ex
    return FileDigest(hasher.hexdigest(), size)


def _chunks(handle: BinaryIO) -> Iterator[bytes]:
    while chunk := handle.read(CHUNK_SIZE):
        yield chunk


def submit_messages(
    header: requests_pb2.SubmitRequestHeader,
    documents: Sequence[tuple[Path, FileDigest]],
    document_marks: Sequence[Sequence[common_pb2.Mark]] = (),
) -> Iterator[requests_pb2.SubmitRequestMessage]:
    """The upload stream: header, then per document a DocumentStart and its chunks.
    ``document_marks``: a batch manifest's marks per document (issue 16; empty = none)."""
    yield requests_pb2.SubmitRequestMessage(header=header)
    for position, (path, digest) in enumerate(documents):
        start = requests_pb2.DocumentStart(name=path.name, size=digest.size, sha256=digest.sha256)
        if document_marks:
            start.marks.extend(document_marks[position])
        yield requests_pb2.SubmitRequestMessage(document_start=start)
        with path.open("rb") as handle:
            for chunk in _chunks(handle):
                yield requests_pb2.SubmitRequestMessage(chunk=chunk)


def expected_hash(info: requests_pb2.DocumentInfo, variant: int) -> tuple[str, int]:
    """The hash and size the daemon announced for the variant being downloaded."""
    if variant == requests_pb2.DOCUMENT_VARIANT_ORIGINAL:
        return info.sha256.lower(), info.size
    return info.sealed_sha256.lower(), info.sealed_size


MAX_RECEIVE_BYTES = 32 * 1024 * 1024


class SealClient:
    """Synchronous seald client. Use as a context manager to close the channel."""

    def __init__(self, identity: ClientIdentity, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.target = identity.target
        self._identity = identity
        self._timeout = timeout_s
        credentials = grpc.ssl_channel_credentials(
            root_certificates=identity.ca_pem,
            private_key=identity.key_pem,
            certificate_chain=identity.cert_pem,
        )
        # A volume request (10,000 documents, each approval's statement listing them all)
        # is a ~4 MB SealRequest; seald sends up to 32 MiB (issue 20).
        options: list[tuple[str, str | int]] = [("grpc.max_receive_message_length", MAX_RECEIVE_BYTES)]
        if identity.server_name_override:
            options.append(("grpc.ssl_target_name_override", identity.server_name_override))
        self._channel = grpc.secure_channel(identity.target, credentials, options=options)
        self._requests = requests_pb2_grpc.SealRequestServiceStub(self._channel)
        self._tokens = tokens_pb2_grpc.TokenServiceStub(self._channel)
        self._seals = seals_pb2_grpc.SealRegistryServiceStub(self._channel)
        self._verify = verify_pb2_grpc.VerifyServiceStub(self._channel)
        self._audit = audit_pb2_grpc.AuditServiceStub(self._channel)
        self._webauthn = webauthn_pb2_grpc.WebAuthnServiceStub(self._channel)

    def __enter__(self) -> SealClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    # -- error translation -------------------------------------------------

    @contextlib.contextmanager
    def _translated(self, secrets: tuple[str, ...] = ()) -> Iterator[None]:
        try:
            yield
        except grpc.RpcError as ex:
            raise from_rpc_error(ex, target=self.target, secrets=secrets) from ex

    def _stream(self, call: grpc.CallIterator[_T]) -> Iterator[_T]:
        """Iterate a server stream; cancel it if the caller stops early."""
        try:
            with self._translated():
                yield from call
        finally:
            call.cancel()  # type: ignore[no-untyped-call]  # grpc-stubs lacks a hint

    # -- requests ----------------------------------------------------------

    def submit(
        self,
        paths: Sequence[Path],
        *,
        seal_id: str,
        reason: str,
        category: str,
        placement: common_pb2.Placement,
        client_request_key: str = "",
        amount: str = "",
        amount_currency: str = "",
        marks: Sequence[common_pb2.Mark] = (),
        document_marks: Sequence[Sequence[common_pb2.Mark]] = (),
    ) -> requests_pb2.SealRequest:
        """Submit documents. ``marks`` (issue 16) make it a sealing job: the marks every
        document gets, in order, each naming its seal (``seal_id``/``placement`` are then
        ignored); ``document_marks`` gives each document its own (a batch manifest)."""
        if not paths:
            raise LocalInputError("no_documents", "name at least one PDF to seal")
        if document_marks and len(document_marks) != len(paths):
            raise LocalInputError(
                "bad_manifest",
                f"{len(document_marks)} mark lists for {len(paths)} documents; give one per document",
            )
        # Hash before the call: an unreadable file fails here, not mid-stream.
        documents = [(path, file_digest(path)) for path in paths]
        header = requests_pb2.SubmitRequestHeader(
            seal_id=seal_id,
            reason=reason,
            category=category,
            placement=placement,
            client_request_key=client_request_key,
            amount=amount,
            amount_currency=amount_currency,
            marks=list(marks),
        )
        with self._translated():
            return self._requests.SubmitRequest(submit_messages(header, documents, document_marks))

    def get(self, request_id: str) -> requests_pb2.SealRequest:
        with self._translated():
            return self._requests.GetRequest(
                requests_pb2.GetRequestRequest(request_id=request_id), timeout=self._timeout
            )

    def list(
        self,
        *,
        states: Sequence[requests_pb2.RequestState] = (),
        seal_id: str = "",
        requester: str = "",
        page_size: int = 0,
    ) -> builtins.list[requests_pb2.SealRequest]:
        """Every matching request, following page tokens to the end."""
        found: builtins.list[requests_pb2.SealRequest] = []
        page_token = ""
        while True:
            query = requests_pb2.ListRequestsRequest(
                states=states,
                seal_id=seal_id,
                requester=requester,
                page_size=page_size,
                page_token=page_token,
            )
            with self._translated():
                page = self._requests.ListRequests(query, timeout=self._timeout)
            found.extend(page.requests)
            if not page.next_page_token or page.next_page_token == page_token:
                return found
            page_token = page.next_page_token

    def watch(self, request_id: str = "", seal_id: str = "") -> Iterator[requests_pb2.RequestEvent]:
        query = requests_pb2.WatchRequestsRequest(request_id=request_id, seal_id=seal_id)
        return self._stream(self._requests.WatchRequests(query))

    def approve(
        self,
        request_id: str,
        comment: str = "",
        *,
        expected_sha256: Sequence[str] | None = None,
        on_behalf_of: str = "",
        review: Callable[[requests_pb2.SealRequest], None] | None = None,
    ) -> requests_pb2.SealRequest:
        """Approve only what this machine hashed itself (R06); see module docstring.

        ``on_behalf_of``: approve as the delegate of that approver (issue 17); the signed
        statement names them, so the approval cannot be moved to someone else.
        ``review`` is shown the request (every mark of a sealing job, issue 16) after the
        local checks and before the statement is signed."""
        request = self.get(request_id)
        # Every original in one stream, hashed as it arrives (nothing written to disk).
        local = [
            local
            for _, local in self.download_all(
                request_id, {}, requests_pb2.DOCUMENT_VARIANT_ORIGINAL, len(request.documents)
            )
        ]
        # Issue 9: the approval is a statement signed with this client's own TLS key.
        signer = ApprovalSigner(self._identity.key_pem, self._identity.cert_pem)
        if review is not None:
            check_documents(request, local, expected_sha256)
            review(request)
        approval = build_approval(
            request,
            local,
            comment=comment,
            expected_sha256=expected_sha256,
            signer=signer,
            on_behalf_of=on_behalf_of,
        )
        with self._translated():
            return self._requests.ApproveRequest(approval, timeout=self._timeout)

    def withdraw(self, request_id: str, comment: str = "") -> requests_pb2.SealRequest:
        with self._translated():
            return self._requests.WithdrawApproval(
                requests_pb2.WithdrawApprovalRequest(request_id=request_id, comment=comment),
                timeout=self._timeout,
            )

    def reject(self, request_id: str, comment: str) -> requests_pb2.SealRequest:
        with self._translated():
            return self._requests.RejectRequest(
                requests_pb2.RejectRequestRequest(request_id=request_id, comment=comment),
                timeout=self._timeout,
            )

    def cancel(self, request_id: str, comment: str = "") -> requests_pb2.SealRequest:
        with self._translated():
            return self._requests.CancelRequest(
                requests_pb2.CancelRequestRequest(request_id=request_id, comment=comment),
                timeout=self._timeout,
            )

    def download(
        self,
        request_id: str,
        index: int,
        out_path: Path,
        variant: requests_pb2.DocumentVariant = requests_pb2.DOCUMENT_VARIANT_SEALED,
    ) -> requests_pb2.DocumentInfo:
        """Stream a document to out_path; it appears only if its SHA-256 matches."""
        return self._download(request_id, index, out_path, variant)[0]

    def download_all(
        self,
        request_id: str,
        targets: Mapping[int, Path],
        variant: requests_pb2.DocumentVariant,
        count: int,
        done: Callable[[requests_pb2.DocumentInfo, Path | None], None] | None = None,
    ) -> builtins.list[tuple[requests_pb2.DocumentInfo, LocalDocument]]:
        """Every document of the request in one DownloadAllDocuments stream (issue 20).

        Each document is hashed as it arrives and written to ``targets[index]`` (a temp
        file renamed into place only if its SHA-256 and size are what seald announced;
        an index without a target is only hashed). Documents 0..count-1 must come once
        each, in order. ``done`` is called after each document. One chunk in memory."""
        query = requests_pb2.DownloadAllDocumentsRequest(request_id=request_id, variant=variant)
        results: builtins.list[tuple[requests_pb2.DocumentInfo, LocalDocument]] = []
        current: _Incoming | None = None
        try:
            for frame in self._stream(self._requests.DownloadAllDocuments(query)):
                if frame.HasField("info"):
                    if current is not None:
                        results.append(current.finish())
                        if done is not None:
                            done(*current.outcome())
                    if frame.info.index != len(results) or len(results) >= count:
                        got = f"document {frame.info.index} came after {len(results)}"
                        raise _incomplete(request_id, got)
                    current = _Incoming(request_id, frame.info, variant, targets.get(frame.info.index))
                elif current is None:
                    raise _incomplete(request_id, "data came before any document's header")
                current.write(frame.data)
            if current is not None:
                results.append(current.finish())
                if done is not None:
                    done(*current.outcome())
            current = None
        finally:
            if current is not None:
                current.abandon()
        if len(results) != count:
            raise _incomplete(request_id, f"{len(results)} of {count} documents arrived")
        return results

    def _download(
        self,
        request_id: str,
        index: int,
        out_path: Path,
        variant: requests_pb2.DocumentVariant,
    ) -> tuple[requests_pb2.DocumentInfo, LocalDocument]:
        query = requests_pb2.DownloadDocumentRequest(
            request_id=request_id, document_index=index, variant=variant
        )
        directory = out_path.parent if str(out_path.parent) else Path()
        try:
            handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - renamed or removed below
                dir=directory, prefix=f".{out_path.name}.", suffix=".part", delete=False
            )
        except OSError as ex:
            raise LocalInputError(
                "local_file_unwritable",
                f"cannot write into {directory}: {ex.strerror}; choose another output path",
            ) from ex
        part = Path(handle.name)
        try:
            with handle:
                info, local = self._receive(query, handle)
                handle.flush()
                os.fsync(handle.fileno())
            _check_download(request_id, index, variant, info, local)
            part.replace(out_path)
        except BaseException:
            part.unlink(missing_ok=True)
            raise
        return info, local

    def _receive(
        self, query: requests_pb2.DownloadDocumentRequest, sink: IO[bytes]
    ) -> tuple[requests_pb2.DocumentInfo, LocalDocument]:
        hasher = hashlib.sha256()
        size = 0
        info: requests_pb2.DocumentInfo | None = None
        for chunk in self._stream(self._requests.DownloadDocument(query)):
            if info is None:
                info = chunk.info
            hasher.update(chunk.data)
            sink.write(chunk.data)
            size += len(chunk.data)
        if info is None:
            raise SealClientError(
                grpc.StatusCode.DATA_LOSS,
                "empty_download",
                f"seald sent nothing for document {query.document_index} of request "
                f"{query.request_id}; retry, and report it if it persists",
            )
        return info, LocalDocument(sha256=hasher.hexdigest(), size=size)

    def preview(
        self, request_id: str, index: int = 0, dpi: int = 0, first_page: int = 0, page_count: int = 0
    ) -> builtins.list[requests_pb2.PreviewPage]:
        """PNGs of the original page(s) with the seal drawn where it will go (dpi 0 = default).

        first_page 0: the pages the seal goes on; N >= 1: pages N.. (page_count of them, at
        most 10 per call), seal drawn on those it touches.
        """
        query = requests_pb2.PreviewRequestRequest(
            request_id=request_id,
            document_index=index,
            dpi=dpi,
            first_page=first_page,
            page_count=page_count,
        )
        return [*self._stream(self._requests.PreviewRequest(query, timeout=self._timeout * 4))]

    # -- tokens ------------------------------------------------------------

    def token_status(self, seal_id: str = "") -> tokens_pb2.GetTokenStatusResponse:
        with self._translated():
            return self._tokens.GetTokenStatus(
                tokens_pb2.GetTokenStatusRequest(seal_id=seal_id), timeout=self._timeout
            )

    def watch_tokens(self, seal_id: str = "") -> Iterator[tokens_pb2.TokenStatus]:
        return self._stream(
            self._tokens.WatchTokens(tokens_pb2.WatchTokensRequest(seal_id=seal_id))
        )

    def unlock(self, seal_id: str, pin: str) -> tokens_pb2.TokenStatus:
        with self._translated(secrets=(pin,)):
            return self._tokens.UnlockToken(
                tokens_pb2.UnlockTokenRequest(seal_id=seal_id, pin=pin), timeout=self._timeout
            )

    def lock(self, seal_id: str) -> tokens_pb2.TokenStatus:
        with self._translated():
            return self._tokens.LockToken(
                tokens_pb2.LockTokenRequest(seal_id=seal_id), timeout=self._timeout
            )

    def change_pin(self, seal_id: str, old_pin: str, new_pin: str) -> tokens_pb2.TokenStatus:
        with self._translated(secrets=(old_pin, new_pin)):
            return self._tokens.ChangePin(
                tokens_pb2.ChangePinRequest(seal_id=seal_id, old_pin=old_pin, new_pin=new_pin),
                timeout=self._timeout,
            )

    # -- seals and verification -------------------------------------------

    def seals(self) -> seals_pb2.ListSealsResponse:
        with self._translated():
            return self._seals.ListSeals(seals_pb2.ListSealsRequest(), timeout=self._timeout)

    # -- custody (R09) ------------------------------------------------------

    def custody(self, seal_id: str) -> seals_pb2.Custody:
        with self._translated():
            return self._seals.GetCustody(
                seals_pb2.GetCustodyRequest(seal_id=seal_id), timeout=self._timeout
            )

    def propose_custody_change(
        self,
        seal_id: str,
        to_principal: str,
        *,
        delegation: tuple[datetime, datetime] | None = None,
        comment: str = "",
    ) -> seals_pb2.CustodyChange:
        """A handover, or with ``delegation=(start, end)`` a time-limited delegation."""
        request = seals_pb2.ProposeCustodyChangeRequest(
            seal_id=seal_id,
            kind=seals_pb2.CUSTODY_CHANGE_KIND_HANDOVER,
            to_principal=to_principal,
            comment=comment,
        )
        if delegation is not None:
            request.kind = seals_pb2.CUSTODY_CHANGE_KIND_DELEGATION
            request.window.not_before.FromDatetime(delegation[0])
            request.window.not_after.FromDatetime(delegation[1])
        with self._translated():
            return self._seals.ProposeCustodyChange(request, timeout=self._timeout)

    def approve_custody_change(self, change_id: str) -> seals_pb2.CustodyChange:
        with self._translated():
            return self._seals.ApproveCustodyChange(
                seals_pb2.ApproveCustodyChangeRequest(change_id=change_id), timeout=self._timeout
            )

    # -- WebAuthn credentials (issue 18) --------------------------------------------------------
    def start_enrolment(self, principal: str) -> webauthn_pb2.StartEnrolmentResponse:
        """Admin: a one-time enrolment code for an approver's security key."""
        with self._translated():
            return self._webauthn.StartEnrolment(
                webauthn_pb2.StartEnrolmentRequest(principal=principal), timeout=self._timeout
            )

    def begin_registration(self, enrolment_id: str, code: str) -> webauthn_pb2.BeginRegistrationResponse:
        with self._translated(secrets=(code,)):
            return self._webauthn.BeginRegistration(
                webauthn_pb2.BeginRegistrationRequest(enrolment_id=enrolment_id, code=code),
                timeout=self._timeout,
            )

    def finish_registration(
        self, enrolment_id: str, code: str, credential_json: str, name: str = ""
    ) -> webauthn_pb2.WebAuthnCredential:
        with self._translated(secrets=(code,)):
            return self._webauthn.FinishRegistration(
                webauthn_pb2.FinishRegistrationRequest(
                    enrolment_id=enrolment_id, code=code, credential_json=credential_json, name=name
                ),
                timeout=self._timeout,
            )

    def approve_credential(self, credential_id: str) -> webauthn_pb2.WebAuthnCredential:
        with self._translated():
            return self._webauthn.ApproveCredential(
                webauthn_pb2.CredentialRef(credential_id=credential_id), timeout=self._timeout
            )

    def list_credentials(self, principal: str = "") -> builtins.list[webauthn_pb2.WebAuthnCredential]:
        with self._translated():
            return builtins.list(
                self._webauthn.ListCredentials(
                    webauthn_pb2.ListCredentialsRequest(principal=principal), timeout=self._timeout
                ).credentials
            )

    def name_credential(self, credential_id: str, name: str) -> webauthn_pb2.WebAuthnCredential:
        with self._translated():
            return self._webauthn.NameCredential(
                webauthn_pb2.NameCredentialRequest(credential_id=credential_id, name=name),
                timeout=self._timeout,
            )

    def revoke_credential(self, credential_id: str) -> webauthn_pb2.WebAuthnCredential:
        with self._translated():
            return self._webauthn.RevokeCredential(
                webauthn_pb2.CredentialRef(credential_id=credential_id), timeout=self._timeout
            )

    def begin_webauthn_approval(
        self, request_id: str, credential_id: str, comment: str = ""
    ) -> webauthn_pb2.BeginApprovalResponse:
        with self._translated():
            return self._webauthn.BeginApproval(
                webauthn_pb2.BeginApprovalRequest(
                    request_id=request_id, credential_id=credential_id, comment=comment
                ),
                timeout=self._timeout,
            )

    def finish_webauthn_approval(
        self, request: webauthn_pb2.FinishApprovalRequest
    ) -> requests_pb2.SealRequest:
        with self._translated():
            return self._webauthn.FinishApproval(request, timeout=self._timeout)

    # -- approver delegation and notifications (issue 17) ------------------

    def propose_delegation(
        self,
        delegate: str,
        *,
        start: datetime,
        end: datetime,
        seal_id: str = "",
        categories: Sequence[str] = (),
        delegator: str = "",
        comment: str = "",
    ) -> seals_pb2.Delegation:
        request = seals_pb2.ProposeDelegationRequest(
            delegator=delegator,
            delegate=delegate,
            seal_id=seal_id,
            categories=list(categories),
            comment=comment,
        )
        request.window.not_before.FromDatetime(start)
        request.window.not_after.FromDatetime(end)
        with self._translated():
            return self._seals.ProposeDelegation(request, timeout=self._timeout)

    def approve_delegation(self, delegation_id: str) -> seals_pb2.Delegation:
        with self._translated():
            return self._seals.ApproveDelegation(
                seals_pb2.DelegationIdRequest(delegation_id=delegation_id), timeout=self._timeout
            )

    def end_delegation(self, delegation_id: str, comment: str = "") -> seals_pb2.Delegation:
        with self._translated():
            return self._seals.EndDelegation(
                seals_pb2.DelegationIdRequest(delegation_id=delegation_id, comment=comment),
                timeout=self._timeout,
            )

    def delegations(self, *, live_only: bool = False) -> seals_pb2.ListDelegationsResponse:
        with self._translated():
            return self._seals.ListDelegations(
                seals_pb2.ListDelegationsRequest(live_only=live_only), timeout=self._timeout
            )

    def notification_queue(self, state: str = "") -> seals_pb2.NotificationQueue:
        with self._translated():
            return self._seals.GetNotificationQueue(
                seals_pb2.GetNotificationQueueRequest(state=state), timeout=self._timeout
            )

    def replay_notifications(
        self, event_ids: Sequence[str] = (), webhook: str = ""
    ) -> seals_pb2.ReplayNotificationsResponse:
        with self._translated():
            return self._seals.ReplayNotifications(
                seals_pb2.ReplayNotificationsRequest(event_ids=list(event_ids), webhook=webhook),
                timeout=self._timeout,
            )

    def seal_image(self, seal_id: str, dpi: int = 0) -> bytes:
        """The seal's image as a transparent PNG (dpi 0 = the daemon's default, 300)."""
        with self._translated():
            return self._seals.RenderSealImage(
                seals_pb2.RenderSealImageRequest(seal_id=seal_id, dpi=dpi), timeout=self._timeout
            ).png

    # -- the registered impression (印模, issue 16; admin) --------------------

    def import_seal_impression(
        self, seal_id: str, image: bytes, *, seal_code: str, comment: str = ""
    ) -> seals_pb2.SealImpression:
        """Propose ``image`` (PNG or SVG) as the seal's impression; a second admin approves."""
        with self._translated():
            return self._seals.ImportSealImpression(
                seals_pb2.ImportSealImpressionRequest(
                    seal_id=seal_id, image=image, seal_code=seal_code, comment=comment
                ),
                timeout=self._timeout,
            )

    def approve_seal_impression(
        self, seal_id: str, impression_id: str, sha256: str, *, comment: str = ""
    ) -> seals_pb2.ApproveSealImpressionResponse:
        """Approve a proposed impression by the SHA-256 you checked (a second admin)."""
        with self._translated():
            return self._seals.ApproveSealImpression(
                seals_pb2.ApproveSealImpressionRequest(
                    seal_id=seal_id, impression_id=impression_id, sha256=sha256, comment=comment
                ),
                timeout=self._timeout,
            )

    def seal_impression(self, seal_id: str, proposal_id: str = "") -> seals_pb2.SealImpressionView:
        """The registered impression (with its bytes), open proposals and the history."""
        with self._translated():
            return self._seals.GetSealImpression(
                seals_pb2.GetSealImpressionRequest(seal_id=seal_id, proposal_id=proposal_id),
                timeout=self._timeout,
            )

    # -- seal registry and lifecycle (R02; admin) ---------------------------

    def get_seal(self, seal_id: str) -> seals_pb2.Seal:
        with self._translated():
            return self._seals.GetSeal(seals_pb2.GetSealRequest(seal_id=seal_id), timeout=self._timeout)

    def create_seal_key(self, seal_id: str) -> seals_pb2.CreateSealKeyResponse:
        """Have the daemon create the seal key ON the token; returns its PKCS#10 CSR (DER)."""
        with self._translated():
            return self._seals.CreateSealKey(
                seals_pb2.CreateSealKeyRequest(seal_id=seal_id), timeout=self._timeout
            )

    def import_seal_certificate(self, seal_id: str, certificate_der: bytes) -> seals_pb2.Seal:
        with self._translated():
            return self._seals.ImportSealCertificate(
                seals_pb2.ImportSealCertificateRequest(seal_id=seal_id, certificate_der=certificate_der),
                timeout=self._timeout,
            )

    def change_seal(
        self, seal_id: str, *, display_name: str = "", certificate_der: bytes = b"", comment: str = ""
    ) -> seals_pb2.Seal:
        with self._translated():
            return self._seals.ChangeSeal(
                seals_pb2.ChangeSealRequest(
                    seal_id=seal_id,
                    display_name=display_name,
                    certificate_der=certificate_der,
                    comment=comment,
                ),
                timeout=self._timeout,
            )

    def seal_lifecycle(
        self, action: str, seal_id: str, *, comment: str = "", proposal_id: str = ""
    ) -> seals_pb2.Seal:
        """``action``: suspend, resume, report-lost or destroy (resume/destroy: two admins)."""
        methods = {
            "suspend": self._seals.SuspendSeal,
            "resume": self._seals.ResumeSeal,
            "report-lost": self._seals.ReportSealLost,
            "destroy": self._seals.DestroySeal,
        }
        if action not in methods:
            raise LocalInputError(
                "unknown_action", f"unknown seal action {action!r}; use one of {', '.join(methods)}"
            )
        with self._translated():
            return methods[action](
                seals_pb2.SealLifecycleRequest(seal_id=seal_id, comment=comment, proposal_id=proposal_id),
                timeout=self._timeout,
            )

    def verify(self, path: Path) -> verify_pb2.VerifyReport:
        file_digest(path)  # fail on an unreadable file before opening the stream
        with self._translated():
            return self._verify.VerifyDocument(_verify_chunks(path))

    # -- audit (R10-R12) ---------------------------------------------------

    def verify_audit_chain(self) -> audit_pb2.VerifyAuditChainResponse:
        with self._translated():
            return self._audit.VerifyAuditChain(audit_pb2.VerifyAuditChainRequest(), timeout=self._timeout)

    def evidence(self, request_id: str) -> bytes:
        """The offline evidence package (JSON bytes, docs/evidence.md) of a sealed request."""
        with self._translated():
            package = self._requests.GetEvidence(
                requests_pb2.GetEvidenceRequest(request_id=request_id), timeout=self._timeout
            )
        return bytes(package.json)

    def create_checkpoint(self) -> audit_pb2.Checkpoint:
        with self._translated():
            return self._audit.CreateCheckpoint(audit_pb2.CreateCheckpointRequest(), timeout=self._timeout)

    def usage_report(
        self, from_time: datetime, to_time: datetime, seal_id: str = "", fmt: str = "json"
    ) -> bytes:
        formats = {
            "json": audit_pb2.REPORT_FORMAT_JSON,
            "csv": audit_pb2.REPORT_FORMAT_CSV,
            "pdf": audit_pb2.REPORT_FORMAT_PDF,
        }
        request = audit_pb2.GetUsageReportRequest(seal_id=seal_id, format=formats[fmt])
        request.from_time.FromDatetime(from_time)
        request.to_time.FromDatetime(to_time)
        call = self._audit.GetUsageReport(request, timeout=self._timeout)
        return b"".join(chunk.data for chunk in self._stream(call))

    def create_backup(self, destination: str) -> audit_pb2.CreateBackupResponse:
        with self._translated():
            return self._audit.CreateBackup(
                audit_pb2.CreateBackupRequest(destination=destination), timeout=self._timeout
            )

    def renew_archives(self, *, dry_run: bool = False) -> Iterator[audit_pb2.ArchiveRenewal]:
        """Issue 16: fresh archive timestamps for due B-LTA documents (auditor or admin);
        one message per sealed document as seald reaches it.

        No deadline of the client's usual length: each due document asks the TSA and the
        revocation responders, and a run may cover many documents."""
        call = self._audit.RenewArchives(audit_pb2.RenewArchivesRequest(dry_run=dry_run))
        return self._stream(call)


def _verify_chunks(path: Path) -> Iterator[verify_pb2.VerifyDocumentChunk]:
    with path.open("rb") as handle:
        for chunk in _chunks(handle):
            yield verify_pb2.VerifyDocumentChunk(data=chunk)


def _incomplete(request_id: str, what: str) -> LocalVerificationError:
    return LocalVerificationError(
        "download_incomplete",
        f"the download of request {request_id} is incomplete or out of order ({what}); the "
        "files already verified stay, retry for the rest and report it if it repeats",
    )


class _Incoming:
    """One document of a DownloadAllDocuments stream: hashed as it arrives, written to a
    temp file beside its target (if any) and renamed into place once it checks out."""

    def __init__(
        self,
        request_id: str,
        info: requests_pb2.DocumentInfo,
        variant: requests_pb2.DocumentVariant,
        target: Path | None,
    ) -> None:
        self.request_id, self.info, self.variant, self.target = request_id, info, variant, target
        self._hasher = hashlib.sha256()
        self._size = 0
        self._part: Path | None = None
        self._handle: IO[bytes] | None = None
        if target is not None:
            directory = target.parent if str(target.parent) else Path()
            try:
                handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - renamed or removed below
                    dir=directory, prefix=f".{target.name}.", suffix=".part", delete=False
                )
            except OSError as ex:
                raise LocalInputError(
                    "local_file_unwritable",
                    f"cannot write into {directory}: {ex.strerror}; choose another output path",
                ) from ex
            self._handle, self._part = handle, Path(handle.name)

    def write(self, data: bytes) -> None:
        self._hasher.update(data)
        self._size += len(data)
        if self._handle is not None:
            self._handle.write(data)

    def finish(self) -> tuple[requests_pb2.DocumentInfo, LocalDocument]:
        local = LocalDocument(sha256=self._hasher.hexdigest(), size=self._size)
        if self._handle is not None:
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._handle.close()
        _check_download(self.request_id, self.info.index, self.variant, self.info, local, name=self.info.name)
        if self._part is not None and self.target is not None:
            self._part.replace(self.target)
            self._part = None
        return self.info, local

    def outcome(self) -> tuple[requests_pb2.DocumentInfo, Path | None]:
        return self.info, self.target

    def abandon(self) -> None:
        if self._handle is not None:
            self._handle.close()
        if self._part is not None:
            self._part.unlink(missing_ok=True)


def _check_download(
    request_id: str,
    index: int,
    variant: int,
    info: requests_pb2.DocumentInfo,
    local: LocalDocument,
    *,
    name: str = "",
) -> None:
    want_sha, want_size = expected_hash(info, variant)
    document = f"document {index} ({name!r})" if name else f"document {index}"
    if not want_sha:
        raise LocalVerificationError(
            "download_hash_missing",
            f"seald did not state the SHA-256 of {document} of request {request_id}, "
            "so the download cannot be checked; nothing was written",
        )
    if local.sha256 != want_sha or local.size != want_size:
        raise LocalVerificationError(
            "download_hash_mismatch",
            f"{document} of request {request_id} arrived with sha256 {local.sha256} "
            f"({local.size} bytes) but seald announced {want_sha} ({want_size} bytes); "
            "nothing was written; retry the download and report it if it repeats",
        )
