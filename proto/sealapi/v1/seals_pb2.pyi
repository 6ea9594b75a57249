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

class CustodyChangeKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CUSTODY_CHANGE_KIND_UNSPECIFIED: _ClassVar[CustodyChangeKind]
    CUSTODY_CHANGE_KIND_HANDOVER: _ClassVar[CustodyChangeKind]
    CUSTODY_CHANGE_KIND_DELEGATION: _ClassVar[CustodyChangeKind]
CUSTODY_CHANGE_KIND_UNSPECIFIED: CustodyChangeKind
CUSTODY_CHANGE_KIND_HANDOVER: CustodyChangeKind
CUSTODY_CHANGE_KIND_DELEGATION: CustodyChangeKind

class Seal(_message.Message):
    __slots__ = ("seal_id", "type", "organisation", "display_name", "token_label", "token_serial", "key_label", "certificate_sha256", "certificate_der", "status", "categories", "validity", "required_approvals", "approver_groups", "custodian", "status_reason", "status_since", "signature_level", "certify", "certification_level", "image_shape", "impression_sha256")
    SEAL_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    ORGANISATION_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    TOKEN_LABEL_FIELD_NUMBER: _ClassVar[int]
    TOKEN_SERIAL_FIELD_NUMBER: _ClassVar[int]
    KEY_LABEL_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_SHA256_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_DER_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    VALIDITY_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_APPROVALS_FIELD_NUMBER: _ClassVar[int]
    APPROVER_GROUPS_FIELD_NUMBER: _ClassVar[int]
    CUSTODIAN_FIELD_NUMBER: _ClassVar[int]
    STATUS_REASON_FIELD_NUMBER: _ClassVar[int]
    STATUS_SINCE_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_LEVEL_FIELD_NUMBER: _ClassVar[int]
    CERTIFY_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATION_LEVEL_FIELD_NUMBER: _ClassVar[int]
    IMAGE_SHAPE_FIELD_NUMBER: _ClassVar[int]
    IMPRESSION_SHA256_FIELD_NUMBER: _ClassVar[int]
    seal_id: str
    type: _common_pb2.SealType
    organisation: str
    display_name: str
    token_label: str
    token_serial: str
    key_label: str
    certificate_sha256: str
    certificate_der: bytes
    status: _common_pb2.SealStatus
    categories: _containers.RepeatedScalarFieldContainer[str]
    validity: _common_pb2.TimeWindow
    required_approvals: int
    approver_groups: _containers.RepeatedScalarFieldContainer[str]
    custodian: str
    status_reason: str
    status_since: _timestamp_pb2.Timestamp
    signature_level: str
    certify: str
    certification_level: int
    image_shape: str
    impression_sha256: str
    def __init__(self, seal_id: _Optional[str] = ..., type: _Optional[_Union[_common_pb2.SealType, str]] = ..., organisation: _Optional[str] = ..., display_name: _Optional[str] = ..., token_label: _Optional[str] = ..., token_serial: _Optional[str] = ..., key_label: _Optional[str] = ..., certificate_sha256: _Optional[str] = ..., certificate_der: _Optional[bytes] = ..., status: _Optional[_Union[_common_pb2.SealStatus, str]] = ..., categories: _Optional[_Iterable[str]] = ..., validity: _Optional[_Union[_common_pb2.TimeWindow, _Mapping]] = ..., required_approvals: _Optional[int] = ..., approver_groups: _Optional[_Iterable[str]] = ..., custodian: _Optional[str] = ..., status_reason: _Optional[str] = ..., status_since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., signature_level: _Optional[str] = ..., certify: _Optional[str] = ..., certification_level: _Optional[int] = ..., image_shape: _Optional[str] = ..., impression_sha256: _Optional[str] = ...) -> None: ...

class ListSealsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListSealsResponse(_message.Message):
    __slots__ = ("seals",)
    SEALS_FIELD_NUMBER: _ClassVar[int]
    seals: _containers.RepeatedCompositeFieldContainer[Seal]
    def __init__(self, seals: _Optional[_Iterable[_Union[Seal, _Mapping]]] = ...) -> None: ...

