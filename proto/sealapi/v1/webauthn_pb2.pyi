import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from sealapi.v1 import requests_pb2 as _requests_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CredentialStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CREDENTIAL_STATUS_UNSPECIFIED: _ClassVar[CredentialStatus]
    CREDENTIAL_STATUS_PENDING: _ClassVar[CredentialStatus]
    CREDENTIAL_STATUS_ACTIVE: _ClassVar[CredentialStatus]
    CREDENTIAL_STATUS_REVOKED: _ClassVar[CredentialStatus]
CREDENTIAL_STATUS_UNSPECIFIED: CredentialStatus
CREDENTIAL_STATUS_PENDING: CredentialStatus
CREDENTIAL_STATUS_ACTIVE: CredentialStatus
CREDENTIAL_STATUS_REVOKED: CredentialStatus

class BeginSignInRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class BeginSignInResponse(_message.Message):
    __slots__ = ("options_json",)
    OPTIONS_JSON_FIELD_NUMBER: _ClassVar[int]
    options_json: str
    def __init__(self, options_json: _Optional[str] = ...) -> None: ...

class FinishSignInRequest(_message.Message):
    __slots__ = ("credential_id", "authenticator_data", "client_data_json", "signature", "user_handle")
    CREDENTIAL_ID_FIELD_NUMBER: _ClassVar[int]
    AUTHENTICATOR_DATA_FIELD_NUMBER: _ClassVar[int]
    CLIENT_DATA_JSON_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    USER_HANDLE_FIELD_NUMBER: _ClassVar[int]
    credential_id: str
    authenticator_data: bytes
    client_data_json: bytes
    signature: bytes
    user_handle: bytes
    def __init__(self, credential_id: _Optional[str] = ..., authenticator_data: _Optional[bytes] = ..., client_data_json: _Optional[bytes] = ..., signature: _Optional[bytes] = ..., user_handle: _Optional[bytes] = ...) -> None: ...

