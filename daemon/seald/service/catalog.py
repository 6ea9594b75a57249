"""The seals as the daemon sees them now: config + registered certificate + lifecycle status."""

from __future__ import annotations

from dataclasses import replace

from seald.config import Config
from seald.domain.errors import InvalidInput
from seald.domain.impressions import Impression
from seald.domain.model import Seal
from seald.domain.seals import SealState, apply_state
from seald.service.settings import LiveConfig
from seald.store import seals as seal_tables
from seald.store.database import Store, Transaction
from seald.tokens.manager import TokenManager


class SealCatalog:
    """Looks a seal up by id; holds the committed lifecycle status of each (R02)."""

    def __init__(self, live: LiveConfig, store: Store, tokens: TokenManager) -> None:
        self._live = live
        self._store = store
        self._tokens = tokens
        # Seal lifecycle status (R02) as committed; transactions read the database itself.
        self.states: dict[str, SealState] = {}
        # Issue 16: each seal's registered impression (印模) and its bytes, as committed.
        self.impressions: dict[str, tuple[Impression, bytes]] = {}

    @property
    def config(self) -> Config:
        return self._live.current

    def seal(self, seal_id: str, tx: Transaction | None = None) -> Seal:
        """The seal with its lifecycle status; inside a transaction, read from the database."""
        if seal_id not in self.config.seals:
            known = ", ".join(sorted(self.config.seals))
            raise InvalidInput(
                f"unknown seal {seal_id!r}; known seals: {known}", reason="unknown_seal"
            )
        if tx is not None:
            state: SealState | None = seal_tables.get_state(tx.conn, seal_id)
            current = seal_tables.current_impression(tx.conn, seal_id)
            impression_sha256 = current.sha256 if current is not None else ""
        else:
            state = self.states.get(seal_id)
            impression_sha256 = self.impression_sha256(seal_id)
        seal = apply_state(self.config.seal(seal_id, self._tokens.certificate_sha256(seal_id)), state)
        return replace(seal, impression_sha256=impression_sha256)

    def impression_sha256(self, seal_id: str) -> str:
        """The registered impression's SHA-256, "" while the seal uses its generated image."""
        found = self.impressions.get(seal_id)
        return found[0].sha256 if found is not None else ""

    async def load(self) -> None:
        """Read the committed statuses and the certificates imported through the API."""
        # Certificates imported through the API (R02) are the registered ones.
        self.states, imported = await self._store.registered_seals()
        self.impressions = await self._store.read(lambda db: seal_tables.current_impressions(db.conn))
        for seal_id, der in imported.items():
            if seal_id in self.config.seals:
                self._tokens.set_certificate(seal_id, der)