class GetSealRequest(_message.Message):
    __slots__ = ("seal_id",)
    SEAL_ID_FIELD_NUMBER: _ClassVar[int]
    seal_id: str
    def __init__(self, seal_id: _Optional[str] = ...) -> None: ...

class CreateSealKeyRequest(_message.Message):
    __slots__ = ("seal_id",)
    SEAL_ID_FIELD_NUMBER: _ClassVar[int]
    seal_id: str
    def __init__(self, seal_id: _Optional[str] = ...) -> None: ...

class CreateSealKeyResponse(_message.Message):
    __slots__ = ("seal_id", "csr_der")
    SEAL_ID_FIELD_NUMBER: _ClassVar[int]
    CSR_DER_FIELD_NUMBER: _ClassVar[int]
    seal_id: str
    csr_der: bytes
    def __init__(self, seal_id: _Optional[str] = ..., csr_der: _Optional[bytes] = ...) -> None: ...

class ImportSealCertificateRequest(_message.Message):
    __slots__ = ("seal_id", "certificate_der")
    SEAL_ID_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_DER_FIELD_NUMBER: _ClassVar[int]
    seal_id: str
    certificate_der: bytes
    def __init__(self, seal_id: _Optional[str] = ..., certificate_der: _Optional[bytes] = ...) -> None: ...

class ChangeSealRequest(_message.Message):
    __slots__ = ("seal_id", "display_name", "certificate_der", "comment")
    SEAL_ID_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_DER_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    seal_id: str
    display_name: str
    certificate_der: bytes
    comment: str
    def __init__(self, seal_id: _Optional[str] = ..., display_name: _Optional[str] = ..., certificate_der: _Optional[bytes] = ..., comment: _Optional[str] = ...) -> None: ...

class SealLifecycleRequest(_message.Message):
    __slots__ = ("seal_id", "comment", "proposal_id")
    SEAL_ID_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    PROPOSAL_ID_FIELD_NUMBER: _ClassVar[int]
    seal_id: str
    comment: str
    proposal_id: str
    def __init__(self, seal_id: _Optional[str] = ..., comment: _Optional[str] = ..., proposal_id: _Optional[str] = ...) -> None: ...

class RenderSealImageRequest(_message.Message):
    __slots__ = ("seal_id", "dpi")
    SEAL_ID_FIELD_NUMBER: _ClassVar[int]
    DPI_FIELD_NUMBER: _ClassVar[int]
    seal_id: str
    dpi: int
    def __init__(self, seal_id: _Optional[str] = ..., dpi: _Optional[int] = ...) -> None: ...

class RenderSealImageResponse(_message.Message):
    __slots__ = ("png",)
    PNG_FIELD_NUMBER: _ClassVar[int]
    png: bytes
    def __init__(self, png: _Optional[bytes] = ...) -> None: ...

class ImportSealImpressionRequest(_message.Message):
    __slots__ = ("seal_id", "image", "seal_code", "comment")
    SEAL_ID_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    SEAL_CODE_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    seal_id: str
    image: bytes
    seal_code: str
    comment: str
    def __init__(self, seal_id: _Optional[str] = ..., image: _Optional[bytes] = ..., seal_code: _Optional[str] = ..., comment: _Optional[str] = ...) -> None: ...

class ApproveSealImpressionRequest(_message.Message):
    __slots__ = ("seal_id", "impression_id", "sha256", "comment")
    SEAL_ID_FIELD_NUMBER: _ClassVar[int]
    IMPRESSION_ID_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    seal_id: str
    impression_id: str
    sha256: str
    comment: str
    def __init__(self, seal_id: _Optional[str] = ..., impression_id: _Optional[str] = ..., sha256: _Optional[str] = ..., comment: _Optional[str] = ...) -> None: ...

