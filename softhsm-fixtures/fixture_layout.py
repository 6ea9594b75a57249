"""Typed view of the fixture tree that build_fixtures.py writes (OUTDIR/fixtures.json).

Shared by tests/conftest.py, the demo and the benchmarks, so that nobody parses
fixtures.json by hand. Importable once softhsm-fixtures/ is on sys.path
(tests/conftest.py puts it there).
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FIXTURES_JSON = "fixtures.json"
# Files that hold absolute paths into the tree; relocate_fixtures rewrites them.
_FILES_WITH_PATHS = ("softhsm2.conf", "seald.toml", FIXTURES_JSON)


class FixtureLayoutError(Exception):
    """fixtures.json is missing, malformed or points at files that are gone."""


@dataclass(frozen=True)
class SealFixture:
    """One seal: its SoftHSM token, the key on it and the certificate for that key."""

    seal_id: str
    seal_type: str
    display_name: str
    token_label: str
    token_serial: str
    key_label: str
    key_id_hex: str
    user_pin: str
    so_pin: str
    certificate: Path


@dataclass(frozen=True)
class ClientIdentity:
    """One client certificate with its key and sealctl config.

    `name` is the certificate's file name (e.g. "li.na-laptop"); `principal` is
    the person it maps to in seald.toml (e.g. "li.na"), empty for certificates
    that are deliberately not on the allow-list.
    """

    name: str
    principal: str
    display_name: str
    cert: Path
    key: Path
    config: Path
    fingerprint_sha256: str
    roles: tuple[str, ...]
    seals: tuple[str, ...]


@dataclass(frozen=True)
class SealFixtures:
    """Everything build_fixtures.py made, with absolute paths."""

    root: Path
    listen: str
    softhsm2_conf: Path
    module: Path
    config: Path
    state_dir: Path
    seal_ca: Path
    seal_ca_key: Path
    tls_ca: Path
    tls_ca_key: Path
    server_cert: Path
    server_key: Path
    foreign_ca: Path
    seals: Mapping[str, SealFixture]
    # Keyed by certificate name: "li.na" and "li.na-laptop" are both here.
    principals: Mapping[str, ClientIdentity]
    unlisted: ClientIdentity
    foreign: ClientIdentity


def _client(name: str, raw: Mapping[str, Any]) -> ClientIdentity:
    return ClientIdentity(
        name=name,
        principal=str(raw.get("principal", "")),
        display_name=str(raw.get("display_name", "")),
        cert=Path(raw["cert"]),
        key=Path(raw["key"]),
        config=Path(raw["config"]),
        fingerprint_sha256=str(raw["fingerprint_sha256"]),
        roles=tuple(raw["roles"]),
        seals=tuple(raw.get("seals", ())),
    )


def _single(raw: Mapping[str, Any], what: str) -> ClientIdentity:
    if len(raw) != 1:
        raise FixtureLayoutError(f"fixtures.json: '{what}' must hold exactly one certificate")
    ((name, entry),) = raw.items()
    return _client(name, entry)


def load_fixtures(root: Path) -> SealFixtures:
    """Read OUTDIR/fixtures.json into typed, frozen dataclasses."""
    path = root / FIXTURES_JSON
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        seals = {
            seal_id: SealFixture(
                seal_id=seal_id,
                seal_type=s["type"],
                display_name=s["display_name"],
                token_label=s["token_label"],
                token_serial=s["token_serial"],
                key_label=s["key_label"],
                key_id_hex=s["key_id_hex"],
                user_pin=s["user_pin"],
                so_pin=s["so_pin"],
                certificate=Path(s["certificate"]),
            )
            for seal_id, s in raw["seals"].items()
        }
        return SealFixtures(
            root=Path(raw["root"]),
            listen=raw["listen"],
            softhsm2_conf=Path(raw["softhsm2_conf"]),
            module=Path(raw["module"]),
            config=Path(raw["config"]),
            state_dir=Path(raw["state_dir"]),
            seal_ca=Path(raw["seal_ca"]),
            seal_ca_key=Path(raw["seal_ca_key"]),
            tls_ca=Path(raw["tls_ca"]),
            tls_ca_key=Path(raw["tls_ca_key"]),
            server_cert=Path(raw["server_cert"]),
            server_key=Path(raw["server_key"]),
            foreign_ca=Path(raw["foreign_ca"]),
            seals=seals,
            principals={n: _client(n, p) for n, p in raw["principals"].items()},
            unlisted=_single(raw["unlisted"], "unlisted"),
            foreign=_single(raw["foreign"], "foreign"),
        )
    except (OSError, ValueError, KeyError, TypeError) as ex:
        raise FixtureLayoutError(
            f"{path} is missing or incomplete ({type(ex).__name__}: {ex}); "
            "rebuild it with: python softhsm-fixtures/build_fixtures.py OUTDIR --force"
        ) from ex


def rewrite_root(text: str, old_root: Path, new_root: Path) -> str:
    """Replace the absolute path `old_root` by `new_root` wherever it is a whole path prefix.

    The lookahead keeps "/x/fix" from matching inside "/x/fix2/...".
    """
    pattern = re.escape(str(old_root)) + r"(?=[/\"'\s]|$)"
    return re.sub(pattern, lambda _m: str(new_root), text, flags=re.MULTILINE)


def relocate_fixtures(src: Path, dst: Path) -> SealFixtures:
    """Copy a built fixture tree to `dst` (must not exist) and point every absolute path at it.

    Tokens are plain files in SoftHSM's file backend, so the copy is an
    independent set of tokens with the same serials, keys and PINs.
    """
    old_root = load_fixtures(src).root
    shutil.copytree(src, dst, symlinks=True)
    new_root = dst.resolve()
    targets = [dst / name for name in _FILES_WITH_PATHS] + sorted((dst / "clients").glob("*.toml"))
    for target in targets:
        text = target.read_text(encoding="utf-8")
        target.write_text(rewrite_root(text, old_root, new_root), encoding="utf-8")
    return load_fixtures(dst)
