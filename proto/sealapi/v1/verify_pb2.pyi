import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class VerifyDocumentChunk(_message.Message):
    __slots__ = ("data",)
    DATA_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    def __init__(self, data: _Optional[bytes] = ...) -> None: ...

class SignatureReport(_message.Message):
    __slots__ = ("field_name", "signer_subject", "signer_certificate_sha256", "seal_id", "signing_time", "timestamp_time", "intact", "valid", "trusted", "revocation", "covers_whole_document", "modification_level", "summary", "certification", "certification_level")
    FIELD_NAME_FIELD_NUMBER: _ClassVar[int]
    SIGNER_SUBJECT_FIELD_NUMBER: _ClassVar[int]
    SIGNER_CERTIFICATE_SHA256_FIELD_NUMBER: _ClassVar[int]
    SEAL_ID_FIELD_NUMBER: _ClassVar[int]
    SIGNING_TIME_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_TIME_FIELD_NUMBER: _ClassVar[int]
    INTACT_FIELD_NUMBER: _ClassVar[int]
    VALID_FIELD_NUMBER: _ClassVar[int]
    TRUSTED_FIELD_NUMBER: _ClassVar[int]
    REVOCATION_FIELD_NUMBER: _ClassVar[int]
    COVERS_WHOLE_DOCUMENT_FIELD_NUMBER: _ClassVar[int]
    MODIFICATION_LEVEL_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATION_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATION_LEVEL_FIELD_NUMBER: _ClassVar[int]
    field_name: str
    signer_subject: str
    signer_certificate_sha256: str
    seal_id: str
    signing_time: _timestamp_pb2.Timestamp
    timestamp_time: _timestamp_pb2.Timestamp
    intact: bool
    valid: bool
    trusted: bool
    revocation: str
    covers_whole_document: bool
    modification_level: str
    summary: str
    certification: str
    certification_level: int
    def __init__(self, field_name: _Optional[str] = ..., signer_subject: _Optional[str] = ..., signer_certificate_sha256: _Optional[str] = ..., seal_id: _Optional[str] = ..., signing_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., timestamp_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., intact: _Optional[bool] = ..., valid: _Optional[bool] = ..., trusted: _Optional[bool] = ..., revocation: _Optional[str] = ..., covers_whole_document: _Optional[bool] = ..., modification_level: _Optional[str] = ..., summary: _Optional[str] = ..., certification: _Optional[str] = ..., certification_level: _Optional[int] = ...) -> None: ...

class VerifyReport(_message.Message):
    __slots__ = ("signatures", "all_valid", "document_sha256")
    SIGNATURES_FIELD_NUMBER: _ClassVar[int]
    ALL_VALID_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_SHA256_FIELD_NUMBER: _ClassVar[int]
    signatures: _containers.RepeatedCompositeFieldContainer[SignatureReport]
    all_valid: bool
    document_sha256: str
    def __init__(self, signatures: _Optional[_Iterable[_Union[SignatureReport, _Mapping]]] = ..., all_valid: _Optional[bool] = ..., document_sha256: _Optional[str] = ...) -> None: ...