class SealImpression(_message.Message):
    __slots__ = ("impression_id", "seal_id", "sha256", "media_type", "seal_code", "width_mm", "height_mm", "dpi", "proposed_by", "proposed_at", "approved_by", "approved_at", "comment")
    IMPRESSION_ID_FIELD_NUMBER: _ClassVar[int]
    SEAL_ID_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    MEDIA_TYPE_FIELD_NUMBER: _ClassVar[int]
    SEAL_CODE_FIELD_NUMBER: _ClassVar[int]
    WIDTH_MM_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_MM_FIELD_NUMBER: _ClassVar[int]
    DPI_FIELD_NUMBER: _ClassVar[int]
    PROPOSED_BY_FIELD_NUMBER: _ClassVar[int]
    PROPOSED_AT_FIELD_NUMBER: _ClassVar[int]
    APPROVED_BY_FIELD_NUMBER: _ClassVar[int]
    APPROVED_AT_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    impression_id: str
    seal_id: str
    sha256: str
    media_type: str
    seal_code: str
    width_mm: float
    height_mm: float
    dpi: float
    proposed_by: str
    proposed_at: _timestamp_pb2.Timestamp
    approved_by: str
    approved_at: _timestamp_pb2.Timestamp
    comment: str
    def __init__(self, impression_id: _Optional[str] = ..., seal_id: _Optional[str] = ..., sha256: _Optional[str] = ..., media_type: _Optional[str] = ..., seal_code: _Optional[str] = ..., width_mm: _Optional[float] = ..., height_mm: _Optional[float] = ..., dpi: _Optional[float] = ..., proposed_by: _Optional[str] = ..., proposed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., approved_by: _Optional[str] = ..., approved_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., comment: _Optional[str] = ...) -> None: ...

class ApproveSealImpressionResponse(_message.Message):
    __slots__ = ("impression", "voided_requests")
    IMPRESSION_FIELD_NUMBER: _ClassVar[int]
    VOIDED_REQUESTS_FIELD_NUMBER: _ClassVar[int]
    impression: SealImpression
    voided_requests: int
    def __init__(self, impression: _Optional[_Union[SealImpression, _Mapping]] = ..., voided_requests: _Optional[int] = ...) -> None: ...

class GetSealImpressionRequest(_message.Message):
    __slots__ = ("seal_id", "proposal_id")
    SEAL_ID_FIELD_NUMBER: _ClassVar[int]
    PROPOSAL_ID_FIELD_NUMBER: _ClassVar[int]
    seal_id: str
    proposal_id: str
    def __init__(self, seal_id: _Optional[str] = ..., proposal_id: _Optional[str] = ...) -> None: ...

class SealImpressionView(_message.Message):
    __slots__ = ("current", "image", "proposals", "history", "proposal_image")
    CURRENT_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    PROPOSALS_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    PROPOSAL_IMAGE_FIELD_NUMBER: _ClassVar[int]
    current: SealImpression
    image: bytes
    proposals: _containers.RepeatedCompositeFieldContainer[SealImpression]
    history: _containers.RepeatedCompositeFieldContainer[SealImpression]
    proposal_image: bytes
    def __init__(self, current: _Optional[_Union[SealImpression, _Mapping]] = ..., image: _Optional[bytes] = ..., proposals: _Optional[_Iterable[_Union[SealImpression, _Mapping]]] = ..., history: _Optional[_Iterable[_Union[SealImpression, _Mapping]]] = ..., proposal_image: _Optional[bytes] = ...) -> None: ...

class Custody(_message.Message):
    __slots__ = ("seal_id", "custodian", "delegate", "delegation")
    SEAL_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTODIAN_FIELD_NUMBER: _ClassVar[int]
    DELEGATE_FIELD_NUMBER: _ClassVar[int]
    DELEGATION_FIELD_NUMBER: _ClassVar[int]
    seal_id: str
    custodian: str
    delegate: str
    delegation: _common_pb2.TimeWindow
    def __init__(self, seal_id: _Optional[str] = ..., custodian: _Optional[str] = ..., delegate: _Optional[str] = ..., delegation: _Optional[_Union[_common_pb2.TimeWindow, _Mapping]] = ...) -> None: ...

