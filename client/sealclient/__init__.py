"""sealclient: typed client library for the seal appliance (seald) and the `sealctl` CLI."""

from sealclient.client import ClientIdentity, SealClient
from sealclient.config import ClientConfig, ConfigOverrides, resolve_config
from sealclient.errors import (
    ConfigError,
    LocalInputError,
    LocalVerificationError,
    SealClientError,
)

__all__ = [
    "ClientConfig",
    "ClientIdentity",
    "ConfigError",
    "ConfigOverrides",
    "LocalInputError",
    "LocalVerificationError",
    "SealClient",
    "SealClientError",
    "resolve_config",
]
