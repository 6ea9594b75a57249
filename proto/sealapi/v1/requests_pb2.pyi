import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from sealapi.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RequestState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REQUEST_STATE_UNSPECIFIED: _ClassVar[RequestState]
    REQUEST_STATE_PENDING: _ClassVar[RequestState]
    REQUEST_STATE_APPROVED: _ClassVar[RequestState]
    REQUEST_STATE_SIGNING: _ClassVar[RequestState]
    REQUEST_STATE_SIGNED: _ClassVar[RequestState]
    REQUEST_STATE_REJECTED: _ClassVar[RequestState]
    REQUEST_STATE_CANCELLED: _ClassVar[RequestState]
    REQUEST_STATE_EXPIRED: _ClassVar[RequestState]
    REQUEST_STATE_FAILED: _ClassVar[RequestState]

class DocumentVariant(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DOCUMENT_VARIANT_UNSPECIFIED: _ClassVar[DocumentVariant]
    DOCUMENT_VARIANT_SEALED: _ClassVar[DocumentVariant]
    DOCUMENT_VARIANT_ORIGINAL: _ClassVar[DocumentVariant]
REQUEST_STATE_UNSPECIFIED: RequestState
REQUEST_STATE_PENDING: RequestState
REQUEST_STATE_APPROVED: RequestState
REQUEST_STATE_SIGNING: RequestState
REQUEST_STATE_SIGNED: RequestState
REQUEST_STATE_REJECTED: RequestState
REQUEST_STATE_CANCELLED: RequestState
REQUEST_STATE_EXPIRED: RequestState
REQUEST_STATE_FAILED: RequestState
DOCUMENT_VARIANT_UNSPECIFIED: DocumentVariant
DOCUMENT_VARIANT_SEALED: DocumentVariant
DOCUMENT_VARIANT_ORIGINAL: DocumentVariant

class SubmitRequestHeader(_message.Message):
    __slots__ = ("seal_id", "reason", "category", "placement", "client_request_key", "amount", "amount_currency", "marks")
    SEAL_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    PLACEMENT_FIELD_NUMBER: _ClassVar[int]
    CLIENT_REQUEST_KEY_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_CURRENCY_FIELD_NUMBER: _ClassVar[int]
    MARKS_FIELD_NUMBER: _ClassVar[int]
    seal_id: str
    reason: str
    category: str
    placement: _common_pb2.Placement
    client_request_key: str
    amount: str
    amount_currency: str
    marks: _containers.RepeatedCompositeFieldContainer[_common_pb2.Mark]
    def __init__(self, seal_id: _Optional[str] = ..., reason: _Optional[str] = ..., category: _Optional[str] = ..., placement: _Optional[_Union[_common_pb2.Placement, _Mapping]] = ..., client_request_key: _Optional[str] = ..., amount: _Optional[str] = ..., amount_currency: _Optional[str] = ..., marks: _Optional[_Iterable[_Union[_common_pb2.Mark, _Mapping]]] = ...) -> None: ...

class DocumentStart(_message.Message):
    __slots__ = ("name", "size", "sha256", "marks")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    MARKS_FIELD_NUMBER: _ClassVar[int]
    name: str
    size: int
    sha256: str
    marks: _containers.RepeatedCompositeFieldContainer[_common_pb2.Mark]
    def __init__(self, name: _Optional[str] = ..., size: _Optional[int] = ..., sha256: _Optional[str] = ..., marks: _Optional[_Iterable[_Union[_common_pb2.Mark, _Mapping]]] = ...) -> None: ...

class SubmitRequestMessage(_message.Message):
    __slots__ = ("header", "document_start", "chunk")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_START_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    header: SubmitRequestHeader
    document_start: DocumentStart
    chunk: bytes
    def __init__(self, header: _Optional[_Union[SubmitRequestHeader, _Mapping]] = ..., document_start: _Optional[_Union[DocumentStart, _Mapping]] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class DocumentInfo(_message.Message):
    __slots__ = ("index", "name", "size", "sha256", "sealed_sha256", "sealed_size", "marks", "signed_seals")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    SEALED_SHA256_FIELD_NUMBER: _ClassVar[int]
    SEALED_SIZE_FIELD_NUMBER: _ClassVar[int]
    MARKS_FIELD_NUMBER: _ClassVar[int]
    SIGNED_SEALS_FIELD_NUMBER: _ClassVar[int]
    index: int
    name: str
    size: int
    sha256: str
    sealed_sha256: str
    sealed_size: int
    marks: _containers.RepeatedCompositeFieldContainer[_common_pb2.Mark]
    signed_seals: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, index: _Optional[int] = ..., name: _Optional[str] = ..., size: _Optional[int] = ..., sha256: _Optional[str] = ..., sealed_sha256: _Optional[str] = ..., sealed_size: _Optional[int] = ..., marks: _Optional[_Iterable[_Union[_common_pb2.Mark, _Mapping]]] = ..., signed_seals: _Optional[_Iterable[str]] = ...) -> None: ...

class Approval(_message.Message):
    __slots__ = ("approver", "approval_digest", "approved_at", "comment", "certificate_sha256", "statement", "statement_signature", "webauthn_assertion", "acting_for", "delegation_id")
    APPROVER_FIELD_NUMBER: _ClassVar[int]
    APPROVAL_DIGEST_FIELD_NUMBER: _ClassVar[int]
    APPROVED_AT_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_SHA256_FIELD_NUMBER: _ClassVar[int]
    STATEMENT_FIELD_NUMBER: _ClassVar[int]
    STATEMENT_SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    WEBAUTHN_ASSERTION_FIELD_NUMBER: _ClassVar[int]
    ACTING_FOR_FIELD_NUMBER: _ClassVar[int]
    DELEGATION_ID_FIELD_NUMBER: _ClassVar[int]
    approver: str
    approval_digest: str
    approved_at: _timestamp_pb2.Timestamp
    comment: str
    certificate_sha256: str
    statement: bytes
    statement_signature: bytes
    webauthn_assertion: str
    acting_for: str
    delegation_id: str
    def __init__(self, approver: _Optional[str] = ..., approval_digest: _Optional[str] = ..., approved_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., comment: _Optional[str] = ..., certificate_sha256: _Optional[str] = ..., statement: _Optional[bytes] = ..., statement_signature: _Optional[bytes] = ..., webauthn_assertion: _Optional[str] = ..., acting_for: _Optional[str] = ..., delegation_id: _Optional[str] = ...) -> None: ...

class ChainStep(_message.Message):
    __slots__ = ("name", "state", "requirement", "condition", "counted", "needed_from")
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    REQUIREMENT_FIELD_NUMBER: _ClassVar[int]
    CONDITION_FIELD_NUMBER: _ClassVar[int]
    COUNTED_FIELD_NUMBER: _ClassVar[int]
    NEEDED_FROM_FIELD_NUMBER: _ClassVar[int]
    name: str
    state: str
    requirement: str
    condition: str
    counted: _containers.RepeatedScalarFieldContainer[str]
    needed_from: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., state: _Optional[str] = ..., requirement: _Optional[str] = ..., condition: _Optional[str] = ..., counted: _Optional[_Iterable[str]] = ..., needed_from: _Optional[_Iterable[str]] = ...) -> None: ...