class WebSession(_message.Message):
    __slots__ = ("token", "principal", "display_name", "roles", "idle_seconds", "seal_ids")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    ROLES_FIELD_NUMBER: _ClassVar[int]
    IDLE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    SEAL_IDS_FIELD_NUMBER: _ClassVar[int]
    token: str
    principal: str
    display_name: str
    roles: _containers.RepeatedScalarFieldContainer[str]
    idle_seconds: int
    seal_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, token: _Optional[str] = ..., principal: _Optional[str] = ..., display_name: _Optional[str] = ..., roles: _Optional[_Iterable[str]] = ..., idle_seconds: _Optional[int] = ..., seal_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class SignOutRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SignOutResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WebAuthnCredential(_message.Message):
    __slots__ = ("credential_id", "principal", "name", "status", "sign_count", "attestation_format", "aaguid", "public_key_sha256", "enrolled_by", "approved_by", "revoked_by", "registered_at", "last_used_at")
    CREDENTIAL_ID_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    SIGN_COUNT_FIELD_NUMBER: _ClassVar[int]
    ATTESTATION_FORMAT_FIELD_NUMBER: _ClassVar[int]
    AAGUID_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEY_SHA256_FIELD_NUMBER: _ClassVar[int]
    ENROLLED_BY_FIELD_NUMBER: _ClassVar[int]
    APPROVED_BY_FIELD_NUMBER: _ClassVar[int]
    REVOKED_BY_FIELD_NUMBER: _ClassVar[int]
    REGISTERED_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_USED_AT_FIELD_NUMBER: _ClassVar[int]
    credential_id: str
    principal: str
    name: str
    status: CredentialStatus
    sign_count: int
    attestation_format: str
    aaguid: str
    public_key_sha256: str
    enrolled_by: str
    approved_by: str
    revoked_by: str
    registered_at: _timestamp_pb2.Timestamp
    last_used_at: _timestamp_pb2.Timestamp
    def __init__(self, credential_id: _Optional[str] = ..., principal: _Optional[str] = ..., name: _Optional[str] = ..., status: _Optional[_Union[CredentialStatus, str]] = ..., sign_count: _Optional[int] = ..., attestation_format: _Optional[str] = ..., aaguid: _Optional[str] = ..., public_key_sha256: _Optional[str] = ..., enrolled_by: _Optional[str] = ..., approved_by: _Optional[str] = ..., revoked_by: _Optional[str] = ..., registered_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_used_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class StartEnrolmentRequest(_message.Message):
    __slots__ = ("principal",)
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    principal: str
    def __init__(self, principal: _Optional[str] = ...) -> None: ...

class StartEnrolmentResponse(_message.Message):
    __slots__ = ("enrolment_id", "code", "expires_at")
    ENROLMENT_ID_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    enrolment_id: str
    code: str
    expires_at: _timestamp_pb2.Timestamp
    def __init__(self, enrolment_id: _Optional[str] = ..., code: _Optional[str] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class BeginRegistrationRequest(_message.Message):
    __slots__ = ("enrolment_id", "code")
    ENROLMENT_ID_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    enrolment_id: str
    code: str
    def __init__(self, enrolment_id: _Optional[str] = ..., code: _Optional[str] = ...) -> None: ...

class BeginRegistrationResponse(_message.Message):
    __slots__ = ("options_json", "principal")
    OPTIONS_JSON_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    options_json: str
    principal: str
    def __init__(self, options_json: _Optional[str] = ..., principal: _Optional[str] = ...) -> None: ...

class FinishRegistrationRequest(_message.Message):
    __slots__ = ("enrolment_id", "code", "credential_json", "name")
    ENROLMENT_ID_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    CREDENTIAL_JSON_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    enrolment_id: str
    code: str
    credential_json: str
    name: str
    def __init__(self, enrolment_id: _Optional[str] = ..., code: _Optional[str] = ..., credential_json: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class CredentialRef(_message.Message):
    __slots__ = ("credential_id",)
    CREDENTIAL_ID_FIELD_NUMBER: _ClassVar[int]
    credential_id: str
    def __init__(self, credential_id: _Optional[str] = ...) -> None: ...

class ListCredentialsRequest(_message.Message):
    __slots__ = ("principal",)
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    principal: str
    def __init__(self, principal: _Optional[str] = ...) -> None: ...

class ListCredentialsResponse(_message.Message):
    __slots__ = ("credentials",)
    CREDENTIALS_FIELD_NUMBER: _ClassVar[int]
    credentials: _containers.RepeatedCompositeFieldContainer[WebAuthnCredential]
    def __init__(self, credentials: _Optional[_Iterable[_Union[WebAuthnCredential, _Mapping]]] = ...) -> None: ...

class NameCredentialRequest(_message.Message):
    __slots__ = ("credential_id", "name")
    CREDENTIAL_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    credential_id: str
    name: str
    def __init__(self, credential_id: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class BeginApprovalRequest(_message.Message):
    __slots__ = ("request_id", "credential_id", "comment")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    CREDENTIAL_ID_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    credential_id: str
    comment: str
    def __init__(self, request_id: _Optional[str] = ..., credential_id: _Optional[str] = ..., comment: _Optional[str] = ...) -> None: ...

class BeginApprovalResponse(_message.Message):
    __slots__ = ("statement", "options_json", "expires_at")
    STATEMENT_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_JSON_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    statement: bytes
    options_json: str
    expires_at: _timestamp_pb2.Timestamp
    def __init__(self, statement: _Optional[bytes] = ..., options_json: _Optional[str] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class FinishApprovalRequest(_message.Message):
    __slots__ = ("request_id", "credential_id", "authenticator_data", "client_data_json", "signature", "user_handle")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    CREDENTIAL_ID_FIELD_NUMBER: _ClassVar[int]
    AUTHENTICATOR_DATA_FIELD_NUMBER: _ClassVar[int]
    CLIENT_DATA_JSON_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    USER_HANDLE_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    credential_id: str
    authenticator_data: bytes
    client_data_json: bytes
    signature: bytes
    user_handle: bytes
    def __init__(self, request_id: _Optional[str] = ..., credential_id: _Optional[str] = ..., authenticator_data: _Optional[bytes] = ..., client_data_json: _Optional[bytes] = ..., signature: _Optional[bytes] = ..., user_handle: _Optional[bytes] = ...) -> None: ...
