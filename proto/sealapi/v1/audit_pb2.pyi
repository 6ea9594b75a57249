import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ReportFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REPORT_FORMAT_UNSPECIFIED: _ClassVar[ReportFormat]
    REPORT_FORMAT_JSON: _ClassVar[ReportFormat]
    REPORT_FORMAT_CSV: _ClassVar[ReportFormat]
    REPORT_FORMAT_PDF: _ClassVar[ReportFormat]
REPORT_FORMAT_UNSPECIFIED: ReportFormat
REPORT_FORMAT_JSON: ReportFormat
REPORT_FORMAT_CSV: ReportFormat
REPORT_FORMAT_PDF: ReportFormat

class AuditRecord(_message.Message):
    __slots__ = ("sequence", "time", "host", "principal", "role", "event", "seal_id", "request_id", "document_name", "document_sha256", "reason", "outcome", "details_json", "previous_hash", "record_hash")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    SEAL_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_NAME_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_SHA256_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    DETAILS_JSON_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_HASH_FIELD_NUMBER: _ClassVar[int]
    RECORD_HASH_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    time: _timestamp_pb2.Timestamp
    host: str
    principal: str
    role: str
    event: str
    seal_id: str
    request_id: str
    document_name: str
    document_sha256: str
    reason: str
    outcome: str
    details_json: str
    previous_hash: str
    record_hash: str
    def __init__(self, sequence: _Optional[int] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., host: _Optional[str] = ..., principal: _Optional[str] = ..., role: _Optional[str] = ..., event: _Optional[str] = ..., seal_id: _Optional[str] = ..., request_id: _Optional[str] = ..., document_name: _Optional[str] = ..., document_sha256: _Optional[str] = ..., reason: _Optional[str] = ..., outcome: _Optional[str] = ..., details_json: _Optional[str] = ..., previous_hash: _Optional[str] = ..., record_hash: _Optional[str] = ...) -> None: ...

class QueryAuditRecordsRequest(_message.Message):
    __slots__ = ("from_time", "to_time", "seal_id", "request_id", "event", "after_sequence", "limit")
    FROM_TIME_FIELD_NUMBER: _ClassVar[int]
    TO_TIME_FIELD_NUMBER: _ClassVar[int]
    SEAL_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    from_time: _timestamp_pb2.Timestamp
    to_time: _timestamp_pb2.Timestamp
    seal_id: str
    request_id: str
    event: str
    after_sequence: int
    limit: int
    def __init__(self, from_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., to_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., seal_id: _Optional[str] = ..., request_id: _Optional[str] = ..., event: _Optional[str] = ..., after_sequence: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class VerifyAuditChainRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class VerifyAuditChainResponse(_message.Message):
    __slots__ = ("ok", "records_checked", "first_bad_sequence", "problem", "head_hash")
    OK_FIELD_NUMBER: _ClassVar[int]
    RECORDS_CHECKED_FIELD_NUMBER: _ClassVar[int]
    FIRST_BAD_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    PROBLEM_FIELD_NUMBER: _ClassVar[int]
    HEAD_HASH_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    records_checked: int
    first_bad_sequence: int
    problem: str
    head_hash: str
    def __init__(self, ok: _Optional[bool] = ..., records_checked: _Optional[int] = ..., first_bad_sequence: _Optional[int] = ..., problem: _Optional[str] = ..., head_hash: _Optional[str] = ...) -> None: ...

class CreateCheckpointRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Checkpoint(_message.Message):
    __slots__ = ("sequence", "head_hash", "time", "signature", "certificate_der", "timestamp_token")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    HEAD_HASH_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_DER_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_TOKEN_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    head_hash: str
    time: _timestamp_pb2.Timestamp
    signature: bytes
    certificate_der: bytes
    timestamp_token: bytes
    def __init__(self, sequence: _Optional[int] = ..., head_hash: _Optional[str] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., signature: _Optional[bytes] = ..., certificate_der: _Optional[bytes] = ..., timestamp_token: _Optional[bytes] = ...) -> None: ...

class GetUsageReportRequest(_message.Message):
    __slots__ = ("from_time", "to_time", "seal_id", "format")
    FROM_TIME_FIELD_NUMBER: _ClassVar[int]
    TO_TIME_FIELD_NUMBER: _ClassVar[int]
    SEAL_ID_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    from_time: _timestamp_pb2.Timestamp
    to_time: _timestamp_pb2.Timestamp
    seal_id: str
    format: ReportFormat
    def __init__(self, from_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., to_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., seal_id: _Optional[str] = ..., format: _Optional[_Union[ReportFormat, str]] = ...) -> None: ...

class ReportChunk(_message.Message):
    __slots__ = ("data",)
    DATA_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    def __init__(self, data: _Optional[bytes] = ...) -> None: ...

class CreateBackupRequest(_message.Message):
    __slots__ = ("destination",)
    DESTINATION_FIELD_NUMBER: _ClassVar[int]
    destination: str
    def __init__(self, destination: _Optional[str] = ...) -> None: ...

class CreateBackupResponse(_message.Message):
    __slots__ = ("path", "sha256", "head_sequence", "head_hash", "sizes", "files_directory")
    PATH_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    HEAD_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    HEAD_HASH_FIELD_NUMBER: _ClassVar[int]
    SIZES_FIELD_NUMBER: _ClassVar[int]
    FILES_DIRECTORY_FIELD_NUMBER: _ClassVar[int]
    path: str
    sha256: str
    head_sequence: int
    head_hash: str
    sizes: _containers.RepeatedCompositeFieldContainer[BackupKindSize]
    files_directory: str
    def __init__(self, path: _Optional[str] = ..., sha256: _Optional[str] = ..., head_sequence: _Optional[int] = ..., head_hash: _Optional[str] = ..., sizes: _Optional[_Iterable[_Union[BackupKindSize, _Mapping]]] = ..., files_directory: _Optional[str] = ...) -> None: ...

class BackupKindSize(_message.Message):
    __slots__ = ("kind", "files", "bytes")
    KIND_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    kind: str
    files: int
    bytes: int
    def __init__(self, kind: _Optional[str] = ..., files: _Optional[int] = ..., bytes: _Optional[int] = ...) -> None: ...

class RenewArchivesRequest(_message.Message):
    __slots__ = ("dry_run",)
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    dry_run: bool
    def __init__(self, dry_run: _Optional[bool] = ...) -> None: ...

class ArchiveRenewal(_message.Message):
    __slots__ = ("request_id", "seal_id", "document_index", "document_name", "status", "reason", "detail", "sha256", "new_sha256", "timestamp_time", "certificate_expires")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SEAL_ID_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_INDEX_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_NAME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    NEW_SHA256_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_TIME_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_EXPIRES_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    seal_id: str
    document_index: int
    document_name: str
    status: str
    reason: str
    detail: str
    sha256: str
    new_sha256: str
    timestamp_time: _timestamp_pb2.Timestamp
    certificate_expires: _timestamp_pb2.Timestamp
    def __init__(self, request_id: _Optional[str] = ..., seal_id: _Optional[str] = ..., document_index: _Optional[int] = ..., document_name: _Optional[str] = ..., status: _Optional[str] = ..., reason: _Optional[str] = ..., detail: _Optional[str] = ..., sha256: _Optional[str] = ..., new_sha256: _Optional[str] = ..., timestamp_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., certificate_expires: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