class GetCustodyRequest(_message.Message):
    __slots__ = ("seal_id",)
    SEAL_ID_FIELD_NUMBER: _ClassVar[int]
    seal_id: str
    def __init__(self, seal_id: _Optional[str] = ...) -> None: ...

class ProposeCustodyChangeRequest(_message.Message):
    __slots__ = ("seal_id", "kind", "to_principal", "window", "comment")
    SEAL_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    TO_PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    seal_id: str
    kind: CustodyChangeKind
    to_principal: str
    window: _common_pb2.TimeWindow
    comment: str
    def __init__(self, seal_id: _Optional[str] = ..., kind: _Optional[_Union[CustodyChangeKind, str]] = ..., to_principal: _Optional[str] = ..., window: _Optional[_Union[_common_pb2.TimeWindow, _Mapping]] = ..., comment: _Optional[str] = ...) -> None: ...

class CustodyChange(_message.Message):
    __slots__ = ("change_id", "seal_id", "kind", "to_principal", "window", "approvals", "in_effect")
    CHANGE_ID_FIELD_NUMBER: _ClassVar[int]
    SEAL_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    TO_PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    APPROVALS_FIELD_NUMBER: _ClassVar[int]
    IN_EFFECT_FIELD_NUMBER: _ClassVar[int]
    change_id: str
    seal_id: str
    kind: CustodyChangeKind
    to_principal: str
    window: _common_pb2.TimeWindow
    approvals: _containers.RepeatedScalarFieldContainer[str]
    in_effect: bool
    def __init__(self, change_id: _Optional[str] = ..., seal_id: _Optional[str] = ..., kind: _Optional[_Union[CustodyChangeKind, str]] = ..., to_principal: _Optional[str] = ..., window: _Optional[_Union[_common_pb2.TimeWindow, _Mapping]] = ..., approvals: _Optional[_Iterable[str]] = ..., in_effect: _Optional[bool] = ...) -> None: ...

class ApproveCustodyChangeRequest(_message.Message):
    __slots__ = ("change_id",)
    CHANGE_ID_FIELD_NUMBER: _ClassVar[int]
    change_id: str
    def __init__(self, change_id: _Optional[str] = ...) -> None: ...

class ProposeDelegationRequest(_message.Message):
    __slots__ = ("delegator", "delegate", "seal_id", "categories", "window", "comment")
    DELEGATOR_FIELD_NUMBER: _ClassVar[int]
    DELEGATE_FIELD_NUMBER: _ClassVar[int]
    SEAL_ID_FIELD_NUMBER: _ClassVar[int]
    CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    delegator: str
    delegate: str
    seal_id: str
    categories: _containers.RepeatedScalarFieldContainer[str]
    window: _common_pb2.TimeWindow
    comment: str
    def __init__(self, delegator: _Optional[str] = ..., delegate: _Optional[str] = ..., seal_id: _Optional[str] = ..., categories: _Optional[_Iterable[str]] = ..., window: _Optional[_Union[_common_pb2.TimeWindow, _Mapping]] = ..., comment: _Optional[str] = ...) -> None: ...

