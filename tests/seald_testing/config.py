"""A typed builder for the seald TOML a test daemon runs with.

It starts from the fixtures' config (softhsm-fixtures/build_fixtures.py), parsed with
tomllib; a test changes it through named methods (a seal, a principal, a table) instead
of editing text with regular expressions, and `render()` writes it back with tomli-w.
A seal or principal that does not exist is an error naming the ones that do, and seald
itself rejects unknown keys, so a misspelt key fails the daemon's start, not silently.

A config edit is any callable taking the builder: ``SealDaemon(fx, lambda c: c.set_seal(
"contract", level="B-T"))``; `chain` applies several in order.
"""

from __future__ import annotations

import copy
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import tomli_w

ConfigEdit = Callable[["DaemonConfig"], object]


class DaemonConfig:
    """seald's TOML as nested dicts, with the changes tests make as methods (each returns self)."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    @classmethod
    def from_file(cls, path: Path) -> DaemonConfig:
        with path.open("rb") as handle:
            return cls(tomllib.load(handle))

    def copy(self) -> DaemonConfig:
        return DaemonConfig(copy.deepcopy(self.data))

    # --- top-level tables: [server], [store], [trust], [requests], [limits], [metrics], ...

    def table(self, name: str) -> dict[str, Any]:
        """A top-level table, created empty if the fixture config has none."""
        table = self.data.setdefault(name, {})
        assert isinstance(table, dict), f"[{name}] is not a table"
        return table

    def set(self, table: str, **values: Any) -> DaemonConfig:
        """Set keys of a top-level table, e.g. ``set("requests", max_documents=3)``."""
        self.table(table).update(values)
        return self

    def listen(self, address: str) -> DaemonConfig:
        return self.set("server", listen=address)

    def metrics(self, port: int) -> DaemonConfig:
        """Serve /metrics on loopback at ``port``."""
        return self.set("metrics", listen=f"127.0.0.1:{port}")

    def state_dir(self, path: Path) -> DaemonConfig:
        return self.set("store", state_dir=str(path))

    # --- [[seal]] and [[principal]] entries

    def seal(self, seal_id: str) -> dict[str, Any]:
        return _entry(self.data, "seal", "id", seal_id)

    def set_seal(self, seal_id: str, **values: Any) -> DaemonConfig:
        """Set keys of one seal, e.g. ``set_seal("contract", level="B-LT")``."""
        self.seal(seal_id).update(values)
        return self

    def add_seal(self, seal_id: str, **values: Any) -> DaemonConfig:
        """A new [[seal]] entry (all its keys as seald's config requires them)."""
        assert not _entries(self.data, "seal", "id", seal_id), f"seal {seal_id!r} exists already"
        self.data.setdefault("seal", []).append({"id": seal_id, **values})
        return self

    def principal(self, name: str) -> dict[str, Any]:
        return _entry(self.data, "principal", "name", name)

    def set_principal(self, name: str, **values: Any) -> DaemonConfig:
        """Set keys of one principal, e.g. ``set_principal("zhao.min", seals=["official"])``."""
        self.principal(name).update(values)
        return self

    def add_principal(
        self,
        name: str,
        *,
        roles: list[str],
        seals: list[str] | None,
        certificates: list[str],
        **values: Any,
    ) -> DaemonConfig:
        """A new [[principal]] (a client certificate issued by the fixtures' TLS CA);
        ``seals=None`` leaves the key out (a relay holds no seal)."""
        assert not _entries(self.data, "principal", "name", name), f"principal {name!r} exists already"
        entry = {"name": name, "roles": roles, "certificates": certificates, **values}
        if seals is not None:
            entry["seals"] = seals
        self.data.setdefault("principal", []).append(entry)
        return self

    def render(self) -> str:
        return tomli_w.dumps(self.data)


def chain(*edits: ConfigEdit) -> ConfigEdit:
    """One edit applying several in order."""

    def edit(config: DaemonConfig) -> None:
        for one in edits:
            one(config)

    return edit


def _entries(data: dict[str, Any], kind: str, key: str, value: str) -> list[dict[str, Any]]:
    return [entry for entry in data.get(kind, []) if entry.get(key) == value]


def _entry(data: dict[str, Any], kind: str, key: str, value: str) -> dict[str, Any]:
    found = _entries(data, kind, key, value)
    if len(found) != 1:
        known = [entry.get(key) for entry in data.get(kind, [])]
        raise KeyError(f"no single [[{kind}]] with {key} = {value!r} in the test config (there are {known})")
    return found[0]
