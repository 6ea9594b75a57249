"""Client configuration: a small TOML file plus command-line overrides.

    server = "seal-host.example.cn:7443"
    ca     = "ca.pem"          # CA that issued seald's server certificate
    cert   = "me.pem"          # this client's certificate (mutual TLS)
    key    = "me.key"          # this client's private key

Relative paths resolve against the config file's directory, so a config and its
PEM files can be moved together. Precedence: flags > $SEALCTL_CONFIG >
~/.config/sealctl/config.toml.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sealclient.errors import ConfigError

CONFIG_ENV = "SEALCTL_CONFIG"
CONFIG_KEYS = ("server", "ca", "cert", "key")


@dataclass(frozen=True)
class ClientConfig:
    server: str
    ca: Path
    cert: Path
    key: Path


@dataclass(frozen=True)
class ConfigOverrides:
    """Values given as flags; None means "not given"."""

    config: Path | None = None
    server: str | None = None
    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None


def default_config_path(home: Path) -> Path:
    return home / ".config" / "sealctl" / "config.toml"


def read_config_file(path: Path) -> dict[str, str]:
    """Raw values of a config file, paths resolved against the file's directory."""
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError as ex:
        raise ConfigError(
            f"config file {path} does not exist; create it or pass --config / --server "
            "--ca --cert --key"
        ) from ex
    except OSError as ex:
        raise ConfigError(f"cannot read config file {path}: {ex.strerror}") from ex
    except tomllib.TOMLDecodeError as ex:
        raise ConfigError(f"config file {path} is not valid TOML: {ex}") from ex
    values: dict[str, str] = {}
    for key, value in data.items():
        if key not in CONFIG_KEYS:
            raise ConfigError(
                f"config file {path}: unknown key {key!r}; the keys are "
                f"{', '.join(CONFIG_KEYS)}; remove or rename it"
            )
        if not isinstance(value, str) or not value:
            raise ConfigError(
                f"config file {path}: key {key!r} must be a non-empty string; "
                f'write it as {key} = "..."'
            )
        values[key] = value if key == "server" else str(path.parent / Path(value).expanduser())
    return values


def choose_config_file(
    overrides: ConfigOverrides, environ: Mapping[str, str], home: Path
) -> tuple[Path, bool]:
    """The config file to read and whether it must exist (explicitly named)."""
    if overrides.config is not None:
        return overrides.config, True
    from_env = environ.get(CONFIG_ENV, "")
    if from_env:
        return Path(from_env), True
    return default_config_path(home), False


def resolve_config(
    overrides: ConfigOverrides,
    environ: Mapping[str, str] | None = None,
    home: Path | None = None,
) -> ClientConfig:
    """Merge flags over the chosen config file; every key must end up set."""
    env = os.environ if environ is None else environ
    path, required = choose_config_file(overrides, env, home or Path.home())
    values: dict[str, str] = {}
    if required or path.exists():
        values = read_config_file(path)
    flags = {
        "server": overrides.server,
        "ca": overrides.ca,
        "cert": overrides.cert,
        "key": overrides.key,
    }
    for key, flag in flags.items():
        if flag is not None:
            values[key] = str(flag)
    missing = [key for key in CONFIG_KEYS if key not in values]
    if missing:
        where = f"config file {path}" if (required or path.exists()) else f"no config at {path}"
        raise ConfigError(
            f"missing {', '.join(missing)} ({where}); set them in the config file or pass "
            + " ".join(f"--{key}" for key in missing)
        )
    return ClientConfig(
        server=values["server"],
        ca=Path(values["ca"]),
        cert=Path(values["cert"]),
        key=Path(values["key"]),
    )
