"""sealweb's configuration: TOML -> frozen dataclasses; unknown keys refused (file, key, fix)."""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ORIGIN = re.compile(r"^https://[a-z0-9.-]+(:\d{1,5})?$")
CREDENTIAL_PREFIX = "credential:"


class WebConfigError(Exception):
    pass


@dataclass(frozen=True)
class WebConfig:
    path: Path
    listen: str  # host:port of the HTTPS server
    tls_cert: Path
    tls_key: Path
    origin: str  # as the browsers see it; must equal seald's [webauthn].origin
    idle_minutes: float
    signin_per_minute: int
    seald_target: str
    seald_ca: Path
    client_cert: Path
    client_key: Path
    seald_server_name: str = ""


_KEYS = {
    "web": {"listen", "tls_cert", "tls_key", "origin", "idle_minutes", "signin_per_minute"},
    "seald": {"target", "ca", "client_cert", "client_key", "server_name"},
}


def _path(file: Path, where: str, value: Any) -> Path:
    if not isinstance(value, str) or not value:
        raise WebConfigError(f"{file}: '{where}' must be a path")
    if value.startswith(CREDENTIAL_PREFIX):
        directory = os.environ.get("CREDENTIALS_DIRECTORY")
        if not directory:
            raise WebConfigError(
                f"{file}: '{where}' = {value!r} needs systemd's LoadCredential= (CREDENTIALS_DIRECTORY unset)"
            )
        return Path(directory) / value.removeprefix(CREDENTIAL_PREFIX)
    path = (file.parent / value).resolve()
    if not path.exists():
        raise WebConfigError(f"{file}: '{where}' = {value!r}: no such file")
    return path


def load_web_config(path: Path) -> WebConfig:
    path = path.resolve()
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as ex:
        raise WebConfigError(f"{path}: no such config file; pass --config PATH") from ex
    except tomllib.TOMLDecodeError as ex:
        raise WebConfigError(f"{path}: not valid TOML: {ex}") from ex
    for section in raw:
        if section not in _KEYS:
            raise WebConfigError(f"{path}: unknown section [{section}]; use [web] and [seald]")
    for section, keys in _KEYS.items():
        table = raw.get(section)
        if not isinstance(table, dict):
            raise WebConfigError(f"{path}: missing [{section}]")
        for key in table:
            if key not in keys:
                raise WebConfigError(
                    f"{path}: unknown key '{section}.{key}'; known: {', '.join(sorted(keys))}"
                )
    web, seald = raw["web"], raw["seald"]
    for section, table, required in (
        ("web", web, ("listen", "tls_cert", "tls_key", "origin")),
        ("seald", seald, ("target", "ca", "client_cert", "client_key")),
    ):
        for key in required:
            if key not in table:
                raise WebConfigError(f"{path}: missing '{section}.{key}'")
    origin = web["origin"]
    if not isinstance(origin, str) or not ORIGIN.match(origin):
        raise WebConfigError(
            f"{path}: 'web.origin' = {origin!r}; use https://HOST[:PORT], lower case, no path"
        )
    idle = web.get("idle_minutes", 10)
    if not isinstance(idle, int | float) or not 1 <= idle <= 10:
        raise WebConfigError(f"{path}: 'web.idle_minutes' must be 1..10 (seald ends web sessions after 10)")
    per_minute = web.get("signin_per_minute", 10)
    if not isinstance(per_minute, int) or not 1 <= per_minute <= 600:
        raise WebConfigError(f"{path}: 'web.signin_per_minute' must be an integer 1..600")
    return WebConfig(
        path=path,
        listen=str(web["listen"]),
        tls_cert=_path(path, "web.tls_cert", web["tls_cert"]),
        tls_key=_path(path, "web.tls_key", web["tls_key"]),
        origin=origin,
        idle_minutes=float(idle),
        signin_per_minute=per_minute,
        seald_target=str(seald["target"]),
        seald_ca=_path(path, "seald.ca", seald["ca"]),
        client_cert=_path(path, "seald.client_cert", seald["client_cert"]),
        client_key=_path(path, "seald.client_key", seald["client_key"]),
        seald_server_name=str(seald.get("server_name", "")),
    )
