import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SealType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SEAL_TYPE_UNSPECIFIED: _ClassVar[SealType]
    SEAL_TYPE_OFFICIAL: _ClassVar[SealType]
    SEAL_TYPE_LEGAL_REPRESENTATIVE: _ClassVar[SealType]
    SEAL_TYPE_CONTRACT: _ClassVar[SealType]
    SEAL_TYPE_FINANCE: _ClassVar[SealType]
    SEAL_TYPE_PERSONAL: _ClassVar[SealType]

class SealStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SEAL_STATUS_UNSPECIFIED: _ClassVar[SealStatus]
    SEAL_STATUS_ACTIVE: _ClassVar[SealStatus]
    SEAL_STATUS_SUSPENDED: _ClassVar[SealStatus]
    SEAL_STATUS_LOST: _ClassVar[SealStatus]
    SEAL_STATUS_DESTROYED: _ClassVar[SealStatus]
    SEAL_STATUS_PENDING: _ClassVar[SealStatus]

class Role(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ROLE_UNSPECIFIED: _ClassVar[Role]
    ROLE_REQUESTER: _ClassVar[Role]
    ROLE_APPROVER: _ClassVar[Role]
    ROLE_CUSTODIAN: _ClassVar[Role]
    ROLE_ADMIN: _ClassVar[Role]
    ROLE_AUDITOR: _ClassVar[Role]
    ROLE_RELAY: _ClassVar[Role]
SEAL_TYPE_UNSPECIFIED: SealType
SEAL_TYPE_OFFICIAL: SealType
SEAL_TYPE_LEGAL_REPRESENTATIVE: SealType
SEAL_TYPE_CONTRACT: SealType
SEAL_TYPE_FINANCE: SealType
SEAL_TYPE_PERSONAL: SealType
SEAL_STATUS_UNSPECIFIED: SealStatus
SEAL_STATUS_ACTIVE: SealStatus
SEAL_STATUS_SUSPENDED: SealStatus
SEAL_STATUS_LOST: SealStatus
SEAL_STATUS_DESTROYED: SealStatus
SEAL_STATUS_PENDING: SealStatus
ROLE_UNSPECIFIED: Role
ROLE_REQUESTER: Role
ROLE_APPROVER: Role
ROLE_CUSTODIAN: Role
ROLE_ADMIN: Role
ROLE_AUDITOR: Role
ROLE_RELAY: Role

class Placement(_message.Message):
    __slots__ = ("page", "x_mm", "y_mm", "size_mm", "anchor_text", "cross_page")
    PAGE_FIELD_NUMBER: _ClassVar[int]
    X_MM_FIELD_NUMBER: _ClassVar[int]
    Y_MM_FIELD_NUMBER: _ClassVar[int]
    SIZE_MM_FIELD_NUMBER: _ClassVar[int]
    ANCHOR_TEXT_FIELD_NUMBER: _ClassVar[int]
    CROSS_PAGE_FIELD_NUMBER: _ClassVar[int]
    page: int
    x_mm: float
    y_mm: float
    size_mm: float
    anchor_text: str
    cross_page: bool
    def __init__(self, page: _Optional[int] = ..., x_mm: _Optional[float] = ..., y_mm: _Optional[float] = ..., size_mm: _Optional[float] = ..., anchor_text: _Optional[str] = ..., cross_page: _Optional[bool] = ...) -> None: ...

class CrossPage(_message.Message):
    __slots__ = ("pages", "group_size")
    PAGES_FIELD_NUMBER: _ClassVar[int]
    GROUP_SIZE_FIELD_NUMBER: _ClassVar[int]
    pages: str
    group_size: int
    def __init__(self, pages: _Optional[str] = ..., group_size: _Optional[int] = ...) -> None: ...

class Mark(_message.Message):
    __slots__ = ("seal_id", "pages", "x_mm", "y_mm", "size_mm", "anchor_text", "anchor_max_matches", "cross_page")
    SEAL_ID_FIELD_NUMBER: _ClassVar[int]
    PAGES_FIELD_NUMBER: _ClassVar[int]
    X_MM_FIELD_NUMBER: _ClassVar[int]
    Y_MM_FIELD_NUMBER: _ClassVar[int]
    SIZE_MM_FIELD_NUMBER: _ClassVar[int]
    ANCHOR_TEXT_FIELD_NUMBER: _ClassVar[int]
    ANCHOR_MAX_MATCHES_FIELD_NUMBER: _ClassVar[int]
    CROSS_PAGE_FIELD_NUMBER: _ClassVar[int]
    seal_id: str
    pages: str
    x_mm: float
    y_mm: float
    size_mm: float
    anchor_text: str
    anchor_max_matches: int
    cross_page: CrossPage
    def __init__(self, seal_id: _Optional[str] = ..., pages: _Optional[str] = ..., x_mm: _Optional[float] = ..., y_mm: _Optional[float] = ..., size_mm: _Optional[float] = ..., anchor_text: _Optional[str] = ..., anchor_max_matches: _Optional[int] = ..., cross_page: _Optional[_Union[CrossPage, _Mapping]] = ...) -> None: ...

class Principal(_message.Message):
    __slots__ = ("name", "display_name", "roles", "seal_ids")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    ROLES_FIELD_NUMBER: _ClassVar[int]
    SEAL_IDS_FIELD_NUMBER: _ClassVar[int]
    name: str
    display_name: str
    roles: _containers.RepeatedScalarFieldContainer[Role]
    seal_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., display_name: _Optional[str] = ..., roles: _Optional[_Iterable[_Union[Role, str]]] = ..., seal_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class ErrorInfo(_message.Message):
    __slots__ = ("reason", "message")
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    reason: str
    message: str
    def __init__(self, reason: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class TimeWindow(_message.Message):
    __slots__ = ("not_before", "not_after")
    NOT_BEFORE_FIELD_NUMBER: _ClassVar[int]
    NOT_AFTER_FIELD_NUMBER: _ClassVar[int]
    not_before: _timestamp_pb2.Timestamp
    not_after: _timestamp_pb2.Timestamp
    def __init__(self, not_before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., not_after: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