class ChainStanding(_message.Message):
    __slots__ = ("steps", "complete", "current")
    STEPS_FIELD_NUMBER: _ClassVar[int]
    COMPLETE_FIELD_NUMBER: _ClassVar[int]
    CURRENT_FIELD_NUMBER: _ClassVar[int]
    steps: _containers.RepeatedCompositeFieldContainer[ChainStep]
    complete: bool
    current: str
    def __init__(self, steps: _Optional[_Iterable[_Union[ChainStep, _Mapping]]] = ..., complete: _Optional[bool] = ..., current: _Optional[str] = ...) -> None: ...

class SealRequest(_message.Message):
    __slots__ = ("request_id", "seal_id", "requester", "reason", "category", "placement", "documents", "state", "state_reason", "approvals", "required_approvals", "approval_digest", "seal_certificate_sha256", "created_at", "updated_at", "expires_at", "signed_at", "host", "outcome_unknown", "amount", "amount_currency", "chain", "seal_impression_sha256", "marks", "job_seals")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SEAL_ID_FIELD_NUMBER: _ClassVar[int]
    REQUESTER_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    PLACEMENT_FIELD_NUMBER: _ClassVar[int]
    DOCUMENTS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    STATE_REASON_FIELD_NUMBER: _ClassVar[int]
    APPROVALS_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_APPROVALS_FIELD_NUMBER: _ClassVar[int]
    APPROVAL_DIGEST_FIELD_NUMBER: _ClassVar[int]
    SEAL_CERTIFICATE_SHA256_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    SIGNED_AT_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_UNKNOWN_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_CURRENCY_FIELD_NUMBER: _ClassVar[int]
    CHAIN_FIELD_NUMBER: _ClassVar[int]
    SEAL_IMPRESSION_SHA256_FIELD_NUMBER: _ClassVar[int]
    MARKS_FIELD_NUMBER: _ClassVar[int]
    JOB_SEALS_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    seal_id: str
    requester: str
    reason: str
    category: str
    placement: _common_pb2.Placement
    documents: _containers.RepeatedCompositeFieldContainer[DocumentInfo]
    state: RequestState
    state_reason: str
    approvals: _containers.RepeatedCompositeFieldContainer[Approval]
    required_approvals: int
    approval_digest: str
    seal_certificate_sha256: str
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    expires_at: _timestamp_pb2.Timestamp
    signed_at: _timestamp_pb2.Timestamp
    host: str
    outcome_unknown: bool
    amount: str
    amount_currency: str
    chain: ChainStanding
    seal_impression_sha256: str
    marks: _containers.RepeatedCompositeFieldContainer[_common_pb2.Mark]
    job_seals: _containers.RepeatedCompositeFieldContainer[JobSeal]
    def __init__(self, request_id: _Optional[str] = ..., seal_id: _Optional[str] = ..., requester: _Optional[str] = ..., reason: _Optional[str] = ..., category: _Optional[str] = ..., placement: _Optional[_Union[_common_pb2.Placement, _Mapping]] = ..., documents: _Optional[_Iterable[_Union[DocumentInfo, _Mapping]]] = ..., state: _Optional[_Union[RequestState, str]] = ..., state_reason: _Optional[str] = ..., approvals: _Optional[_Iterable[_Union[Approval, _Mapping]]] = ..., required_approvals: _Optional[int] = ..., approval_digest: _Optional[str] = ..., seal_certificate_sha256: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., signed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., host: _Optional[str] = ..., outcome_unknown: _Optional[bool] = ..., amount: _Optional[str] = ..., amount_currency: _Optional[str] = ..., chain: _Optional[_Union[ChainStanding, _Mapping]] = ..., seal_impression_sha256: _Optional[str] = ..., marks: _Optional[_Iterable[_Union[_common_pb2.Mark, _Mapping]]] = ..., job_seals: _Optional[_Iterable[_Union[JobSeal, _Mapping]]] = ...) -> None: ...

