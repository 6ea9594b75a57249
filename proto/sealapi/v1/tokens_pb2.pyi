import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TokenPresence(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TOKEN_PRESENCE_UNSPECIFIED: _ClassVar[TokenPresence]
    TOKEN_PRESENCE_ABSENT: _ClassVar[TokenPresence]
    TOKEN_PRESENCE_PRESENT: _ClassVar[TokenPresence]
    TOKEN_PRESENCE_ROGUE: _ClassVar[TokenPresence]
TOKEN_PRESENCE_UNSPECIFIED: TokenPresence
TOKEN_PRESENCE_ABSENT: TokenPresence
TOKEN_PRESENCE_PRESENT: TokenPresence
TOKEN_PRESENCE_ROGUE: TokenPresence

class TokenStatus(_message.Message):
    __slots__ = ("seal_id", "presence", "unlocked", "token_label", "token_serial", "initial_pin_changed", "ready", "not_ready_reason", "since", "unlocked_by")
    SEAL_ID_FIELD_NUMBER: _ClassVar[int]
    PRESENCE_FIELD_NUMBER: _ClassVar[int]
    UNLOCKED_FIELD_NUMBER: _ClassVar[int]
    TOKEN_LABEL_FIELD_NUMBER: _ClassVar[int]
    TOKEN_SERIAL_FIELD_NUMBER: _ClassVar[int]
    INITIAL_PIN_CHANGED_FIELD_NUMBER: _ClassVar[int]
    READY_FIELD_NUMBER: _ClassVar[int]
    NOT_READY_REASON_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNLOCKED_BY_FIELD_NUMBER: _ClassVar[int]
    seal_id: str
    presence: TokenPresence
    unlocked: bool
    token_label: str
    token_serial: str
    initial_pin_changed: bool
    ready: bool
    not_ready_reason: str
    since: _timestamp_pb2.Timestamp
    unlocked_by: str
    def __init__(self, seal_id: _Optional[str] = ..., presence: _Optional[_Union[TokenPresence, str]] = ..., unlocked: _Optional[bool] = ..., token_label: _Optional[str] = ..., token_serial: _Optional[str] = ..., initial_pin_changed: _Optional[bool] = ..., ready: _Optional[bool] = ..., not_ready_reason: _Optional[str] = ..., since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., unlocked_by: _Optional[str] = ...) -> None: ...

class GetTokenStatusRequest(_message.Message):
    __slots__ = ("seal_id",)
    SEAL_ID_FIELD_NUMBER: _ClassVar[int]
    seal_id: str
    def __init__(self, seal_id: _Optional[str] = ...) -> None: ...

class GetTokenStatusResponse(_message.Message):
    __slots__ = ("tokens",)
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    tokens: _containers.RepeatedCompositeFieldContainer[TokenStatus]
    def __init__(self, tokens: _Optional[_Iterable[_Union[TokenStatus, _Mapping]]] = ...) -> None: ...

class WatchTokensRequest(_message.Message):
    __slots__ = ("seal_id",)
    SEAL_ID_FIELD_NUMBER: _ClassVar[int]
    seal_id: str
    def __init__(self, seal_id: _Optional[str] = ...) -> None: ...

class UnlockTokenRequest(_message.Message):
    __slots__ = ("seal_id", "pin")
    SEAL_ID_FIELD_NUMBER: _ClassVar[int]
    PIN_FIELD_NUMBER: _ClassVar[int]
    seal_id: str
    pin: str
    def __init__(self, seal_id: _Optional[str] = ..., pin: _Optional[str] = ...) -> None: ...

class LockTokenRequest(_message.Message):
    __slots__ = ("seal_id",)
    SEAL_ID_FIELD_NUMBER: _ClassVar[int]
    seal_id: str
    def __init__(self, seal_id: _Optional[str] = ...) -> None: ...

class ChangePinRequest(_message.Message):
    __slots__ = ("seal_id", "old_pin", "new_pin")
    SEAL_ID_FIELD_NUMBER: _ClassVar[int]
    OLD_PIN_FIELD_NUMBER: _ClassVar[int]
    NEW_PIN_FIELD_NUMBER: _ClassVar[int]
    seal_id: str
    old_pin: str
    new_pin: str
    def __init__(self, seal_id: _Optional[str] = ..., old_pin: _Optional[str] = ..., new_pin: _Optional[str] = ...) -> None: ...