class Delegation(_message.Message):
    __slots__ = ("delegation_id", "delegator", "delegate", "seal_id", "categories", "window", "state", "proposed_by", "approved_by", "ended_by")
    DELEGATION_ID_FIELD_NUMBER: _ClassVar[int]
    DELEGATOR_FIELD_NUMBER: _ClassVar[int]
    DELEGATE_FIELD_NUMBER: _ClassVar[int]
    SEAL_ID_FIELD_NUMBER: _ClassVar[int]
    CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PROPOSED_BY_FIELD_NUMBER: _ClassVar[int]
    APPROVED_BY_FIELD_NUMBER: _ClassVar[int]
    ENDED_BY_FIELD_NUMBER: _ClassVar[int]
    delegation_id: str
    delegator: str
    delegate: str
    seal_id: str
    categories: _containers.RepeatedScalarFieldContainer[str]
    window: _common_pb2.TimeWindow
    state: str
    proposed_by: str
    approved_by: str
    ended_by: str
    def __init__(self, delegation_id: _Optional[str] = ..., delegator: _Optional[str] = ..., delegate: _Optional[str] = ..., seal_id: _Optional[str] = ..., categories: _Optional[_Iterable[str]] = ..., window: _Optional[_Union[_common_pb2.TimeWindow, _Mapping]] = ..., state: _Optional[str] = ..., proposed_by: _Optional[str] = ..., approved_by: _Optional[str] = ..., ended_by: _Optional[str] = ...) -> None: ...

class DelegationIdRequest(_message.Message):
    __slots__ = ("delegation_id", "comment")
    DELEGATION_ID_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    delegation_id: str
    comment: str
    def __init__(self, delegation_id: _Optional[str] = ..., comment: _Optional[str] = ...) -> None: ...

class ListDelegationsRequest(_message.Message):
    __slots__ = ("live_only",)
    LIVE_ONLY_FIELD_NUMBER: _ClassVar[int]
    live_only: bool
    def __init__(self, live_only: _Optional[bool] = ...) -> None: ...

class ListDelegationsResponse(_message.Message):
    __slots__ = ("delegations",)
    DELEGATIONS_FIELD_NUMBER: _ClassVar[int]
    delegations: _containers.RepeatedCompositeFieldContainer[Delegation]
    def __init__(self, delegations: _Optional[_Iterable[_Union[Delegation, _Mapping]]] = ...) -> None: ...

class GetNotificationQueueRequest(_message.Message):
    __slots__ = ("state",)
    STATE_FIELD_NUMBER: _ClassVar[int]
    state: str
    def __init__(self, state: _Optional[str] = ...) -> None: ...

class NotificationDelivery(_message.Message):
    __slots__ = ("event_id", "webhook", "state", "attempts", "last_error")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    webhook: str
    state: str
    attempts: int
    last_error: str
    def __init__(self, event_id: _Optional[str] = ..., webhook: _Optional[str] = ..., state: _Optional[str] = ..., attempts: _Optional[int] = ..., last_error: _Optional[str] = ...) -> None: ...

class NotificationQueue(_message.Message):
    __slots__ = ("pending", "delivered", "dead", "oldest_pending_age_seconds", "deliveries")
    PENDING_FIELD_NUMBER: _ClassVar[int]
    DELIVERED_FIELD_NUMBER: _ClassVar[int]
    DEAD_FIELD_NUMBER: _ClassVar[int]
    OLDEST_PENDING_AGE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    DELIVERIES_FIELD_NUMBER: _ClassVar[int]
    pending: int
    delivered: int
    dead: int
    oldest_pending_age_seconds: float
    deliveries: _containers.RepeatedCompositeFieldContainer[NotificationDelivery]
    def __init__(self, pending: _Optional[int] = ..., delivered: _Optional[int] = ..., dead: _Optional[int] = ..., oldest_pending_age_seconds: _Optional[float] = ..., deliveries: _Optional[_Iterable[_Union[NotificationDelivery, _Mapping]]] = ...) -> None: ...

class ReplayNotificationsRequest(_message.Message):
    __slots__ = ("event_ids", "webhook")
    EVENT_IDS_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_FIELD_NUMBER: _ClassVar[int]
    event_ids: _containers.RepeatedScalarFieldContainer[str]
    webhook: str
    def __init__(self, event_ids: _Optional[_Iterable[str]] = ..., webhook: _Optional[str] = ...) -> None: ...

class ReplayNotificationsResponse(_message.Message):
    __slots__ = ("replayed",)
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    replayed: int
    def __init__(self, replayed: _Optional[int] = ...) -> None: ...