class JobSeal(_message.Message):
    __slots__ = ("seal_id", "certificate_sha256", "impression_sha256")
    SEAL_ID_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_SHA256_FIELD_NUMBER: _ClassVar[int]
    IMPRESSION_SHA256_FIELD_NUMBER: _ClassVar[int]
    seal_id: str
    certificate_sha256: str
    impression_sha256: str
    def __init__(self, seal_id: _Optional[str] = ..., certificate_sha256: _Optional[str] = ..., impression_sha256: _Optional[str] = ...) -> None: ...

class GetRequestRequest(_message.Message):
    __slots__ = ("request_id",)
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    def __init__(self, request_id: _Optional[str] = ...) -> None: ...

class ListRequestsRequest(_message.Message):
    __slots__ = ("states", "seal_id", "requester", "page_size", "page_token")
    STATES_FIELD_NUMBER: _ClassVar[int]
    SEAL_ID_FIELD_NUMBER: _ClassVar[int]
    REQUESTER_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    states: _containers.RepeatedScalarFieldContainer[RequestState]
    seal_id: str
    requester: str
    page_size: int
    page_token: str
    def __init__(self, states: _Optional[_Iterable[_Union[RequestState, str]]] = ..., seal_id: _Optional[str] = ..., requester: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListRequestsResponse(_message.Message):
    __slots__ = ("requests", "next_page_token")
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    requests: _containers.RepeatedCompositeFieldContainer[SealRequest]
    next_page_token: str
    def __init__(self, requests: _Optional[_Iterable[_Union[SealRequest, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class WatchRequestsRequest(_message.Message):
    __slots__ = ("request_id", "seal_id")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SEAL_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    seal_id: str
    def __init__(self, request_id: _Optional[str] = ..., seal_id: _Optional[str] = ...) -> None: ...

class RequestEvent(_message.Message):
    __slots__ = ("request", "event")
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    request: SealRequest
    event: str
    def __init__(self, request: _Optional[_Union[SealRequest, _Mapping]] = ..., event: _Optional[str] = ...) -> None: ...

class ApproveRequestRequest(_message.Message):
    __slots__ = ("request_id", "document_sha256", "approval_digest", "comment", "statement", "statement_signature", "on_behalf_of")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_SHA256_FIELD_NUMBER: _ClassVar[int]
    APPROVAL_DIGEST_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    STATEMENT_FIELD_NUMBER: _ClassVar[int]
    STATEMENT_SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    ON_BEHALF_OF_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    document_sha256: _containers.RepeatedScalarFieldContainer[str]
    approval_digest: str
    comment: str
    statement: bytes
    statement_signature: bytes
    on_behalf_of: str
    def __init__(self, request_id: _Optional[str] = ..., document_sha256: _Optional[_Iterable[str]] = ..., approval_digest: _Optional[str] = ..., comment: _Optional[str] = ..., statement: _Optional[bytes] = ..., statement_signature: _Optional[bytes] = ..., on_behalf_of: _Optional[str] = ...) -> None: ...

class WithdrawApprovalRequest(_message.Message):
    __slots__ = ("request_id", "comment")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    comment: str
    def __init__(self, request_id: _Optional[str] = ..., comment: _Optional[str] = ...) -> None: ...

class RejectRequestRequest(_message.Message):
    __slots__ = ("request_id", "comment")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    comment: str
    def __init__(self, request_id: _Optional[str] = ..., comment: _Optional[str] = ...) -> None: ...

class CancelRequestRequest(_message.Message):
    __slots__ = ("request_id", "comment")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    comment: str
    def __init__(self, request_id: _Optional[str] = ..., comment: _Optional[str] = ...) -> None: ...

class DownloadDocumentRequest(_message.Message):
    __slots__ = ("request_id", "document_index", "variant")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_INDEX_FIELD_NUMBER: _ClassVar[int]
    VARIANT_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    document_index: int
    variant: DocumentVariant
    def __init__(self, request_id: _Optional[str] = ..., document_index: _Optional[int] = ..., variant: _Optional[_Union[DocumentVariant, str]] = ...) -> None: ...

class DownloadAllDocumentsRequest(_message.Message):
    __slots__ = ("request_id", "variant")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    VARIANT_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    variant: DocumentVariant
    def __init__(self, request_id: _Optional[str] = ..., variant: _Optional[_Union[DocumentVariant, str]] = ...) -> None: ...

class DocumentChunk(_message.Message):
    __slots__ = ("info", "data")
    INFO_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    info: DocumentInfo
    data: bytes
    def __init__(self, info: _Optional[_Union[DocumentInfo, _Mapping]] = ..., data: _Optional[bytes] = ...) -> None: ...

class PreviewRequestRequest(_message.Message):
    __slots__ = ("request_id", "document_index", "dpi", "first_page", "page_count")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_INDEX_FIELD_NUMBER: _ClassVar[int]
    DPI_FIELD_NUMBER: _ClassVar[int]
    FIRST_PAGE_FIELD_NUMBER: _ClassVar[int]
    PAGE_COUNT_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    document_index: int
    dpi: int
    first_page: int
    page_count: int
    def __init__(self, request_id: _Optional[str] = ..., document_index: _Optional[int] = ..., dpi: _Optional[int] = ..., first_page: _Optional[int] = ..., page_count: _Optional[int] = ...) -> None: ...

class PreviewPage(_message.Message):
    __slots__ = ("page", "png", "page_total")
    PAGE_FIELD_NUMBER: _ClassVar[int]
    PNG_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOTAL_FIELD_NUMBER: _ClassVar[int]
    page: int
    png: bytes
    page_total: int
    def __init__(self, page: _Optional[int] = ..., png: _Optional[bytes] = ..., page_total: _Optional[int] = ...) -> None: ...

class GetEvidenceRequest(_message.Message):
    __slots__ = ("request_id",)
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    def __init__(self, request_id: _Optional[str] = ...) -> None: ...

class EvidencePackage(_message.Message):
    __slots__ = ("json",)
    JSON_FIELD_NUMBER: _ClassVar[int]
    json: bytes
    def __init__(self, json: _Optional[bytes] = ...) -> None: ...
